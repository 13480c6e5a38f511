//! `statelab cache` against a real redis-server (AOF on), through the real binary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Service, ServiceBuilder, TestRedis, http};

/// Starts the cache API on `redis`, in a directory with no `.env`, and waits until it is ready.
async fn start_ready(redis: &TestRedis, env: &[(&str, &str)]) -> Service {
    let service = start(redis, env);
    service.wait_ready().await;
    service
}

fn start(redis: &TestRedis, env: &[(&str, &str)]) -> Service {
    let mut builder = ServiceBuilder::new(&["cache"])
        .current_dir(redis.data_dir())
        .env("REDIS_URL", redis.url());
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    builder.start()
}

fn redis_client(redis: &TestRedis) -> redis::Connection {
    redis::Client::open(redis.url())
        .expect("redis URL parses")
        .get_connection()
        .expect("the test connects to its redis-server")
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    (status, response.text().await.expect("body is text"))
}

async fn send_json(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let (status, text) = send(request).await;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?} (status {status})"));
    (status, value)
}

/// Polls `/metrics` until it has the line `wanted` (the gauge follows Redis within a second).
async fn wait_for_metric(api: &Service, wanted: &str) {
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = send(client.get(api.url("/metrics"))).await;
        if text.lines().any(|line| line == wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics never showed {wanted:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Step 2.7 of the seed, command by command, with the exact bodies it shows.
#[tokio::test]
async fn seed_walkthrough_gives_the_exact_shapes() {
    let redis = TestRedis::start(true);
    let api = start_ready(&redis, &[]).await;
    let client = http();

    let (status, health) = send_json(client.get(api.url("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    let socket = redis.socket().display().to_string();
    assert_eq!(
        health,
        json!({"status": "healthy", "redis": "connected", "host": socket})
    );

    let response = client
        .post(api.url("/cache/mykey/myvalue"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-served-by"));
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"key":"mykey","value":"myvalue","status":"stored"}"#
    );
    assert_eq!(
        send(client.get(api.url("/cache/mykey"))).await,
        (
            StatusCode::OK,
            r#"{"key":"mykey","value":"myvalue","status":"found"}"#.to_owned()
        )
    );
    for path in ["/cache/username/alice", "/cache/session/abc123"] {
        let (status, _) = send(client.post(api.url(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, list) = send_json(client.get(api.url("/cache"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!({"keys": ["mykey", "session", "username"], "count": 3, "next_cursor": null})
    );

    assert_eq!(
        send(client.get(api.url("/cache/nokey"))).await,
        (
            StatusCode::NOT_FOUND,
            r#"{"key":"nokey","status":"not_found"}"#.to_owned()
        )
    );
    assert_eq!(
        send(client.delete(api.url("/cache/session"))).await,
        (
            StatusCode::OK,
            r#"{"key":"session","status":"deleted"}"#.to_owned()
        )
    );
    assert_eq!(
        send(client.delete(api.url("/cache/session"))).await,
        (
            StatusCode::NOT_FOUND,
            r#"{"key":"session","status":"not_found"}"#.to_owned()
        )
    );

    // Stored under the default prefix, as plain Redis strings.
    let mut conn = redis_client(&redis);
    let value: Option<String> = redis::cmd("GET")
        .arg("cache:mykey")
        .query(&mut conn)
        .unwrap();
    assert_eq!(value.as_deref(), Some("myvalue"));
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(dbsize, 2, "mykey and username remain");
}

/// Step 2.8 locally: stop Redis (as deleting redis-0 does), see 503s meanwhile, start it again
/// on the same directory: the data is back from the AOF and the API reconnected by itself.
#[tokio::test]
async fn data_survives_a_redis_restart_and_the_api_reconnects_by_itself() {
    let mut redis = TestRedis::start(true);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let pid = api.pid();
    for (key, value) in [("mykey", "myvalue"), ("username", "alice")] {
        let (status, _) = send(client.post(api.url(&format!("/cache/{key}/{value}")))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = send(client.post(api.url("/cache/session/abc123?ttl=3600"))).await;
    assert_eq!(status, StatusCode::OK);

    wait_for_metric(&api, "cache_redis_up 1").await;
    redis.stop();
    wait_for_metric(&api, "cache_redis_up 0").await;
    assert!(
        redis.data_dir().join("appendonlydir").is_dir(),
        "AOF is on: redis-server wrote appendonlydir"
    );

    // While Redis is down: clear 503s, readiness fails, liveness does not.
    let (status, body) = send_json(client.get(api.url("/cache/mykey"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().expect("error message");
    assert!(message.contains("Redis at"), "{message}");
    let (status, body) = send_json(client.post(api.url("/cache/new/value"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = send_json(client.get(api.url("/cache"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, health) = send_json(client.get(api.url("/health"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["redis"], "disconnected");
    assert!(health["error"].as_str().is_some_and(|e| !e.is_empty()));
    let (status, ready) = send_json(client.get(api.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["status"], "not ready");
    let (status, _) = send(client.get(api.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);

    redis.start_again();
    api.wait_ready().await;
    wait_for_metric(&api, "cache_redis_up 1").await;
    assert_eq!(api.pid(), pid, "the same API process, never restarted");
    assert_eq!(
        send(client.get(api.url("/cache/mykey"))).await,
        (
            StatusCode::OK,
            r#"{"key":"mykey","value":"myvalue","status":"found"}"#.to_owned()
        )
    );
    let (status, session) = send_json(client.get(api.url("/cache/session"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["value"], "abc123");
    let ttl = session["ttl"].as_u64().expect("the expiry survived too");
    assert!((1..=3600).contains(&ttl), "{ttl}");
    let (_, list) = send_json(client.get(api.url("/cache"))).await;
    assert_eq!(list["keys"], json!(["mykey", "session", "username"]));
    let (_, health) = send_json(client.get(api.url("/health"))).await;
    assert_eq!(health["status"], "healthy");
}

/// Startup never waits for or fails on Redis: not ready until it appears, then ready.
#[tokio::test]
async fn starts_while_redis_is_down_and_becomes_ready_when_it_appears() {
    let mut redis = TestRedis::start(true);
    redis.stop();
    let api = start(&redis, &[]);
    let client = http();
    let (status, _) = send(client.get(api.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(client.get(api.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) =
        send_json(client.put(api.url("/cache/k")).json(&json!({"value": "v"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );

    redis.start_again();
    api.wait_ready().await;
    let (status, body) =
        send_json(client.put(api.url("/cache/k")).json(&json!({"value": "v"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"key": "k", "value": "v", "status": "stored"}));
}

/// A Redis that accepts connections but never answers (hung, or a black hole) costs a request
/// REDIS_TIMEOUT_MS and a 503, never a hang.
#[tokio::test]
async fn a_redis_that_never_answers_gets_a_503_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // accepted, never answered
        }
    });
    let dir = tempfile::tempdir().unwrap(); // no .env there
    let api = ServiceBuilder::new(&["cache"])
        .current_dir(dir.path())
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", port.to_string())
        .env("REDIS_TIMEOUT_MS", "300")
        .start();
    let client = http(); // gives up after 30 s: a hang fails the test
    for path in ["/cache/k", "/cache", "/health", "/readyz"] {
        let (status, body) = send_json(client.get(api.url(path))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        let text = body.to_string();
        assert!(
            text.contains("did not answer within 300 ms"),
            "{path}: {text}"
        );
    }
    let (status, body) = send_json(client.post(api.url("/cache/k/v"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

/// Every kind of bad input gets a JSON 4xx that says what is wrong, and writes nothing.
#[tokio::test]
async fn hostile_keys_values_and_parameters_get_a_clear_4xx() {
    let redis = TestRedis::start(true);
    // A low value limit, so an oversized value still fits in a URL.
    let api = start_ready(&redis, &[("CACHE_MAX_VALUE_BYTES", "1000")]).await;
    let client = http();
    let long_key = "k".repeat(129);
    let big_value = "v".repeat(1001);
    let huge_body = format!(r#"{{"value":"{}"}}"#, "v".repeat(100_000));

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            client.get(api.url("/cache/a%20b")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.get(api.url("/cache/a%2Fb")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.post(api.url("/cache/a*b/v")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.post(api.url("/cache/caf%C3%A9/v")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.get(api.url("/cache/a%00b")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.delete(api.url("/cache/%3Cscript%3E")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key may only contain",
        ),
        (
            client.get(api.url("/cache/%FF")),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
        (
            client.post(api.url(&format!("/cache/{long_key}/v"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the limit is 128",
        ),
        (
            client.post(api.url(&format!("/cache/k/{big_value}"))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the limit is 1000",
        ),
        (
            client
                .put(api.url("/cache/k"))
                .json(&json!({"value": big_value})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the limit is 1000",
        ),
        (
            client
                .put(api.url("/cache/k"))
                .header("content-type", "application/json")
                .body(huge_body),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
        (
            client.put(api.url("/cache/k")).json(&json!({"value": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            client
                .put(api.url("/cache/k"))
                .json(&json!({"value": "v", "colour": "red"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            client.put(api.url("/cache/k")).json(&json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `value`",
        ),
        (
            client
                .put(api.url("/cache/k"))
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            client.put(api.url("/cache/k")).body(r#"{"value":"v"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            client
                .put(api.url("/cache/k"))
                .json(&json!({"value": "v", "ttl": -1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl must be",
        ),
        (
            client
                .put(api.url("/cache/k?ttl=5"))
                .json(&json!({"value": "v", "ttl": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not both",
        ),
        (
            client.post(api.url("/cache/k/v?ttl=0")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl must be",
        ),
        (
            client.post(api.url("/cache/k/v?ttl=-5")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl must be",
        ),
        (
            client.post(api.url("/cache/k/v?ttl=soon")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl must be",
        ),
        (
            client.post(api.url("/cache/k/v?ttl=99999999999")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl must be",
        ),
        (
            client.get(api.url("/cache?limit=0")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be",
        ),
        (
            client.get(api.url("/cache?limit=1001")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be",
        ),
        (
            client.get(api.url("/cache?limit=lots")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be",
        ),
        (
            client.get(api.url("/cache?cursor=zz")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
        (
            client.get(api.url("/cache?cursor=1~abc")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
        (
            // A made-up numeric cursor (a raw SCAN position) is not one the API gave out.
            client.get(api.url("/cache?cursor=12345")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
        (
            client.get(api.url("/cache?cursor=0")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor is not valid",
        ),
        (
            client.post(api.url(&format!("/cache/k/{}", "v".repeat(4097)))),
            StatusCode::URI_TOO_LONG,
            "send longer values with PUT",
        ),
        (
            client.patch(api.url("/cache/k")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        (
            client.post(api.url("/cache/k")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ),
        (
            client.get(api.url("/cache/a/b/c")),
            StatusCode::NOT_FOUND,
            "no such path",
        ),
    ];
    for (request, expected, needle) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let what = what.chars().take(120).collect::<String>();
        let response = client.execute(request).await.expect("the API answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{what}: {text}");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {body}"));
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }

    // Nothing above was written.
    let mut conn = redis_client(&redis);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(dbsize, 0);

    // The limits themselves are allowed.
    let max_key = "k".repeat(128);
    let max_value = "é".repeat(500);
    let (status, _) = send(
        client
            .put(api.url(&format!("/cache/{max_key}")))
            .json(&json!({"value": max_value})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send_json(client.get(api.url(&format!("/cache/{max_key}")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_str(), Some(max_value.as_str()));
}

/// What Redis refuses is reported as such, not as a crash or a 500: a key under the prefix that
/// holds another Redis type is a 409; a full Redis (maxmemory reached, noeviction as in the
/// StatefulSet) refuses writes with a 507 while reads go on.
#[tokio::test]
async fn redis_refusals_get_a_clear_status() {
    let redis = TestRedis::start(true);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let mut conn = redis_client(&redis);
    let (status, _) = send(client.post(api.url("/cache/kept/value"))).await;
    assert_eq!(status, StatusCode::OK);

    let _: () = redis::cmd("HSET")
        .arg("cache:ahash")
        .arg("f")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let (status, body) = send_json(client.get(api.url("/cache/ahash"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let (status, body) = send_json(client.post(api.url("/cache/more/data"))).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("out of memory"),
        "{body}"
    );
    let (status, body) = send_json(client.get(api.url("/cache/kept"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// PUT carries values a path cannot (slashes, spaces, quotes, non-ASCII, newlines).
#[tokio::test]
async fn put_stores_any_string_value_and_ttls_expire() {
    let redis = TestRedis::start(true);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let value = "line one\nline \"two\" / ünïcödé ✓ {\"json\": true}";
    let (status, body) = send_json(
        client
            .put(api.url("/cache/doc"))
            .json(&json!({"value": value})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"key": "doc", "value": value, "status": "stored"})
    );
    let (_, body) = send_json(client.get(api.url("/cache/doc"))).await;
    assert_eq!(
        body,
        json!({"key": "doc", "value": value, "status": "found"})
    );
    let (status, body) = send_json(
        client
            .put(api.url("/cache/empty"))
            .json(&json!({"value": ""})),
    )
    .await;
    assert_eq!((status, &body["value"]), (StatusCode::OK, &json!("")));

    // TTL in the query string (POST) and in the body (PUT); shown on reads.
    let (_, body) = send_json(client.post(api.url("/cache/session/abc123?ttl=600"))).await;
    assert_eq!(
        body,
        json!({"key": "session", "value": "abc123", "status": "stored", "ttl": 600})
    );
    let (_, body) = send_json(client.get(api.url("/cache/session"))).await;
    let ttl = body["ttl"].as_u64().expect("ttl shown");
    assert!((1..=600).contains(&ttl), "{ttl}");
    let mut conn = redis_client(&redis);
    let pttl: i64 = redis::cmd("PTTL")
        .arg("cache:session")
        .query(&mut conn)
        .unwrap();
    assert!(pttl > 0 && pttl <= 600_000, "{pttl}");

    // Storing again without a TTL makes the key permanent again.
    let _ = send(client.post(api.url("/cache/session/abc123"))).await;
    let (_, body) = send_json(client.get(api.url("/cache/session"))).await;
    assert!(body.get("ttl").is_none(), "{body}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("cache:session")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pttl, -1);

    // A one-second TTL runs out.
    let (status, _) = send(
        client
            .put(api.url("/cache/brief"))
            .json(&json!({"value": "v", "ttl": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = send(client.get(api.url("/cache/brief"))).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The listing pages through every key under the prefix exactly as SCAN allows (all of them,
/// duplicates possible), never shows or touches keys outside it, and the prefix is matched
/// literally even when it contains glob characters.
#[tokio::test]
async fn listing_pages_through_every_key_under_the_prefix_and_nothing_else() {
    let redis = TestRedis::start(true);
    let prefix = "lab[1]*:";
    let api = start_ready(&redis, &[("CACHE_KEY_PREFIX", prefix)]).await;
    let client = http();
    let mut conn = redis_client(&redis);

    let mut ours = BTreeSet::new();
    let mut pipe = redis::pipe();
    for i in 0..300 {
        let key = format!("key{i:03}");
        pipe.cmd("SET")
            .arg(format!("{prefix}{key}"))
            .arg(i)
            .ignore();
        ours.insert(key);
    }
    // Foreign keys, some of which an unescaped glob `lab[1]*:*` would match.
    for foreign in ["lab1:x", "lab1abc:y", "labX:z", "other:key", "key001"] {
        pipe.cmd("SET").arg(foreign).arg("not yours").ignore();
    }
    let _: () = pipe.query(&mut conn).unwrap();
    let (status, _) = send(client.post(api.url("/cache/viaapi/1"))).await;
    assert_eq!(status, StatusCode::OK);
    ours.insert("viaapi".to_owned());
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}viaapi"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(stored.as_deref(), Some("1"), "written under the prefix");

    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 301, "the listing does not end");
        let mut url = api.url("/cache?limit=7");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = send_json(client.get(url)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let keys: Vec<String> = serde_json::from_value(page["keys"].clone()).unwrap();
        assert!(keys.len() <= 7, "a page holds at most `limit` keys: {page}");
        assert_eq!(page["count"].as_u64(), Some(keys.len() as u64));
        seen.extend(keys);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(seen, ours, "every key of ours, and no foreign key");
    assert!(pages >= 301 / 7, "paged: {pages} pages");

    // The default page is capped at 100.
    let (_, page) = send_json(client.get(api.url("/cache"))).await;
    assert!(page["count"].as_u64().unwrap() <= 100, "{page}");
    assert!(page["next_cursor"].is_string());

    // Foreign keys are invisible and untouchable through the API.
    let (status, _) = send(client.get(api.url("/cache/key001"))).await;
    assert_eq!(status, StatusCode::OK, "ours: {prefix}key001");
    let (status, _) = send(client.delete(api.url("/cache/other:key"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("other:key")
        .query(&mut conn)
        .unwrap();
    assert_eq!(exists, 1);
    let foreign: Option<String> = redis::cmd("GET").arg("key001").query(&mut conn).unwrap();
    assert_eq!(foreign.as_deref(), Some("not yours"));
}

/// REDIS_PASSWORD (from a Secret in Kubernetes) is sent to Redis; without it the API says
/// plainly that Redis refused.
#[tokio::test]
async fn redis_password_is_used_and_a_refusal_is_a_clear_503() {
    let redis = TestRedis::start(true);
    let mut conn = redis_client(&redis);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query(&mut conn)
        .unwrap();

    let api = start_ready(&redis, &[("REDIS_PASSWORD", "s3cret-pw")]).await;
    let client = http();
    let (status, body) = send_json(client.post(api.url("/cache/k/v"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let without = start(&redis, &[]);
    let (status, body) = send_json(client.get(without.url("/cache/k"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("REDIS_PASSWORD"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let (status, _) = send(client.get(without.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

// ---- Kubernetes files -------------------------------------------------------------------

fn k8s_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/cache")
}

fn yaml_documents(path: &std::path::Path) -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{path:?} is not valid YAML: {e}"))
        })
        .collect()
}

/// The lines of a manifest after its leading comment block (each file explains itself there).
fn body_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .skip_while(|line| line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The seed's partial manifests (Section 2, steps 2.4 to 2.6) are the solution with the TODOs
/// the seed lists: every other line is identical, so the two cannot drift apart.
#[test]
fn exercise_files_equal_the_solution_except_at_the_seeds_todos() {
    // For each file: the solution's line at every TODO, in order (the seed's hints).
    let expected: [(&str, &[&str]); 3] = [
        (
            "redis-headless.yaml",
            &["app: redis", "clusterIP: None", "app: redis"],
        ),
        (
            "redis-statefulset.yaml",
            &[
                "app: redis",
                "serviceName: redis-headless",
                "replicas: 2",
                "app: redis",
                "app: redis",
                "- name: redis-storage",
                "name: redis-storage",
                "app: redis",
                r#"accessModes: ["ReadWriteOnce"]"#,
                "storage: 1Gi",
            ],
        ),
        (
            "cache-api-deployment.yaml",
            &[
                "app: cache-api",
                "replicas: 2",
                "app: cache-api",
                "app: cache-api",
                "value: redis-0.redis-headless",
                "app: cache-api",
                "app: cache-api",
            ],
        ),
    ];
    let dir = k8s_dir();
    let mut exercise_files: Vec<String> = std::fs::read_dir(dir.join("exercise"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    exercise_files.sort();
    let mut names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    names.sort();
    assert_eq!(
        exercise_files, names,
        "exactly the seed's three partial manifests"
    );

    for (name, todo_lines) in expected {
        let solution_path = dir.join(name);
        let exercise_path = dir.join("exercise").join(name);
        let solution = body_lines(&solution_path);
        let exercise = body_lines(&exercise_path);
        assert_eq!(
            solution.len(),
            exercise.len(),
            "{name}: the exercise has the solution's lines, TODOs in place of answers"
        );
        let mut answers = Vec::new();
        for (number, (ours, theirs)) in solution.iter().zip(&exercise).enumerate() {
            if ours == theirs {
                assert!(
                    !theirs.contains("TODO"),
                    "{name}:{number}: a TODO in the solution"
                );
                continue;
            }
            let (key, comment) = theirs
                .split_once(':')
                .unwrap_or_else(|| panic!("{name}:{number}: differs without a TODO: {theirs}"));
            assert!(
                comment.trim_start().starts_with("# TODO"),
                "{name}:{number}: differs without a TODO: {theirs:?} vs {ours:?}"
            );
            assert!(
                ours.starts_with(&format!("{key}:")),
                "{name}:{number}: the TODO is for another field: {theirs:?} vs {ours:?}"
            );
            answers.push(ours.trim().to_owned());
        }
        assert_eq!(
            answers, todo_lines,
            "{name}: the TODOs sit where the seed puts them"
        );
        // Both parse; the exercise's blanks are YAML nulls.
        assert!(!yaml_documents(&solution_path).is_empty());
        assert!(!yaml_documents(&exercise_path).is_empty());
    }
}

/// The manifests and the binary agree: subcommand, port, probe paths, Redis address, AOF.
#[test]
fn manifests_match_the_binary_and_the_seed() {
    let dir = k8s_dir();
    let api = yaml_documents(&dir.join("cache-api-deployment.yaml"));
    let deployment = &api[0];
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["metadata"]["name"], "cache-api");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "cache");
    assert_eq!(
        container["ports"][0]["containerPort"].as_u64(),
        Some(u64::from(statelab::cache::DEFAULT_PORT))
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let env = container["env"].as_sequence().unwrap();
    let redis_host = env.iter().find(|e| e["name"] == "REDIS_HOST").unwrap();
    assert_eq!(redis_host["value"], "redis-0.redis-headless");
    let service = &api[1];
    assert_eq!(service["kind"], "Service");
    assert_eq!(service["metadata"]["name"], "cache-api");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(8000));

    let headless = &yaml_documents(&dir.join("redis-headless.yaml"))[0];
    assert_eq!(headless["metadata"]["name"], "redis-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");

    let sts = &yaml_documents(&dir.join("redis-statefulset.yaml"))[0];
    assert_eq!(sts["metadata"]["name"], "redis");
    assert_eq!(sts["spec"]["serviceName"], "redis-headless");
    let template = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(template["metadata"]["name"], "redis-storage");
    let redis = &sts["spec"]["template"]["spec"]["containers"][0];
    let image = redis["image"].as_str().unwrap();
    assert!(
        image.starts_with("redis:7.") && !image.contains("latest"),
        "{image}"
    );
    let script = redis["args"][0].as_str().unwrap();
    assert!(script.contains("--appendonly yes"), "{script}");
    assert!(script.contains("--appendfsync everysec"), "{script}");

    // No namespace anywhere in the lab, exercise included: it goes into the current namespace
    // (or the one `kubectl apply -n` names), so the seed's `default` DNS names work as written.
    for entry in std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("exercise")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for document in yaml_documents(&path) {
                assert_ne!(document["kind"], "Namespace", "{path:?}");
                assert!(
                    document["metadata"]["namespace"].is_null(),
                    "{path:?} names a namespace"
                );
            }
        }
    }
}

/// SET and PUT never replace a key of another Redis type under the prefix: 409, and the list is
/// left exactly as it was. A string key is replaced as before.
#[tokio::test]
async fn writes_refuse_keys_of_another_type_and_leave_them_alone() {
    let redis = TestRedis::start(false);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let mut conn = redis_client(&redis);
    let _: () = redis::cmd("RPUSH")
        .arg("cache:alist")
        .arg("one")
        .arg("two")
        .query(&mut conn)
        .unwrap();
    let (status, body) = send_json(client.post(api.url("/cache/alist/overwritten"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("another type"),
        "{body}"
    );
    let (status, body) = send_json(client.post(api.url("/cache/alist/x?ttl=60"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = send_json(
        client
            .put(api.url("/cache/alist"))
            .json(&json!({"value": "overwritten", "ttl": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let kind: String = redis::cmd("TYPE")
        .arg("cache:alist")
        .query(&mut conn)
        .unwrap();
    assert_eq!(kind, "list");
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("cache:alist")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(items, ["one", "two"]);
    let ttl: i64 = redis::cmd("TTL")
        .arg("cache:alist")
        .query(&mut conn)
        .unwrap();
    assert_eq!(ttl, -1, "no expiry was set on the list");

    // Strings are still replaced, with and without a TTL, and a new key is written.
    for path in ["/cache/s/first", "/cache/s/second?ttl=60", "/cache/fresh/v"] {
        let (status, body) = send_json(client.post(api.url(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, body) = send_json(client.get(api.url("/cache/s"))).await;
    assert_eq!(body["value"], "second");
    assert_eq!(body["ttl"], 60);
    let (status, _) = send_json(
        client
            .put(api.url("/cache/s"))
            .json(&json!({"value": "third", "ttl": 30.0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a ttl of 30.0 is the integer 30");
}

/// Pages that end inside a SCAN batch resume where they stopped: a walk over thousands of keys
/// with pages larger than a batch misses none (it once lost a few per thousand, when the resumed
/// scan asked for another COUNT and got more buckets).
#[tokio::test]
async fn a_walk_with_large_pages_misses_no_key() {
    let redis = TestRedis::start(true);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let mut conn = redis_client(&redis);
    let mut ours = BTreeSet::new();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET").arg(format!("cache:k{i}")).arg(i).ignore();
        ours.insert(format!("k{i}"));
    }
    let _: () = pipe.query(&mut conn).unwrap();
    for limit in [37, 100, 250] {
        let mut seen = BTreeSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..=5000 {
            let mut url = api.url(&format!("/cache?limit={limit}"));
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = send_json(client.get(url)).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let keys: Vec<String> = serde_json::from_value(page["keys"].clone()).unwrap();
            seen.extend(keys);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let missing: Vec<_> = ours.difference(&seen).take(5).collect();
        assert!(
            missing.is_empty(),
            "limit {limit}: missing {missing:?} and more"
        );
    }
}

/// A cursor works on any replica (the check is not per process), and an altered one is refused.
#[tokio::test]
async fn cursors_are_checked_and_work_across_replicas() {
    let redis = TestRedis::start(false);
    let first = start_ready(&redis, &[]).await;
    let second = start_ready(&redis, &[]).await;
    let client = http();
    for n in 0..30 {
        let (status, _) = send(client.post(first.url(&format!("/cache/k{n}/v")))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, page) = send_json(client.get(first.url("/cache?limit=5"))).await;
    let cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
    let (status, body) =
        send_json(client.get(second.url(&format!("/cache?limit=5&cursor={cursor}")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (scan, check) = cursor.rsplit_once('.').unwrap();
    let altered = format!(
        "{}.{check}",
        scan.replacen(|c: char| c.is_ascii_digit(), "9", 1)
    );
    if altered != cursor {
        let (status, body) =
            send_json(client.get(second.url(&format!("/cache?cursor={altered}")))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{altered}: {body}"
        );
    }
}

/// Every operation of /openapi.json, called well and badly: each status it answers is
/// documented, and each JSON body conforms to the documented schema.
#[tokio::test]
async fn the_openapi_document_matches_what_the_api_answers() {
    use crate::support::openapi::{check_answer, conforms, resolve};
    let redis = TestRedis::start(false);
    let api = start_ready(&redis, &[]).await;
    let client = http();
    let (status, doc) = send_json(client.get(api.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut conn = redis_client(&redis);
    let _: () = redis::cmd("SADD")
        .arg("cache:aset")
        .arg("m")
        .query(&mut conn)
        .unwrap();
    for n in 0..5 {
        send(client.post(api.url(&format!("/cache/key{n}/v")))).await;
    }
    let (_, page) = send_json(client.get(api.url("/cache?limit=2"))).await;
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();

    let calls: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        ("/health", "get", client.get(api.url("/health"))),
        ("/healthz", "get", client.get(api.url("/healthz"))),
        ("/readyz", "get", client.get(api.url("/readyz"))),
        ("/metrics", "get", client.get(api.url("/metrics"))),
        ("/openapi.json", "get", client.get(api.url("/openapi.json"))),
        ("/cache", "get", client.get(api.url("/cache"))),
        (
            "/cache",
            "get",
            client.get(api.url(&format!("/cache?limit=2&cursor={cursor}"))),
        ),
        ("/cache", "get", client.get(api.url("/cache?limit=0"))),
        ("/cache", "get", client.get(api.url("/cache?cursor=7"))),
        ("/cache/{key}", "get", client.get(api.url("/cache/key1"))),
        ("/cache/{key}", "get", client.get(api.url("/cache/nothing"))),
        ("/cache/{key}", "get", client.get(api.url("/cache/aset"))),
        ("/cache/{key}", "get", client.get(api.url("/cache/a%20b"))),
        ("/cache/{key}", "get", client.get(api.url("/cache/%FF"))),
        (
            "/cache/{key}",
            "put",
            client
                .put(api.url("/cache/p"))
                .json(&json!({"value": "v", "ttl": 5})),
        ),
        (
            "/cache/{key}",
            "put",
            client
                .put(api.url("/cache/aset"))
                .json(&json!({"value": "v"})),
        ),
        (
            "/cache/{key}",
            "put",
            client
                .put(api.url("/cache/p"))
                .json(&json!({"value": "v", "x": 1})),
        ),
        (
            "/cache/{key}",
            "put",
            client
                .put(api.url("/cache/p"))
                .json(&json!({"value": "é".repeat(40_000)})),
        ),
        (
            "/cache/{key}",
            "put",
            client
                .put(api.url("/cache/p"))
                .header("content-type", "application/json")
                .body("{"),
        ),
        (
            "/cache/{key}",
            "put",
            client.put(api.url("/cache/p")).body("value"),
        ),
        ("/cache/{key}", "delete", client.delete(api.url("/cache/p"))),
        ("/cache/{key}", "delete", client.delete(api.url("/cache/p"))),
        (
            "/cache/{key}/{value}",
            "post",
            client.post(api.url("/cache/q/v?ttl=9")),
        ),
        (
            "/cache/{key}/{value}",
            "post",
            client.post(api.url("/cache/aset/v")),
        ),
        (
            "/cache/{key}/{value}",
            "post",
            client.post(api.url("/cache/q/v?ttl=0")),
        ),
        (
            "/cache/{key}/{value}",
            "post",
            client.post(api.url("/cache/q/%FF")),
        ),
        (
            "/cache/{key}/{value}",
            "post",
            client.post(api.url(&format!("/cache/q/{}", "v".repeat(5000)))),
        ),
    ];
    let mut operations = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    for (path, method, request) in calls {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        operations.insert(format!("{method} {path}"));
        statuses.insert(check_answer(&doc, operation, method, path, request).await);
    }
    for status in ["200", "400", "404", "409", "413", "414", "415", "422"] {
        assert!(
            statuses.contains(status),
            "no call answered {status}: {statuses:?}"
        );
    }
    let documented = crate::support::openapi::documented_operations(&doc);
    assert_eq!(operations, documented);

    // Redis gone: every Redis-backed answer is a documented 503 with Retry-After.
    drop(redis);
    for (path, method, url) in [
        ("/health", "get", api.url("/health")),
        ("/cache", "get", api.url("/cache")),
        ("/cache/{key}", "get", api.url("/cache/key1")),
    ] {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let documented = resolve(&doc, &doc["paths"][path][method]["responses"]["503"]);
        assert!(
            documented["headers"]["Retry-After"].is_object(),
            "{path}: Retry-After documented"
        );
        let body: Value = response.json().await.unwrap();
        conforms(
            &doc,
            &documented["content"]["application/json"]["schema"],
            &body,
            path,
        );
    }
}
