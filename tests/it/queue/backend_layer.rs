//! What the queue gets from the shared backend layer: a refused PostgreSQL login is "try again
//! later" (503 with Retry-After, not ready) and heals by itself, and `--help` never shows a
//! secret that is set in the environment.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use super::harness::client;
use crate::support::ServiceBuilder;
use crate::support::postgres::PrivateCluster;
use crate::support::process::binary;

async fn admin(cluster: &PrivateCluster, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("the test connects as the superuser");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn enqueue(http: &reqwest::Client, url: &str) -> (StatusCode, Option<String>, Value) {
    let response = http
        .post(url)
        .json(&json!({"type": "echo"}))
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The private cluster trusts every existing role on its socket, so a wrong password cannot
/// be refused there; a role that may not log in is refused with SQLSTATE 28000, the same
/// class (28) as a wrong password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refused_login_is_503_with_retry_after_then_recovers() {
    let cluster = PrivateCluster::start();
    admin(&cluster, "CREATE ROLE queue_app LOGIN").await;
    admin(&cluster, "CREATE DATABASE queue_app OWNER queue_app").await;
    let url = format!(
        "postgres://queue_app@localhost/queue_app?host={}",
        cluster.socket_dir().display()
    );
    let producer = ServiceBuilder::new(&["queue"])
        .env("DATABASE_URL", &url)
        .start();
    producer.wait_ready().await;
    let http = client();
    let tasks = producer.url("/tasks");
    let (status, _, body) = enqueue(&http, &tasks).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Logins refused from now on, and the connections the producer holds are cut, so its
    // next request must log in again.
    admin(&cluster, "ALTER ROLE queue_app NOLOGIN").await;
    admin(
        &cluster,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'queue_app'",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (retry_after, body) = loop {
        let (status, retry_after, body) = enqueue(&http, &tasks).await;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_ne!(status, StatusCode::CREATED, "logins are refused: {body}");
        let refused = body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not permitted to log in"));
        if status == StatusCode::SERVICE_UNAVAILABLE && refused {
            break (retry_after, body);
        }
        assert!(
            Instant::now() < deadline,
            "no refused-login answer; last: {status} {body}\n{}",
            producer.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        retry_after.is_some_and(|v| v.parse::<u64>().is_ok()),
        "a 503 carries Retry-After: {body}"
    );
    let ready = http.get(producer.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let logs = producer.logs();
    assert!(
        !logs.contains("\"level\":\"ERROR\""),
        "a refused login is not an unexpected error:\n{logs}"
    );

    // Logins allowed again: the producer recovers without a restart.
    admin(&cluster, "ALTER ROLE queue_app LOGIN").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = enqueue(&http, &tasks).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    producer.wait_ready().await;
}

#[test]
fn queue_and_worker_help_never_show_secrets_from_the_environment() {
    for command in ["queue", "worker"] {
        let output = Command::new(binary())
            .args([command, "--help"])
            .env("DATABASE_URL", "postgres://u:SECRET1@h/db")
            .env("REDIS_URL", "redis://:SECRET2@h")
            .env("DB_PASSWORD", "SECRET3")
            .env("REDIS_PASSWORD", "SECRET4")
            .output()
            .expect("statelab runs");
        assert!(output.status.success(), "statelab {command} --help failed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for name in ["DATABASE_URL", "REDIS_URL", "DB_PASSWORD", "REDIS_PASSWORD"] {
            assert!(text.contains(name), "{command} --help lists {name}");
        }
        for secret in ["SECRET1", "SECRET2", "SECRET3", "SECRET4"] {
            assert!(
                !text.contains(secret),
                "statelab {command} --help shows {secret}:\n{text}"
            );
        }
    }
}
