//! The HTTP surface: the seed's `/health` and `/users` with its JSON shapes, plus what users
//! of such an API expect (one user, deletion, pagination, clear 4xx errors).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError, User, UserRef};
use super::validate;
use crate::server::{ApiError, ApiPath, ApiQuery};
use crate::server::{method_not_allowed, openapi_document};

/// Users per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;
/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Served at `/openapi.json`; kept beside this file and checked against the router by tests.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The database host shown by `/health`.
    pub host: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).delete(delete_user))
        .route("/openapi.json", get(|| async { openapi_document(OPENAPI) }))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::DuplicateEmail => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            StoreError::Backend(error) => {
                if error.is_unavailable() {
                    tracing::warn!(reason = %error, "answering 503");
                }
                error.into()
            }
        }
    }
}

type Answer = Result<Response, ApiError>;

// Response bodies as structs, so keys come out in the seed's order.

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    database: &'static str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct UserList<'a> {
    users: &'a [UserRef<'a>],
    count: usize,
}

#[derive(Serialize)]
struct UserMessage {
    user: User,
    message: &'static str,
}

#[derive(Serialize)]
struct UserOnly {
    user: User,
}

async fn health(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => Json(Health {
            status: "healthy",
            database: "connected",
            host: &state.host,
            error: None,
        })
        .into_response(),
        Err((database, reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            Json(Health {
                status: "unhealthy",
                database,
                host: &state.host,
                error: Some(reason),
            }),
        )
            .into_response(),
    }
}

/// Query parameters as given, in order, so unknown and repeated ones can be refused by name.
type Params = Vec<(String, String)>;

fn take_params<'a>(
    params: &'a Params,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (key, value) in params {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "unknown query parameter {key:?}; this endpoint takes {}",
                allowed.join(", ")
            ))
            .with("parameter", key.as_str()));
        }
        if seen.iter().any(|(k, _)| k == key) {
            return Err(ApiError::unprocessable(format!(
                "query parameter {key:?} is given more than once"
            ))
            .with("parameter", key.as_str()));
        }
        seen.push((key, value));
    }
    Ok(seen)
}

fn param<'a>(params: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// A whole number in `min..=max`, or a 422 naming the parameter and the range.
fn number_param(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    let trimmed = value.trim();
    let parsed = if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        trimmed.parse::<i64>().ok()
    } else {
        None
    };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::unprocessable(format!(
            "{key} must be a whole number from {min} to {max}"
        ))
        .with("parameter", key)),
    }
}

/// `GET /users?limit=&after_id=`: users by id ascending, at most `limit`, after `after_id`.
/// When more follow, a `Link: <...>; rel="next"` header gives the next page.
async fn list_users(State(state): State<AppState>, ApiQuery(params): ApiQuery<Params>) -> Answer {
    let params = take_params(&params, &["limit", "after_id"])?;
    let limit = match param(&params, "limit") {
        Some(v) => number_param("limit", v, 1, MAX_LIMIT)?,
        None => DEFAULT_LIMIT,
    };
    let after_id = match param(&params, "after_id") {
        Some(v) => number_param("after_id", v, 0, i64::MAX)?,
        None => 0,
    };
    let page = state.store.list(after_id, limit + 1).await?;
    let mut users = page.users()?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    let next = match users.last() {
        Some(last) if more => Some(format!(
            "</users?limit={limit}&after_id={}>; rel=\"next\"",
            last.id
        )),
        _ => None,
    };
    let count = users.len();
    // Sized up front: a page of 100 users is about 12 kB.
    let mut body = Vec::with_capacity(32 + count * 128);
    serde_json::to_writer(
        &mut body,
        &UserList {
            users: &users,
            count,
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "a page of users could not be serialised");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The fields of a new user, from the query string (as the seed sends them) or a JSON body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: Option<String>,
    email: Option<String>,
}

fn new_user_from(params: &Params, headers: &HeaderMap, body: &[u8]) -> Result<NewUser, ApiError> {
    let from_query = take_params(params, &["name", "email"])?;
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    if !has_body {
        return Ok(NewUser {
            name: param(&from_query, "name").map(str::to_owned),
            email: param(&from_query, "email").map(str::to_owned),
        });
    }
    // A JSON body is the whole user (both fields required in it), so name and email in the
    // query string are not used then; like any value sent, they must still be valid. Refusing
    // the pair would refuse requests /openapi.json describes as valid: OpenAPI cannot say
    // "these parameters only without a body".
    if let Some(name) = param(&from_query, "name") {
        validate::name(name)
            .map_err(|reason| ApiError::unprocessable(reason).with("field", "name"))?;
    }
    if let Some(email) = param(&from_query, "email") {
        validate::email(email)
            .map_err(|reason| ApiError::unprocessable(reason).with("field", "email"))?;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be JSON with Content-Type: application/json",
        ));
    }
    serde_json::from_slice::<NewUser>(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::unprocessable(format!("invalid user: {e}")),
            _ => ApiError::bad_request(format!("invalid JSON: {e}")),
        }
    })
}

/// `POST /users?name=&email=` or `POST /users` with `{"name": ..., "email": ...}`.
async fn create_user(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<Params>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let new = new_user_from(&params, &headers, &body)?;
    let name = new
        .name
        .ok_or_else(|| ApiError::unprocessable("name is required").with("field", "name"))?;
    let email = new
        .email
        .ok_or_else(|| ApiError::unprocessable("email is required").with("field", "email"))?;
    let name = validate::name(&name)
        .map_err(|reason| ApiError::unprocessable(reason).with("field", "name"))?;
    let email = validate::email(&email)
        .map_err(|reason| ApiError::unprocessable(reason).with("field", "email"))?;
    let user = state.store.create(&name, &email).await.map_err(|e| {
        let duplicate = matches!(e, StoreError::DuplicateEmail);
        let error = ApiError::from(e);
        if duplicate {
            error.with("email", email.as_str())
        } else {
            error
        }
    })?;
    metrics::counter!("users_created_total").increment(1);
    let location = HeaderValue::from_str(&format!("/users/{}", user.id))
        .unwrap_or(HeaderValue::from_static("/users"));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserMessage {
            user,
            message: "User created successfully",
        }),
    )
        .into_response())
}

fn user_id(ApiPath(raw): ApiPath<String>) -> Result<i64, ApiError> {
    number_param("id", &raw, 1, i64::MAX)
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("user {id} not found")).with("id", id)
}

/// `GET /users/{id}`.
async fn get_user(State(state): State<AppState>, path: ApiPath<String>) -> Answer {
    let id = user_id(path)?;
    match state.store.get(id).await? {
        Some(user) => Ok(Json(UserOnly { user }).into_response()),
        None => Err(not_found(id)),
    }
}

/// `DELETE /users/{id}`: answers with the user as it was.
async fn delete_user(State(state): State<AppState>, path: ApiPath<String>) -> Answer {
    let id = user_id(path)?;
    match state.store.delete(id).await? {
        Some(user) => {
            metrics::counter!("users_deleted_total").increment(1);
            Ok(Json(UserMessage {
                user,
                message: "User deleted successfully",
            })
            .into_response())
        }
        None => Err(not_found(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
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
                "/health",
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/readyz",
                "/users",
                "/users/{id}"
            ]
        );
        let limit = &doc["paths"]["/users"]["get"]["parameters"];
        let limit = limit
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], MAX_LIMIT);
        assert_eq!(limit["schema"]["default"], DEFAULT_LIMIT);
    }

    #[test]
    fn numbers_are_whole_and_in_range() {
        assert_eq!(number_param("limit", "5", 1, 10).unwrap(), 5);
        for bad in [
            "0",
            "11",
            "-1",
            "+5",
            "5.0",
            "",
            "1e3",
            "99999999999999999999999",
            "1;DROP",
        ] {
            assert!(number_param("limit", bad, 1, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let params = vec![("limit".to_owned(), "1".to_owned())];
        assert!(take_params(&params, &["limit"]).is_ok());
        let params = vec![("page".to_owned(), "1".to_owned())];
        assert!(take_params(&params, &["limit"]).is_err());
        let params = vec![
            ("limit".to_owned(), "1".to_owned()),
            ("limit".to_owned(), "2".to_owned()),
        ];
        assert!(take_params(&params, &["limit"]).is_err());
    }
}
