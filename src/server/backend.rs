//! What a backend failure means for a client, whichever backend (PostgreSQL, Redis, SQLite)
//! it came from. `server::postgres` and `server::redis` each sort their errors into these four
//! kinds; services match the backend's own code (`code()`) only for their domain cases
//! (a duplicate email, a key of the wrong type, a locked SQLite file).

use axum::http::StatusCode;

use super::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Unreachable, refusing logins, starting or shutting down, out of connections, too slow:
    /// worth retrying later. 503 with `Retry-After`.
    Unavailable,
    /// The request conflicts with what is stored (a unique key taken). 409.
    Conflict,
    /// The backend refused the value itself (an encoding or range it cannot store). 422.
    BadInput,
    /// Anything else: a bug, or a backend in a state nobody planned for. 500; the detail goes
    /// to the log, not to the client.
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    kind: Kind,
    /// The backend's own code: a SQLSTATE, a Redis error prefix (`WRONGTYPE`), SQLite's code.
    code: Option<String>,
    message: String,
}

impl BackendError {
    pub fn new(kind: Kind, code: Option<String>, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> BackendError {
        BackendError::new(Kind::Unavailable, None, message)
    }

    pub fn other(message: impl Into<String>) -> BackendError {
        BackendError::new(Kind::Other, None, message)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_unavailable(&self) -> bool {
        self.kind == Kind::Unavailable
    }

    /// The label used for error counters in `/metrics`.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            Kind::Unavailable => "unavailable",
            Kind::Conflict => "conflict",
            Kind::BadInput => "bad_input",
            Kind::Other => "other",
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> ApiError {
        match error.kind {
            Kind::Unavailable => ApiError::unavailable(error.message),
            Kind::Conflict => ApiError::new(StatusCode::CONFLICT, error.message),
            Kind::BadInput => ApiError::unprocessable(error.message),
            Kind::Other => {
                tracing::error!(error = %error.message, code = ?error.code, "unexpected backend error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the backend answered in a way this service does not expect; see its log",
                )
            }
        }
    }
}
