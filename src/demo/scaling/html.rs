//! The demo's self-contained HTML report: the table, the sentences and a chart drawn as
//! inline SVG (no script, no external file), escaped by askama.

use askama::Template;

use super::output::{fmt_ms, row_label};
use super::plan::Storage;
use super::{DemoReport, Row};
use crate::guestbook::config::SqliteBegin;

struct Tick {
    y: String,
    label: String,
}

struct Bar {
    x: String,
    y: String,
    width: String,
    height: String,
    color: &'static str,
    center: String,
    value_y: String,
    value: String,
    line1: String,
    line2: String,
}

struct Chart {
    title: &'static str,
    ticks: Vec<Tick>,
    bars: Vec<Bar>,
}

struct TableRow {
    label: String,
    replicas: usize,
    sent: u64,
    stored: u64,
    lock_errors: u64,
    lock_pct: String,
    other: u64,
    p50: String,
    p99: String,
    rate: String,
    lost: u64,
    phantom: u64,
    failing: bool,
}

#[derive(Template)]
#[template(path = "demo_scaling.html")]
struct Page {
    writes: u64,
    concurrency: u32,
    rows: Vec<TableRow>,
    notes: Vec<String>,
    summary: Vec<String>,
    charts: Vec<Chart>,
    elapsed: String,
}

pub fn render(report: &DemoReport) -> anyhow::Result<String> {
    let page = Page {
        writes: report.writes_per_setup,
        concurrency: report.concurrency,
        rows: report
            .rows
            .iter()
            .map(|r| TableRow {
                label: row_label(r),
                replicas: r.replicas,
                sent: r.sent,
                stored: r.stored,
                lock_errors: r.lock_errors,
                lock_pct: format!("{:.1}%", r.lock_error_pct),
                other: r.other_errors,
                p50: fmt_ms(r.p50_ms),
                p99: fmt_ms(r.p99_ms),
                rate: format!("{:.0}", r.ok_per_s),
                lost: r.lost,
                phantom: r.phantom,
                failing: r.lock_errors > 0 || r.lost > 0 || r.phantom > 0,
            })
            .collect(),
        notes: report.notes.clone(),
        summary: report.summary.clone(),
        charts: vec![
            chart(
                "Lock errors, % of writes",
                &report.rows,
                |r| r.lock_error_pct,
                |v| format!("{v:.1}%"),
            ),
            chart(
                "p99 latency of acknowledged writes, ms",
                &report.rows,
                |r| r.p99_ms.unwrap_or(0.0),
                |v| format!("{v:.0}"),
            ),
        ],
        elapsed: format!("{:.0}", report.elapsed_s),
    };
    Ok(page.render()?)
}

const LEFT: f64 = 52.0;
const RIGHT: f64 = 450.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 196.0;

fn chart(
    title: &'static str,
    rows: &[Row],
    value: impl Fn(&Row) -> f64,
    show: impl Fn(f64) -> String,
) -> Chart {
    let max = rows.iter().map(&value).fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let height = BOTTOM - TOP;
    let ticks = [0.0, top / 2.0, top]
        .iter()
        .map(|v| Tick {
            y: format!("{:.1}", BOTTOM - v / top * height),
            label: show(*v),
        })
        .collect();
    let slot = (RIGHT - LEFT) / rows.len().max(1) as f64;
    let bars = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let v = value(row).max(0.0);
            let h = (v / top * height).max(if v > 0.0 { 1.0 } else { 0.0 });
            let width = slot * 0.6;
            let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
            let (line1, color) = match row.setup().storage {
                Storage::Sqlite {
                    begin: SqliteBegin::Immediate,
                    ..
                } => ("IMMED.", "#d68910"),
                Storage::Sqlite { .. } => ("SQLite", "#c0392b"),
                Storage::Postgres => ("Postgres", "#2471a3"),
            };
            Bar {
                x: format!("{x:.1}"),
                y: format!("{:.1}", BOTTOM - h),
                width: format!("{width:.1}"),
                height: format!("{h:.1}"),
                color,
                center: format!("{:.1}", x + width / 2.0),
                value_y: format!("{:.1}", BOTTOM - h - 5.0),
                value: if row.p99_ms.is_none() && title.starts_with("p99") {
                    "-".into()
                } else {
                    show(v)
                },
                line1: line1.to_owned(),
                line2: format!("× {}", row.replicas),
            }
        })
        .collect();
    Chart { title, ticks, bars }
}

/// The smallest of 1, 2, 5 × 10^k at or above `value` (at least 1).
fn nice_ceiling(value: f64) -> f64 {
    if value.is_nan() || value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= value)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.4), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(730.0), 1000.0);
    }
}
