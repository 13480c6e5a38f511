//! `statelab load`: concurrent HTTP load against one or more replicas, every answer
//! classified (overall and per replica), latency percentiles, and an optional audit of what
//! the service acknowledged against what it stored.

pub mod audit;
pub mod engine;
pub mod progress;
pub mod report;
pub mod stats;
pub mod template;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::server::signals::Shutdown;

pub use audit::AuditReport;
pub use engine::{Limit, Outcome, Pick, Plan};
use progress::{ProgressChoice, ProgressMode};
pub use report::Report;
pub use template::RequestTemplate;

/// Exit status when the audit found acknowledged writes missing (LOST) or rejected writes
/// stored (PHANTOM).
pub const EXIT_AUDIT_FAILED: u8 = 3;
/// Exit status after Ctrl-C (the report of what was done is still printed).
pub const EXIT_INTERRUPTED: u8 = 130;

const DEFAULT_REQUESTS: u64 = 1000;

/// Sends concurrent HTTP requests to one or more replicas and reports what came back.
///
/// Every request opens a new TCP connection unless --keep-alive is given: a Kubernetes
/// Service balances connections, not requests, so reused connections would stick to one
/// replica. Placeholders in --path and the body: {num} (request number from 0; the docs write
/// it as n in braces, which works too), {uuid} (random per request), {run} (one id per run).
///
/// Exit status: 0 when the run completed, 3 when --audit found LOST or PHANTOM writes,
/// 130 after Ctrl-C, 1 on errors.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Base URL of each target, e.g. http://127.0.0.1:8000 (several, or comma-separated:
    /// requests are spread over them)
    #[arg(
        required = true,
        env = "LOAD_TARGETS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub targets: Vec<String>,

    /// How each request picks its target
    #[arg(long, env = "LOAD_PICK", value_enum, default_value_t = Pick::RoundRobin)]
    pub pick: Pick,

    /// Number of requests to send (default 1000 unless --duration is given)
    #[arg(short = 'n', long, env = "LOAD_REQUESTS", conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// Send requests for this long instead of a count: 30s, 500ms, 2m, or plain seconds
    #[arg(short = 'd', long, env = "LOAD_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Requests in flight at once (one worker each)
    #[arg(short = 'c', long, env = "LOAD_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// HTTP method (default: POST when a body is given, GET otherwise)
    #[arg(short = 'X', long, env = "LOAD_METHOD")]
    pub method: Option<String>,

    /// Path appended to each target URL; placeholders allowed
    #[arg(short = 'p', long, env = "LOAD_PATH", default_value = "/")]
    pub path: String,

    /// JSON body template, e.g. '{"name":"load-{run}-{num}","message":"hello {uuid}"}'
    #[arg(
        long,
        env = "LOAD_JSON_BODY",
        conflicts_with = "form_body",
        value_name = "TEMPLATE"
    )]
    pub json_body: Option<String>,

    /// Form body template (application/x-www-form-urlencoded), e.g. 'name=load-{run}-{num}&message=hi'
    #[arg(long, env = "LOAD_FORM_BODY", value_name = "TEMPLATE")]
    pub form_body: Option<String>,

    /// Extra request header, NAME: VALUE (repeat the flag for several)
    #[arg(
        short = 'H',
        long = "header",
        env = "LOAD_HEADERS",
        value_delimiter = '\n',
        value_name = "NAME: VALUE"
    )]
    pub headers: Vec<String>,

    /// Reuse connections (HTTP keep-alive) instead of opening one per request
    #[arg(long, env = "LOAD_KEEP_ALIVE")]
    pub keep_alive: bool,

    /// Longest wait for one complete answer, in milliseconds
    #[arg(long, env = "LOAD_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,

    /// Longest wait for a TCP connection, in milliseconds
    #[arg(long, env = "LOAD_CONNECT_TIMEOUT_MS", default_value_t = 3_000)]
    pub connect_timeout_ms: u64,

    /// After the run, read back what the service stored (the guestbook's GET /api/messages)
    /// and report acknowledged-and-stored, LOST (acknowledged, missing) and PHANTOM
    /// (rejected, yet stored) writes
    #[arg(long, env = "LOAD_AUDIT")]
    pub audit: bool,

    /// Path the audit reads, paged with limit and before_id
    #[arg(long, env = "LOAD_AUDIT_PATH", default_value = "/api/messages")]
    pub audit_path: String,

    /// Body field that identifies each write in storage (must contain {num} or {uuid})
    #[arg(long, env = "LOAD_AUDIT_KEY", default_value = "name")]
    pub audit_key: String,

    /// Base URL the audit reads from (default: the first target)
    #[arg(long, env = "LOAD_AUDIT_URL", value_name = "URL")]
    pub audit_url: Option<String>,

    /// Print the report as one JSON object on stdout instead of a table
    #[arg(long, env = "LOAD_JSON")]
    pub json: bool,

    /// Progress on stderr while running
    #[arg(long, env = "LOAD_PROGRESS", value_enum, default_value_t = ProgressChoice::Auto)]
    pub progress: ProgressChoice,

    /// Seconds between progress lines when stderr is not a terminal
    #[arg(long, env = "LOAD_PROGRESS_EVERY_S", default_value_t = 2.0)]
    pub progress_every_s: f64,
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 7.0 * 86_400.0 {
        return Err(format!("{text:?} is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl Args {
    /// Checks the arguments and turns them into a plan.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let targets = self
            .targets
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| engine::normalize_target(t.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if targets.is_empty() {
            bail!("give at least one target URL");
        }
        let run_id = template::new_run_id();
        let request = RequestTemplate::new(
            self.method.as_deref(),
            &self.path,
            self.json_body.as_deref(),
            self.form_body.as_deref(),
            &self.headers,
            &run_id,
        )?;
        if self.audit {
            request.check_audit_key(&self.audit_key)?;
            if !self.audit_path.starts_with('/') {
                bail!("--audit-path must start with '/'");
            }
        }
        let limit = match (self.requests, self.duration) {
            (Some(n), _) => Limit::Count(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Count(DEFAULT_REQUESTS),
        };
        Ok(Plan {
            targets,
            pick: self.pick,
            limit,
            concurrency: self.concurrency as usize,
            keep_alive: self.keep_alive,
            request,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.max(1)),
            audit_key: self.audit.then(|| self.audit_key.clone()),
        })
    }
}

/// Runs a plan, then the audit when the plan asks for one.
pub async fn run_plan(
    plan: Plan,
    path_template: &str,
    audit_from: Option<(&str, &str)>,
    progress: ProgressMode,
    stop: CancellationToken,
) -> anyhow::Result<Report> {
    let outcome = engine::execute(plan.clone(), progress, stop).await?;
    let mut report = Report::new(&plan, &outcome, path_template);
    if let (Some(key), Some((base, path))) = (&plan.audit_key, audit_from) {
        let stored = audit::read_back(base, path, key, Duration::from_secs(60)).await?;
        report.audit = Some(audit::compare(
            format!("{base}{path}"),
            &outcome.tally.keys,
            &stored,
        ));
    }
    Ok(report)
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = args.plan()?;
    let audit_base = match &args.audit_url {
        Some(url) => engine::normalize_target(url)?,
        None => plan.targets[0].clone(),
    };
    let every = Duration::try_from_secs_f64(args.progress_every_s)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--progress-every-s must be a positive number of seconds")?;
    let progress = ProgressMode::choose(args.progress, every);
    let shutdown = Shutdown::from_signals();
    let stop = shutdown.token();
    tokio::spawn(async move {
        shutdown.requested().await;
        eprintln!("interrupted: no new requests; waiting for those in flight");
    });
    let audit_from = args
        .audit
        .then_some((audit_base.as_str(), args.audit_path.as_str()));
    let report = run_plan(plan, &args.path, audit_from, progress, stop).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.audit.as_ref().is_some_and(|a| !a.clean()) {
        ExitCode::from(EXIT_AUDIT_FAILED)
    } else if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }
}
