use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use super::{ApiError, Identity};

/// No inline script or style anywhere: pages load their CSS from the service itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Wraps every route: identity and security headers, a request timeout, request metrics,
/// a JSON 404 for unknown paths, and a JSON body on every error the framework answers itself.
pub fn apply(router: Router, identity: &Identity, request_timeout: Duration) -> Router {
    let served_by = identity.header_value();
    router
        .fallback(super::error::not_found)
        .layer(middleware::map_response(status_headers))
        .layer(middleware::from_fn(record_request))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-served-by"),
            served_by,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                // Logged here; the client learns nothing of it.
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|m| m.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %message, "a handler panicked");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .into_response()
            },
        ))
        .layer(middleware::from_fn(json_error_body))
}

/// Error bodies larger than this are left as they are (framework messages are short).
const FRAMEWORK_ERROR_MAX_BYTES: u64 = 16 * 1024;

/// Every error answered without a body (axum's 405, the timeout's 408, a panic's 500) or with
/// a plain-text one (axum's own extractor rejections, e.g. a 413 past `DefaultBodyLimit`) gets
/// the `{"error": ...}` body every other error has. Headers such as `Allow` are kept. HTML and
/// JSON bodies are the handlers' own and pass untouched.
async fn json_error_body(request: Request, next: Next) -> Response {
    let head = request.method() == Method::HEAD;
    let response = next.run(request).await;
    let status = response.status();
    if head || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let size = axum::body::HttpBody::size_hint(response.body());
    let empty = size.exact() == Some(0);
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let short_text = plain_text && size.upper().is_some_and(|n| n <= FRAMEWORK_ERROR_MAX_BYTES);
    if !(empty || short_text) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = if empty {
        String::new()
    } else {
        match axum::body::to_bytes(body, FRAMEWORK_ERROR_MAX_BYTES as usize).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Err(_) => String::new(),
        }
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| format!("error {}", status.as_u16()))
    } else {
        text
    };
    let json = ApiError::new(status, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, json.into_body())
}

/// Seconds a client is told to wait after a 503, on every 503 of every service.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// Every 503 says when to try again, unless the handler chose its own value. A 413 closes the
/// connection: the rest of the body was never read, so the connection cannot carry another
/// request, and saying so keeps the client from sending one on it.
async fn status_headers(mut response: Response) -> Response {
    match response.status() {
        StatusCode::SERVICE_UNAVAILABLE => {
            response
                .headers_mut()
                .entry(header::RETRY_AFTER)
                .or_insert(HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

/// The method as a metric label: the standard methods by name, any other token (a client may
/// send any, of any length) as `other`, so clients cannot grow `/metrics` without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts every request and its latency by method, route template and status. Every label
/// has a bounded set of values: the route is the matched template (never the raw path).
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn app() -> Router {
        let routes = Router::new()
            .route("/only-get", get(|| async { "ok" }))
            .route("/text", post(|body: String| async move { body }))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("handler bug");
                    }
                }),
            )
            .route(
                "/page",
                get(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::response::Html("<p>visible message</p>"),
                    )
                }),
            )
            .layer(DefaultBodyLimit::max(8));
        apply(
            routes,
            &Identity::resolve(Some("test")),
            Duration::from_secs(10),
        )
    }

    async fn call(method: Method, path: &str, body: &'static str) -> (StatusCode, Response) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        (response.status(), response)
    }

    async fn json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn framework_errors_get_a_json_body_and_keep_their_headers() {
        let (status, response) = call(Method::DELETE, "/only-get", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(json(response).await, json!({"error": "method not allowed"}));

        let (status, response) = call(Method::POST, "/text", "far more than eight bytes").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = json(response).await;
        assert!(
            body["error"].as_str().unwrap().contains("length limit"),
            "{body}"
        );

        let (status, response) = call(Method::GET, "/panic", "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json(response).await,
            json!({"error": "internal server error"})
        );

        let (status, response) = call(Method::GET, "/nowhere", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json(response).await, json!({"error": "no such path"}));
    }

    #[tokio::test]
    async fn html_error_pages_and_head_answers_are_left_alone() {
        let (status, response) = call(Method::GET, "/page", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"<p>visible message</p>");

        let (status, response) = call(Method::HEAD, "/text", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        let made_up = Method::from_bytes(&[b'X'; 8192]).unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
    }
}
