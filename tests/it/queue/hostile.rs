//! What hostile or unlucky clients found: payloads a backend cannot hold, a frozen or full
//! Redis, writes whose answer was lost, and the API document checked against real answers.

use crate::support::openapi::{check_answer, resolve};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use statelab::sys::{Signal, kill};

use super::harness::{Kind, Store, client, get, post, post_raw, wait_until};

/// Tasks stored, all states together.
async fn stored(http: &reqwest::Client, producer: &crate::support::Service) -> i64 {
    let (status, stats) = get(http, &producer.url("/stats")).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    ["queued", "running", "done", "failed", "dead"]
        .iter()
        .map(|k| stats["counts"][k].as_i64().unwrap())
        .sum()
}

pub async fn payloads_are_kept_exactly_or_refused_the_same_way(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let http = client();
    let url = producer.url("/tasks");

    // The 64-bit range is kept exactly, and an escaped backslash-u is only text.
    let kept = r#"{"type": "echo", "payload": {"max": 18446744073709551615, "min": -9223372036854775808,
        "f": 1.5, "text": "\\u0000 is six characters here", "nested": [[{"n": 9007199254740993}]]}}"#;
    let (status, created) = post_raw(&http, &url, kept).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, shown) = get(&http, &producer.url(&format!("/tasks/{id}"))).await;
    let payload = &shown["payload"];
    assert_eq!(payload["max"].as_u64(), Some(u64::MAX), "{payload}");
    assert_eq!(payload["min"].as_i64(), Some(i64::MIN), "{payload}");
    assert_eq!(
        payload["nested"][0][0]["n"].as_i64(),
        Some(9007199254740993)
    );
    assert_eq!(payload["text"], "\\u0000 is six characters here");

    // What a backend could not hold exactly is refused by both, naming the field.
    for body in [
        r#"{"type": "echo", "payload": {"a": "x\u0000y"}}"#,
        r#"{"type": "echo", "payload": {"k\u0000": 1}}"#,
        r#"{"type": "echo", "payload": ["\u0000"]}"#,
        r#"{"type": "sleep", "payload": {"ms": 1, "note": "\u0000"}}"#,
        r#"{"type": "echo", "payload": 18446744073709551616}"#,
        r#"{"type": "echo", "payload": {"n": -9223372036854775809}}"#,
        r#"{"type": "echo", "payload": {"n": 1e20}}"#,
        r#"{"type": "echo", "payload": {"n": 1e400}}"#,
    ] {
        let (status, answer) = post_raw(&http, &url, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["field"], "payload", "{body}: {answer}");
    }
    // A key with U+0000 is refused as well (control characters).
    let (status, answer) = post_raw(
        &http,
        &url,
        r#"{"type": "echo", "idempotency_key": "a\u0000b"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["field"], "idempotency_key");

    // A batch names the task at fault and stores nothing.
    let batch = r#"[{"type": "echo"}, {"type": "echo", "payload": {"deep": [{"x": "\u0000"}]}}]"#;
    let (status, answer) = post_raw(&http, &producer.url("/tasks/batch"), batch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["index"], 1, "{answer}");
    assert_eq!(answer["field"], "payload", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("/deep/0/x"),
        "{answer}"
    );
    assert_eq!(stored(&http, &producer).await, 1);
}

/// Makes the backend unable to finish a write without refusing it: Redis frozen (SIGSTOP),
/// PostgreSQL's table locked by another session. `release` lets the held writes through.
enum Hold {
    Redis(u32),
    Postgres(sqlx::PgConnection),
}

impl Hold {
    async fn start(store: &Store) -> Hold {
        match store.kind {
            Kind::Redis => {
                let pid = store.redis_server().pid().unwrap();
                kill(pid, Signal::Stop).unwrap();
                Hold::Redis(pid)
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(store.url()).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE queue_tasks IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Hold::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Hold::Redis(pid) => kill(pid, Signal::Continue).unwrap(),
            Hold::Postgres(mut conn) => {
                sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
            }
        }
    }
}

pub async fn a_write_answered_503_is_safe_to_retry_with_its_idempotency_key(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer_with(&[
        ("REDIS_TIMEOUT_MS", "1000"),
        ("DB_QUERY_TIMEOUT_MS", "1500"),
    ]);
    producer.wait_ready().await;
    let http = client();
    let single = json!({"type": "echo", "payload": {"n": 1}, "idempotency_key": "retry-single"});
    let batch = json!([
        {"type": "echo", "payload": {"n": 2}, "idempotency_key": "retry-batch-a"},
        {"type": "echo", "payload": {"n": 3}, "idempotency_key": "retry-batch-b"},
    ]);

    let hold = Hold::start(&store).await;
    for (path, body) in [("/tasks", &single), ("/tasks/batch", &batch)] {
        let response = http
            .post(producer.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["outcome"], "unknown", "{answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap()
                .contains("same idempotency_key"),
            "{answer}"
        );
    }
    hold.release().await;
    producer.wait_ready().await;

    // The held writes went through when the backend woke: retrying gives the original
    // tasks, and retrying again changes nothing.
    let (status, first) = post(&http, &producer.url("/tasks"), &single).await;
    assert!(status.is_success(), "{first}");
    let (status, again) = post(&http, &producer.url("/tasks"), &single).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);
    let (status, retried) = post(&http, &producer.url("/tasks/batch"), &batch).await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    let (_, retried_again) = post(&http, &producer.url("/tasks/batch"), &batch).await;
    assert_eq!(retried_again["duplicates"], 2, "{retried_again}");
    assert_eq!(retried_again["tasks"], {
        let mut tasks = retried["tasks"].clone();
        for task in tasks.as_array_mut().unwrap() {
            task["duplicate"] = json!(true);
        }
        tasks
    });
    assert_eq!(stored(&http, &producer).await, 3, "one task per key");
    eprintln!(
        "{kind:?}: the retries found {} of 3 tasks already stored by the writes answered 503",
        u64::from(first["duplicate"] == true) + retried["duplicates"].as_u64().unwrap()
    );
}

pub async fn a_frozen_redis_gets_503_within_the_deadline_and_readiness_answers_at_once() {
    let store = Store::new(Kind::Redis).await;
    // The default deadline (REDIS_TIMEOUT_MS 2000).
    let producer = store.producer();
    producer.wait_ready().await;
    let http = client();
    let pid = store.redis_server().pid().unwrap();
    kill(pid, Signal::Stop).unwrap();

    let started = Instant::now();
    let (status, answer) = post(&http, &producer.url("/tasks"), &json!({"type": "echo"})).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(took < Duration::from_millis(3500), "POST took {took:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "answered before the deadline: {took:?}"
    );
    assert_eq!(answer["outcome"], "unknown", "{answer}");
    for path in ["/readyz", "/health"] {
        let started = Instant::now();
        let (status, answer) = get(&http, &producer.url(path)).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {answer}");
        assert!(took < Duration::from_millis(1200), "{path} took {took:?}");
    }
    let (_, ready) = get(&http, &producer.url("/readyz")).await;
    assert!(
        ready["reason"].as_str().unwrap().contains("did not answer"),
        "{ready}"
    );

    kill(pid, Signal::Continue).unwrap();
    producer.wait_ready().await;
    let (status, answer) = post(&http, &producer.url("/tasks"), &json!({"type": "echo"})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

pub async fn a_full_redis_answers_507_and_readiness_says_why() {
    let store = Store::new(Kind::Redis).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let http = client();
    let redis = redis::Client::open(store.url()).unwrap();
    let mut conn = redis.get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let config = |conn: &mut redis::Connection, key: &str, value: String| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query::<()>(conn)
            .unwrap();
    };
    config(&mut conn, "maxmemory-policy", "noeviction".into());
    config(&mut conn, "maxmemory", (used + 1024 * 1024).to_string());

    let batch: Vec<Value> = (0..500)
        .map(|n| json!({"type": "echo", "payload": {"n": n, "pad": "x".repeat(200)}}))
        .collect();
    let mut full = None;
    for _ in 0..100 {
        let (status, answer) = post(&http, &producer.url("/tasks/batch"), &json!(batch)).await;
        if status == StatusCode::INSUFFICIENT_STORAGE {
            full = Some(answer);
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let answer = full.expect("Redis fills up");
    assert_eq!(answer["code"], "OOM", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("out of memory"),
        "{answer}"
    );
    // A batch is all or nothing, even at the limit.
    assert_eq!(stored(&http, &producer).await % 500, 0);
    let (status, answer) = post(&http, &producer.url("/tasks"), &json!({"type": "echo"})).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{answer}");
    let (status, ready) = get(&http, &producer.url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(
        ready["reason"].as_str().unwrap().contains("out of memory"),
        "{ready}"
    );
    // Reads still work.
    let (status, _) = get(&http, &producer.url("/tasks/1")).await;
    assert_eq!(status, StatusCode::OK);

    config(&mut conn, "maxmemory", "0".into());
    wait_until(Duration::from_secs(10), "readiness back", || async {
        let (status, _) = get(&http, &producer.url("/readyz")).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    let (status, answer) = post(&http, &producer.url("/tasks"), &json!({"type": "echo"})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

pub async fn the_openapi_document_matches_what_the_api_answers(kind: Kind) {
    let store = Store::new(kind).await;
    let producer = store.producer();
    producer.wait_ready().await;
    let http = client();
    let (status, doc) = get(&http, &producer.url("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let limit = doc["paths"]["/tasks"]["get"]["parameters"][1]["schema"]["maximum"].clone();
    assert_eq!(limit, 500);
    assert_eq!(
        doc["components"]["schemas"]["SleepTask"]["properties"]["idempotency_key"]["maxLength"],
        statelab::queue::model::MAX_IDEMPOTENCY_KEY_LEN
    );

    let url = |path: &str| producer.url(path);
    let task = json!({"type": "sleep", "payload": {"ms": 5}, "idempotency_key": "doc-1"});
    let calls: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        ("/health", "get", http.get(url("/health"))),
        ("/healthz", "get", http.get(url("/healthz"))),
        ("/readyz", "get", http.get(url("/readyz"))),
        ("/metrics", "get", http.get(url("/metrics"))),
        ("/openapi.json", "get", http.get(url("/openapi.json"))),
        ("/stats", "get", http.get(url("/stats"))),
        ("/tasks", "post", http.post(url("/tasks")).json(&task)),
        ("/tasks", "post", http.post(url("/tasks")).json(&task)),
        (
            "/tasks",
            "post",
            http.post(url("/tasks"))
                .json(&json!({"type": "fail", "priority": 2.0, "payload": null})),
        ),
        (
            "/tasks",
            "post",
            http.post(url("/tasks")).json(&json!({"type": "sleep"})),
        ),
        (
            "/tasks",
            "post",
            http.post(url("/tasks"))
                .header("content-type", "application/json")
                .body("{"),
        ),
        ("/tasks", "post", http.post(url("/tasks")).body("{}")),
        (
            "/tasks",
            "post",
            http.post(url("/tasks"))
                .header("content-type", "application/json")
                .body(vec![b' '; 5 * 1024 * 1024]),
        ),
        ("/tasks", "delete", http.delete(url("/tasks"))),
        (
            "/tasks",
            "get",
            http.get(url("/tasks?state=queued&limit=5")),
        ),
        ("/tasks", "get", http.get(url("/tasks?limit=501"))),
        (
            "/tasks/batch",
            "post",
            http.post(url("/tasks/batch"))
                .json(&json!([task, {"type": "echo", "payload": [1, "two"]}])),
        ),
        (
            "/tasks/batch",
            "post",
            http.post(url("/tasks/batch"))
                .json(&json!([{"type": "echo"}, {"type": "nope"}])),
        ),
        ("/tasks/{id}", "get", http.get(url("/tasks/1"))),
        ("/tasks/{id}", "get", http.get(url("/tasks/424242"))),
        ("/tasks/{id}", "get", http.get(url("/tasks/+1"))),
        ("/tasks/{id}", "get", http.get(url("/tasks/%FF"))),
        (
            "/tasks/{id}/retry",
            "post",
            http.post(url("/tasks/1/retry")),
        ),
        (
            "/tasks/{id}/retry",
            "post",
            http.post(url("/tasks/424242/retry")),
        ),
        (
            "/tasks/{id}/retry",
            "post",
            http.post(url("/tasks/x/retry")),
        ),
    ];
    let mut operations = std::collections::BTreeSet::new();
    let mut statuses = std::collections::BTreeSet::new();
    for (path, method, request) in calls {
        // A method a path does not serve is checked against the path's documented 405.
        let operation = match &doc["paths"][path][method] {
            Value::Null => &doc["paths"][path]["get"],
            documented => {
                operations.insert(format!("{method} {path}"));
                documented
            }
        };
        statuses.insert(check_answer(&doc, operation, method, path, request).await);
    }
    for expected in [
        "200", "201", "400", "404", "405", "409", "413", "415", "422",
    ] {
        assert!(statuses.contains(expected), "{expected} not exercised");
    }
    let documented = crate::support::openapi::documented_operations(&doc);
    assert_eq!(
        operations, documented,
        "every documented operation exercised"
    );

    // 503 and 507 bodies are checked against the document by the frozen and full Redis
    // tests' shapes: the documented error object.
    let unavailable = resolve(&doc, &doc["paths"]["/tasks"]["post"]["responses"]["503"]);
    assert!(unavailable["headers"]["Retry-After"].is_object());
}
