//! Rules every service follows because they live once in `server::postgres` and
//! `server::redis`: the same answer to the same backend failure, and no secret in `--help`.

use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::support::http;
use crate::support::postgres::TestDatabase;
use crate::support::process::{Service, ServiceBuilder, binary};

/// A PostgreSQL role the service logs in as, which the test can stop from logging in.
struct LoginRole {
    admin: PgConnection,
    name: String,
    password: String,
}

impl LoginRole {
    async fn create(db: &TestDatabase) -> LoginRole {
        let mut admin = PgConnection::connect(&db.url)
            .await
            .expect("admin connects");
        let name = format!(
            "statelab_login_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let password = "pw-login-test".to_owned();
        exec(
            &mut admin,
            format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'; GRANT ALL ON SCHEMA public TO {name}"),
        )
        .await
        .unwrap();
        LoginRole {
            admin,
            name,
            password,
        }
    }

    /// The DB_* variables that make a service log in as this role.
    fn env(&self, db: &TestDatabase) -> Vec<(&'static str, String)> {
        let options = PgConnectOptions::from_str(&db.url).expect("test URL parses");
        let host = match options.get_socket() {
            Some(dir) => dir.display().to_string(),
            None => options.get_host().to_owned(),
        };
        vec![
            ("DB_HOST", host),
            ("DB_PORT", options.get_port().to_string()),
            ("DB_NAME", options.get_database().unwrap_or("").to_owned()),
            ("DB_USER", self.name.clone()),
            ("DB_PASSWORD", self.password.clone()),
        ]
    }

    /// New logins are refused (SQLSTATE 28000) and the role's open connections are closed.
    async fn refuse_logins(&mut self) {
        exec(&mut self.admin, format!("ALTER ROLE {} NOLOGIN", self.name))
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(&self.name)
            .execute(&mut self.admin)
            .await
            .unwrap();
    }

    async fn allow_logins(&mut self) {
        exec(&mut self.admin, format!("ALTER ROLE {} LOGIN", self.name))
            .await
            .unwrap();
    }

    async fn drop_role(mut self) {
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        )
        .bind(&self.name)
        .execute(&mut self.admin)
        .await;
        let sql = format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name);
        let _ = exec(&mut self.admin, sql).await;
    }
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// One write the service acknowledges with a 2xx when its database works.
type Write = fn(&Service, u32) -> reqwest::RequestBuilder;

fn guestbook_write(service: &Service, n: u32) -> reqwest::RequestBuilder {
    http()
        .post(service.url("/api/messages"))
        .json(&json!({"name": format!("n{n}"), "message": "hello"}))
}

fn users_write(service: &Service, n: u32) -> reqwest::RequestBuilder {
    http()
        .post(service.url("/users"))
        .json(&json!({"name": format!("n{n}"), "email": format!("n{n}@example.com")}))
}

fn queue_write(service: &Service, _: u32) -> reqwest::RequestBuilder {
    http()
        .post(service.url("/tasks"))
        .json(&json!({"type": "echo"}))
}

/// A service logged in as a role that then loses the right to log in answers 503 with
/// `Retry-After` and the database's reason, and serves again once logins are allowed.
async fn refused_login_is_503_with_retry_after(args: &[&str], write: Write) {
    let db = TestDatabase::create().await;
    let mut role = LoginRole::create(&db).await;
    let mut builder = ServiceBuilder::new(args).env_remove("DATABASE_URL");
    for (key, value) in role.env(&db) {
        builder = builder.env(key, value);
    }
    let service = builder.start();
    service.wait_ready().await;
    let first = write(&service, 0).send().await.unwrap();
    assert!(
        first.status().is_success(),
        "{}",
        first.text().await.unwrap()
    );

    role.refuse_logins().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 1;
    let refused = loop {
        n += 1;
        let response = write(&service, n).send().await.unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        assert!(
            status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {body}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry_after.is_some(), "a 503 without Retry-After: {body}");
        }
        if body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not permitted to log in"))
        {
            break (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "the refused login never reached the client; last: {status} {body}; log:\n{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    let ready = http().get(service.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    role.allow_logins().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        n += 1;
        let response = write(&service, n).send().await.unwrap();
        if response.status().is_success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after logins were allowed again: {}",
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(service);
    role.drop_role().await;
}

#[tokio::test]
async fn guestbook_answers_a_refused_login_with_503_and_retry_after() {
    refused_login_is_503_with_retry_after(&["guestbook"], guestbook_write).await;
}

#[tokio::test]
async fn users_answers_a_refused_login_with_503_and_retry_after() {
    refused_login_is_503_with_retry_after(&["users"], users_write).await;
}

#[tokio::test]
async fn queue_answers_a_refused_login_with_503_and_retry_after() {
    refused_login_is_503_with_retry_after(&["queue"], queue_write).await;
}

/// Every subcommand's `--help`, with every secret-bearing variable set, shows none of them.
#[test]
fn help_never_shows_a_secret() {
    let secrets = [
        ("DATABASE_URL", "postgres://u:SECRET-1@db.example/app"),
        ("REDIS_URL", "redis://:SECRET-2@redis.example:6379/0"),
        ("DB_PASSWORD", "SECRET-3"),
        ("REDIS_PASSWORD", "SECRET-4"),
        ("GUESTBOOK_SECRET", "SECRET-5"),
    ];
    let subcommands: &[&[&str]] = &[
        &[],
        &["guestbook"],
        &["users"],
        &["cache"],
        &["queue"],
        &["worker"],
        &["counter"],
        &["counter", "init"],
        &["load"],
        &["lint"],
        &["demo"],
        &["demo", "scaling"],
        &["demo", "persistence"],
        &["demo", "identity"],
        &["demo", "queue"],
    ];
    for args in subcommands {
        let output = Command::new(binary())
            .args(*args)
            .arg("--help")
            .envs(secrets)
            .output()
            .expect("statelab runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{args:?} --help failed:\n{text}");
        assert!(
            !text.contains("SECRET-"),
            "{args:?} --help shows a secret:\n{text}"
        );
    }
}
