//! How each `[[notify]]` channel's deliveries go: a war room sees whether the page to on-call
//! actually left, beside the actuators.

use cutover_core::notify::ChannelStatus;
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

fn row(c: ChannelStatus) -> impl IntoView {
    let (word, class) = match (c.failing, c.pending) {
        (true, _) => ("FAILING, RETRYING", "verdict fail"),
        (false, 0) => ("DELIVERED", "verdict pass"),
        (false, _) => ("SENDING", "verdict nodata"),
    };
    let mut detail = format!("{} delivered, {} waiting", c.delivered, c.pending);
    if c.dropped > 0 {
        detail.push_str(&format!(", {} dropped (queue full)", c.dropped));
    }
    if let Some(e) = &c.error {
        detail.push_str(&format!("; attempt {}: {e}", c.attempts));
    }
    view! {
        <tr data-testid=format!("channel-{}", c.id)>
            <td class="gate-title">{c.id.clone()} " (" {c.kind.clone()} ")"</td>
            <td><span class=class>{word}</span></td>
            <td class="gate-observed">{detail}</td>
        </tr>
    }
}

/// The notify channel table; nothing when the plan has none.
#[component]
pub fn Channels(#[prop(into)] snapshot: Signal<Option<Snapshot>>) -> impl IntoView {
    let rows = move || snapshot.get().map(|s| s.channels).unwrap_or_default();
    move || {
        let rows = rows();
        (!rows.is_empty()).then(|| {
            view! {
                <section class="panel channels">
                    <h2>"Notifications"</h2>
                    <table class="gates">
                        <tbody>{rows.into_iter().map(row).collect_view()}</tbody>
                    </table>
                </section>
            }
        })
    }
}
