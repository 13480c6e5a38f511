//! The guestbook against real SQLite files, real PostgreSQL and real `statelab` processes.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Service, ServiceBuilder, TestDatabase};

fn sqlite_replica(dir: &std::path::Path, name: &str) -> Service {
    ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir)
        .env("POD_NAME", name)
        .start()
}

fn postgres_replica(url: &str, name: &str) -> Service {
    ServiceBuilder::new(&["guestbook", "--database", url])
        .env("POD_NAME", name)
        .start()
}

/// Every message the service stored, following the `before_id` cursor.
pub async fn all_messages(base: &Service) -> Vec<Value> {
    let client = support::http();
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = base.url("/api/messages?limit=1000");
        if let Some(b) = before {
            url.push_str(&format!("&before_id={b}"));
        }
        let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let messages = page["messages"].as_array().unwrap().clone();
        out.extend(messages);
        match page["next_before_id"].as_i64() {
            Some(next) => before = Some(next),
            None => return out,
        }
    }
}

#[derive(Default, Debug)]
struct Outcome {
    /// name → id, for every 201
    stored: BTreeMap<String, i64>,
    /// names answered 503 "database is locked"
    locked: Vec<String>,
    other: Vec<(String, u16, String)>,
}

/// Sends `count` unique POSTs spread round-robin over `replicas`, `concurrency` at a time.
async fn post_many(replicas: &[&Service], count: usize, concurrency: usize) -> Outcome {
    let client = support::http();
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/api/messages")).collect();
    let results = futures::future::join_all((0..concurrency).map(|worker| {
        let client = client.clone();
        let urls = urls.clone();
        async move {
            let mut results = Vec::new();
            let mut n = worker;
            while n < count {
                let name = format!("writer-{n}");
                let url = &urls[n % urls.len()];
                let response = client
                    .post(url)
                    .json(&json!({"name": name, "message": format!("message number {n}")}))
                    .send()
                    .await;
                results.push(match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (name, status, r.text().await.unwrap_or_default())
                    }
                    Err(e) => (name, 0, e.to_string()),
                });
                n += concurrency;
            }
            results
        }
    }))
    .await;
    let mut outcome = Outcome::default();
    for (name, status, body) in results.into_iter().flatten() {
        match status {
            201 => {
                let v: Value = serde_json::from_str(&body).unwrap();
                outcome.stored.insert(name, v["id"].as_i64().unwrap());
            }
            503 if body.contains("database is locked") => outcome.locked.push(name),
            _ => outcome.other.push((name, status, body)),
        }
    }
    outcome
}

fn stored_names(messages: &[Value]) -> HashSet<String> {
    messages
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn one_replica_never_locks_under_200_concurrent_posts() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;

    let outcome = post_many(&[&replica], 200, 200).await;
    assert!(
        outcome.other.is_empty(),
        "unexpected answers: {:?}",
        outcome.other
    );
    assert!(
        outcome.locked.is_empty(),
        "one replica reported lock errors"
    );
    assert_eq!(outcome.stored.len(), 200);

    let messages = all_messages(&replica).await;
    assert_eq!(messages.len(), 200);
    let names = stored_names(&messages);
    assert!(outcome.stored.keys().all(|n| names.contains(n)));
}

#[tokio::test]
async fn three_replicas_on_one_file_report_lock_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Service> = (0..3)
        .map(|i| sqlite_replica(dir.path(), &format!("guestbook-{i}")))
        .collect();
    for r in &replicas {
        r.wait_ready().await;
    }
    let refs: Vec<&Service> = replicas.iter().collect();
    let outcome = post_many(&refs, 600, 24).await;

    assert!(
        outcome.other.is_empty(),
        "unexpected answers: {:?}",
        outcome.other
    );
    assert!(
        !outcome.locked.is_empty(),
        "three replicas sharing one file must show lock errors"
    );
    assert_eq!(outcome.stored.len() + outcome.locked.len(), 600);

    let messages = all_messages(&replicas[0]).await;
    let names = stored_names(&messages);
    assert_eq!(
        messages.len(),
        outcome.stored.len(),
        "exactly the acknowledged writes are stored"
    );
    for name in outcome.stored.keys() {
        assert!(names.contains(name), "acknowledged {name} is missing");
    }
    for name in &outcome.locked {
        assert!(!names.contains(name), "rejected {name} was stored anyway");
    }
    let served_by: HashSet<&str> = messages
        .iter()
        .map(|m| m["replica"].as_str().unwrap())
        .collect();
    assert!(served_by.len() > 1, "writes came from several replicas");

    // A restarted replica keeps every stored row (nothing is wiped at startup).
    let mut replicas = replicas;
    replicas[2].kill();
    replicas[2] = sqlite_replica(dir.path(), "guestbook-2");
    replicas[2].wait_ready().await;
    assert_eq!(all_messages(&replicas[2]).await.len(), outcome.stored.len());
}

#[tokio::test]
async fn replicas_started_together_on_an_empty_directory_all_become_ready() {
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Service> = (0..3)
        .map(|i| {
            ServiceBuilder::new(&["guestbook"])
                .env("DATA_DIR", dir.path())
                .env("POD_NAME", format!("guestbook-{i}"))
                .env("GUESTBOOK_SECRET", format!("secret from replica {i}"))
                .start()
        })
        .collect();
    for r in &replicas {
        r.wait_ready().await;
    }
    // Exactly one secret was seeded, and every replica shows that same one.
    let client = support::http();
    let mut secrets = HashSet::new();
    for r in &replicas {
        let page = client
            .get(r.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = page
            .lines()
            .find(|l| l.contains("id=\"secret\""))
            .unwrap()
            .to_owned();
        secrets.insert(line);
    }
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert!(
        all_messages(&replicas[0]).await.is_empty(),
        "startup wrote no messages"
    );
}

#[tokio::test]
async fn postgres_replicas_never_lock_and_store_everything() {
    let db = TestDatabase::create().await;
    let replicas: Vec<Service> = (0..3)
        .map(|i| postgres_replica(&db.url, &format!("guestbook-{i}")))
        .collect();
    for r in &replicas {
        r.wait_ready().await;
    }
    let refs: Vec<&Service> = replicas.iter().collect();
    let outcome = post_many(&refs, 600, 24).await;
    assert!(
        outcome.other.is_empty(),
        "unexpected answers: {:?}",
        outcome.other
    );
    assert!(outcome.locked.is_empty(), "PostgreSQL reported lock errors");
    assert_eq!(outcome.stored.len(), 600);
    let messages = all_messages(&replicas[1]).await;
    assert_eq!(messages.len(), 600);

    let health: Value = support::http()
        .get(replicas[0].url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health,
        json!({"status":"healthy","database":"connected","backend":"postgres","replica":"guestbook-0"})
    );
}

#[tokio::test]
async fn hostile_input_gets_the_right_4xx_and_nothing_is_stored_or_unescaped() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    let client = support::http();
    let api = replica.url("/api/messages");

    let long = "x".repeat(10_000);
    let huge = "x".repeat(20_000);
    let json_cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "empty name",
            json!({"name":"","message":"hi"}).to_string(),
            "application/json",
            422,
        ),
        (
            "blank message",
            json!({"name":"a","message":"   "}).to_string(),
            "application/json",
            422,
        ),
        (
            "51-char name",
            json!({"name":"n".repeat(51),"message":"hi"}).to_string(),
            "application/json",
            422,
        ),
        (
            "10 kB message",
            json!({"name":"a","message":long}).to_string(),
            "application/json",
            422,
        ),
        (
            "20 kB body",
            json!({"name":"a","message":huge}).to_string(),
            "application/json",
            413,
        ),
        (
            "bell in name",
            json!({"name":"a\u{7}b","message":"hi"}).to_string(),
            "application/json",
            422,
        ),
        (
            "NUL in message",
            json!({"name":"a","message":"x\u{0}y"}).to_string(),
            "application/json",
            422,
        ),
        (
            "invalid JSON",
            "{\"name\": \"a\", ".to_owned(),
            "application/json",
            400,
        ),
        (
            "wrong content type",
            "name=a&message=b".to_owned(),
            "text/plain",
            415,
        ),
        (
            "missing field",
            json!({"name":"a"}).to_string(),
            "application/json",
            422,
        ),
        (
            "unknown field",
            json!({"name":"a","message":"b","admin":true}).to_string(),
            "application/json",
            422,
        ),
        (
            "number as name",
            json!({"name":5,"message":"b"}).to_string(),
            "application/json",
            422,
        ),
        ("array body", "[1,2]".to_owned(), "application/json", 422),
    ];
    for (case, body, content_type, expected) in &json_cases {
        let response = client
            .post(&api)
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *expected, "case {case}");
        let error: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            error["error"].is_string(),
            "case {case}: JSON error body, got {error}"
        );
    }

    let form_cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "empty name",
            "name=&message=hi".into(),
            "application/x-www-form-urlencoded",
            422,
        ),
        (
            "10 kB message",
            format!("name=a&message={long}"),
            "application/x-www-form-urlencoded",
            422,
        ),
        (
            "control characters",
            "name=a%07&message=hi".into(),
            "application/x-www-form-urlencoded",
            422,
        ),
        (
            "missing field",
            "name=a".into(),
            "application/x-www-form-urlencoded",
            422,
        ),
        (
            "JSON to the form",
            json!({"name":"a","message":"b"}).to_string(),
            "application/json",
            415,
        ),
    ];
    for (case, body, content_type, expected) in &form_cases {
        let response = client
            .post(replica.url("/"))
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *expected, "form case {case}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("id=\"error\""),
            "form case {case}: a visible message"
        );
        assert!(page.contains("not stored"), "form case {case}");
    }
    assert!(
        all_messages(&replica).await.is_empty(),
        "nothing rejected was stored"
    );

    // Markup and quotes are stored as typed and escaped once on the page.
    let typed = "<script>alert('x')</script> & \"quotes\"";
    let created = client
        .post(&api)
        .json(&json!({"name": "<b>bold</b>", "message": typed}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let stored = all_messages(&replica).await;
    assert_eq!(stored[0]["message"], typed);
    let page = client
        .get(replica.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<script>alert"),
        "script tag unescaped on the page"
    );
    assert!(!page.contains("<b>bold</b>"));
    assert!(
        page.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;quotes&#34;")
    );
    assert!(!page.contains("&amp;#60;"), "no double escaping");

    let bad_limit = client
        .get(format!("{api}?limit=100000"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_limit.status().as_u16(), 422);
    let bad_limit = client.get(format!("{api}?limit=abc")).send().await.unwrap();
    assert_eq!(bad_limit.status().as_u16(), 422);
}

#[tokio::test]
async fn sigterm_under_load_keeps_every_acknowledged_write_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir.path())
        .env("POD_NAME", "guestbook-0")
        .env("DRAIN_DELAY_MS", "300")
        .start();
    replica.wait_ready().await;
    let url = replica.url("/api/messages");
    let client = support::http();

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut failures = 0;
                for n in 0.. {
                    let name = format!("w{w}-{n}");
                    let response = client
                        .post(&url)
                        .json(&json!({"name": name, "message": "during shutdown"}))
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().as_u16() == 201 => acknowledged.push(name),
                        _ => {
                            failures += 1;
                            if failures > 3 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    replica.signal(statelab::sys::Signal::Terminate);
    let code = tokio::task::spawn_blocking(move || {
        let code = replica.wait_exit(Duration::from_secs(30));
        (code, replica)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit status after SIGTERM");
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(!acknowledged.is_empty());

    let restarted = sqlite_replica(dir.path(), "guestbook-0");
    restarted.wait_ready().await;
    let names = stored_names(&all_messages(&restarted).await);
    for name in &acknowledged {
        assert!(names.contains(name), "{name} got a 201 but is not stored");
    }
}

#[tokio::test]
async fn page_posts_redirect_and_show_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    let client = support::http();

    let response = client
        .post(replica.url("/"))
        .form(&[("name", "Ada"), ("message", "Hello from the form")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let page = client.get(replica.url(&location)).send().await.unwrap();
    assert_eq!(page.headers()["x-served-by"], "guestbook-0");
    let page = page.text().await.unwrap();
    assert!(page.contains("Hello from the form"));
    assert!(page.contains("stored."));

    // Another process holds the write lock: the page shows the red box, 503, nothing stored.
    let _lock = hold_write_lock(&dir.path().join("database.db")).await;
    let response = client
        .post(replica.url("/"))
        .form(&[("name", "Bob"), ("message", "blocked")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let page = response.text().await.unwrap();
    assert!(page.contains("DATABASE IS LOCKED!"));
    assert!(page.contains("guestbook-0"));
    drop(_lock);
    let names = stored_names(&all_messages(&replica).await);
    assert!(!names.contains("Bob"));

    let metrics = client
        .get(replica.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("guestbook_lock_errors_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/\""));
}

/// Takes SQLite's write lock from outside the service, as another replica mid-write would.
pub async fn hold_write_lock(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO config (key, value) VALUES ('lock holder', 'x')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn an_instructor_can_close_the_guestbook_in_the_config_table() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("database.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE config SET value = 'false' WHERE key = 'posting_open'")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let response = support::http()
        .post(replica.url("/api/messages"))
        .json(&json!({"name": "a", "message": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(all_messages(&replica).await.is_empty());
}

#[tokio::test]
async fn starts_before_postgres_reports_not_ready_and_recovers_on_its_own() {
    let mut cluster = support::postgres::PrivateCluster::start();
    let url = cluster.url("postgres");
    cluster.stop();
    let replica = postgres_replica(&url, "guestbook-0");
    replica.wait_for("/healthz", Duration::from_secs(10)).await;
    let client = support::http();
    assert_eq!(
        client
            .get(replica.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    let health = client.get(replica.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["database"], "disconnected");
    let post = client
        .post(replica.url("/api/messages"))
        .json(&json!({"name": "early", "message": "too soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 503);

    cluster.start_again();
    replica.wait_ready().await;
    let post = client
        .post(replica.url("/api/messages"))
        .json(&json!({"name": "later", "message": "now it works"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 201);
}

#[tokio::test]
async fn configuration_precedence_is_flag_then_env_then_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "POD_NAME=from-dotenv\nGUESTBOOK_PAGE_SIZE=7\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let served_by = |service: &Service| {
        let url = service.url("/healthz");
        async move {
            support::http().get(url).send().await.unwrap().headers()["x-served-by"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };

    let from_file = ServiceBuilder::new(&["guestbook"])
        .current_dir(dir.path())
        .env("DATA_DIR", &data)
        .env_remove("POD_NAME")
        .start();
    from_file.wait_ready().await;
    assert_eq!(served_by(&from_file).await, "from-dotenv");
    drop(from_file);

    let from_env = ServiceBuilder::new(&["guestbook"])
        .current_dir(dir.path())
        .env("DATA_DIR", &data)
        .env("POD_NAME", "from-env")
        .start();
    from_env.wait_ready().await;
    assert_eq!(served_by(&from_env).await, "from-env");
    drop(from_env);

    let from_flag = ServiceBuilder::new(&["guestbook", "--pod-name", "from-flag"])
        .current_dir(dir.path())
        .env("DATA_DIR", &data)
        .env("POD_NAME", "from-env")
        .start();
    from_flag.wait_ready().await;
    assert_eq!(served_by(&from_flag).await, "from-flag");
}

/// Bytes that are not UTF-8 in the form are refused as the JSON API refuses them (400), with
/// the message on the page, and nothing is stored (they used to be stored as U+FFFD).
#[tokio::test]
async fn a_form_with_bytes_that_are_not_utf8_is_refused_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    let client = support::http();
    let bodies: [&[u8]; 3] = [
        b"name=%FF%FE&message=hi",
        b"name=Ann&message=caf%C3",
        b"name=\xff\xfe&message=raw",
    ];
    for body in bodies {
        let response = client
            .post(replica.url("/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains("id=\"error\""), "a visible message");
        assert!(page.contains("not UTF-8"), "{page}");
        assert!(page.contains("not stored"));
    }
    // The JSON API refuses the same bytes.
    let response = client
        .post(replica.url("/api/messages"))
        .header("content-type", "application/json")
        .body(&b"{\"name\":\"\xff\",\"message\":\"hi\"}"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(
        all_messages(&replica).await.is_empty(),
        "nothing was stored"
    );
    // Percent-encoded UTF-8 is still taken.
    let response = client
        .post(replica.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Zo%C3%AB&message=caf%C3%A9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let stored = all_messages(&replica).await;
    assert_eq!(stored[0]["name"], "Zoë");
    assert_eq!(stored[0]["message"], "café");
}

/// Holds SQLite's exclusive lock from outside the service, as a process mid-commit would
/// (or one that began EXCLUSIVE): the one lock that stops readers in rollback-journal mode.
async fn hold_exclusive_lock(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Reads under another process's locks. RESERVED (`BEGIN IMMEDIATE` and a write in progress)
/// does not stop readers: the page and the API answer at once. EXCLUSIVE does: the read waits
/// one busy timeout and answers 503 saying it could not read, with nothing about storing; the
/// page reads everything it shows in one statement, so it waits once, not once per query.
#[tokio::test]
async fn reads_under_a_lock_wait_once_and_say_nothing_about_storing() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Duration::from_millis(2000);
    let replica = ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir.path())
        .env("POD_NAME", "guestbook-0")
        .env("SQLITE_BUSY_TIMEOUT_MS", busy.as_millis().to_string())
        .start();
    replica.wait_ready().await;
    let client = support::http();
    let created = client
        .post(replica.url("/api/messages"))
        .json(&json!({"name": "Ann", "message": "before the lock"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let file = dir.path().join("database.db");

    {
        let _reserved = hold_write_lock(&file).await;
        let page = client.get(replica.url("/")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().contains("before the lock"));
        let api = client
            .get(replica.url("/api/messages"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status().as_u16(), 200);
    }

    let exclusive = hold_exclusive_lock(&file).await;
    let response = client
        .get(replica.url("/api/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "database is locked", "{body}");
    assert!(body.get("stored").is_none(), "{body}");
    assert!(
        !body.to_string().contains("stored"),
        "a read says nothing of storing: {body}"
    );

    let started = std::time::Instant::now();
    let response = client.get(replica.url("/")).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    let page = response.text().await.unwrap();
    assert!(page.contains("DATABASE IS LOCKED!"), "{page}");
    assert!(page.contains("could not read"), "{page}");
    assert!(
        !page.contains("not stored"),
        "a read says nothing of storing"
    );
    // One busy timeout, not two (the page used to read the messages and the secret separately).
    assert!(
        waited < busy * 2 - Duration::from_millis(300),
        "the page waited {waited:?} with a busy timeout of {busy:?}"
    );
    drop(exclusive);

    let page = client.get(replica.url("/")).send().await.unwrap();
    assert_eq!(
        page.status().as_u16(),
        200,
        "served again once the lock is gone"
    );
}

/// Seed 000's `mkdir data; docker run -v $(pwd)/data:/data …` on Linux: the directory belongs
/// to the person, the process runs as another user. The error names the directory, the UID
/// the process runs as, and the fix.
#[test]
fn an_unwritable_data_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = std::process::Command::new(support::process::binary());
    command
        .args(["guestbook", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let expected_uid = if statelab::sys::is_root() {
        // root writes anywhere: run as `nobody`, as a container runs as its own UID.
        let nobody = statelab::sys::user_by_name("nobody")
            .unwrap()
            .expect("user nobody");
        command.uid(nobody.uid).gid(nobody.gid);
        nobody.uid
    } else {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
        statelab::sys::effective_ids().0
    };
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(stderr.contains(&format!("UID {expected_uid}")), "{stderr}");
    assert!(stderr.contains("--user"), "{stderr}");
    assert!(!data.join("database.db").exists());
}

/// Any change to the file shows on the page at once, whoever made it: this replica, another
/// replica, or another program on the file (a guard for any cache of the page).
#[tokio::test]
async fn the_page_shows_every_change_to_the_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_replica(dir.path(), "guestbook-0");
    let b = sqlite_replica(dir.path(), "guestbook-1");
    a.wait_ready().await;
    b.wait_ready().await;
    let client = support::http();
    let page = |replica: &Service| {
        let url = replica.url("/");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let post = |replica: &Service, message: &str| {
        let request = client
            .post(replica.url("/api/messages"))
            .json(&json!({"name": "t", "message": message}));
        async move { assert_eq!(request.send().await.unwrap().status().as_u16(), 201) }
    };
    // Twice, so the second answer can come from what the first read.
    assert!(!page(&a).await.contains("from-b"));
    assert!(!page(&a).await.contains("from-b"));
    post(&b, "from-b").await;
    assert!(page(&a).await.contains("from-b"), "another replica's write");
    post(&a, "from-a").await;
    assert!(
        page(&a).await.contains("from-a"),
        "this replica's own write"
    );

    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("database.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM messages WHERE message = 'from-b'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE config SET value = 'changed by hand' WHERE key = 'secret_message'")
        .execute(&mut conn)
        .await
        .unwrap();
    let after = page(&a).await;
    assert!(
        !after.contains("from-b"),
        "a row deleted by another program"
    );
    assert!(
        after.contains("changed by hand"),
        "the secret changed by another program"
    );
    assert!(after.contains("from-a"));
}
