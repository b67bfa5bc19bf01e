//! SVG plots shared by `okring bench` and `okring report` (plotters, SVG
//! backend only: text is written as SVG `<text>`, so no font files are
//! needed): the latency percentile spectrum, like HdrHistogram's
//! plotFiles.html (x is 1/(1-p) on a log scale labelled with percentiles,
//! y is latency in ms), and bar charts of one figure per series with each
//! repeat as a dot. It computes no figure.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

/// Plot size, pixels.
const PLOT_SIZE_PX: (u32, u32) = (960, 600);
/// Right end of the spectrum's x axis, as log10(1/(1-p)): 6 = 99.9999%.
const SPECTRUM_MAX_NINES: f64 = 6.0;

/// Series colours, cycled.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A linear f64 axis whose tick marks sit exactly at `keys` (plotters'
/// own `WithKeyPoints` cannot take a label formatter on f64 axes).
struct KeyedAxis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Ranged for KeyedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let r = (value - self.lo) / span;
        limit.0 + (r * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.keys.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The percentile label of x = log10(1/(1-p)): 0 → `0%`, log10 2 → `50%`,
/// 1 → `90%`, 3 → `99.9%`.
pub fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let nines = x.round() as i32;
    if (x - nines as f64).abs() < 1e-9 && nines >= 2 {
        return format!("{p:.*}%", (nines - 2) as usize);
    }
    format!("{}%", p.round())
}

/// Points (log10(1/(1-q)), latency ms) of the spectrum of `h`, from
/// HdrHistogram's quantile iteration (5 ticks per half distance, as
/// plotFiles.html's input files), ending with the maximum at the right edge.
pub fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        let x = (1.0 / (1.0 - q)).log10();
        if x > SPECTRUM_MAX_NINES {
            break;
        }
        pts.push((x, h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6));
    }
    let last_x = pts.last().map_or(0.0, |p| p.0);
    let x_max = (1.0 / (1.0 / h.len() as f64))
        .log10()
        .clamp(last_x, SPECTRUM_MAX_NINES);
    pts.push((x_max, h.max() as f64 / 1e6));
    pts
}

fn err<E: std::fmt::Display>(what: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("plot {}: {e}", what.display())
}

/// Draw the spectrum of each `(label, histogram)` into `path`.
pub fn spectrum_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let all: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, h)| spectrum_points(h)).collect();
    // Latency on a log axis: modes that differ by 1000× (sequential against
    // uring) stay readable on one chart.
    let y_max = all
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.5;
    let y_min = all
        .iter()
        .flatten()
        .map(|p| p.1)
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(y_max / 10.0)
        .max(1e-6)
        / 1.5;
    let x_max = all
        .iter()
        .flatten()
        .map(|p| p.0)
        .fold(1.0f64, f64::max)
        .ceil()
        .min(SPECTRUM_MAX_NINES);
    let mut keys = vec![0.0, 2f64.log10()];
    keys.extend((1..=x_max as i32).map(f64::from));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            KeyedAxis {
                lo: 0.0,
                hi: x_max,
                keys,
            },
            (y_min..y_max).log_scale(),
        )
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|y| format!("{y:.3}"))
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(&e)?;
    for (i, ((label, _), pts)) in series.iter().zip(&all).enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(&e)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)
}

/// The axes of a bar chart: one keyed x position per label, y from 0 to
/// `y_max`, mesh and captions drawn.
/// The chart of a bar plot: one keyed x position per label, y from 0 to
/// `y_max`, caption and mesh drawn; `bars` then draws the bars on it and
/// the file is written.
fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    y_max: f64,
    bars: impl FnOnce(
        &mut ChartContext<
            SVGBackend,
            Cartesian2d<KeyedAxis, plotters::coord::types::RangedCoordf64>,
        >,
    ) -> Result<(), String>,
) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let n = labels.len().max(1);
    let keys: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            KeyedAxis {
                lo: 0.0,
                hi: n as f64,
                keys,
            },
            0f64..y_max,
        )
        .map_err(&e)?;
    let fmt = |x: &f64| labels.get(x.floor() as usize).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_label_formatter(&fmt)
        .draw()
        .map_err(&e)?;
    bars(&mut chart)?;
    root.present().map_err(&e)
}

/// A bar chart: one bar per (server, connections) with its median, and a
/// dot per repeat.
pub fn bars_svg(
    path: &Path,
    title: &str,
    y_desc: &str,
    bars: &[(String, f64, Vec<f64>)],
) -> Result<(), String> {
    let e = err(path);
    let y_max = bars
        .iter()
        .flat_map(|b| b.2.iter().copied().chain(std::iter::once(b.1)))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    bar_chart(path, title, y_desc, &labels, y_max, |chart| {
        for (i, (_, median, each)) in bars.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.2, 0.0), (x + 0.8, *median)],
                    c.filled(),
                )))
                .map_err(&e)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{median:.2}"),
                    (x + 0.32, *median + y_max * 0.02),
                    ("sans-serif", 16),
                )))
                .map_err(&e)?;
            chart
                .draw_series(
                    each.iter()
                        .map(|v| Circle::new((x + 0.5, *v), 4, BLACK.filled())),
                )
                .map_err(&e)?;
        }
        Ok(())
    })
}

/// One bar of [`stacked_bars_svg`]: its label, the index of its series
/// colour (the same index gives the same colour as in the other plots),
/// and its segments bottom up, (name, value).
#[derive(Clone, Debug, PartialEq)]
pub struct StackedBar {
    pub label: String,
    pub colour: usize,
    pub segments: Vec<(String, f64)>,
}

/// Opacities of successive segments of one bar: the series colour, then
/// lighter and darker shades of it, so neighbours stay apart.
const SEGMENT_OPACITY: [f64; 4] = [1.0, 0.45, 0.75, 0.3];

/// A stacked bar chart: per bar, its segments in shades of its series
/// colour, each named inside when it is tall enough, and the total on top.
pub fn stacked_bars_svg(
    path: &Path,
    title: &str,
    y_desc: &str,
    bars: &[StackedBar],
) -> Result<(), String> {
    let e = err(path);
    let total = |b: &StackedBar| b.segments.iter().map(|s| s.1.max(0.0)).sum::<f64>();
    let y_max = bars.iter().map(total).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    bar_chart(path, title, y_desc, &labels, y_max, |chart| {
        for (i, bar) in bars.iter().enumerate() {
            let c = COLOURS[bar.colour % COLOURS.len()];
            let x = i as f64;
            let mut y = 0.0;
            for (k, (name, v)) in bar.segments.iter().enumerate() {
                let v = v.max(0.0);
                let style = c.mix(SEGMENT_OPACITY[k % SEGMENT_OPACITY.len()]).filled();
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.2, y), (x + 0.8, y + v)],
                        style,
                    )))
                    .map_err(&e)?;
                if v > y_max * 0.05 {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            format!("{name} {v:.2}"),
                            (x + 0.24, y + v / 2.0),
                            ("sans-serif", 13),
                        )))
                        .map_err(&e)?;
                }
                y += v;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{y:.2}"),
                    (x + 0.4, y + y_max * 0.02),
                    ("sans-serif", 16),
                )))
                .map_err(&e)?;
        }
        Ok(())
    })
}

/// One line of a [`lines_svg`] chart: its legend label, its colour index
/// (as in the other plots) and its points (x, y), in x order.
pub struct Line {
    pub label: String,
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with a dot at each point: x linear from 0, y linear from 0
/// or, with `log_y`, on a log scale over the points' range. Lines with no
/// points are left out of the legend.
pub fn lines_svg(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    log_y: bool,
) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let pts = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = pts().map(|p| p.0).fold(0.0f64, f64::max).max(1.0) * 1.05;
    let y_max = pts().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.2;
    let builder = |root| {
        let mut b = ChartBuilder::on(root);
        b.caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80);
        b
    };
    if log_y {
        let y_min = pts()
            .map(|p| p.1)
            .filter(|&v| v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(y_max / 10.0)
            .max(1e-6)
            / 1.5;
        let mut chart = builder(&root)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(&e)?;
        draw_lines(&mut chart, lines, path)?;
    } else {
        let mut chart = builder(&root)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(&e)?;
        draw_lines(&mut chart, lines, path)?;
    }
    root.present().map_err(&e)
}

/// The lines, dots and legend of [`lines_svg`] on either y axis.
fn draw_lines<'a, Y>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    lines: &[Line],
    path: &Path,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let e = err(path);
    for l in lines.iter().filter(|l| !l.points.is_empty()) {
        let c = COLOURS[l.colour % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2)))
            .map_err(&e)?
            .label(l.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(&e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(2f64.log10()), "50%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
    }

    #[test]
    fn spectrum_ends_at_the_maximum() {
        let mut h = crate::stats::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let pts = spectrum_points(&h);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = pts.last().unwrap();
        assert!((last.1 - h.max() as f64 / 1e6).abs() < 1e-9);
        assert!((last.0 - 4.0).abs() < 1e-9);
    }
}
