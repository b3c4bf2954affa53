//! How far each actuator (webhook, env file) has got with applying the rollout's state: an
//! operator who pressed kill sees whether the world has heard it.

use cutover_core::actuate::{ActuatorStatus, ApplyState};
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

fn row(a: ActuatorStatus) -> impl IntoView {
    let (word, class) = match a.state {
        ApplyState::Applied => ("APPLIED", "verdict pass"),
        ApplyState::Applying => ("APPLYING", "verdict nodata"),
        ApplyState::Failed => ("FAILED, RETRYING", "verdict fail"),
    };
    let detail = match &a.error {
        Some(e) => format!("version {}, attempt {}: {e}", a.version, a.attempts),
        None => format!("version {}, attempt {}", a.version, a.attempts),
    };
    view! {
        <tr data-testid=format!("actuator-{}", a.id)>
            <td class="gate-title">{a.id.clone()} " (" {a.kind.replace('_', " ")} ")"</td>
            <td><span class=class>{word}</span></td>
            <td class="gate-observed">{detail}</td>
        </tr>
    }
}

/// The actuator table; nothing when the plan has none.
#[component]
pub fn Actuators(#[prop(into)] snapshot: Signal<Option<Snapshot>>) -> impl IntoView {
    let rows = move || snapshot.get().map(|s| s.actuators).unwrap_or_default();
    move || {
        let rows = rows();
        (!rows.is_empty()).then(|| {
            view! {
                <section class="panel actuators">
                    <h2>"Actuators"</h2>
                    <table class="gates">
                        <tbody>{rows.into_iter().map(row).collect_view()}</tbody>
                    </table>
                </section>
            }
        })
    }
}
