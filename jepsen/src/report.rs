//! The run folder: `history.jsonl`, `nemesis.jsonl`, `verdict.json`, `run.json`, and an
//! `index.html` with two SVG plots (latency of every completed op over time, throughput per
//! second by outcome), fault intervals shaded.
//!
//! Called once by the runner after the checker. It reads nothing back and judges nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::checker::Verdict;
use crate::history::{History, NemesisEvent, OpType, Phase};
use crate::run::Summary;

/// A fault interval in seconds since the run started (open faults end at `end_s`).
struct Interval {
    fault: String,
    detail: String,
    start_s: f64,
    stop_s: f64,
}

/// Writes every file of the run folder.
pub fn write(
    dir: &Path,
    history: &History,
    events: &[NemesisEvent],
    verdict: &Verdict,
    summary: &Summary,
) -> anyhow::Result<()> {
    history.write_jsonl(&dir.join("history.jsonl"))?;
    crate::history::write_lines(&dir.join("nemesis.jsonl"), events)?;
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(verdict)?,
    )?;
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(summary)?)?;
    let points = latencies(history);
    let end_s = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let intervals = intervals(events, end_s);
    let latency = latency_svg(&points, &intervals, end_s)?;
    let throughput = throughput_svg(&points, &intervals, end_s)?;
    let html = page(verdict, summary, &intervals, &latency, &throughput);
    std::fs::write(dir.join("index.html"), html)?;
    Ok(())
}

/// (completion time s, latency ms, outcome) of every completed op.
fn latencies(history: &History) -> Vec<(f64, f64, OpType)> {
    let mut invoked = BTreeMap::new();
    let mut points = Vec::new();
    for op in &history.ops {
        if op.kind == OpType::Invoke {
            invoked.insert(op.process, op.time_ns);
        } else if let Some(start) = invoked.remove(&op.process) {
            let latency_ms = (op.time_ns - start) as f64 / 1e6;
            points.push((op.time_ns as f64 / 1e9, latency_ms, op.kind));
        }
    }
    points
}

/// Pairs start/stop events of the same fault kind, in order.
fn intervals(events: &[NemesisEvent], end_s: f64) -> Vec<Interval> {
    let mut open: BTreeMap<&str, Vec<(f64, &str)>> = BTreeMap::new();
    let mut intervals = Vec::new();
    let interval = |fault: &str, detail: &str, start_s, stop_s| Interval {
        fault: fault.to_string(),
        detail: detail.to_string(),
        start_s,
        stop_s,
    };
    for event in events {
        let t = event.time_ns as f64 / 1e9;
        let starts = open.entry(&event.fault).or_default();
        match event.phase {
            Phase::Start => starts.push((t, &event.detail)),
            Phase::Stop => {
                if let Some((start_s, detail)) = starts.pop() {
                    intervals.push(interval(&event.fault, detail, start_s, t));
                }
            }
        }
    }
    for (fault, starts) in open {
        for (start_s, detail) in starts {
            intervals.push(interval(fault, detail, start_s, end_s));
        }
    }
    intervals
}

fn fault_color(fault: &str) -> RGBColor {
    match fault {
        "kill" => RGBColor(255, 200, 200),
        "pause" => RGBColor(255, 235, 180),
        "partition" => RGBColor(200, 210, 255),
        _ => RGBColor(210, 240, 210),
    }
}

fn outcome_color(kind: OpType) -> RGBColor {
    match kind {
        OpType::Ok => RGBColor(30, 120, 200),
        OpType::Fail => RGBColor(220, 50, 50),
        _ => RGBColor(240, 150, 0),
    }
}

/// Latency (log scale) of every completed op against completion time.
fn latency_svg(
    points: &[(f64, f64, OpType)],
    faults: &[Interval],
    end_s: f64,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 360)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_ms = points.iter().map(|p| p.1).fold(10.0, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "latency (ms, log) by completion time (s): ok blue, fail red, info orange",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end_s, (0.1f64..max_ms).log_scale())?;
        chart.configure_mesh().disable_mesh().draw()?;
        for fault in faults {
            let rect = [(fault.start_s, 0.1), (fault.stop_s, max_ms)];
            chart.draw_series(std::iter::once(Rectangle::new(
                rect,
                fault_color(&fault.fault).filled(),
            )))?;
        }
        let dots = points
            .iter()
            .map(|&(t, ms, kind)| Circle::new((t, ms.max(0.1)), 1, outcome_color(kind).filled()));
        chart.draw_series(dots)?;
        root.present()?;
    }
    Ok(svg)
}

/// Completed ops per second, one line per outcome.
fn throughput_svg(
    points: &[(f64, f64, OpType)],
    faults: &[Interval],
    end_s: f64,
) -> anyhow::Result<String> {
    let seconds = end_s.ceil() as usize + 1;
    let mut counts: BTreeMap<u8, Vec<u32>> = BTreeMap::new();
    for &(t, _, kind) in points {
        counts.entry(kind as u8).or_insert_with(|| vec![0; seconds])[t as usize] += 1;
    }
    let max = counts.values().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "throughput (completed ops/s) by time (s): ok blue, fail red, info orange",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end_s, 0f64..max)?;
        chart.configure_mesh().disable_mesh().draw()?;
        for fault in faults {
            let rect = [(fault.start_s, 0.0), (fault.stop_s, max)];
            chart.draw_series(std::iter::once(Rectangle::new(
                rect,
                fault_color(&fault.fault).filled(),
            )))?;
        }
        for kind in [OpType::Ok, OpType::Fail, OpType::Info] {
            let Some(series) = counts.get(&(kind as u8)) else {
                continue;
            };
            let line = series
                .iter()
                .enumerate()
                .map(|(s, &c)| (s as f64 + 0.5, c as f64));
            chart.draw_series(LineSeries::new(line, outcome_color(kind).stroke_width(2)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page(
    verdict: &Verdict,
    summary: &Summary,
    faults: &[Interval],
    latency: &str,
    throughput: &str,
) -> String {
    let mut html = String::from("<!doctype html><meta charset=utf-8><title>jepsen run</title>");
    html.push_str("<body style='font-family:sans-serif;max-width:1040px'>");
    let status = if verdict.valid { "VALID" } else { "INVALID" };
    let _ = write!(
        html,
        "<h1>{status}: {} on {} nodes, seed {}</h1>",
        summary.workload, summary.nodes, summary.seed
    );
    let _ = write!(
        html,
        "<p>binary <code>{}</code>, nemesis {:?}, {:.1} s, {} faults injected, crashed: {:?}</p>",
        escape(&summary.bin),
        summary.nemesis,
        summary.seconds,
        summary.faults_injected,
        summary.crashed
    );
    let _ = write!(
        html,
        "<p>shading: kill red, pause yellow, partition blue, loss/latency green</p>"
    );
    html.push_str(latency);
    html.push_str(throughput);
    html.push_str("<h2>faults</h2><ul>");
    for f in faults {
        let _ = write!(
            html,
            "<li>{:.1} s .. {:.1} s: {} ({})</li>",
            f.start_s,
            f.stop_s,
            f.fault,
            escape(&f.detail)
        );
    }
    let _ = write!(
        html,
        "</ul><h2>verdict</h2><pre>{}</pre></body>",
        escape(&verdict.to_string())
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_s: u64, phase: Phase, fault: &str) -> NemesisEvent {
        let detail = format!("{fault}@{time_s}");
        NemesisEvent {
            time_ns: time_s * 1_000_000_000,
            phase,
            fault: fault.into(),
            detail,
        }
    }

    /// Overlapping faults of different kinds pair by kind; a fault never healed is shaded to
    /// the end of the plot.
    #[test]
    fn intervals_pair_starts_and_stops_by_fault_kind() {
        let events = [
            event(1, Phase::Start, "kill"),
            event(2, Phase::Start, "partition"),
            event(3, Phase::Stop, "kill"),
            event(4, Phase::Stop, "partition"),
            event(5, Phase::Start, "pause"),
        ];
        let found: Vec<(String, String, f64, f64)> = intervals(&events, 9.0)
            .into_iter()
            .map(|i| (i.fault, i.detail, i.start_s, i.stop_s))
            .collect();
        let expected = [
            ("kill", "kill@1", 1.0, 3.0),
            ("partition", "partition@2", 2.0, 4.0),
            ("pause", "pause@5", 5.0, 9.0),
        ];
        let expected: Vec<(String, String, f64, f64)> = expected
            .iter()
            .map(|&(f, d, a, b)| (f.into(), d.into(), a, b))
            .collect();
        assert_eq!(found, expected);
    }
}
