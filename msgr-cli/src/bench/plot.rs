//! `msgr bench --plot FILE`: the results drawn for a person to read at a glance.
//!
//! One SVG (or an HTML page holding it), one panel per chart, stacked: for each
//! request/response case, the histogram of its round trips (share of round trips per
//! latency bucket, log-spaced buckets from the fastest round trip to the slowest transport's
//! p99, so that the bulk fills the panel; one line per transport with its p50 and p99 in
//! the legend); then the rate by
//! message size (payload MB/s, both axes logarithmic), one line per transport and case
//! shape, so msgr sits beside raw TCP at every size. Drawn with plotters' SVG backend; the
//! text is left to the SVG reader's fonts. What it does not draw: the figures of the table
//! that are not rates or latencies (integrity, memory).

use std::path::Path;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::plan::{Case, Mode, Transport};
use super::report::{Report, Run};
use super::Outcome;

/// What `--plot` writes, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The SVG alone.
    Svg,
    /// An HTML page around the SVG.
    Html,
}

impl Format {
    /// The format of `path`, or an error naming the extensions known.
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("html" | "htm") => Ok(Format::Html),
            _ => bail!(
                "--plot {}: the file name must end in .svg or .html",
                path.display()
            ),
        }
    }
}

/// The round trips of one request/response case, per transport.
#[derive(Debug)]
struct Latency {
    case: Case,
    series: Vec<(Transport, Histogram<u64>)>,
}

/// What the plot needs beyond the report: every round trip of each rr case.
#[derive(Debug, Default)]
pub struct Plot {
    latency: Vec<Latency>,
}

/// Latency buckets per histogram.
const BUCKETS: usize = 40;
/// Pixels per panel.
const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 400;

impl Plot {
    /// Keeps the round trips of `run`, measured as `rounds` of `case`.
    pub fn add(&mut self, case: &Case, run: &Run, rounds: &[Outcome]) {
        if case.mode != Mode::Rr {
            return;
        }
        let mut all: Option<Histogram<u64>> = None;
        for h in rounds.iter().filter_map(|o| o.rtt.as_ref()) {
            match &mut all {
                Some(all) => {
                    // Histograms from new_histogram share their bounds; a failure would
                    // only leave this round out of the picture.
                    let _ = all.add(h);
                }
                None => all = Some(h.clone()),
            }
        }
        let Some(hist) = all.filter(|h| !h.is_empty()) else {
            return;
        };
        match self.latency.iter_mut().find(|l| l.case == *case) {
            Some(l) => l.series.push((run.transport, hist)),
            None => self.latency.push(Latency {
                case: *case,
                series: vec![(run.transport, hist)],
            }),
        }
    }

    /// Draws the plot and writes it to `path` (SVG or HTML by its extension).
    pub fn write(&self, path: &Path, report: &Report) -> anyhow::Result<()> {
        let format = Format::of(path)?;
        let svg = self.svg(report)?;
        let text = match format {
            Format::Svg => svg,
            Format::Html => format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>msgr bench</title></head>\n<body>\n{svg}\n</body></html>\n"
            ),
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The SVG document.
    pub fn svg(&self, report: &Report) -> anyhow::Result<String> {
        let rates = !report.runs.is_empty();
        let panels = self.latency.len() + usize::from(rates);
        let mut svg = String::new();
        {
            let height = PANEL_HEIGHT * u32::try_from(panels.max(1)).unwrap_or(1);
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(drawing)?;
            let areas = root.split_evenly((panels.max(1), 1));
            for (area, latency) in areas.iter().zip(&self.latency) {
                draw_latency(area, latency)?;
            }
            if let (true, Some(area)) = (rates, areas.last()) {
                draw_rates(area, &report.runs)?;
            }
            root.present().map_err(drawing)?;
        }
        Ok(svg)
    }
}

fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {e}")
}

fn color(transport: Transport) -> RGBColor {
    match transport {
        Transport::RawTcp => RGBColor(31, 119, 180),
        Transport::Msgr => RGBColor(214, 39, 40),
        Transport::MsgrFaults => RGBColor(255, 127, 14),
        Transport::MsgrCephx => RGBColor(148, 103, 189),
        Transport::MsgrV2 => RGBColor(44, 160, 44),
        Transport::MsgrV2Secure => RGBColor(140, 86, 75),
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The share of round trips in each of `BUCKETS` log-spaced buckets from `lo` to `hi` ns.
fn shares(hist: &Histogram<u64>, lo: f64, hi: f64) -> Vec<f64> {
    let mut counts = vec![0u64; BUCKETS];
    let span = (hi / lo).ln().max(f64::MIN_POSITIVE);
    for v in hist.iter_recorded() {
        // The bucket's lowest value: what was recorded, to the histogram's precision.
        let value = hist.lowest_equivalent(v.value_iterated_to()) as f64;
        if value > hi {
            continue;
        }
        let at = (BUCKETS as f64 * (value.max(lo) / lo).ln() / span) as usize;
        if let Some(c) = counts.get_mut(at.min(BUCKETS - 1)) {
            *c += v.count_at_value();
        }
    }
    let total = hist.len().max(1) as f64;
    counts.iter().map(|c| 100.0 * *c as f64 / total).collect()
}

fn draw_latency(area: &Area<'_>, latency: &Latency) -> anyhow::Result<()> {
    let lo = latency
        .series
        .iter()
        .map(|(_, h)| h.min().max(1) as f64)
        .fold(f64::INFINITY, f64::min);
    let hi = latency
        .series
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.99) as f64)
        .fold(0.0, f64::max)
        .max(lo * 1.5);
    let edge = |i: usize| lo * (hi / lo).powf(i as f64 / BUCKETS as f64) / 1000.0;
    let series: Vec<(Transport, Vec<f64>, &Histogram<u64>)> = latency
        .series
        .iter()
        .map(|(t, h)| (*t, shares(h, lo, hi), h))
        .collect();
    let top = series
        .iter()
        .flat_map(|(_, s, _)| s.iter().copied())
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: round-trip latency", latency.case),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((edge(0)..edge(BUCKETS)).log_scale(), 0.0..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("round trip (µs), up to the slowest transport's p99")
        .y_desc("% of round trips")
        .x_label_formatter(&|us| format!("{us:.0}"))
        .draw()
        .map_err(drawing)?;
    for (transport, shares, hist) in &series {
        let c = color(*transport);
        // A step line: each bucket's share across its width.
        let points = shares
            .iter()
            .enumerate()
            .flat_map(|(i, s)| [(edge(i), *s), (edge(i + 1), *s)]);
        let p50 = hist.value_at_quantile(0.5) as f64 / 1000.0;
        let p99 = hist.value_at_quantile(0.99) as f64 / 1000.0;
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(drawing)?
            .label(format!("{transport}: p50 {p50:.1} µs, p99 {p99:.1} µs"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(drawing)?;
    Ok(())
}

/// A tick of the size axis (log-scale ticks fall on powers of ten): `100 B`, `10 kB`, `1 MB`.
fn decimal_size(bytes: f64) -> String {
    match bytes {
        b if b >= 1e6 => format!("{} MB", b / 1e6),
        b if b >= 1e3 => format!("{} kB", b / 1e3),
        b => format!("{b} B"),
    }
}

/// A line of the rate chart: one transport and one case shape, over sizes.
fn shape(run: &Run) -> String {
    format!("{} {}", run.transport, kind(run))
}

/// A case shape without its size or transport: `stream`, `rr x4 conns depth 128`.
fn kind(run: &Run) -> String {
    let mut s = run.mode.to_string();
    if run.jobs > 1 {
        s.push_str(&format!(" x{} conns", run.jobs));
    }
    if run.mode == Mode::Rr {
        s.push_str(&format!(" depth {}", run.depth));
    }
    s
}

fn draw_rates(area: &Area<'_>, runs: &[Run]) -> anyhow::Result<()> {
    let sizes = runs.iter().map(|r| r.size as f64);
    let (min_size, max_size) =
        sizes.fold((f64::INFINITY, 0.0f64), |(a, b), s| (a.min(s), b.max(s)));
    let pad = if max_size > min_size { 2.0 } else { 10.0 };
    let rates = runs.iter().map(|r| r.mb_per_s.max(0.001));
    let (min_rate, max_rate) =
        rates.fold((f64::INFINITY, 0.0f64), |(a, b), r| (a.min(r), b.max(r)));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "rate by message size, msgr beside raw TCP",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // One size: a decade each side, so that the axis has labelled ticks.
            (min_size / pad..max_size * pad).log_scale(),
            (min_rate / 2.0..max_rate * 2.0).log_scale(),
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc("payload MB/s")
        .x_label_formatter(&|s| decimal_size(*s))
        .draw()
        .map_err(drawing)?;
    // Each case shape has its marker (circle, triangle, cross), each transport its color.
    let mut shapes: Vec<String> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for run in runs {
        let name = shape(run);
        if !shapes.contains(&name) {
            shapes.push(name);
        }
        let kind = kind(run);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    for name in shapes {
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut first: Option<&Run> = None;
        for r in runs.iter().filter(|r| shape(r) == name) {
            points.push((r.size as f64, r.mb_per_s.max(0.001)));
            first.get_or_insert(r);
        }
        let Some(first) = first else {
            continue;
        };
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = color(first.transport);
        let marker = kinds.iter().position(|k| *k == kind(first)).unwrap_or(0);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(drawing)?;
        let drawn = match marker {
            0 => chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))
                .map_err(drawing)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled())),
            1 => chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| TriangleMarker::new(*p, 7, c.filled())),
                )
                .map_err(drawing)?
                .label(name)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 7, c.filled())),
            _ => chart
                .draw_series(points.iter().map(|p| Cross::new(*p, 6, c.stroke_width(3))))
                .map_err(drawing)?
                .label(name)
                .legend(move |(x, y)| Cross::new((x + 10, y), 6, c.stroke_width(3))),
        };
        let _ = drawn;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(drawing)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_put_each_round_trip_in_its_bucket() {
        let mut h = super::super::new_histogram();
        for _ in 0..3 {
            h.record(10_000).unwrap_or_default();
        }
        h.record(1_000_000).unwrap_or_default();
        // 10 us to 1 ms: the first bucket holds three of four, the last one.
        let s = shares(&h, 10_000.0, 1_000_000.0);
        assert_eq!(s.len(), BUCKETS);
        assert_eq!(s.first().copied(), Some(75.0));
        assert_eq!(s.last().copied(), Some(25.0));
        assert_eq!(s.iter().sum::<f64>(), 100.0);
    }

    #[test]
    fn only_svg_and_html_are_plot_files() {
        assert_eq!(Format::of(Path::new("a.svg")).ok(), Some(Format::Svg));
        assert_eq!(Format::of(Path::new("b.HTML")).ok(), Some(Format::Html));
        assert!(Format::of(Path::new("c.png")).is_err());
    }
}
