//! Thin handlers: validate, call the store, render. The page and the JSON API share the rules.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use super::store::{Message, Secret, Store, StoreError};
use super::validate::{self, LIST_LIMIT_MAX};
use crate::server::{ApiError, ApiJson, ApiQuery, Identity};

/// Every path the guestbook serves, on its shared state.
pub fn router(guestbook: Arc<Guestbook>) -> Router {
    Router::new()
        .route("/", get(page).post(sign))
        .route("/api/messages", get(list_messages).post(post_message))
        .route("/health", get(health))
        .route("/static/guestbook.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(validate::BODY_LIMIT_BYTES))
        .with_state(guestbook)
}

pub struct Guestbook {
    pub store: Arc<Store>,
    pub identity: Identity,
    pub page_size: u32,
    /// The page as last rendered from the file, and the file's data version it shows.
    pub last_page: std::sync::Mutex<Option<(i64, Bytes)>>,
}

pub type Shared = State<Arc<Guestbook>>;

impl Guestbook {
    /// Stores a validated message and counts the outcome.
    async fn write(&self, new: &validate::NewMessage) -> Result<Message, StoreError> {
        let result = self.store.insert(new, self.identity.name()).await;
        let outcome = match &result {
            Ok(_) => "stored",
            Err(StoreError::Locked) => "locked",
            Err(StoreError::Closed) => "closed",
            Err(_) => "error",
        };
        metrics::counter!("guestbook_writes_total", "result" => outcome).increment(1);
        if matches!(result, Err(StoreError::Locked)) {
            metrics::counter!("guestbook_lock_errors_total").increment(1);
            tracing::warn!(
                replica = self.identity.name(),
                "write failed: database is locked"
            );
        }
        result
    }
}

// ---------- the HTML page ----------

struct MessageView {
    name: String,
    message: String,
    replica: String,
    created_at: String,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        MessageView {
            created_at: m.created_at.format(&format).unwrap_or_default(),
            name: m.name,
            message: m.message,
            replica: m.replica,
        }
    }
}

struct Problem {
    locked: bool,
    /// The problem stopped a message from being stored (a POST); a read says nothing of storing.
    write: bool,
    title: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "guestbook.html")]
struct Page {
    replica: String,
    backend: &'static str,
    problem: Option<Problem>,
    posted: Option<i64>,
    form_name: String,
    form_message: String,
    secret: Secret,
    messages: Vec<MessageView>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    posted: Option<i64>,
}

#[derive(Deserialize)]
pub struct SignForm {
    name: String,
    message: String,
}

pub async fn page(
    State(app): Shared,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query.ok().and_then(|Query(q)| q.posted) {
        Some(posted) => render(&app, StatusCode::OK, None, Some(posted), "", "").await,
        None => plain_page(&app).await,
    }
}

/// The page as everyone sees it. Rendered again only when the SQLite file changed since the
/// last rendering (whoever changed it: this replica, another one, a person with `sqlite3`):
/// the version is read before the messages, so a change made during the read shows as a new
/// version next time, never as a stale page kept.
async fn plain_page(app: &Guestbook) -> Response {
    let version = app.store.data_version();
    let last = app.last_page.lock().ok().and_then(|last| last.clone());
    if let (Some(version), Some((shown, html))) = (version, last)
        && version == shown
    {
        return Html(html).into_response();
    }
    match page_html(app, StatusCode::OK, None, None, "", "").await {
        (StatusCode::OK, Ok(html)) => {
            let html = Bytes::from(html);
            if let (Some(version), Ok(mut last)) = (version, app.last_page.lock()) {
                *last = Some((version, html.clone()));
            }
            Html(html).into_response()
        }
        (status, html) => page_response(status, html),
    }
}

pub async fn sign(
    State(app): Shared,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let unreadable = |detail: String| Problem {
        locked: false,
        write: true,
        title: "The form could not be read".into(),
        detail,
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let problem = unreadable(rejection.body_text());
            return render(&app, rejection.status(), Some(problem), None, "", "").await;
        }
    };
    // The form decoder replaces bytes that are not UTF-8 with U+FFFD and would store "��";
    // the JSON API refuses such bytes (400), and so does the form.
    if !validate::form_is_utf8(&body) {
        let detail = "The form holds bytes that are not UTF-8 text; send it from a page \
                      served as UTF-8."
            .to_owned();
        let status = StatusCode::BAD_REQUEST;
        return render(&app, status, Some(unreadable(detail)), None, "", "").await;
    }
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(body));
    let Form(form) = match Form::<SignForm>::from_request(request, &()).await {
        Ok(form) => form,
        Err(rejection) => {
            let status = rejection.status();
            let problem = unreadable(rejection.body_text());
            return render(&app, status, Some(problem), None, "", "").await;
        }
    };
    let new = match validate::new_message(&form.name, &form.message) {
        Ok(new) => new,
        Err(reason) => {
            let problem = Problem {
                locked: false,
                write: true,
                title: "Please check your message".into(),
                detail: reason,
            };
            return render(
                &app,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(problem),
                None,
                &form.name,
                &form.message,
            )
            .await;
        }
    };
    match app.write(&new).await {
        // POST → redirect → GET: a reload never posts twice.
        Ok(message) => Redirect::to(&format!("/?posted={}", message.id)).into_response(),
        Err(error) => {
            let (status, problem) = page_problem(&app, &error, Access::Write);
            render(&app, status, Some(problem), None, &form.name, &form.message).await
        }
    }
}

/// Whether a failure happened while storing a message or while reading the page's data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

fn page_problem(app: &Guestbook, error: &StoreError, access: Access) -> (StatusCode, Problem) {
    let replica = app.identity.name();
    let write = access == Access::Write;
    match error {
        StoreError::Locked => (
            StatusCode::SERVICE_UNAVAILABLE,
            Problem {
                locked: true,
                write,
                title: "DATABASE IS LOCKED!".into(),
                detail: if write {
                    format!(
                        "Another replica was writing to the same SQLite file, so replica \
                         {replica} could not take the write lock."
                    )
                } else {
                    format!(
                        "Another process held the SQLite file's exclusive lock for longer than \
                         the busy timeout, so replica {replica} could not read the messages. \
                         Reload the page."
                    )
                },
            },
        ),
        StoreError::Closed => (
            StatusCode::FORBIDDEN,
            Problem {
                locked: false,
                write,
                title: "The guestbook is closed".into(),
                detail: "posting_open is false in the config table.".into(),
            },
        ),
        StoreError::Backend(error) if error.is_unavailable() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Problem {
                locked: false,
                write,
                title: "The database is unavailable".into(),
                detail: format!("Replica {replica} cannot use its database: {error}"),
            },
        ),
        StoreError::Backend(error) => {
            let status = ApiError::from(error.clone()).status;
            (
                status,
                Problem {
                    locked: false,
                    write,
                    title: "The database failed".into(),
                    detail: format!(
                        "Replica {replica} got an answer it did not expect; see its log."
                    ),
                },
            )
        }
    }
}

async fn render(
    app: &Guestbook,
    status: StatusCode,
    problem: Option<Problem>,
    posted: Option<i64>,
    form_name: &str,
    form_message: &str,
) -> Response {
    let (status, html) = page_html(app, status, problem, posted, form_name, form_message).await;
    page_response(status, html)
}

fn page_response(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    match html {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
        }
    }
}

/// The page with the newest messages; the status is `status` unless reading them failed.
async fn page_html(
    app: &Guestbook,
    mut status: StatusCode,
    mut problem: Option<Problem>,
    posted: Option<i64>,
    form_name: &str,
    form_message: &str,
) -> (StatusCode, Result<String, askama::Error>) {
    // The messages and the secret in one read: a lock held by another process is waited for
    // once (at most one busy timeout), not once per query.
    let (messages, secret) = match app.store.page(app.page_size).await {
        Ok(read) => read,
        Err(error) => {
            if problem.is_none() {
                let (s, p) = page_problem(app, &error, Access::Read);
                status = s;
                problem = Some(p);
            }
            let secret = Secret {
                value: None,
                source: "the database (unreadable right now)",
            };
            (Vec::new(), secret)
        }
    };
    let page = Page {
        replica: app.identity.name().to_owned(),
        backend: app.store.backend(),
        problem,
        posted,
        form_name: form_name.to_owned(),
        form_message: form_message.to_owned(),
        secret,
        messages: messages.into_iter().map(MessageView::from).collect(),
    };
    (status, page.render())
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/guestbook.css"),
    )
}

// ---------- the JSON API ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
    before_id: Option<i64>,
}

pub async fn list_messages(
    State(app): Shared,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(app.page_size);
    if !(1..=LIST_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::unprocessable(format!(
            "limit must be between 1 and {LIST_LIMIT_MAX}"
        )));
    }
    let messages = app
        .store
        .list(limit, query.before_id)
        .await
        .map_err(|e| read_error(&app, e))?;
    let next_before_id = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(ApiJson(json!({
        "messages": messages,
        "count": messages.len(),
        "next_before_id": next_before_id,
        "replica": app.identity.name(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    name: String,
    message: String,
}

pub async fn post_message(
    State(app): Shared,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<Response, ApiError> {
    let new = validate::new_message(&body.name, &body.message).map_err(ApiError::unprocessable)?;
    let message = app.write(&new).await.map_err(|e| api_error(&app, e))?;
    Ok((StatusCode::CREATED, ApiJson(message)).into_response())
}

fn api_error(app: &Guestbook, error: StoreError) -> ApiError {
    let replica = app.identity.name();
    match error {
        StoreError::Locked => ApiError::unavailable("database is locked")
            .with("replica", replica)
            .with("stored", false)
            .with(
                "detail",
                "another replica holds the SQLite write lock; the message was not stored",
            ),
        StoreError::Closed => {
            ApiError::new(StatusCode::FORBIDDEN, error.to_string()).with("stored", false)
        }
        StoreError::Backend(error) => ApiError::from(error)
            .with("replica", replica)
            .with("stored", false),
    }
}

/// A failed read: what went wrong and nothing about storing, since nothing was being stored.
fn read_error(app: &Guestbook, error: StoreError) -> ApiError {
    let replica = app.identity.name();
    match error {
        StoreError::Locked => ApiError::unavailable("database is locked")
            .with("replica", replica)
            .with(
                "detail",
                "another process held the SQLite file's exclusive lock for longer than the \
                 busy timeout; try again",
            ),
        StoreError::Closed => ApiError::new(StatusCode::FORBIDDEN, error.to_string()),
        StoreError::Backend(error) => ApiError::from(error).with("replica", replica),
    }
}

/// The seeds' style of health document.
pub async fn health(State(app): Shared) -> Response {
    let replica = app.identity.name();
    let backend = app.store.backend();
    match app.store.check().await {
        Ok(()) => ApiJson(json!({
            "status": "healthy", "database": "connected", "backend": backend, "replica": replica,
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ApiJson(json!({
                "status": "unhealthy", "database": "disconnected", "backend": backend,
                "replica": replica, "reason": error.to_string(),
            })),
        )
            .into_response(),
    }
}
