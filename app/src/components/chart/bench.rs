//! The drawing figure of the app bench (`tests/benches/app.rs`): one chart draw of a given
//! number of points, exposed as `window.cutoverDrawBench(n)`. Built only with the app's
//! `draw-bench` feature, so the production bundle does not ship it.

use cutover_core::chart::{ChartSpec, LimitKind, Marker, Style};
use cutover_core::series::Series;

use super::{DARK, Sizes, draw};

/// Sets `window.cutoverDrawBench(points)` to [`bench_draw`].
pub fn install() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let draw = wasm_bindgen::closure::Closure::<dyn Fn(u32) -> f64>::new(bench_draw);
    let _ = js_sys::Reflect::set(&window, &"cutoverDrawBench".into(), draw.as_ref());
    draw.forget();
}

/// For the figures bench: draws a latency chart of `points` 10 s steps per line (p50, p95,
/// p99, a gate limit, two markers) on a detached 1200 x 400 canvas and returns the
/// milliseconds the draw took. `points = 8640` is a full day at 10 s.
fn bench_draw(points: u32) -> f64 {
    let Some(window) = web_sys::window() else {
        return f64::NAN;
    };
    let Some(canvas) = window
        .document()
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlCanvasElement>(e).ok())
    else {
        return f64::NAN;
    };
    canvas.set_width(1200);
    canvas.set_height(400);
    let step = 10_000;
    let line = |name: &str, base: f64| Series {
        id: format!("latency_ms.{name}"),
        label: name.to_string(),
        unit: cutover_core::unit::Unit::Ms,
        points: (0..points)
            .map(|i| cutover_core::series::Point {
                t: i64::from(i) * step,
                v: Some(base * (1.0 + 0.3 * (f64::from(i) / 37.0).sin())),
            })
            .collect(),
    };
    let data = vec![
        Some(line("p50", 180.0)),
        Some(line("p95", 420.0)),
        Some(line("p99", 610.0)),
    ];
    let spec = ChartSpec {
        id: "latency_ms".into(),
        title: "latency".into(),
        style: Style::Lines,
        series: data.iter().flatten().map(|s| s.id.clone()).collect(),
        unit: cutover_core::unit::Unit::Ms,
        thresholds: vec![cutover_core::chart::Threshold {
            series: "latency_ms.p95".into(),
            value: 700.0,
            gate: "p95".into(),
            kind: LimitKind::Gate,
        }],
        labels: vec!["p50".into(), "p95".into(), "p99".into()],
        limits: Vec::new(),
    };
    let end = i64::from(points) * step;
    let marks = [
        Marker {
            at: end / 3,
            label: "to beta".into(),
            alarm: false,
            seq: None,
        },
        Marker {
            at: end / 3 + step,
            label: "alert latency-budget".into(),
            alarm: true,
            seq: None,
        },
    ];
    let Some(clock) = window.performance() else {
        return f64::NAN;
    };
    let started = clock.now();
    let drawn = draw(
        canvas,
        &spec,
        &data,
        (&marks, false),
        &DARK,
        Sizes {
            px: 1.0,
            zoom: 1.0,
            font: 13.0,
        },
    );
    let took = clock.now() - started;
    if drawn.is_ok() { took } else { f64::NAN }
}
