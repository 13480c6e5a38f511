//! The run's summary: one struct, printed as a table for people or as JSON for scripts.

use std::fmt::Write;

use serde::Serialize;

use super::audit::AuditReport;
use super::engine::{Limit, Outcome, Pick, Plan};
use super::stats::{Counts, Latency, round2};

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    /// The `X-Served-By` header, or "(no answer)" / "(no X-Served-By)"
    pub replica: String,
    pub sent: u64,
    pub counts: Counts,
    pub latency_ms: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub targets: Vec<String>,
    pub pick: Pick,
    pub method: String,
    pub path: String,
    pub keep_alive: bool,
    pub concurrency: usize,
    /// The requested count, when the run was limited by count
    pub requests: Option<u64>,
    /// The requested duration, when the run was limited by time
    pub duration_s: Option<f64>,
    /// The value `{run}` took in this run
    pub run_id: String,
    /// Stopped early (Ctrl-C)
    pub interrupted: bool,
    pub elapsed_s: f64,
    /// Requests that completed (one class each)
    pub sent: u64,
    pub rate_per_s: f64,
    pub counts: Counts,
    /// Every answer, whatever its status
    pub latency_ms: Option<Latency>,
    /// Acknowledged (2xx/3xx) answers only
    pub ok_latency_ms: Option<Latency>,
    pub replicas: Vec<ReplicaReport>,
    pub audit: Option<AuditReport>,
}

impl Report {
    pub fn new(plan: &Plan, outcome: &Outcome, path_template: &str) -> Report {
        let tally = &outcome.tally;
        let sent = tally.counts.total();
        let elapsed = outcome.elapsed.as_secs_f64();
        let mut replicas: Vec<ReplicaReport> = tally
            .replicas
            .iter()
            .map(|(name, r)| ReplicaReport {
                replica: name.clone(),
                sent: r.counts.total(),
                counts: r.counts,
                latency_ms: Latency::of(&r.latency),
            })
            .collect();
        // Named replicas in name order, then the "(no ...)" rows.
        replicas.sort_by(|a, b| {
            (a.replica.starts_with('('), &a.replica).cmp(&(b.replica.starts_with('('), &b.replica))
        });
        Report {
            targets: plan.targets.clone(),
            pick: plan.pick,
            method: plan.request.method.to_string(),
            path: path_template.to_owned(),
            keep_alive: plan.keep_alive,
            concurrency: plan.concurrency,
            requests: match plan.limit {
                Limit::Count(n) => Some(n),
                Limit::Duration(_) => None,
            },
            duration_s: match plan.limit {
                Limit::Duration(d) => Some(d.as_secs_f64()),
                Limit::Count(_) => None,
            },
            run_id: plan.request.run_id.clone(),
            interrupted: outcome.interrupted,
            elapsed_s: round2(elapsed),
            sent,
            rate_per_s: round2(sent as f64 / elapsed.max(1e-6)),
            counts: tally.counts,
            latency_ms: Latency::of(&tally.all),
            ok_latency_ms: Latency::of(&tally.ok),
            replicas,
            audit: None,
        }
    }

    /// The report as a table for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let connections = if self.keep_alive {
            "connections reused (keep-alive)"
        } else {
            "a new connection per request"
        };
        let pick = match self.pick {
            Pick::RoundRobin => "round-robin",
            Pick::Random => "random",
        };
        let _ = writeln!(
            out,
            "{} {} on {} target{} ({pick}), concurrency {}, {connections}",
            self.method,
            self.path,
            self.targets.len(),
            if self.targets.len() == 1 { "" } else { "s" },
            self.concurrency
        );
        let _ = writeln!(
            out,
            "{} requests in {:.2} s: {:.1} requests/s{}",
            self.sent,
            self.elapsed_s,
            self.rate_per_s,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        out.push('\n');
        let c = &self.counts;
        let pct = |n: u64| percent(n, self.sent);
        let _ = writeln!(out, "  answer                     count        %");
        let rows: [(&str, u64, bool); 7] = [
            ("2xx", c.ok, true),
            ("3xx (not followed)", c.redirect, false),
            ("lock error (503 locked)", c.lock_error, true),
            ("other 4xx", c.client_error, true),
            ("other 5xx", c.server_error, true),
            ("timeout", c.timeout, true),
            ("connection error", c.connection_error, true),
        ];
        for (label, n, always) in rows {
            if always || n > 0 {
                let _ = writeln!(out, "  {label:<24} {n:>7} {:>7.1}%", pct(n));
            }
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "  latency (ms)        p50       p90       p99       max"
        );
        for (label, latency) in [
            ("all answers", &self.latency_ms),
            ("2xx/3xx only", &self.ok_latency_ms),
        ] {
            match latency {
                Some(l) => {
                    let _ = writeln!(
                        out,
                        "  {label:<14} {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}",
                        l.p50, l.p90, l.p99, l.max
                    );
                }
                None => {
                    let _ = writeln!(out, "  {label:<14}        -         -         -         -");
                }
            }
        }
        if !self.replicas.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "  {:<22} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8}",
                "replica",
                "sent",
                "2xx",
                "lock",
                "4xx",
                "5xx",
                "timeout",
                "conn",
                "p50 ms",
                "p99 ms"
            );
            for r in &self.replicas {
                let c = &r.counts;
                let (p50, p99) = match &r.latency_ms {
                    Some(l) => (format!("{:.2}", l.p50), format!("{:.2}", l.p99)),
                    None => ("-".into(), "-".into()),
                };
                let _ = writeln!(
                    out,
                    "  {:<22} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8}",
                    truncate(&r.replica, 22),
                    r.sent,
                    c.ok + c.redirect,
                    c.lock_error,
                    c.client_error,
                    c.server_error,
                    c.timeout,
                    c.connection_error,
                    p50,
                    p99
                );
            }
        }
        if let Some(a) = &self.audit {
            out.push('\n');
            let _ = writeln!(
                out,
                "  audit: read back {} rows from {}",
                a.rows_read, a.url
            );
            let _ = writeln!(
                out,
                "    acknowledged and stored          {:>7}",
                a.acknowledged_stored
            );
            let _ = writeln!(out, "    LOST (acknowledged, missing)     {:>7}", a.lost);
            let _ = writeln!(out, "    PHANTOM (rejected, yet stored)   {:>7}", a.phantom);
            let _ = writeln!(
                out,
                "    rejected and not stored          {:>7}",
                a.rejected - a.phantom
            );
            if a.unanswered > 0 {
                let _ = writeln!(
                    out,
                    "    no answer: stored / not stored   {:>7} / {}",
                    a.unanswered_stored,
                    a.unanswered - a.unanswered_stored
                );
            }
            if a.duplicates > 0 {
                let _ = writeln!(
                    out,
                    "    stored twice or more             {:>7}",
                    a.duplicates
                );
            }
            let _ = writeln!(
                out,
                "    rows from elsewhere (not this run) {:>5}",
                a.other_rows
            );
            if !a.lost_examples.is_empty() {
                let _ = writeln!(out, "    lost, e.g.: {}", a.lost_examples.join(", "));
            }
            if !a.phantom_examples.is_empty() {
                let _ = writeln!(out, "    phantom, e.g.: {}", a.phantom_examples.join(", "));
            }
            let verdict = if a.clean() {
                "every acknowledged write is stored, and nothing rejected was stored"
            } else {
                "FAILED: the service's answers and its storage disagree"
            };
            let _ = writeln!(out, "    {verdict}");
        }
        out
    }
}

pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}
