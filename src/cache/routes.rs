//! HTTP routes. The seed's paths and JSON shapes exactly, plus PUT with a JSON body, TTLs and
//! a paginated listing.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::config::MAX_TTL_SECONDS;
use super::store::{Cursor, Store, StoreError};
use crate::server::{ApiError, ApiJson, ApiQuery};
use crate::server::{method_not_allowed, openapi_document};

/// Page size of `GET /cache` when no `limit` is given (never above the configured ceiling).
const DEFAULT_PAGE_SIZE: usize = 100;

/// Served at `/openapi.json`; its limits are the defaults, checked against the code by tests.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub max_key_length: usize,
    pub max_value_bytes: usize,
    pub max_page_size: usize,
}

pub fn router(state: AppState) -> Router {
    // A JSON string can take up to six bytes per character (\u0000), plus the braces and ttl.
    let body_limit = state.max_value_bytes.saturating_mul(6).saturating_add(1024);
    Router::new()
        .route("/health", get(health))
        .route("/cache", get(list))
        .route("/cache/{key}", get(read).put(put).delete(delete))
        .route("/cache/{key}/{value}", post(store_from_path))
        .route("/openapi.json", get(|| async { openapi_document(OPENAPI) }))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// `Path<T>` whose rejections (e.g. invalid UTF-8 after percent-decoding) are JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
struct ApiPath<T>(T);

#[derive(Serialize)]
struct EntryBody<'a> {
    key: &'a str,
    value: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
}

#[derive(Serialize)]
struct KeyStatus<'a> {
    key: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct KeyList {
    keys: Vec<String>,
    count: usize,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    redis: &'static str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Deserialize)]
struct TtlQuery {
    ttl: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
    /// A JSON number: 60.0 is the integer 60 to JSON Schema, so it is taken as 60. Absent is
    /// no expiry; `null` is refused, as /openapi.json says.
    #[serde(default, deserialize_with = "present_number")]
    ttl: Option<serde_json::Number>,
}

fn present_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Number>, D::Error> {
    serde_json::Number::deserialize(deserializer).map(Some)
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::OutOfMemory(message) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, message)
            }
            StoreError::Backend(error) => error.into(),
        }
    }
}

/// The seed's health check: is Redis answering right now.
async fn health(State(state): State<AppState>) -> Response {
    let host = &state.store.target().host;
    match state.store.ping().await {
        Ok(()) => Json(Health {
            status: "healthy",
            redis: "connected",
            host,
            error: None,
        })
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy",
                redis: "disconnected",
                host,
                error: Some(error.to_string()),
            }),
        )
            .into_response(),
    }
}

/// `POST /cache/{key}/{value}`: the seed's way of storing, value in the path.
async fn store_from_path(
    State(state): State<AppState>,
    ApiPath((key, value)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<TtlQuery>,
) -> Result<Response, ApiError> {
    let ttl = parse_ttl(query.ttl.as_deref())?;
    check_path_value(&value)?;
    store(&state, &key, &value, ttl).await
}

/// Longest value `POST /cache/{key}/{value}` takes, in characters. Percent-encoded, 4096
/// characters take at most 48 KiB, so with the key and `?ttl=` the URL stays under the HTTP
/// server's 64 KiB cap: every value within this limit arrives, and /openapi.json can state it.
pub const MAX_PATH_VALUE_CHARS: usize = 4096;

fn check_path_value(value: &str) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars > MAX_PATH_VALUE_CHARS {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "a value in the path is {chars} characters long; the limit is \
                 {MAX_PATH_VALUE_CHARS}: send longer values with PUT /cache/{{key}}"
            ),
        )
        .with("max_path_value_chars", MAX_PATH_VALUE_CHARS));
    }
    Ok(())
}

/// `PUT /cache/{key}` with `{"value": "...", "ttl": 60}`: for values that do not fit in a path.
async fn put(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(query): ApiQuery<TtlQuery>,
    ApiJson(body): ApiJson<PutBody>,
) -> Result<Response, ApiError> {
    let ttl = match (body.ttl, query.ttl.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "give ttl either in the body or in the query string, not both",
            ));
        }
        (Some(number), None) => Some(check_ttl(whole_number(&number).ok_or_else(ttl_error)?)?),
        (None, text) => parse_ttl(text)?,
    };
    store(&state, &key, &body.value, ttl).await
}

async fn store(
    state: &AppState,
    key: &str,
    value: &str,
    ttl: Option<u64>,
) -> Result<Response, ApiError> {
    check_key(key, state.max_key_length)?;
    check_value(value, state.max_value_bytes)?;
    state.store.set(key, value, ttl).await?;
    metrics::counter!("cache_writes_total").increment(1);
    Ok(Json(EntryBody {
        key,
        value,
        status: "stored",
        ttl,
    })
    .into_response())
}

async fn read(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_key(&key, state.max_key_length)?;
    match state.store.get(&key).await? {
        Some(entry) => {
            metrics::counter!("cache_reads_total", "result" => "found").increment(1);
            Ok(Json(EntryBody {
                key: &key,
                value: &entry.value,
                status: "found",
                ttl: entry.ttl_seconds,
            })
            .into_response())
        }
        None => {
            metrics::counter!("cache_reads_total", "result" => "not_found").increment(1);
            Ok(not_found(&key))
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_key(&key, state.max_key_length)?;
    if state.store.delete(&key).await? {
        metrics::counter!("cache_deletes_total").increment(1);
        Ok(Json(KeyStatus {
            key: &key,
            status: "deleted",
        })
        .into_response())
    } else {
        Ok(not_found(&key))
    }
}

/// `GET /cache?limit=N&cursor=C`: one page of keys; follow `next_cursor` until it is null.
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE_SIZE.min(state.max_page_size),
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=state.max_page_size).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "limit must be a whole number from 1 to {}",
                    state.max_page_size
                ))
                .with("max_page_size", state.max_page_size)
            })?,
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => Cursor::START,
        Some(text) => Cursor::decode(text).ok_or_else(|| {
            ApiError::unprocessable(
                "cursor is not valid: pass back the next_cursor of the previous page unchanged",
            )
        })?,
    };
    let page = state.store.list(cursor, limit).await?;
    Ok(Json(KeyList {
        count: page.keys.len(),
        keys: page.keys,
        next_cursor: page.next.map(|c| c.encode()),
    })
    .into_response())
}

fn not_found(key: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(KeyStatus {
            key,
            status: "not_found",
        }),
    )
        .into_response()
}

/// Characters a key may use besides ASCII letters and digits.
pub const KEY_PUNCTUATION: &str = "-_.:@";

/// Keys: 1 to `max` bytes of ASCII letters, digits and `- _ . : @`; not `.` or `..`, which
/// URLs cannot carry as a path segment.
pub fn check_key(key: &str, max: usize) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::unprocessable("key must not be empty"));
    }
    if key.len() > max {
        return Err(ApiError::unprocessable(format!(
            "key is {} bytes long; the limit is {max}",
            key.len()
        ))
        .with("max_key_length", max));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || KEY_PUNCTUATION.contains(c))
    {
        return Err(ApiError::unprocessable(format!(
            "key may only contain ASCII letters, digits and the characters {}",
            KEY_PUNCTUATION
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    if key == "." || key == ".." {
        return Err(ApiError::unprocessable("key must not be . or .."));
    }
    Ok(())
}

fn check_value(value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("value is {} bytes long; the limit is {max}", value.len()),
        )
        .with("max_value_bytes", max));
    }
    Ok(())
}

fn ttl_error() -> ApiError {
    ApiError::unprocessable(format!(
        "ttl must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}"
    ))
}

fn parse_ttl(text: Option<&str>) -> Result<Option<u64>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) => {
            let seconds: i64 = text.trim().parse().map_err(|_| ttl_error())?;
            check_ttl(seconds).map(Some)
        }
    }
}

/// The integer a JSON number stands for: 60 and 60.0 are 60; 60.5 is none.
fn whole_number(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
            .map(|f| f as i64)
    })
}

fn check_ttl(seconds: i64) -> Result<u64, ApiError> {
    u64::try_from(seconds)
        .ok()
        .filter(|s| (1..=MAX_TTL_SECONDS).contains(s))
        .ok_or_else(ttl_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_states_the_default_limits() {
        use crate::cache::config::Config;
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        let defaults = Cli::parse_from(["cache"]).config;
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Key"]["maxLength"], defaults.max_key_length);
        assert_eq!(
            schemas["PutBody"]["properties"]["value"]["maxLength"],
            defaults.max_value_bytes
        );
        let value = &doc["paths"]["/cache/{key}/{value}"]["post"]["parameters"][1]["schema"];
        assert_eq!(value["maxLength"], MAX_PATH_VALUE_CHARS);
        let ttl = &doc["components"]["parameters"]["Ttl"]["schema"];
        assert_eq!(ttl["maximum"], MAX_TTL_SECONDS);
        let limit = &doc["paths"]["/cache"]["get"]["parameters"][0]["schema"];
        assert_eq!(limit["maximum"], defaults.max_page_size);
        assert_eq!(limit["default"], DEFAULT_PAGE_SIZE);
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/cache",
                "/cache/{key}",
                "/cache/{key}/{value}",
                "/health",
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/readyz"
            ]
        );
        // Every key the character rule accepts matches the document's pattern, and the reverse.
        let pattern = schemas["Key"]["pattern"].as_str().unwrap();
        assert_eq!(
            pattern, "^([A-Za-z0-9_.:@-]*[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]*|[.]{3,})$",
            "the key pattern lists KEY_PUNCTUATION"
        );
        let mut listed: Vec<char> = "_.:@-".chars().collect();
        let mut punctuation: Vec<char> = KEY_PUNCTUATION.chars().collect();
        listed.sort_unstable();
        punctuation.sort_unstable();
        assert_eq!(listed, punctuation);
    }

    #[test]
    fn keys_are_checked() {
        for good in ["mykey", "user:42", "a.b-c_d@e", "A"] {
            assert!(check_key(good, 128).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "a*", "é", "a\0b", "a?b", "x\n"] {
            let error = check_key(bad, 128).expect_err(bad);
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }
        assert!(check_key(&"k".repeat(128), 128).is_ok());
        assert!(check_key(&"k".repeat(129), 128).is_err());
    }

    #[test]
    fn ttls_are_checked() {
        assert_eq!(parse_ttl(None).unwrap(), None);
        assert_eq!(parse_ttl(Some("60")).unwrap(), Some(60));
        for bad in [
            "0",
            "-1",
            "1.5",
            "abc",
            "",
            "31536001",
            "99999999999999999999",
        ] {
            assert!(parse_ttl(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked() {
        assert!(check_value("", 4).is_ok());
        assert!(check_value("abcd", 4).is_ok());
        let error = check_value("abcde", 4).unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
