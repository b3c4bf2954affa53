//! A line chart of one series on a canvas, drawn with plotters. Gaps stay gaps; a series with
//! no values says "no data" instead of drawing zero.

use cutover_core::series::Series;
use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;

/// A live line chart.
#[component]
pub fn SeriesChart(
    /// The series to draw; redrawn whenever it changes.
    #[prop(into)]
    series: Signal<Option<Series>>,
    /// Heading above the chart.
    title: &'static str,
    /// `data-testid` of the canvas.
    testid: &'static str,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let (Some(element), Some(series)) = (canvas.get(), series.get()) else {
            return;
        };
        // A failed draw leaves the previous picture; there is nothing better to show.
        let _ = draw(element, &series);
    });
    view! {
        <section class="panel">
            <h2>{title}</h2>
            <canvas node_ref=canvas width="960" height="280" data-testid=testid aria-label=title></canvas>
        </section>
    }
}

fn draw(
    canvas: web_sys::HtmlCanvasElement,
    series: &Series,
) -> Result<(), Box<dyn std::error::Error>> {
    let backend = CanvasBackend::with_canvas_object(canvas).ok_or("no 2d context")?;
    let root = backend.into_drawing_area();
    root.fill(&RGBColor(17, 26, 46))?;
    let axis = RGBColor(156, 163, 175);
    let values: Vec<(i64, f64)> = series
        .points
        .iter()
        .filter_map(|p| p.v.map(|v| (p.t, v)))
        .collect();
    let (Some(first), Some(last)) = (series.points.first(), series.points.last()) else {
        return Ok(());
    };
    if values.is_empty() {
        root.draw(&Text::new(
            "no data",
            (420, 130),
            ("sans-serif", 20).into_font().color(&axis),
        ))?;
        return root.present().map_err(Into::into);
    }
    let max = values
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.15;
    let x_range = 0..(last.t - first.t + 1);
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, 0.0..max)?;
    let start = first.t;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(31, 42, 68))
        .bold_line_style(RGBColor(31, 42, 68))
        .axis_style(axis)
        .label_style(("sans-serif", 13).into_font().color(&axis))
        .x_labels(6)
        .x_label_formatter(&|ms| {
            format!(
                "-{}m",
                (series.points.last().map_or(0, |p| p.t) - start - ms) / 60_000
            )
        })
        .y_desc(series.unit.clone())
        .draw()?;
    // Draw each run of consecutive values as its own line so gaps are visible.
    let mut run: Vec<(i64, f64)> = Vec::new();
    let colour = RGBColor(56, 189, 248);
    for p in &series.points {
        match p.v {
            Some(v) => run.push((p.t - start, v)),
            None if !run.is_empty() => {
                chart.draw_series(LineSeries::new(
                    std::mem::take(&mut run),
                    colour.stroke_width(2),
                ))?;
            }
            None => {}
        }
    }
    if !run.is_empty() {
        chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
    }
    // Dots mark every bucket with data, so a lone point between gaps is still visible.
    chart.draw_series(
        values
            .iter()
            .map(|(t, v)| Circle::new((t - start, *v), 3, colour.filled())),
    )?;
    root.present()?;
    Ok(())
}
