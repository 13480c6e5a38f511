//! The PostgreSQL connection pool every service queries through.
//!
//! sqlx's own pool sends a ping on each connection it takes back (one more round trip, and one
//! more wake-up of a database backend, for every query; `bench/users.sh` shows the database's
//! CPU per request). This pool takes a connection back as it is when its operation ran to the
//! end and the server answered; a connection whose operation was abandoned midway (a timeout, a
//! client gone) or whose socket failed is closed instead, since what is left on its wire is
//! unknown. A connection idle for a second or more is pinged before it is handed out, so one
//! the database dropped meanwhile is never used.
//!
//! `&Pool` is an sqlx [`Executor`]: `query.fetch_one(database.pool())` runs on one pooled
//! connection, as with sqlx's pool.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, PgConnection, SqlStr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle for longer than this is pinged before use; busy connections are not, so
/// the hot path costs one round trip per query.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// Idle connections are closed after this long, so a quiet replica holds none.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are replaced after this long (a server-side setting changed, memory held by a
/// long-lived backend).
const MAX_LIFETIME: Duration = Duration::from_secs(1800);
/// How often idle connections are looked at for closing.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// Up to `max` connections, opened on first use; every wait for one is bounded.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    options: PgConnectOptions,
    max: usize,
    acquire_timeout: Duration,
    permits: Arc<Semaphore>,
    /// Most recently returned last: the warmest connection is handed out first, and the
    /// others age out when the load drops.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .field("in_use", &self.in_use())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Builds the pool without connecting. Inside a Tokio runtime, a background task closes
    /// connections left idle for `IDLE_TIMEOUT`; it ends with the pool.
    pub fn lazy(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Pool {
        let max = max.max(1) as usize;
        let shared = Arc::new(Shared {
            options,
            max,
            acquire_timeout,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::with_capacity(max)),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&shared)));
        }
        Pool { shared }
    }

    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.shared.options
    }

    /// Connections open and not in use.
    pub fn idle_count(&self) -> usize {
        self.shared.idle.lock().unwrap().len()
    }

    /// Connections handed out (or being opened) right now.
    pub fn in_use(&self) -> usize {
        self.shared
            .max
            .saturating_sub(self.shared.permits.available_permits())
    }

    /// A connection: an idle one (pinged first if it sat for a second or more) or a new one.
    /// Fails with `PoolTimedOut` when none is free or none could be opened in time.
    pub async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.shared.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, self.shared.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        while let Some(idle) = self.take_idle() {
            if idle.opened.elapsed() >= MAX_LIFETIME || idle.since.elapsed() >= IDLE_TIMEOUT {
                close_quietly(idle.connection);
                continue;
            }
            let mut connection = idle.connection;
            if idle.since.elapsed() >= PING_IF_IDLE_FOR {
                match tokio::time::timeout_at(deadline, connection.ping()).await {
                    Ok(Ok(())) => {}
                    // Dropped by the server meanwhile, or not answering: never hand it out.
                    Ok(Err(_)) => continue,
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                }
            }
            return Ok(self.pooled(connection, idle.opened, permit));
        }
        let connect = PgConnection::connect_with(&self.shared.options);
        let connection = match tokio::time::timeout_at(deadline, connect).await {
            Ok(result) => result?,
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
        };
        Ok(self.pooled(connection, Instant::now(), permit))
    }

    fn take_idle(&self) -> Option<Idle> {
        self.shared.idle.lock().unwrap().pop()
    }

    fn pooled(
        &self,
        connection: PgConnection,
        opened: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Pooled {
        Pooled {
            connection: Some(connection),
            opened,
            reusable: false,
            shared: self.shared.clone(),
            _permit: permit,
        }
    }

    /// Runs one operation on a pooled connection; the connection goes back to the pool only
    /// if the operation ended with the server's answer.
    async fn with<T>(
        self,
        operation: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut pooled = self.acquire().await?;
        let result = operation(&mut pooled).await;
        pooled.reusable = answered(&result);
        result
    }
}

/// Whether the server answered: a result, or an error it sent (after which it is ready for
/// the next query). A failed socket or a garbled message leaves the connection unusable.
fn answered<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(
        result,
        Ok(_) | Err(sqlx::Error::Database(_)) | Err(sqlx::Error::RowNotFound)
    )
}

/// A connection taken from the pool. Dropped, it goes back only when marked reusable (see
/// [`Pooled::release`]); otherwise it is closed and its place freed.
pub struct Pooled {
    connection: Option<PgConnection>,
    opened: Instant,
    reusable: bool,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    /// Marks the connection as at rest (its last operation finished) and returns it.
    pub fn release(mut self) {
        self.reusable = true;
    }
}

impl std::ops::Deref for Pooled {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.connection
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.connection
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if !self.reusable || self.opened.elapsed() >= MAX_LIFETIME {
            // Its state on the wire is unknown: the socket closes, the server rolls back
            // whatever was open. The permit is freed with `self`.
            drop(connection);
            return;
        }
        self.shared.idle.lock().unwrap().push(Idle {
            connection,
            opened: self.opened,
            since: Instant::now(),
        });
    }
}

/// Says goodbye to the server when a runtime is there to do it; otherwise just closes.
fn close_quietly(connection: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.close()).await;
        });
    }
}

async fn reap(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let stale: Vec<Idle> = {
            let mut idle = shared.idle.lock().unwrap();
            let (stale, keep) = std::mem::take(&mut *idle).into_iter().partition(|c| {
                c.since.elapsed() >= IDLE_TIMEOUT || c.opened.elapsed() >= MAX_LIFETIME
            });
            *idle = keep;
            stale
        };
        for connection in stale {
            close_quietly(connection.connection);
        }
    }
}

impl<'p> Executor<'p> for &'_ Pool {
    type Database = sqlx::Postgres;

    /// Rows are collected on the connection, then handed over: the services read small
    /// results, and the connection goes back as soon as the server has answered.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, sqlx::Postgres>,
    {
        let pool = self.clone();
        let all = async move {
            pool.with(async |connection| {
                let mut steps = Vec::new();
                let mut stream = connection.fetch_many(query);
                while let Some(step) = stream.next().await {
                    steps.push(step?);
                }
                Ok(steps)
            })
            .await
        };
        stream::once(all)
            .map_ok(|steps| stream::iter(steps.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, sqlx::Postgres>,
    {
        let pool = self.clone();
        Box::pin(pool.with(async |connection| connection.fetch_all(query).await))
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, sqlx::Postgres>,
    {
        let pool = self.clone();
        Box::pin(pool.with(async |connection| connection.execute(query).await))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, sqlx::Postgres>,
    {
        let pool = self.clone();
        Box::pin(pool.with(async |connection| connection.fetch_optional(query).await))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(pool.with(async move |connection| connection.prepare_with(sql, parameters).await))
    }
}
