//! One chart of a plan's metric, drawn with plotters on a canvas: percentile lines, a stacked
//! mode mix, or a ratio line, each with its gates' thresholds as dashed lines and a time axis.
//! Gaps stay gaps; a chart with no data says so in words instead of drawing zero. Hovering
//! shows the values at that time. A chart redraws only when its own series change.

use cutover_core::chart::{ChartSpec, LimitKind, Marker, Style};
use cutover_core::series::{Frame, Series};
use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::theme::Theme;

/// `window.cutoverDrawBench`, for the app bench only: not in the production bundle.
#[cfg(feature = "draw-bench")]
pub mod bench;
mod canvas;

/// The page's root font size in CSS pixels (the wall's scales with its screen), 16 if unknown.
/// The height (CSS pixels) a wall chart's canvas can take: from where it starts to the bottom
/// of the page's main box, less what its panel shows under it (legend, markers), what the
/// charts' box holds under the panel, and whatever the main box lays out after the charts
/// (sections and the gaps between them); at most 1.3 times its width. None of that depends
/// on the canvas's own height, so drawing at this height settles at once.
fn wall_height(canvas: &web_sys::HtmlCanvasElement) -> Option<f64> {
    let own = canvas.get_bounding_client_rect();
    let section = canvas.closest(".panel").ok()??;
    // What the panel holds under the canvas ends with its last child (legend, markers), plus
    // its padding: not its own bottom, which a taller neighbour in the row stretches.
    let last = section.last_element_child()?.get_bounding_client_rect();
    let panel_bottom = last.bottom() + 0.75 * root_font_px();
    let panel = section.get_bounding_client_rect();
    let charts = canvas.closest(".charts").ok()??;
    let main = canvas.closest("main").ok()??;
    let box_ = charts.get_bounding_client_rect();
    // The lowest thing laid out after the charts in the left column.
    let children = main.children();
    let mut after = box_.bottom();
    for i in 0..children.length() {
        let Some(child) = children.item(i) else {
            continue;
        };
        if child.class_list().contains("board-panel") {
            continue;
        }
        let r = child.get_bounding_client_rect();
        if r.top() >= box_.bottom() - 0.5 {
            after = after.max(r.bottom());
        }
    }
    let taken = (panel_bottom - own.bottom()).max(0.0)
        + (box_.bottom() - panel.bottom()).max(0.0)
        + (after - box_.bottom()).max(0.0);
    let room = main.get_bounding_client_rect().bottom() - own.top() - taken - 4.0;
    (room > MIN_HEIGHT).then(|| room.min(own.width() * 1.3))
}

fn root_font_px() -> f64 {
    web_sys::window()
        .and_then(|w| {
            let root = w.document()?.document_element()?;
            w.get_computed_style(&root).ok().flatten()
        })
        .and_then(|style| style.get_property_value("font-size").ok())
        .and_then(|size| size.trim_end_matches("px").parse::<f64>().ok())
        .filter(|size| *size >= 8.0)
        .unwrap_or(16.0)
}

/// The canvas before it is laid out; afterwards it matches its box in device pixels.
const WIDTH: u32 = 960;
const HEIGHT: u32 = 260;
/// The least height of a chart, in CSS pixels.
const MIN_HEIGHT: f64 = 180.0;

/// Lengths in canvas pixels: CSS pixels times the device pixel ratio, so text stays sharp
/// and readable however far the canvas is scaled, and larger type on the wall, which grows
/// with its screen as the rest of the wall does (`zoom`).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    px: f64,
    zoom: f64,
    font: f64,
}

impl Sizes {
    fn of(wall: bool) -> Sizes {
        let px = web_sys::window()
            .map(|w| w.device_pixel_ratio())
            .filter(|r| *r >= 1.0)
            .unwrap_or(1.0);
        let zoom = if wall { root_font_px() / 16.0 } else { 1.0 };
        Sizes {
            px,
            zoom,
            font: if wall { 20.0 } else { 13.0 } * px * zoom,
        }
    }

    fn margin(self) -> f64 {
        12.0 * self.px * self.zoom
    }

    fn x_labels(self) -> f64 {
        self.font * 2.2
    }

    fn y_labels(self) -> f64 {
        self.font * 4.3
    }

    fn line(self) -> u32 {
        (2.0 * self.px * self.zoom).round() as u32
    }

    /// Height over width: taller on the wall, where three charts share the width.
    fn aspect(wall: bool) -> f64 {
        if wall {
            // Tall: three charts fill the height under the state and the numbers (a wide
            // strip left the lower half of the screen empty).
            1.1
        } else {
            HEIGHT as f64 / WIDTH as f64
        }
    }
}

/// A theme's chart colours. Series colours go in series order: p50, p95, p99 / a ratio. The
/// legend's `.line{i}` and `.stack{i}` classes in main.css use the same colours per theme.
struct Colours {
    lines: [RGBColor; 6],
    threshold: RGBColor,
    mark: RGBColor,
    alarm: RGBColor,
    axis: RGBColor,
    grid: RGBColor,
    background: RGBColor,
}

const DARK: Colours = Colours {
    lines: [
        RGBColor(148, 163, 184),
        RGBColor(56, 189, 248),
        RGBColor(244, 114, 182),
        RGBColor(250, 204, 21),
        RGBColor(167, 139, 250),
        RGBColor(52, 211, 153),
    ],
    threshold: RGBColor(248, 113, 113),
    mark: RGBColor(251, 191, 36),
    alarm: RGBColor(239, 68, 68),
    axis: RGBColor(156, 163, 175),
    grid: RGBColor(31, 42, 68),
    background: RGBColor(17, 26, 46),
};

/// Darker lines for a white background (each at least 3:1 against it).
const LIGHT: Colours = Colours {
    lines: [
        RGBColor(100, 116, 139),
        RGBColor(2, 132, 199),
        RGBColor(219, 39, 119),
        RGBColor(161, 98, 7),
        RGBColor(124, 58, 237),
        RGBColor(4, 120, 87),
    ],
    threshold: RGBColor(220, 38, 38),
    mark: RGBColor(180, 83, 9),
    alarm: RGBColor(185, 28, 28),
    axis: RGBColor(71, 85, 105),
    grid: RGBColor(226, 232, 240),
    background: RGBColor(255, 255, 255),
};

fn colours(theme: Theme) -> &'static Colours {
    match theme {
        Theme::Dark => &DARK,
        Theme::Light => &LIGHT,
    }
}

/// Every theme has as many line colours as the other.
const PALETTE_LEN: usize = 6;
/// Categories in the plan's order: a second value is a normal mode ("lite"), so it is painted
/// calm blue, never the amber people read as a warning.
const STACK: [RGBColor; 5] = [
    RGBColor(34, 197, 94),
    RGBColor(56, 189, 248),
    RGBColor(239, 68, 68),
    RGBColor(167, 139, 250),
    RGBColor(250, 204, 21),
];

/// Which palette entry series `i` takes: a single line and a gate chart's first line (the
/// canary) take the bright colour, a gate chart's second (the baseline) the quiet one.
fn palette_index(spec: &ChartSpec, i: usize) -> usize {
    if spec.series.len() == 1 {
        1
    } else if !spec.limits.is_empty() || spec.id.starts_with("gate-") {
        [1, 0, 2, 3, 4, 5][i % PALETTE_LEN]
    } else {
        i % PALETTE_LEN
    }
}

fn colour(spec: &ChartSpec, i: usize, c: &Colours) -> RGBColor {
    match spec.style {
        Style::StackedArea => STACK[i % STACK.len()],
        Style::Lines if is_limit(spec, i) => c.threshold,
        Style::Lines => c.lines[palette_index(spec, i)],
    }
}

/// Series `i` is a moving limit, drawn dashed like a fixed threshold.
fn is_limit(spec: &ChartSpec, i: usize) -> bool {
    spec.series
        .get(i)
        .is_some_and(|id| spec.limits.contains(id))
}

/// Ratios are drawn as percentages.
fn scale(spec: &ChartSpec) -> f64 {
    spec.unit.display_scale()
}

/// The legend's name for series `i`: the spec's label, else the id's last part (`p95`).
fn label(spec: &ChartSpec, i: usize) -> String {
    match (spec.labels.get(i), spec.series.get(i)) {
        (Some(label), _) => label.clone(),
        (None, Some(id)) => id.rsplit('.').next().unwrap_or(id).to_string(),
        (None, None) => String::new(),
    }
}

/// How many time labels fit under a plot `width` device pixels wide, each `chars` long:
/// about 0.6 em a character and 1.5 em between labels, from 3 to 7.
fn x_label_count(width: u32, sizes: Sizes, chars: usize) -> usize {
    let each = sizes.font * (0.6 * chars as f64 + 1.5);
    let plot = width as f64 - sizes.y_labels() - 2.0 * sizes.margin();
    ((plot / each).floor() as usize).clamp(3, 7)
}

/// `-12m`, `-3h 20m`, `now`.
fn ago(ms: i64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => "now".into(),
        m if m < 60 => format!("-{m}m"),
        m if m < 2 * 1440 && m % 60 == 0 => format!("-{}h", m / 60),
        m if m < 2 * 1440 => format!("-{}h {}m", m / 60, m % 60),
        // Past two days, hours are enough: "-3d 4h".
        m if (m / 60) % 24 == 0 => format!("-{}d", m / 1440),
        m => format!("-{}d {}h", m / 1440, (m / 60) % 24),
    }
}

#[component]
pub fn Chart(
    spec: ChartSpec,
    /// The frame to draw from (live ticks, or a fetched history).
    #[prop(into)]
    frame: Signal<Option<Frame>>,
    /// Stage changes, kills and overrides, drawn where they fall in the range.
    #[prop(into)]
    markers: Signal<Vec<Marker>>,
    /// On the wall: larger type, taller charts.
    #[prop(optional)]
    wall: bool,
    /// A marker picked in the list under the chart: its audit entry's seq.
    #[prop(optional)]
    on_mark: Option<Callback<i64>>,
    /// The moment under the pointer, shared by every chart of the page (a crosshair).
    cursor: RwSignal<Option<i64>>,
    /// A range dragged out on this chart (ms since the epoch): every chart zooms to it.
    on_zoom: Callback<(i64, i64)>,
    /// The server's time now (from the live ticks), if known: a hovered moment says how long
    /// ago it was from this, not from the end of a fixed range.
    #[prop(into)]
    now: Signal<Option<i64>>,
    /// Times on the axis as clock times (a zoomed, fixed range) rather than "-5m".
    #[prop(into)]
    clock_axis: Signal<bool>,
) -> impl IntoView {
    let spec = StoredValue::new(spec);
    let canvas = NodeRef::<Canvas>::new();
    let crosshair = NodeRef::<leptos::html::Div>::new();
    let selection = NodeRef::<leptos::html::Div>::new();
    // Where a drag began, while the button is down.
    let dragging = RwSignal::new(None::<i64>);
    let theme = crate::theme::current();
    // Only this chart's series: other series changing does not redraw it.
    let data = Memo::new(move |_| {
        frame.with(|f| {
            f.as_ref().map(|f| {
                spec.with_value(|spec| {
                    spec.series
                        .iter()
                        .map(|id| f.series.iter().find(|s| &s.id == id).cloned())
                        .collect::<Vec<Option<Series>>>()
                })
            })
        })
    });
    let empty = Memo::new(move |_| {
        data.with(|d| {
            d.as_ref().is_none_or(|d| {
                d.iter()
                    .flatten()
                    .all(|s| s.points.iter().all(|p| p.v.is_none()))
            })
        })
    });
    // The markers inside this chart's time range, oldest first.
    let in_range = Memo::new(move |_| {
        let span = data.with(|d| {
            let s = d.as_ref()?.iter().flatten().next()?;
            Some((
                s.points.first()?.t,
                s.points.last()?.t + frame.with(|f| f.as_ref().map_or(0, |f| f.step)),
            ))
        });
        let Some((from, to)) = span else {
            return Vec::new();
        };
        let mut list: Vec<Marker> = markers
            .get()
            .into_iter()
            .filter(|m| (from..=to).contains(&m.at))
            .collect();
        list.sort_by_key(|m| m.at);
        list
    });
    Effect::new(move |_| {
        let Some(element) = canvas.get() else { return };
        let marks = in_range.get();
        let c = colours(theme.get());
        let clock_times = clock_axis.get();
        data.with(|d| {
            if let Some(d) = d {
                let clock = web_sys::window().and_then(|w| w.performance());
                let started = clock.as_ref().map(|p| p.now());
                // Match the box it is shown in, in device pixels (this also clears it).
                let sizes = Sizes::of(wall);
                let shown = element.client_width();
                let width = if shown > 0 {
                    (shown as f64 * sizes.px).round() as u32
                } else {
                    WIDTH
                };
                // On a phone the width alone would leave a strip too short to read. On the
                // wall the charts take the height left under them: whatever panels sit above
                // (an open alert, what fails now), nothing falls below the screen and no
                // band of it stays empty.
                let fill = if wall { wall_height(&element) } else { None };
                let height = fill
                    .map(|css| css * sizes.px)
                    .unwrap_or(width as f64 * Sizes::aspect(wall))
                    .max(MIN_HEIGHT * sizes.px)
                    .round() as u32;
                if element.width() != width || element.height() != height {
                    element.set_width(width);
                    element.set_height(height);
                }
                // A failed draw leaves the previous picture; there is nothing better to show.
                let _ = spec.with_value(|spec| {
                    draw(element.clone(), spec, d, (&marks, clock_times), c, sizes)
                });
                crate::live::mark_first("cutover:chart-drawn");
                // How long the last draw took, for the figures bench (and a curious person).
                if let (Some(p), Some(t0)) = (clock, started) {
                    let _ = element.set_attribute("data-draw-ms", &format!("{:.2}", p.now() - t0));
                }
            }
        });
    });
    // The points' times, first to last, and the step: where a pointer's x falls.
    let times = Memo::new(move |_| {
        data.with(|d| {
            let first = d.as_ref()?.iter().flatten().next()?;
            Some(first.points.iter().map(|p| p.t).collect::<Vec<i64>>())
        })
    });
    // From a pointer's x to the time of the nearest point; `None` outside the plot.
    let time_at = move |client_x: i32| -> Option<i64> {
        let element = canvas.get()?;
        let rect = element.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return None;
        }
        let (left, right) = plot_edges(element.width() as f64, wall);
        let x = (client_x as f64 - rect.left()) * element.width() as f64 / rect.width();
        let fraction = (x - left) / (right - left);
        if !(0.0..=1.0).contains(&fraction) {
            return None;
        }
        times.with(|t| {
            let t = t.as_ref()?;
            let i = ((t.len().checked_sub(1)?) as f64 * fraction).round() as usize;
            t.get(i).copied()
        })
    };
    // Places an overlay over the plot from time `a` to `b` (a line when equal), in CSS pixels
    // set through the CSSOM (the page's CSP forbids style attributes, not this).
    let place = move |node: Option<web_sys::HtmlDivElement>, span: Option<(i64, i64)>| {
        let (Some(node), Some(element)) = (node, canvas.get()) else {
            return;
        };
        let style = web_sys::HtmlElement::style(&node);
        let geometry = times.with(|t| {
            let t = t.as_ref()?;
            let (first, last) = (*t.first()?, *t.last()?);
            let (a, b) = span?;
            let (left, right) = plot_edges(element.width() as f64, wall);
            let css = element.client_width() as f64 / element.width().max(1) as f64;
            let x = |at: i64| {
                let f = if last > first {
                    (at - first) as f64 / (last - first) as f64
                } else {
                    1.0
                };
                (left + f.clamp(0.0, 1.0) * (right - left)) * css
            };
            Some((x(a.min(b)), x(a.max(b))))
        });
        match geometry {
            Some((x0, x1)) => {
                let _ = style.set_property("left", &format!("{x0:.1}px"));
                let _ = style.set_property("width", &format!("{:.1}px", (x1 - x0).max(1.0)));
                let _ = style.set_property("display", "block");
            }
            None => {
                let _ = style.set_property("display", "none");
            }
        }
    };
    Effect::new(move |_| {
        let at = cursor.get();
        place(crosshair.get(), at.map(|t| (t, t)));
    });
    Effect::new(move |_| {
        let span = dragging.get().zip(cursor.get());
        place(selection.get(), span);
    });
    let on_move = move |ev: web_sys::MouseEvent| {
        cursor.set(time_at(ev.client_x()));
    };
    let on_down = move |ev: web_sys::MouseEvent| {
        if ev.button() == 0 {
            dragging.set(time_at(ev.client_x()));
        }
    };
    let on_up = move |ev: web_sys::MouseEvent| {
        let Some(from) = dragging.get_untracked() else {
            return;
        };
        dragging.set(None);
        let Some(to) = time_at(ev.client_x()) else {
            return;
        };
        let step = frame.with_untracked(|f| f.as_ref().map_or(0, |f| f.step));
        // A click, or a drag within one point, is not a zoom.
        if (to - from).abs() >= 2 * step.max(1) {
            on_zoom.run((from.min(to), from.max(to) + step));
        }
    };
    // What every series says at the shared moment.
    let hover = Memo::new(move |_| {
        let at = cursor.get()?;
        data.with(|d| {
            let d = d.as_ref()?;
            let points = &d.iter().flatten().next()?.points;
            let i = points.iter().position(|p| p.t == at)?;
            // How long ago from the server's now, not from the frame's end: a zoomed range
            // ends in the past.
            let made = now
                .get()
                .or_else(|| frame.with(|f| f.as_ref().map(|f| f.at)))?;
            spec.with_value(|spec| {
                let values: Vec<String> = spec
                    .series
                    .iter()
                    .zip(d)
                    .enumerate()
                    .map(|(n, (_, s))| {
                        let v = s.as_ref().and_then(|s| s.points.get(i)).and_then(|p| p.v);
                        let v = v.map_or("no data".into(), |v| {
                            format!(
                                "{}{}",
                                cutover_core::unit::tick(v * scale(spec)),
                                spec.unit.suffix()
                            )
                        });
                        format!("{} {v}", label(spec, n))
                    })
                    .collect();
                Some(format!(
                    "{} ({}): {}",
                    crate::clock::hms(at),
                    ago(made.saturating_sub(at).max(0)),
                    values.join(" · ")
                ))
            })
        })
    });
    let (id, title) = spec.with_value(|s| (s.id.clone(), s.title.clone()));
    let nodata_id = format!("nodata-{id}");
    let legend = spec.with_value(|spec| {
        let mut items: Vec<_> = spec
            .series
            .iter()
            .enumerate()
            .map(|(i, _)| {
                // Classes, not inline styles: the page's CSP allows no inline style.
                let class = match spec.style {
                    Style::StackedArea => format!("swatch stack{}", i % STACK.len()),
                    Style::Lines if is_limit(spec, i) => "swatch dashed".to_string(),
                    Style::Lines => format!("swatch line{}", palette_index(spec, i)),
                };
                view! { <span class="legend-item"><span class=class></span>{label(spec, i)}</span> }
                    .into_any()
            })
            .collect();
        for t in &spec.thresholds {
            let value = format!(
                "{}{}",
                cutover_core::unit::tick(t.value * scale(spec)),
                spec.unit.suffix()
            );
            let (text, class) = match t.kind {
                LimitKind::Gate => (format!("{} limit {value}", t.gate), "swatch dashed"),
                LimitKind::Alert => (
                    format!("{} alerts past {value}", t.gate),
                    "swatch dotted alert",
                ),
                LimitKind::Kill => (
                    format!("{} kills past {value}", t.gate),
                    "swatch dotted kill",
                ),
            };
            items.push(
                view! { <span class="legend-item"><span class=class></span>{text}</span> }
                    .into_any(),
            );
        }
        items
    });
    view! {
        <section class="panel chart" data-testid=format!("panel-{id}")>
            <h2>{title.clone()}</h2>
            <div class="chart-box">
                <canvas
                    node_ref=canvas
                    width=WIDTH
                    height=HEIGHT
                    data-testid=format!("chart-{id}")
                    aria-label=title
                    on:mousemove=on_move
                    on:mousedown=on_down
                    on:mouseup=on_up
                    on:mouseleave=move |_| {
                        cursor.set(None);
                        dragging.set(None);
                    }
                ></canvas>
                <div class="crosshair" node_ref=crosshair data-testid=format!("crosshair-{id}")></div>
                <div class="zoom-selection" node_ref=selection></div>
                <Show when=move || empty.get()>
                    <p class="no-data" data-testid=nodata_id.clone()>
                        {move || if frame.with(Option::is_none) { "loading…" } else { "no data in this range" }}
                    </p>
                </Show>
            </div>
            <div class="legend">{legend}</div>
            <div class="hover" data-testid=format!("hover-{id}")>{move || hover.get().unwrap_or_default()}</div>
            <div class="marks" data-testid=format!("marks-{id}")>{move || {
                // Each marker a button that opens the record behind it (what was seen then).
                in_range.get().into_iter().enumerate().map(|(i, m)| {
                    let text = format!("{} {}", crate::clock::hm(m.at), m.label);
                    let sep = (i > 0).then_some(" · ");
                    let seq = m.seq;
                    view! {
                        {sep}
                        <button class="link mark" title="the record behind this marker"
                            on:click=move |_| if let (Some(seq), Some(cb)) = (seq, on_mark) { cb.run(seq) }>
                            {text}
                        </button>
                    }
                }).collect_view()
            }}</div>
        </section>
    }
}

/// Where the plot's x axis begins and ends in canvas pixels (its margins and y labels).
fn plot_edges(width: f64, wall: bool) -> (f64, f64) {
    let sizes = Sizes::of(wall);
    let left = sizes.margin() + sizes.y_labels();
    (left, (width - sizes.margin()).max(left + 1.0))
}

fn draw(
    canvas: web_sys::HtmlCanvasElement,
    spec: &ChartSpec,
    data: &[Option<Series>],
    (marks, clock): (&[Marker], bool),
    colours: &Colours,
    sizes: Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    let backend = canvas::MeasuredCanvas::new(canvas).ok_or("no 2d context")?;
    let root = backend.into_drawing_area();
    root.fill(&colours.background)?;
    let Some(axis_series) = data.iter().flatten().next() else {
        return root.present().map_err(Into::into);
    };
    let (Some(first), Some(last)) = (axis_series.points.first(), axis_series.points.last()) else {
        return root.present().map_err(Into::into);
    };
    let (start, end) = (first.t, last.t);
    // A fixed range across midnight names each label's day; the longest label sets how many
    // fit across the plot.
    let across_days = clock && !crate::clock::same_day(start, end);
    // Six days or more: a weekday would name two days of the range.
    let across_week = across_days && end - start >= 6 * 86_400_000;
    // Short labels ("-14m", "14:05") fit the seven the axis asks for at any width; long ones
    // as many as the plot's width holds.
    let labels = match (across_week, across_days) {
        (true, _) => x_label_count(root.dim_in_pixel().0, sizes, "30 Dec 14:05".len()),
        (false, true) => x_label_count(root.dim_in_pixel().0, sizes, "Mon 14:05".len()),
        (false, false) => 7,
    };
    let k = scale(spec);
    let (bottom, top) = match spec.style {
        Style::StackedArea => (0.0, 100.0),
        Style::Lines => {
            let values = data
                .iter()
                .flatten()
                .flat_map(|s| s.points.iter().filter_map(|p| p.v))
                .map(|v| v * k);
            let limits: Vec<f64> = spec.thresholds.iter().map(|t| t.value * k).collect();
            cutover_core::chart::value_axis(values, &limits, spec.unit.is_percent())
        }
    };
    let mut chart = ChartBuilder::on(&root)
        .margin(sizes.margin() as u32)
        .x_label_area_size(sizes.x_labels() as u32)
        .y_label_area_size(sizes.y_labels() as u32)
        .build_cartesian_2d(0..(end - start + 1), bottom..top)?;
    chart
        .configure_mesh()
        // Only the labelled grid lines: the fine mesh reads as noise on a small chart.
        .light_line_style(TRANSPARENT)
        .bold_line_style(colours.grid)
        .y_labels(6)
        .y_label_formatter(&|v| cutover_core::unit::tick(*v))
        .axis_style(colours.axis)
        .label_style(("sans-serif", sizes.font).into_font().color(&colours.axis))
        .x_labels(labels)
        .x_label_formatter(&|ms| {
            if across_week {
                crate::clock::date_hm(start + ms)
            } else if across_days {
                crate::clock::weekday_hm(start + ms)
            } else if clock {
                crate::clock::bare_hm(start + ms)
            } else {
                ago(end - start - ms)
            }
        })
        .y_desc(spec.unit.axis_word())
        .draw()?;
    match spec.style {
        Style::Lines => {
            // What a gate judges first, as a wide translucent band: the 10 s line it smooths
            // stays visible on top of it.
            let reading = |i: usize| {
                spec.series
                    .get(i)
                    .is_some_and(|id| cutover_core::chart::is_gate_reading(id))
            };
            let order = (0..data.len())
                .filter(|&i| reading(i))
                .chain((0..data.len()).filter(|&i| !reading(i)));
            for i in order {
                let Some(series) = &data[i] else { continue };
                let c = colour(spec, i, colours);
                let dashed = is_limit(spec, i);
                // Each run of consecutive values is its own line, so gaps stay visible.
                let mut runs: Vec<Vec<(i64, f64)>> = vec![Vec::new()];
                for p in &series.points {
                    match p.v {
                        Some(v) => runs
                            .last_mut()
                            .into_iter()
                            .for_each(|r| r.push((p.t - start, v * k))),
                        None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                        None => {}
                    }
                }
                // The newest value of a series (and of a moving limit) gets a dot: "now"
                // stands out on a live chart.
                let newest = runs.iter().rev().find_map(|r| r.last().copied());
                if let Some(p) = newest {
                    chart.draw_series(std::iter::once(Circle::new(
                        p,
                        3 * sizes.line() / 2,
                        c.filled(),
                    )))?;
                }
                for run in runs.into_iter().filter(|r| !r.is_empty()) {
                    if run.len() == 1 {
                        chart.draw_series(
                            run.iter()
                                .map(|p| Circle::new(*p, 3 * sizes.line() / 2, c.filled())),
                        )?;
                    } else if dashed {
                        chart.draw_series(DashedLineSeries::new(
                            run,
                            8 * sizes.line() / 2,
                            6 * sizes.line() / 2,
                            c.stroke_width(sizes.line()),
                        ))?;
                    } else if reading(i) {
                        let band = c.mix(0.55).stroke_width(3 * sizes.line());
                        chart.draw_series(LineSeries::new(run, band))?;
                    } else {
                        chart.draw_series(LineSeries::new(run, c.stroke_width(sizes.line())))?;
                    }
                }
            }
        }
        Style::StackedArea => {
            // Cumulative shares per point; a point where no share has data is a gap.
            let len = axis_series.points.len();
            let mut below = vec![Some(0.0_f64); len];
            for (i, series) in data.iter().enumerate() {
                let Some(series) = series else { continue };
                let c = colour(spec, i, colours);
                let above: Vec<Option<f64>> = (0..len)
                    .map(|j| {
                        let v = series.points.get(j).and_then(|p| p.v)?;
                        Some(below[j]? + v * k)
                    })
                    .collect();
                let mut run: Vec<usize> = Vec::new();
                let mut flush = |run: &mut Vec<usize>| -> Result<(), Box<dyn std::error::Error>> {
                    if run.is_empty() {
                        return Ok(());
                    }
                    let t = |j: usize| series.points[j].t - start;
                    let mut outline: Vec<(i64, f64)> = run
                        .iter()
                        .map(|&j| (t(j), above[j].unwrap_or(0.0)))
                        .collect();
                    outline.extend(run.iter().rev().map(|&j| (t(j), below[j].unwrap_or(0.0))));
                    chart.draw_series(std::iter::once(Polygon::new(
                        outline,
                        c.mix(0.85).filled(),
                    )))?;
                    run.clear();
                    Ok(())
                };
                for (j, value) in above.iter().enumerate() {
                    if value.is_some() {
                        run.push(j);
                    } else {
                        flush(&mut run)?;
                    }
                }
                flush(&mut run)?;
                below = above;
            }
        }
    }
    // A gate's limit in long dashes; a trigger's line dotted, in the colour of what it does.
    for t in &spec.thresholds {
        let y = t.value * k;
        let (dash, gap, colour) = match t.kind {
            LimitKind::Gate => (8, 6, colours.threshold),
            LimitKind::Alert => (3, 5, colours.mark),
            LimitKind::Kill => (3, 5, colours.alarm),
        };
        chart.draw_series(DashedLineSeries::new(
            [(0, y), (end - start, y)],
            dash,
            gap,
            colour.stroke_width(sizes.line()),
        ))?;
    }
    // Marker lines first, then their labels, each on the highest row where it overlaps no
    // other label (core::chart::labels), so markers seconds apart stay readable.
    let mut labels = Vec::with_capacity(marks.len());
    for m in marks {
        let x = (m.at - start).clamp(0, end - start);
        let c = if m.alarm { colours.alarm } else { colours.mark };
        chart.draw_series(DashedLineSeries::new(
            [(x, bottom), (x, top)],
            4,
            4,
            c.stroke_width(sizes.line()),
        ))?;
        let text = format!(" {} ", m.label);
        let font: TextStyle = ("sans-serif", sizes.font).into();
        let width = f64::from(root.estimate_text_size(&text, &font)?.0);
        let (px, py) = chart.backend_coord(&(x, top));
        // Labels in the right half read leftwards, so they stay on the canvas.
        let right = x * 2 > end - start;
        let extent = if right {
            (f64::from(px) - width, f64::from(px))
        } else {
            (f64::from(px), f64::from(px) + width)
        };
        labels.push((text, c, px, py, right, extent));
    }
    let extents: Vec<(f64, f64)> = labels.iter().map(|l| l.5).collect();
    let rows = cutover_core::chart::labels::rows(&extents);
    // Rows that would run off the plot are left out: the list under the chart names every marker.
    let line_height = sizes.font * 1.2;
    let fits = (f64::from(chart.plotting_area().dim_in_pixel().1) / line_height).floor() as usize;
    for ((text, c, px, py, right, _), row) in labels.into_iter().zip(rows) {
        if row >= fits {
            continue;
        }
        let anchor = if right { HPos::Right } else { HPos::Left };
        let font = ("sans-serif", sizes.font)
            .into_font()
            .color(&c)
            .pos(Pos::new(anchor, VPos::Top));
        let y = py + (row as f64 * line_height).round() as i32;
        root.draw(&Text::new(text, (px, y), font))?;
    }
    root.present()?;
    Ok(())
}
