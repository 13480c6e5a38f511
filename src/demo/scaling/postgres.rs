//! The PostgreSQL rows' databases: which server, a fresh database per row, and every one of
//! them dropped again, also after an error or a signal.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::{Args, LOCAL_POSTGRES};

/// The server to use, `None` when PostgreSQL is switched off, or why it cannot be used.
pub async fn server(args: &Args) -> Result<Option<String>, String> {
    if args.no_postgres {
        return Ok(None);
    }
    let url = args.postgres.as_deref().unwrap_or(LOCAL_POSTGRES);
    let shown = redact(url);
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("{shown} is not a PostgreSQL URL ({e})"))?;
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(Some(url.to_owned()))
        }
        Ok(Err(error)) => Err(format!(
            "cannot connect to {shown}: {}",
            one_line(&error.to_string())
        )),
        Err(_) => Err(format!("{shown} did not answer within 3 s")),
    }
}

/// The databases this run created and has not dropped yet, as (server URL, name).
#[derive(Clone, Default)]
pub struct Databases {
    created: Arc<Mutex<Vec<(String, String)>>>,
}

impl Databases {
    /// Creates database `name` on the server of `admin_url` and returns its URL.
    pub async fn create(&self, admin_url: &str, name: &str) -> anyhow::Result<String> {
        let url = database_url(admin_url, name)?;
        let mut conn = admin_connection(admin_url).await?;
        // Remembered before it exists: an interrupted CREATE is still cleaned up.
        self.lock().push((admin_url.to_owned(), name.to_owned()));
        // The name is ours: letters, digits and underscores only.
        let sql = format!("CREATE DATABASE \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = conn.close().await;
        Ok(url)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(String, String)>> {
        self.created.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every database created so far; returns what could not be dropped.
    pub async fn drop_all(&self) -> Vec<String> {
        let pending: Vec<_> = std::mem::take(&mut *self.lock());
        let mut failures = Vec::new();
        for (admin, name) in pending {
            if let Err(error) = drop_database(&admin, &name).await {
                failures.push(format!("could not drop database {name}: {error:#}"));
            }
        }
        failures
    }
}

async fn admin_connection(admin_url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = admin_url.parse().context("invalid PostgreSQL URL")?;
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
        .await
        .context("PostgreSQL did not answer within 5 s")?
        .context("cannot connect to PostgreSQL")
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = admin_connection(admin).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

/// The same server URL with another database name (user, password, host and options kept).
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(admin_url).context("the PostgreSQL URL does not parse")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// The URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "the given URL".to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_owned()
}
