//! What the demo prints: the table (or JSON), the notes, and a few sentences on what the rows
//! show, every claim checked against the numbers.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use super::plan::{Setup, Storage};
use super::{Args, DemoReport, Row, html};
use crate::guestbook::config::SqliteBegin;
use crate::load;

/// Writes the HTML report when asked, prints the table or JSON, and says whether the audit
/// found anything lost or phantom.
pub fn write(args: &Args, report: &DemoReport) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.html {
        let page = html::render(report)?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", text(report));
    }
    let broken = report.rows.iter().any(|r| r.lost > 0 || r.phantom > 0);
    Ok(if broken {
        ExitCode::from(load::EXIT_AUDIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The table and the sentences.
pub fn text(report: &DemoReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} writes per setup, {} in flight, a new connection per write, round-robin over the replicas\n",
        report.writes_per_setup, report.concurrency
    );
    let _ = writeln!(
        out,
        "{:<36} {:>8} {:>6} {:>6} {:>15} {:>6} {:>8} {:>8} {:>8} {:>5} {:>7}",
        "setup",
        "replicas",
        "sent",
        "stored",
        "lock errors",
        "other",
        "p50 ms",
        "p99 ms",
        "writes/s",
        "lost",
        "phantom"
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "{:<36} {:>8} {:>6} {:>6} {:>7} ({:>5.1}%) {:>6} {:>8} {:>8} {:>8.0} {:>5} {:>7}",
            row_label(row),
            row.replicas,
            row.sent,
            row.stored,
            row.lock_errors,
            row.lock_error_pct,
            row.other_errors,
            fmt_ms(row.p50_ms),
            fmt_ms(row.p99_ms),
            row.ok_per_s,
            row.lost,
            row.phantom
        );
    }
    let _ = writeln!(
        out,
        "\np50/p99: latency of acknowledged writes; writes/s: acknowledged writes per second; \
         stored, lost, phantom: read back after each run."
    );
    for note in &report.notes {
        let _ = writeln!(out, "{note}");
    }
    out.push('\n');
    for sentence in &report.summary {
        let _ = writeln!(out, "{sentence}");
    }
    if let Some(dir) = &report.kept_dir {
        let _ = writeln!(
            out,
            "\nSQLite files and replica logs kept in {}",
            dir.display()
        );
    }
    out
}

pub fn row_label(row: &Row) -> String {
    match row.setup().storage {
        Storage::Sqlite {
            begin: SqliteBegin::Immediate,
            busy_timeout_ms,
        } => format!("SQLite file, IMMEDIATE + {busy_timeout_ms} ms wait"),
        Storage::Sqlite {
            begin: SqliteBegin::Deferred,
            ..
        } => "SQLite file, BEGIN (deferred)".to_owned(),
        Storage::Postgres => "PostgreSQL".to_owned(),
    }
}

fn is_sqlite(setup: &Setup, wanted: SqliteBegin) -> bool {
    matches!(setup.storage, Storage::Sqlite { begin, .. } if begin == wanted)
}

/// A few sentences on what these rows show; every claim is checked against the numbers.
pub fn summary(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let deferred = |r: &&Row| is_sqlite(&r.setup(), SqliteBegin::Deferred);
    let one = rows.iter().filter(deferred).find(|r| r.replicas == 1);
    let shared: Vec<&Row> = rows
        .iter()
        .filter(deferred)
        .filter(|r| r.replicas > 1)
        .collect();
    if let Some(one) = one {
        if one.lock_errors == 0 {
            out.push(format!(
                "One replica stored {} of {} writes without a single lock error: one process \
                 queues its own writes behind its one SQLite connection.",
                one.stored, one.sent
            ));
        } else {
            out.push(format!(
                "Even one replica answered {} lock errors in this run, which the guestbook's \
                 single writer connection should prevent: something else is writing to the file.",
                one.lock_errors
            ));
        }
    }
    let failing: Vec<&&Row> = shared.iter().filter(|r| r.lock_errors > 0).collect();
    if !failing.is_empty() {
        let parts: Vec<String> = failing
            .iter()
            .map(|r| format!("{:.1}% at {} replicas", r.lock_error_pct, r.replicas))
            .collect();
        out.push(format!(
            "Sharing the file between processes, writes failed with \"database is locked\" \
             ({}): SQLite lets one process write at a time, and a transaction that has already \
             read cannot wait for the lock, so it fails at once; the busy timeout does not help.",
            parts.join(", ")
        ));
    }
    for r in shared.iter().filter(|r| r.lock_errors == 0) {
        out.push(format!(
            "This run saw no lock errors at {} replicas; raise --writes or --concurrency to make \
             the collisions more likely.",
            r.replicas
        ));
    }
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    let phantom: u64 = rows.iter().map(|r| r.phantom).sum();
    if lost == 0 && phantom == 0 {
        out.push(
            "Reading every row back found nothing lost and nothing phantom: each failure was \
             reported as a 503 and nothing was stored for it, so the problem is loud, not silent \
             (but every one of those users lost their message)."
                .to_owned(),
        );
    } else {
        out.push(format!(
            "Reading the rows back found {lost} acknowledged write(s) missing and {phantom} \
             rejected write(s) stored: the answers and the storage disagree."
        ));
    }
    if let Some(imm) = rows
        .iter()
        .find(|r| is_sqlite(&r.setup(), SqliteBegin::Immediate))
    {
        let wait = imm.busy_timeout_ms.unwrap_or_default();
        let errors = if imm.lock_errors == 0 {
            format!("took the lock errors away at {} replicas", imm.replicas)
        } else {
            format!(
                "still left {} lock errors ({:.1}%) at {} replicas",
                imm.lock_errors, imm.lock_error_pct, imm.replicas
            )
        };
        let mut sentence = format!("BEGIN IMMEDIATE with a {wait} ms busy timeout {errors}");
        if let (Some(one), Some(p99), Some(p99_one)) = (one, imm.p99_ms, one.and_then(|o| o.p99_ms))
        {
            let _ = write!(
                sentence,
                ", but every write now queues for the one file lock: p99 {p99:.0} ms against \
                 {p99_one:.0} ms with one replica, {:.0} writes/s against {:.0}",
                imm.ok_per_s, one.ok_per_s
            );
            if imm.ok_per_s <= one.ok_per_s * 1.1 {
                sentence.push_str(": more replicas write no faster than one.");
            } else {
                sentence
                    .push_str(" (more write throughput in this run, but all through one lock).");
            }
        } else {
            sentence.push('.');
        }
        out.push(sentence);
    }
    let pg: Vec<&Row> = rows
        .iter()
        .filter(|r| r.setup().storage == Storage::Postgres)
        .collect();
    if !pg.is_empty() {
        let clean = pg
            .iter()
            .all(|r| r.lock_errors == 0 && r.other_errors == 0 && r.lost == 0);
        let figures: Vec<String> = pg
            .iter()
            .map(|r| {
                format!(
                    "{} replica{}: {} of {} stored, p99 {} ms",
                    r.replicas,
                    if r.replicas == 1 { "" } else { "s" },
                    r.stored,
                    r.sent,
                    fmt_ms(r.p99_ms)
                )
            })
            .collect();
        if clean {
            out.push(format!(
                "PostgreSQL ({}) had no errors at all: a database server coordinates many \
                 writers, so the replicas can scale. That is the fix.",
                figures.join("; ")
            ));
        } else {
            out.push(format!(
                "PostgreSQL ({}) reported errors in this run; see the table.",
                figures.join("; ")
            ));
        }
    }
    out
}
