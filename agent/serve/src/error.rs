//! Errors as OpenAI clients expect them: `{"error": {"message", "type", "param", "code"}}` with
//! an HTTP status, and the one mapping from an engine's failure to a status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use glm_agent::engine::EngineError;
use serde_json::{Value, json};

/// An error as OpenAI returns it: `{"error": {"message", "type", "param", "code"}}` with a status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong and what to do.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `server_error`, ...
    pub kind: &'static str,
    /// The request field at fault.
    pub param: Option<String>,
    /// A machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
        }
    }

    /// Sets the code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A failure on this side.
    pub fn server(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": self.code,
        }})
    }
}

/// The message of an [`ApiError`] answer, for the log line the router writes for it.
#[derive(Debug, Clone)]
pub(crate) struct Failure(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response.extensions_mut().insert(Failure(self.message));
        response
    }
}

impl ApiError {
    /// The answer to an engine's failure, with the status its cause maps to
    /// ([`EngineError::http_status`]).
    pub fn from_engine(e: &EngineError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // A request the engine refuses is the client's to change; the rest is this side's.
        let (kind, message) = if status.is_client_error() {
            ("invalid_request_error", e.message.clone())
        } else {
            ("server_error", format!("the engine failed: {}", e.message))
        };
        ApiError {
            status,
            kind,
            ..ApiError::server(message)
        }
    }

    /// 401: no key, or the wrong one.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "a valid API key is needed: send `Authorization: Bearer KEY`".into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 429: every queue place is taken.
    pub fn queue_full() -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the server's queue is full: retry shortly (or raise --max-queue)".into(),
            kind: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
        }
    }

    /// 404: a path this server does not offer.
    pub fn no_endpoint() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: "no such endpoint: this server offers GET /v1/models, POST /v1/chat/completions, POST /v1/responses, POST /v1/completions and POST /tokenize".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("not_found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glm_agent::engine::Cause;

    #[test]
    fn an_engine_failure_is_the_clients_or_the_servers_by_its_cause() {
        let refused = ApiError::from_engine(&EngineError::new(Cause::Invalid, "no JSON value"));
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.kind, "invalid_request_error");
        assert_eq!(refused.message, "no JSON value");
        let too_long = ApiError::from_engine(&EngineError::new(Cause::ContextExceeded, "long"));
        assert_eq!(too_long.kind, "invalid_request_error");
        let broke = ApiError::from_engine(&EngineError::new(Cause::Internal, "out of memory"));
        assert_eq!(broke.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(broke.kind, "server_error");
        assert_eq!(broke.message, "the engine failed: out of memory");
        let upstream = ApiError::from_engine(&EngineError::new(Cause::Unreachable, "refused"));
        assert_eq!(
            (upstream.status.as_u16(), upstream.kind),
            (502, "server_error")
        );
    }
}
