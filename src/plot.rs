//! The latency percentile spectrum as an SVG plot (plotters, SVG backend
//! only: text is written as SVG `<text>`, so no font files are needed),
//! like HdrHistogram's plotFiles.html: x is 1/(1-p) on a log scale
//! labelled with percentiles, y is latency in ms, one line per histogram.
//!
//! Shared by `okring report` and the bench's latency plots. It computes no
//! statistic beyond reading the histograms' quantiles.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

/// Plot size, pixels.
pub const PLOT_SIZE_PX: (u32, u32) = (960, 600);
/// Right end of the spectrum's x axis, as log10(1/(1-p)): 6 = 99.9999%.
pub const SPECTRUM_MAX_NINES: f64 = 6.0;

/// Series colours, cycled.
pub const COLOURS: [RGBColor; 8] = [
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

/// Draw the spectrum of each `(label, histogram)` (values in ns) into
/// `path` under `title`. Errors: the file cannot be written (message names
/// the path).
pub fn spectrum_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let all: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, h)| spectrum_points(h)).collect();
    let y_max = all
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.05;
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
            0f64..y_max,
        )
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
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
