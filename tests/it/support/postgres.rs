//! PostgreSQL for tests. With `TEST_DATABASE_URL` set, each test gets its own database on that
//! server; otherwise each test starts a private throwaway cluster from the system's `initdb`
//! and `postgres` (Unix socket only). Tests that stop and start PostgreSQL always use a
//! private cluster, never a shared server.

use std::ops::{Deref, DerefMut};

use sqlx::Connection;
use statelab::demo::backends::{Durability, Postgres};

/// A database of this test's own; dropped (best effort) when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
    cluster: Option<PrivateCluster>,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("statelab_test_{}", uuid::Uuid::new_v4().simple());
                create_database(&admin_url, &name).await;
                let url = with_database(&admin_url, &name);
                TestDatabase {
                    url,
                    admin_url,
                    name,
                    cluster: None,
                }
            }
            _ => {
                let cluster = PrivateCluster::start();
                let admin_url = cluster.url("postgres");
                let name = "statelab_test".to_owned();
                create_database(&admin_url, &name).await;
                TestDatabase {
                    url: cluster.url(&name),
                    admin_url,
                    name,
                    cluster: Some(cluster),
                }
            }
        }
    }

    /// A second database beside this one (same server), e.g. for a second service.
    pub async fn sibling(&self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.name);
        create_database(&self.admin_url, &name).await;
        with_database(&self.admin_url, &name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            return; // the whole cluster goes away with its directory
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn create_database(admin_url: &str, name: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL for tests: {e}"));
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE works");
}

/// Replaces the database name in a postgres:// URL, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A PostgreSQL cluster in a temporary directory, listening only on a Unix socket there
/// (the demos' private-backend launcher, without fsync: tests trade durability for speed).
pub struct PrivateCluster(Postgres);

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        PrivateCluster(Postgres::start(Durability::NoSync).unwrap_or_else(|e| panic!("{e:#}")))
    }

    pub fn start_again(&mut self) {
        self.0.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    }
}

impl Deref for PrivateCluster {
    type Target = Postgres;

    fn deref(&self) -> &Postgres {
        &self.0
    }
}

impl DerefMut for PrivateCluster {
    fn deref_mut(&mut self) -> &mut Postgres {
        &mut self.0
    }
}
