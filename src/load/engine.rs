//! The load loop: `concurrency` workers, each with its own HTTP client, take request numbers
//! from one shared counter until the count is reached, the duration is over or the run is
//! stopped. Each worker keeps its own tally; the tallies are merged at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::header::{CONNECTION, HeaderValue};
use reqwest::{Client, Request, Url};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::progress::{Live, ProgressMode};
use super::stats::{Class, Tally};
use super::template::{RequestTemplate, Vars};

/// How each request picks its target.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Request n goes to target n mod (number of targets)
    RoundRobin,
    /// Each request picks a target at random
    Random,
}

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Duration(Duration),
}

/// A fully checked description of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URLs without a trailing slash, e.g. `http://127.0.0.1:8000`
    pub targets: Vec<String>,
    pub pick: Pick,
    pub limit: Limit,
    pub concurrency: usize,
    pub keep_alive: bool,
    pub request: RequestTemplate,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Body field whose value identifies each write, when the run is audited afterwards
    pub audit_key: Option<String>,
}

/// What a run produced.
pub struct Outcome {
    pub tally: Tally,
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// Checks a base URL and drops its trailing slash.
pub fn normalize_target(target: &str) -> anyhow::Result<String> {
    let url = Url::parse(target).with_context(|| format!("{target:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("{target:?}: only http:// and https:// targets are supported");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("{target:?}: a target is a base URL; put the path in --path");
    }
    Ok(target.trim_end_matches('/').to_owned())
}

/// An HTTP/1.1 client for one worker. Without keep-alive no idle connection is kept, so
/// every request opens its own TCP connection (as a Kubernetes Service balances them).
pub fn client(plan: &Plan) -> anyhow::Result<Client> {
    let mut builder = Client::builder()
        .timeout(plan.timeout)
        .connect_timeout(plan.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(concat!("statelab-load/", env!("CARGO_PKG_VERSION")));
    if !plan.keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().context("cannot build the HTTP client")
}

struct Shared {
    plan: Plan,
    /// URLs per target when the path has no placeholder (parsed once)
    fixed_urls: Option<Vec<Url>>,
    /// The body when it has no placeholder
    fixed_body: Option<String>,
    uses_uuid: bool,
    next: AtomicU64,
    deadline: Option<Instant>,
    stop: CancellationToken,
    live: Arc<Live>,
}

/// Runs the plan to completion (or until `stop` is cancelled) and returns the merged tally.
pub async fn execute(
    plan: Plan,
    progress: ProgressMode,
    stop: CancellationToken,
) -> anyhow::Result<Outcome> {
    if plan.targets.is_empty() {
        bail!("no target given");
    }
    if plan.concurrency == 0 {
        bail!("the concurrency must be at least 1");
    }
    let probe = Vars {
        n: 0,
        uuid: Uuid::nil(),
    };
    let fixed_urls = if plan.request.path.is_constant() {
        let path = plan.request.path.render(&probe);
        Some(
            plan.targets
                .iter()
                .map(|t| {
                    Url::parse(&format!("{t}{path}"))
                        .with_context(|| format!("invalid URL {t}{path}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    } else {
        for t in &plan.targets {
            let sample = format!("{t}{}", plan.request.path.render(&probe));
            Url::parse(&sample).with_context(|| format!("invalid URL {sample}"))?;
        }
        None
    };
    let fixed_body = plan
        .request
        .body
        .as_ref()
        .filter(|b| b.text.is_constant())
        .map(|b| b.text.render(&probe));
    let clients = (0..plan.concurrency)
        .map(|_| client(&plan))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let shared = Arc::new(Shared {
        uses_uuid: plan.request.uses_uuid(),
        deadline: match plan.limit {
            Limit::Duration(d) => Some(started + d),
            Limit::Count(_) => None,
        },
        fixed_urls,
        fixed_body,
        next: AtomicU64::new(0),
        stop: stop.clone(),
        live: live.clone(),
        plan,
    });
    let reporter = progress.start(live, shared.plan.limit, started);
    let workers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(worker(shared.clone(), client)))
        .collect();
    let mut tally = Tally::default();
    for handle in workers {
        tally.merge(handle.await.context("a load worker failed")?);
    }
    let elapsed = started.elapsed();
    reporter.finish().await;
    Ok(Outcome {
        tally,
        elapsed,
        interrupted: stop.is_cancelled(),
    })
}

async fn worker(shared: Arc<Shared>, client: Client) -> Tally {
    let mut tally = Tally::default();
    let plan = &shared.plan;
    let targets = plan.targets.len();
    let mut path = String::new();
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        let n = match plan.limit {
            Limit::Count(count) => {
                let n = shared.next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                n
            }
            Limit::Duration(_) => {
                if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                shared.next.fetch_add(1, Ordering::Relaxed)
            }
        };
        let target = match plan.pick {
            Pick::RoundRobin => (n % targets as u64) as usize,
            Pick::Random => rand::random_range(0..targets),
        };
        let vars = Vars {
            n,
            uuid: if shared.uses_uuid {
                Uuid::new_v4()
            } else {
                Uuid::nil()
            },
        };
        let url = match &shared.fixed_urls {
            Some(urls) => urls[target].clone(),
            None => {
                path.clear();
                path.push_str(&plan.targets[target]);
                plan.request.path.render_into(&mut path, &vars);
                match Url::parse(&path) {
                    Ok(url) => url,
                    Err(_) => {
                        // Only a placeholder could make it invalid; count it as a client error.
                        tally.record(Class::ClientError, None, None);
                        shared.live.add(Class::ClientError);
                        continue;
                    }
                }
            }
        };
        let mut request = Request::new(plan.request.method.clone(), url);
        *request.headers_mut() = plan.request.headers.clone();
        if !plan.keep_alive {
            request
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(body) = &plan.request.body {
            *request.body_mut() = Some(match &shared.fixed_body {
                Some(fixed) => reqwest::Body::from(fixed.clone()),
                None => reqwest::Body::from(body.text.render(&vars)),
            });
        }
        if let Some(field) = &plan.audit_key {
            // Checked before the run: every request has its key.
            let key = plan.request.key_of(field, &vars).unwrap_or_default();
            let class = send(&client, request, &mut tally).await;
            tally.keys.push((key, class));
            shared.live.add(class);
        } else {
            let class = send(&client, request, &mut tally).await;
            shared.live.add(class);
        }
    }
    tally
}

/// Sends one request, reads the whole answer and records it.
async fn send(client: &Client, request: Request, tally: &mut Tally) -> Class {
    let started = Instant::now();
    let (class, replica, micros) = match client.execute(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let replica = response.headers().get("x-served-by").cloned();
            match response.bytes().await {
                Ok(body) => (
                    Class::from_answer(status, &body),
                    replica,
                    Some(started.elapsed().as_micros() as u64),
                ),
                Err(error) => (failure(&error), replica, None),
            }
        }
        Err(error) => (failure(&error), None, None),
    };
    let replica = replica.as_ref().and_then(|v| v.to_str().ok());
    tally.record(class, replica, micros);
    class
}

fn failure(error: &reqwest::Error) -> Class {
    if error.is_timeout() {
        Class::Timeout
    } else {
        Class::ConnectionError
    }
}
