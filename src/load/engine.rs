//! The load loop: `concurrency` workers take request numbers from one shared counter until
//! the count is reached, the duration is over or the run is stopped. Each worker keeps its
//! own tally; the tallies are merged at the end.
//!
//! Plain `http://` targets go through hyper's connection API directly: each worker owns its
//! connections (one per target with keep-alive, a fresh one per request without), like
//! `wrk`, so the tool spends little CPU per request and is not the bottleneck. `https://`
//! targets go through reqwest (rustls).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, HOST, HeaderMap, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use reqwest::{Client, Url};
use tokio::net::TcpStream;
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

const AGENT: &str = concat!("statelab-load/", env!("CARGO_PKG_VERSION"));

/// An HTTP/1.1 client for `https://` targets. Without keep-alive no idle connection is kept,
/// so every request opens its own connection.
pub fn client(plan: &Plan) -> anyhow::Result<Client> {
    let mut builder = Client::builder()
        .timeout(plan.timeout)
        .connect_timeout(plan.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(AGENT);
    if !plan.keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().context("cannot build the HTTP client")
}

/// One target, resolved once before the run.
struct Target {
    /// The base URL (for reqwest and messages)
    base: String,
    https: bool,
    /// Path prefix of the base URL, without a trailing slash ("" for none)
    prefix: String,
    /// Every header of a request to this target (template headers, Host, User-Agent, and
    /// `Connection: close` without keep-alive)
    headers: HeaderMap,
    /// Addresses of the host; new connections rotate through them
    addrs: Vec<SocketAddr>,
    next_addr: AtomicUsize,
    /// The request URI when the path has no placeholder
    fixed_uri: Option<Uri>,
}

impl Target {
    async fn resolve(base: &str, plan: &Plan) -> anyhow::Result<Target> {
        let url = Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        let https = url.scheme() == "https";
        let port = url
            .port_or_known_default()
            .context("the target has no port")?;
        let host = url
            .host_str()
            .with_context(|| format!("{base:?} has no host"))?;
        let addrs: Vec<SocketAddr> = if https {
            Vec::new()
        } else {
            match host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
            {
                Ok(ip) => vec![SocketAddr::from((ip, port))],
                Err(_) => tokio::net::lookup_host((host, port))
                    .await
                    .with_context(|| format!("cannot resolve {host}"))?
                    .collect(),
            }
        };
        if !https && addrs.is_empty() {
            bail!("{base:?} resolves to no address");
        }
        let mut authority = host.to_owned();
        if let Some(explicit) = url.port() {
            authority = format!("{authority}:{explicit}");
        }
        let mut headers = plan.request.headers.clone();
        if !headers.contains_key(HOST) {
            headers.insert(
                HOST,
                HeaderValue::from_str(&authority).context("invalid host")?,
            );
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        }
        if !plan.keep_alive {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let prefix = url.path().trim_end_matches('/').to_owned();
        let probe = Vars {
            n: 0,
            uuid: Uuid::nil(),
        };
        let sample = format!("{prefix}{}", plan.request.path.render(&probe));
        let uri: Uri = sample
            .parse()
            .with_context(|| format!("invalid path {sample:?}"))?;
        Url::parse(&format!(
            "{}{}",
            base.trim_end_matches('/'),
            plan.request.path.render(&probe)
        ))
        .with_context(|| format!("invalid URL {base}{sample}"))?;
        Ok(Target {
            base: base.trim_end_matches('/').to_owned(),
            https,
            prefix,
            headers,
            addrs,
            next_addr: AtomicUsize::new(0),
            fixed_uri: plan.request.path.is_constant().then_some(uri),
        })
    }

    fn next_addr(&self) -> SocketAddr {
        let i = self.next_addr.fetch_add(1, Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }
}

/// Most reqwest clients (each with its own connection pool) one run builds for https.
const CLIENTS: usize = 16;

struct Shared {
    plan: Plan,
    targets: Vec<Target>,
    /// The body when it has no placeholder
    fixed_body: Option<Bytes>,
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
    let mut targets = Vec::with_capacity(plan.targets.len());
    for base in &plan.targets {
        targets.push(Target::resolve(base, &plan).await?);
    }
    let probe = Vars {
        n: 0,
        uuid: Uuid::nil(),
    };
    let fixed_body = plan
        .request
        .body
        .as_ref()
        .filter(|b| b.text.is_constant())
        .map(|b| Bytes::from(b.text.render(&probe)));
    // A few clients shared by the workers: building one costs about a millisecond (TLS
    // roots), so thousands of workers do not each get their own.
    let clients = if targets.iter().any(|t| t.https) {
        (0..plan.concurrency.min(CLIENTS))
            .map(|_| client(&plan))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let shared = Arc::new(Shared {
        uses_uuid: plan.request.uses_uuid(),
        deadline: match plan.limit {
            Limit::Duration(d) => Some(started + d),
            Limit::Count(_) => None,
        },
        targets,
        fixed_body,
        next: AtomicU64::new(0),
        stop: stop.clone(),
        live: live.clone(),
        plan,
    });
    let reporter = progress.start(live, shared.plan.limit, started);
    // Like wrk: one event loop per CPU, each running its share of the workers on a
    // single-threaded runtime, so a request never wakes a task on another thread.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(shared.plan.concurrency);
    let mut results = Vec::with_capacity(threads);
    for thread in 0..threads {
        let workers: Vec<Worker> = (thread..shared.plan.concurrency)
            .step_by(threads)
            .map(|i| Worker {
                connections: (0..shared.targets.len()).map(|_| None).collect(),
                client: (!clients.is_empty()).then(|| clients[i % clients.len()].clone()),
                shared: shared.clone(),
                tally: Tally::default(),
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Tally, tokio::task::JoinError>>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a load thread's runtime")?;
        std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || {
                let tally = runtime.block_on(async move {
                    let handles: Vec<_> =
                        workers.into_iter().map(|w| tokio::spawn(w.run())).collect();
                    let mut tally = Tally::default();
                    for handle in handles {
                        tally.merge(handle.await?);
                    }
                    Ok(tally)
                });
                let _ = tx.send(tally);
            })
            .context("cannot start a load thread")?;
        results.push(rx);
    }
    let mut tally = Tally::default();
    for result in results {
        let thread_tally = result.await.context("a load thread stopped")?;
        tally.merge(thread_tally.context("a load worker failed")?);
    }
    let elapsed = started.elapsed();
    reporter.finish().await;
    Ok(Outcome {
        tally,
        elapsed,
        interrupted: stop.is_cancelled(),
    })
}

struct Worker {
    shared: Arc<Shared>,
    /// One open connection per plain-HTTP target (kept only with keep-alive)
    connections: Vec<Option<Open>>,
    client: Option<Client>,
    tally: Tally,
}

/// What one request produced, before it is recorded.
struct Answer {
    class: Class,
    replica: Option<HeaderValue>,
    micros: Option<u64>,
}

impl Answer {
    fn failed(class: Class, replica: Option<HeaderValue>) -> Answer {
        Answer {
            class,
            replica,
            micros: None,
        }
    }
}

impl Worker {
    async fn run(mut self) -> Tally {
        let shared = self.shared.clone();
        let plan = &shared.plan;
        let targets = shared.targets.len();
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
            let t = match plan.pick {
                Pick::RoundRobin => (n % targets as u64) as usize,
                Pick::Random => rand::random_range(0..targets),
            };
            let target = &shared.targets[t];
            let vars = Vars {
                n,
                uuid: if shared.uses_uuid {
                    Uuid::new_v4()
                } else {
                    Uuid::nil()
                },
            };
            let body = match (&shared.fixed_body, &plan.request.body) {
                (Some(fixed), _) => Some(fixed.clone()),
                (None, Some(body)) => Some(Bytes::from(body.text.render(&vars))),
                (None, None) => None,
            };
            let uri = match &target.fixed_uri {
                Some(uri) => Some(uri.clone()),
                None => {
                    path.clear();
                    path.push_str(&target.prefix);
                    plan.request.path.render_into(&mut path, &vars);
                    path.parse::<Uri>().ok()
                }
            };
            let answer = match uri {
                // Only a placeholder could make the path invalid: the request cannot be sent.
                None => Answer::failed(Class::ClientError, None),
                Some(uri) if target.https => self.send_reqwest(target, &uri, body).await,
                Some(uri) => self.send_plain(t, uri, body).await,
            };
            let replica = answer.replica.as_ref().and_then(|v| v.to_str().ok());
            self.tally.record(answer.class, replica, answer.micros);
            if let Some(field) = &plan.audit_key {
                // Checked before the run: every request has its key.
                let key = plan.request.key_of(field, &vars).unwrap_or_default();
                self.tally.keys.push((key, answer.class));
            }
            shared.live.add(answer.class);
        }
        self.tally
    }

    /// One request over hyper: reuses this worker's connection to the target (keep-alive)
    /// or opens a new one, sends, reads the whole answer.
    async fn send_plain(&mut self, t: usize, uri: Uri, body: Option<Bytes>) -> Answer {
        let shared = self.shared.clone();
        let plan = &shared.plan;
        let target = &shared.targets[t];
        let mut request = hyper::Request::new(Full::new(body.unwrap_or_default()));
        *request.method_mut() = plan.request.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = target.headers.clone();
        let started = Instant::now();
        let slot = &mut self.connections[t];
        let exchange = async {
            let kept = slot.take().filter(|open| open.conn.is_some());
            let reused = kept.is_some();
            let mut open = match kept {
                Some(open) => open,
                None => connect(target, plan.connect_timeout).await?,
            };
            if drive(&mut open.conn, open.sender.ready()).await.is_err() {
                // The kept connection closed while idle: nothing was sent; open a new one.
                open = connect(target, plan.connect_timeout).await?;
                drive(&mut open.conn, open.sender.ready())
                    .await
                    .map_err(|_| Failure::Connection(None))?;
            }
            let response = match drive(&mut open.conn, open.sender.try_send_request(request)).await
            {
                Ok(response) => response,
                Err(mut error) => match error.take_message() {
                    // Not sent at all (the connection was closing): once more on a new one.
                    Some(request) if reused => {
                        open = connect(target, plan.connect_timeout).await?;
                        drive(&mut open.conn, open.sender.send_request(request))
                            .await
                            .map_err(|_| Failure::Connection(None))?
                    }
                    _ => return Err(Failure::Connection(None)),
                },
            };
            let (parts, body) = response.into_parts();
            let replica = parts.headers.get("x-served-by").cloned();
            // Read the whole answer, keeping it only when it has to be read (a 503 that may
            // be a lock error): no copy of every page into one buffer.
            let keep = parts.status.as_u16() == 503;
            let bytes = match drive(&mut open.conn, read_body(body, keep)).await {
                Ok(bytes) => bytes,
                Err(_) => return Err(Failure::Connection(replica)),
            };
            if plan.keep_alive && open.conn.is_some() && !open.sender.is_closed() {
                *slot = Some(open);
            }
            Ok((parts.status.as_u16(), replica, bytes))
        };
        match tokio::time::timeout(plan.timeout, exchange).await {
            Ok(Ok((status, replica, bytes))) => Answer {
                class: Class::from_answer(status, &bytes),
                replica,
                micros: Some(started.elapsed().as_micros() as u64),
            },
            Ok(Err(Failure::Connection(replica))) => {
                Answer::failed(Class::ConnectionError, replica)
            }
            Ok(Err(Failure::Timeout)) | Err(_) => Answer::failed(Class::Timeout, None),
        }
    }

    /// One request over reqwest (https targets).
    async fn send_reqwest(&mut self, target: &Target, uri: &Uri, body: Option<Bytes>) -> Answer {
        let Some(client) = &self.client else {
            return Answer::failed(Class::ConnectionError, None);
        };
        let Ok(url) = Url::parse(&format!(
            "{}{}",
            target.base,
            uri.path_and_query().map_or("/", |p| p.as_str())
        )) else {
            return Answer::failed(Class::ClientError, None);
        };
        let plan = &self.shared.plan;
        let mut request = reqwest::Request::new(plan.request.method.clone(), url);
        *request.headers_mut() = target.headers.clone();
        request.headers_mut().remove(HOST);
        if let Some(body) = body {
            *request.body_mut() = Some(reqwest::Body::from(body));
        }
        let started = Instant::now();
        match client.execute(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let replica = response.headers().get("x-served-by").cloned();
                match response.bytes().await {
                    Ok(bytes) => Answer {
                        class: Class::from_answer(status, &bytes),
                        replica,
                        micros: Some(started.elapsed().as_micros() as u64),
                    },
                    Err(error) => Answer::failed(reqwest_failure(&error), replica),
                }
            }
            Err(error) => Answer::failed(reqwest_failure(&error), None),
        }
    }
}

enum Failure {
    Timeout,
    /// Refused, reset or closed early; the replica when its headers had arrived
    Connection(Option<HeaderValue>),
}

type Connection = Pin<Box<hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// An open HTTP/1.1 connection, driven by the worker that owns it (no separate task, so a
/// request costs no wake-up of another task, possibly on another thread).
struct Open {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended
    conn: Option<Connection>,
}

/// Opens a TCP connection to the target and starts an HTTP/1.1 connection on it.
async fn connect(target: &Target, within: Duration) -> Result<Open, Failure> {
    let stream = match tokio::time::timeout(within, TcpStream::connect(target.next_addr())).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) => return Err(Failure::Connection(None)),
        Err(_) => return Err(Failure::Timeout),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connection(None))?;
    Ok(Open {
        sender,
        conn: Some(Box::pin(conn)),
    })
}

/// Reads a body to its end; returns its bytes only when `keep` (at most 64 KiB of them).
async fn read_body(mut body: hyper::body::Incoming, keep: bool) -> Result<Bytes, hyper::Error> {
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && keep
            && kept.len() < 64 * 1024
        {
            kept.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(kept))
}

/// Polls `work` to completion while driving the connection it depends on.
async fn drive<F: Future>(conn: &mut Option<Connection>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(connection) = conn.as_mut()
            && connection.as_mut().poll(cx).is_ready()
        {
            // Ended (closed or failed): whatever waits on it now completes with an error.
            *conn = None;
        }
        work.as_mut().poll(cx)
    })
    .await
}

fn reqwest_failure(error: &reqwest::Error) -> Class {
    if error.is_timeout() {
        Class::Timeout
    } else {
        Class::ConnectionError
    }
}
