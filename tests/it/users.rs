//! `statelab users` through the real binary against real PostgreSQL: the seed's walk-through
//! with its exact JSON, restarts, the database going away and coming back, hostile input,
//! concurrent duplicates, pagination, secrets kept out of logs, and the OpenAPI document.

use std::str::FromStr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use crate::support::openapi::{check_answer, resolve};
use crate::support::postgres::PrivateCluster;
use crate::support::{Service, ServiceBuilder, TestDatabase};

/// Never waits forever: a request the API leaves hanging fails the test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn users_api(database_url: &str) -> ServiceBuilder {
    ServiceBuilder::new(&["users"]).env("DATABASE_URL", database_url)
}

async fn started(database_url: &str) -> Service {
    let api = users_api(database_url).start();
    api.wait_ready().await;
    api
}

/// Status and body (as JSON, or the raw text in `Value::String` when it is not JSON).
async fn call(method: Method, url: String) -> (StatusCode, Value) {
    send(client().request(method, url)).await
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn post_user(api: &Service, name: &str, email: &str) -> (StatusCode, Value) {
    send(
        client()
            .post(api.url("/users"))
            .query(&[("name", name), ("email", email)]),
    )
    .await
}

async fn list(api: &Service, query: &str) -> Vec<Value> {
    let (status, body) = call(Method::GET, api.url(&format!("/users{query}"))).await;
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().unwrap().clone();
    assert_eq!(
        body["count"],
        users.len(),
        "count is the number of users returned"
    );
    users
}

async fn stored_rows(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

fn assert_error_body(status: StatusCode, body: &Value, context: &str) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{context}: {status} without a JSON error: {body}"
    );
}

#[tokio::test]
async fn the_seed_walkthrough_gives_the_seed_shapes() {
    let db = TestDatabase::create().await;
    // Configure the API with the seed's variables rather than a URL.
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_owned(),
    };
    let api = ServiceBuilder::new(&["users"])
        .env("DB_HOST", &host)
        .env("DB_PORT", options.get_port().to_string())
        .env("DB_NAME", options.get_database().unwrap())
        .env("DB_USER", options.get_username())
        .start();
    api.wait_ready().await;
    let http = client();

    let health = http.get(api.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let expected = format!(
        r#"{{"status":"healthy","database":"connected","host":{}}}"#,
        serde_json::to_string(&host).unwrap()
    );
    assert_eq!(health.text().await.unwrap(), expected);

    let empty = http.get(api.url("/users")).send().await.unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.text().await.unwrap(), r#"{"users":[],"count":0}"#);

    let mut created = Vec::new();
    for (id, (name, email)) in [
        ("Alice", "alice@example.com"),
        ("Bob", "bob@example.com"),
        ("Charlie", "charlie@example.com"),
    ]
    .into_iter()
    .enumerate()
    {
        // As the seed sends it: curl -X POST "http://localhost:8000/users?name=Alice&email=..."
        let url = api.url(&format!("/users?name={name}&email={email}"));
        let response = http.post(url).send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.headers()["location"],
            format!("/users/{}", id + 1).as_str()
        );
        let text = response.text().await.unwrap();
        let prefix = format!(
            r#"{{"user":{{"id":{},"name":"{name}","email":"{email}","created_at":""#,
            id + 1
        );
        assert!(text.starts_with(&prefix), "{text}");
        assert!(
            text.ends_with(r#""},"message":"User created successfully"}"#),
            "{text}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        let created_at = body["user"]["created_at"].as_str().unwrap();
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
            .expect("created_at is RFC 3339");
        created.push(body["user"].clone());
    }

    let all = http.get(api.url("/users")).send().await.unwrap();
    assert_eq!(all.status(), 200);
    let text = all.text().await.unwrap();
    assert!(
        text.starts_with(r#"{"users":[{"id":1,"name":"Alice""#),
        "{text}"
    );
    assert!(text.ends_with(r#"],"count":3}"#), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["users"], Value::Array(created));
}

#[tokio::test]
async fn replicas_share_the_data_and_a_restart_loses_nothing() {
    let db = TestDatabase::create().await;
    let mut first = started(&db.url).await;
    let second = started(&db.url).await;

    assert_eq!(post_user(&first, "Alice", "alice@example.com").await.0, 201);
    assert_eq!(post_user(&second, "Bob", "bob@example.com").await.0, 201);
    let seen_by_first = list(&first, "").await;
    let seen_by_second = list(&second, "").await;
    assert_eq!(seen_by_first.len(), 2);
    assert_eq!(
        seen_by_first, seen_by_second,
        "any replica serves any request"
    );

    first.signal(statelab::sys::Signal::Terminate);
    assert_eq!(first.wait_exit(Duration::from_secs(30)), Some(0));
    drop(second);

    let restarted = started(&db.url).await;
    assert_eq!(list(&restarted, "").await, seen_by_first);
    assert_eq!(
        post_user(&restarted, "Charlie", "charlie@example.com")
            .await
            .1["user"]["id"],
        3,
        "the restart did not write or reset anything"
    );
}

/// Every endpoint that needs the database answers 503 with a JSON error (the client gives up
/// after 10 s, so a hanging request fails the test).
async fn assert_all_unavailable(api: &Service) {
    let http = client();
    let requests = [
        (Method::GET, "/users", None),
        (Method::GET, "/users?limit=5&after_id=1", None),
        (
            Method::POST,
            "/users?name=Dora&email=dora@example.com",
            None,
        ),
        (
            Method::POST,
            "/users",
            Some(json!({"name": "Eve", "email": "eve@example.com"})),
        ),
        (Method::GET, "/users/1", None),
        (Method::DELETE, "/users/1", None),
        (Method::GET, "/readyz", None),
    ];
    for (method, path, body) in requests {
        let mut request = http.request(method.clone(), api.url(path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, answer) = send(request).await;
        assert_eq!(status, 503, "{method} {path}: {answer}");
        if path != "/readyz" {
            assert_error_body(status, &answer, path);
        }
    }
    let (status, health) = call(Method::GET, api.url("/health")).await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["database"], "disconnected");
    assert_error_body(status, &health, "/health");
    // Liveness stays green: restarting the API would not bring the database back.
    assert_eq!(call(Method::GET, api.url("/healthz")).await.0, 200);
}

#[tokio::test]
async fn postgres_going_away_gives_503_and_its_return_recovers_without_restart() {
    let mut cluster = PrivateCluster::start();
    let url = cluster.url("postgres");
    let api = started(&url).await;
    assert_eq!(post_user(&api, "Alice", "alice@example.com").await.0, 201);

    cluster.stop();
    assert_all_unavailable(&api).await;

    cluster.start_again();
    api.wait_ready().await;
    let users = list(&api, "").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], "Alice");
    let (status, body) = post_user(&api, "Bob", "bob@example.com").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["id"], 2);
}

/// Every process of a private cluster, stopped with SIGSTOP: connections stay open but nothing
/// answers, as when the database's node vanishes. Continued (SIGCONT) when dropped.
struct Frozen(Vec<i32>);

impl Frozen {
    fn freeze(cluster: &PrivateCluster) -> Frozen {
        let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name: state, ppid, ...
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: i32 = after_name.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == postmaster {
                pids.push(pid);
            }
        }
        for pid in &pids {
            // Processes of the cluster this test started.
            let _ = statelab::sys::kill(*pid as u32, statelab::sys::Signal::Stop);
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = statelab::sys::kill(*pid as u32, statelab::sys::Signal::Continue);
        }
    }
}

#[tokio::test]
async fn a_database_that_stops_answering_gives_503_not_a_hang() {
    let cluster = PrivateCluster::start();
    let url = cluster.url("postgres");
    let api = users_api(&url)
        .env("DB_ACQUIRE_TIMEOUT_MS", "1000")
        .env("DB_QUERY_TIMEOUT_MS", "2000")
        .start();
    api.wait_ready().await;
    assert_eq!(post_user(&api, "Alice", "alice@example.com").await.0, 201);

    let frozen = Frozen::freeze(&cluster);
    assert_all_unavailable(&api).await;

    drop(frozen);
    api.wait_ready().await;
    let users = list(&api, "").await;
    assert_eq!(users.len(), 1);
    assert_eq!(post_user(&api, "Bob", "bob@example.com").await.0, 201);
}

#[tokio::test]
async fn the_api_starts_before_postgres_and_waits_for_it() {
    let mut cluster = PrivateCluster::start();
    let url = cluster.url("postgres");
    cluster.stop();

    let api = users_api(&url).start();
    assert_all_unavailable(&api).await;

    cluster.start_again();
    api.wait_ready().await;
    let (status, health) = call(Method::GET, api.url("/health")).await;
    assert_eq!(status, 200, "{health}");
    // Migrations are the only startup write: the first user is id 1.
    let (status, body) = post_user(&api, "Alice", "alice@example.com").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["id"], 1);
}

#[tokio::test]
async fn a_database_replaced_by_an_empty_one_gets_its_schema_back() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    assert_eq!(post_user(&api, "Alice", "alice@example.com").await.0, 201);

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql("DROP TABLE users; DROP TABLE _sqlx_migrations_users;")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (status, body) = call(Method::GET, api.url("/users")).await;
    assert_eq!(status, 503, "{body}");
    assert_error_body(status, &body, "GET /users on a missing table");
    api.wait_ready().await;
    assert_eq!(list(&api, "").await, Vec::<Value>::new());
    assert_eq!(post_user(&api, "Bob", "bob@example.com").await.0, 201);
}

#[tokio::test]
async fn hostile_input_gets_a_clear_4xx_and_stores_nothing() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    let http = client();
    let long = "x".repeat(10 * 1024);
    let json_of = |v: Value| v.to_string();

    // (what, request, expected status)
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "SQL in the email",
            http.post(api.url("/users")).query(&[
                ("name", "Mallory"),
                ("email", "x'; DROP TABLE users; --@example.com"),
            ]),
            422,
        ),
        (
            "SQL in the email, JSON",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(json_of(
                    json!({"name": "M", "email": "' OR '1'='1@example.com"}),
                )),
            422,
        ),
        (
            "10 kB name in the query",
            http.post(api.url("/users"))
                .query(&[("name", long.as_str()), ("email", "long@example.com")]),
            422,
        ),
        (
            "10 kB name in JSON",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(json_of(json!({"name": long, "email": "long@example.com"}))),
            422,
        ),
        (
            "10 kB email",
            http.post(api.url("/users"))
                .query(&[("name", "Long"), ("email", &format!("{long}@example.com"))]),
            422,
        ),
        (
            "no @",
            http.post(api.url("/users?name=A&email=alice.example.com")),
            422,
        ),
        (
            "two @",
            http.post(api.url("/users?name=A&email=a@b@example.com")),
            422,
        ),
        (
            "no domain dot",
            http.post(api.url("/users?name=A&email=alice@localhost")),
            422,
        ),
        (
            "space in email",
            http.post(api.url("/users?name=A&email=al%20ice@example.com")),
            422,
        ),
        (
            "empty email",
            http.post(api.url("/users?name=A&email=")),
            422,
        ),
        (
            "blank name",
            http.post(api.url("/users?name=%20%20&email=a@example.com")),
            422,
        ),
        (
            "control char in name",
            http.post(api.url("/users?name=a%00b&email=a@example.com")),
            422,
        ),
        ("missing email", http.post(api.url("/users?name=A")), 422),
        ("missing everything", http.post(api.url("/users")), 422),
        (
            "unknown query field",
            http.post(api.url("/users?name=A&email=a@example.com&admin=true")),
            422,
        ),
        (
            "repeated field",
            http.post(api.url("/users?name=A&name=B&email=a@example.com")),
            422,
        ),
        (
            "invalid JSON",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(r#"{"name": "A", "email": "#),
            400,
        ),
        (
            "JSON of the wrong type",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(r#"{"name": 5, "email": ["a@example.com"]}"#),
            422,
        ),
        (
            "a JSON array",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(r#"[{"name": "A", "email": "a@example.com"}]"#),
            422,
        ),
        (
            "an unknown JSON field",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(r#"{"name": "A", "email": "a@example.com", "id": 99}"#),
            422,
        ),
        (
            "a body that is not JSON",
            http.post(api.url("/users"))
                .header("content-type", "text/plain")
                .body("name=A&email=a@example.com"),
            415,
        ),
        (
            "query and body together",
            http.post(api.url("/users?name=A"))
                .header("content-type", "application/json")
                .body(r#"{"email": "a@example.com"}"#),
            422,
        ),
        (
            "a body over the limit",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body(json_of(
                    json!({"name": "x".repeat(40_000), "email": "a@example.com"}),
                )),
            413,
        ),
        (
            "a huge limit",
            http.get(api.url("/users?limit=1000000")),
            422,
        ),
        (
            "an overflowing limit",
            http.get(api.url("/users?limit=99999999999999999999999")),
            422,
        ),
        ("limit zero", http.get(api.url("/users?limit=0")), 422),
        ("negative limit", http.get(api.url("/users?limit=-1")), 422),
        (
            "SQL in limit",
            http.get(api.url("/users?limit=1%3B%20DROP%20TABLE%20users")),
            422,
        ),
        (
            "SQL in after_id",
            http.get(api.url("/users?after_id=0%20OR%201%3D1")),
            422,
        ),
        (
            "unknown list parameter",
            http.get(api.url("/users?page=2")),
            422,
        ),
        (
            "SQL in the id",
            http.get(api.url("/users/1%20OR%201=1")),
            422,
        ),
        ("id zero", http.delete(api.url("/users/0")), 422),
        ("unknown id", http.get(api.url("/users/424242")), 404),
        (
            "delete unknown id",
            http.delete(api.url("/users/424242")),
            404,
        ),
        ("unsupported method", http.put(api.url("/users")), 405),
    ];
    for (what, request, expected) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status.as_u16(), expected, "{what}: {body}");
        assert_error_body(status, &body, what);
    }
    assert_eq!(stored_rows(&db.url).await, 0, "nothing refused was stored");

    // A name full of SQL is still a name: stored verbatim, and the table is still there.
    let name = "Robert'); DROP TABLE users;--";
    let (status, body) = post_user(&api, name, "bobby@example.com").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["name"], name);
    let users = list(&api, "").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], name);
    assert_eq!(stored_rows(&db.url).await, 1);
}

#[tokio::test]
async fn concurrent_creates_with_one_email_make_exactly_one_user() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    let attempts = (0..50).map(|i| {
        let url = api.url("/users");
        async move {
            send(client().post(url).json(&json!({
                "name": format!("Twin {i}"),
                "email": "twin@example.com",
            })))
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((created, conflicts), (1, 49), "{results:?}");
    for (_, body) in results.iter().filter(|(s, _)| *s == 409) {
        assert_eq!(body["email"], "twin@example.com");
    }
    // Emails are compared without case.
    assert_eq!(post_user(&api, "Twin", "TWIN@Example.COM").await.0, 409);
    assert_eq!(stored_rows(&db.url).await, 1);
}

fn next_link(response: &reqwest::Response) -> Option<String> {
    let link = response.headers().get("link")?.to_str().unwrap();
    assert!(link.ends_with(r#">; rel="next""#), "{link}");
    Some(link[1..link.find('>').unwrap()].to_owned())
}

#[tokio::test]
async fn pages_follow_the_link_and_single_users_can_be_read_and_deleted() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    for i in 1..=101 {
        let (status, body) =
            post_user(&api, &format!("User {i}"), &format!("u{i}@example.com")).await;
        assert_eq!(status, 201, "{body}");
    }

    // Default page: 100, by id ascending, with a link to the rest.
    let http = client();
    let response = http.get(api.url("/users")).send().await.unwrap();
    let next = next_link(&response).expect("more users follow");
    let body: Value = response.json().await.unwrap();
    let ids: Vec<i64> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    assert_eq!(body["count"], 100);
    assert_eq!(next, "/users?limit=100&after_id=100");
    let rest = list(&api, "?after_id=100").await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"], 101);

    // Walk the whole list three at a time.
    let mut path = Some("/users?limit=3&after_id=95".to_owned());
    let mut walked = Vec::new();
    while let Some(p) = path {
        let response = http.get(api.url(&p)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        path = next_link(&response);
        let body: Value = response.json().await.unwrap();
        walked.extend(
            body["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(walked, (96..=101).collect::<Vec<_>>());

    let (status, one) = call(Method::GET, api.url("/users/3")).await;
    assert_eq!(status, 200);
    assert_eq!(one["user"]["email"], "u3@example.com");
    assert_eq!(one.as_object().unwrap().len(), 1);

    let (status, deleted) = call(Method::DELETE, api.url("/users/3")).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"user": one["user"], "message": "User deleted successfully"})
    );
    assert_eq!(call(Method::GET, api.url("/users/3")).await.0, 404);
    assert_eq!(call(Method::DELETE, api.url("/users/3")).await.0, 404);
    let first_page = list(&api, "?limit=3").await;
    let ids: Vec<i64> = first_page
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 4]);
}

#[tokio::test]
async fn the_password_never_appears_in_logs_errors_or_help() {
    let secret = "pw-Zq7x-never-log-me";
    // Bound but not listening: the port stays ours, and every connection is refused.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
    let by_pieces = ServiceBuilder::new(&["users"])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", port.to_string())
        .env("DB_PASSWORD", secret)
        .env("DB_ACQUIRE_TIMEOUT_MS", "300")
        .start();
    let by_url = users_api(&format!("postgres://app:{secret}@127.0.0.1:{port}/userdb"))
        .env("DB_ACQUIRE_TIMEOUT_MS", "300")
        .start();
    for api in [&by_pieces, &by_url] {
        for path in ["/health", "/readyz", "/users", "/users/1"] {
            let (status, body) = call(Method::GET, api.url(path)).await;
            assert_eq!(status, 503, "{path}: {body}");
            assert!(!body.to_string().contains(secret), "{path}: {body}");
        }
        let (status, body) = post_user(api, "Alice", "alice@example.com").await;
        assert_eq!(status, 503);
        assert!(!body.to_string().contains(secret), "{body}");
        // Wait until the schema task has logged at least one failed attempt.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !api.logs().contains("retrying") {
            assert!(
                std::time::Instant::now() < deadline,
                "no retry logged:\n{}",
                api.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = api.logs();
        assert!(
            !logs.contains(secret),
            "the password is in the log:\n{logs}"
        );
        assert!(
            logs.contains("127.0.0.1"),
            "the log names the database:\n{logs}"
        );
    }

    let help = std::process::Command::new(crate::support::process::binary())
        .args(["users", "--help"])
        .env("DB_PASSWORD", secret)
        .env("DATABASE_URL", format!("postgres://app:{secret}@db/userdb"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for variable in [
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DATABASE_URL",
    ] {
        assert!(help.contains(variable), "--help names {variable}:\n{help}");
    }
    assert!(!help.contains(secret), "--help shows the password:\n{help}");
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_api_answers() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    let (status, doc) = call(Method::GET, api.url("/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(post_user(&api, "Alice", "alice@example.com").await.0, 201);
    assert_eq!(post_user(&api, "Bob", "bob@example.com").await.0, 201);

    // Each documented operation, called well and badly: the answer's status is documented and,
    // for JSON, its body conforms to the documented schema.
    let http = client();
    let mut checked = 0;
    let calls: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        ("/health", "get", http.get(api.url("/health"))),
        ("/healthz", "get", http.get(api.url("/healthz"))),
        ("/readyz", "get", http.get(api.url("/readyz"))),
        ("/metrics", "get", http.get(api.url("/metrics"))),
        ("/openapi.json", "get", http.get(api.url("/openapi.json"))),
        ("/users", "get", http.get(api.url("/users"))),
        ("/users", "get", http.get(api.url("/users?limit=1"))),
        ("/users", "get", http.get(api.url("/users?limit=5000"))),
        ("/users", "get", http.get(api.url("/users?limit=%FF"))),
        (
            "/users",
            "post",
            http.post(api.url("/users?name=Carol&email=carol@example.com")),
        ),
        (
            "/users",
            "post",
            http.post(api.url("/users"))
                .json(&json!({"name": "Dan", "email": "dan@example.com"})),
        ),
        (
            "/users",
            "post",
            http.post(api.url("/users?name=Carol&email=carol@example.com")),
        ),
        ("/users", "post", http.post(api.url("/users?name=Carol"))),
        (
            "/users",
            "post",
            http.post(api.url("/users"))
                .header("content-type", "application/json")
                .body("{"),
        ),
        ("/users", "post", http.post(api.url("/users")).body("x")),
        ("/users/{id}", "get", http.get(api.url("/users/1"))),
        ("/users/{id}", "get", http.get(api.url("/users/77"))),
        ("/users/{id}", "get", http.get(api.url("/users/one"))),
        ("/users/{id}", "get", http.get(api.url("/users/%FF"))),
        ("/users/{id}", "delete", http.delete(api.url("/users/2"))),
        ("/users/{id}", "delete", http.delete(api.url("/users/2"))),
    ];
    let mut operations = std::collections::BTreeSet::new();
    for (path, method, request) in calls {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        operations.insert(format!("{method} {path}"));
        check_answer(&doc, operation, method, path, request).await;
        checked += 1;
    }
    assert_eq!(checked, 21);
    // Every documented operation was exercised.
    let documented = crate::support::openapi::documented_operations(&doc);
    assert_eq!(operations, documented);
}

/// What /openapi.json says about names and the body, the server does: the name's limit is on
/// the name as sent, and a JSON body is the whole user even with name and email in the query.
#[tokio::test]
async fn the_document_and_the_server_agree_on_names_and_bodies() {
    let db = TestDatabase::create().await;
    let api = started(&db.url).await;
    let (_, doc) = call(Method::GET, api.url("/openapi.json")).await;
    let name = resolve(&doc, &doc["components"]["schemas"]["Name"]);
    assert_eq!(name["maxLength"], 100);

    // 101 characters as sent, 99 once trimmed: over the documented maxLength, refused.
    let padded = format!(" {} ", "x".repeat(99));
    let (status, body) = post_user(&api, &padded, "pad@example.com").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "name");
    // 100 as sent is within it, and stored trimmed.
    let (status, body) = post_user(&api, &format!(" {}", "x".repeat(99)), "pad@example.com").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["name"], "x".repeat(99));

    // Query and body together: the body is the user.
    let (status, body) = send(
        client()
            .post(api.url("/users?name=Query&email=query@example.com"))
            .json(&json!({"name": "Body", "email": "body@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["name"], "Body");
    assert_eq!(body["user"]["email"], "body@example.com");
    // ... but what the query carries must still be valid.
    let (status, body) = send(
        client()
            .post(api.url("/users?name=a%07b"))
            .json(&json!({"name": "Body2", "email": "body2@example.com"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "name");
    let names: Vec<Value> = list(&api, "")
        .await
        .iter()
        .map(|u| u["name"].clone())
        .collect();
    assert!(
        !names.contains(&json!("Query")) && !names.contains(&json!("Body2")),
        "{names:?}"
    );
}
