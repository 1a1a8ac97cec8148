//! What can go wrong talking to Microsoft Graph, and which failures are worth another try.

use serde_json::Value;

/// The phrase Graph uses when an added member is already there (GRAPH.md "Changing members").
const ALREADY_EXISTS: &str = "object references already exist";
/// The phrase Graph uses for adds to a group it has not finished replicating.
const NOT_REPLICATED: &str =
    "source resource object or one of the objects being referenced do not exist";

/// A failure talking to Microsoft Graph.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// A failure that fits no other variant, described in words (e.g. a reply of a shape
    /// Graph does not send).
    #[error("{0}")]
    Other(String),
    /// The stored delta link expired: start over with a full read.
    #[error("delta link expired")]
    DeltaExpired,
    /// Graph answered with an error status.
    #[error("{request}: Microsoft Graph answered {status} {code}: {message}{}", hint(*status, code))]
    Status {
        /// The request, as method and path (never a token).
        request: String,
        /// The HTTP status.
        status: u16,
        /// Graph's error code, e.g. `Request_ResourceNotFound`.
        code: String,
        /// Graph's error message.
        message: String,
    },
    /// No reply arrived: the connection failed, was dropped, or timed out.
    #[error(
        "{request}: no reply from Microsoft Graph ({reason}); check the network path to the \
         `graph.endpoint` host, rollcall retries such failures on the next run"
    )]
    Transport {
        /// The request, as method and path.
        request: String,
        /// What the HTTP client reported.
        reason: String,
    },
    /// Signing in (the client-credentials token request) failed.
    #[error("signing in at {token_url} failed: {reason}; {next_step}")]
    SignIn {
        /// The token endpoint (no secret in it).
        token_url: String,
        /// The HTTP status, when the identity platform answered at all.
        status: Option<u16>,
        /// What the identity platform (or the HTTP client) said.
        reason: String,
        /// Which setting to check.
        next_step: String,
    },
    /// The `[graph]` settings cannot be used as they are.
    #[error("`graph.{key}`: {message}")]
    Config {
        /// The key under `[graph]`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

fn hint(status: u16, code: &str) -> &'static str {
    match (status, code) {
        (401, _) => " (check that the app registration's secret and tenant are current)",
        (403, _) => {
            " (grant the app registration GroupMember.ReadWrite.All, Group.ReadWrite.All and \
             User.Read.All as application permissions, with admin consent)"
        }
        (429, _) | (503, _) | (504, _) => " (Microsoft Graph is busy; the next run tries again)",
        _ => "",
    }
}

impl GraphError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Status {
                status, message, ..
            } => {
                is_transient_status(*status) || (*status == 400 && message.contains(NOT_REPLICATED))
            }
            GraphError::Transport { .. } => true,
            GraphError::SignIn { status, .. } => status.is_none_or(|s| s == 429 || s >= 500),
            GraphError::Other(_) | GraphError::DeltaExpired | GraphError::Config { .. } => false,
        }
    }

    /// Whether Graph said the group (or member) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GraphError::Status { status: 404, .. })
    }

    /// Reads a [`GraphError::Status`] back from the text it displays as (the journal keeps a
    /// failed operation's error as that text); `None` for any other text.
    pub fn parse_status(text: &str) -> Option<GraphError> {
        let (request, rest) = text.split_once(": Microsoft Graph answered ")?;
        let (status, rest) = rest.split_once(' ')?;
        let status: u16 = status.parse().ok()?;
        let (code, message) = rest.split_once(": ")?;
        let message = message.strip_suffix(hint(status, code)).unwrap_or(message);
        Some(GraphError::Status {
            request: request.to_owned(),
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        })
    }

    /// An error from a Graph error reply (`{"error":{"code","message"}}`, or anything else).
    pub(crate) fn from_reply(request: String, status: u16, body: &Value) -> GraphError {
        let error = &body["error"];
        GraphError::Status {
            request,
            status,
            code: error["code"]
                .as_str()
                .unwrap_or("(no error code)")
                .to_owned(),
            message: error["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| match body {
                    Value::Null => "(empty reply)".to_owned(),
                    other => truncate(&other.to_string()),
                }),
        }
    }
}

/// Statuses that say "not now" rather than "no" (GRAPH.md "Throttling and transient faults").
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// Graph's error message in a reply body, or "".
pub(crate) fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Graph's error code in a reply body, or "".
pub(crate) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// 400 "One or more added object references already exist": the member is there already.
pub(crate) fn is_already_member(status: u16, body: &Value) -> bool {
    status == 400 && message(body).contains(ALREADY_EXISTS) && code(body) == "Request_BadRequest"
}

/// 400 right after a group was created: Graph has not replicated it yet; retry later.
pub(crate) fn is_not_replicated(status: u16, body: &Value) -> bool {
    status == 400 && message(body).contains(NOT_REPLICATED)
}

/// 400 for a create whose mailNickname another object holds already.
pub(crate) fn is_nickname_taken(status: u16, body: &Value) -> bool {
    let message = message(body);
    status == 400 && message.contains("mailNickname") && message.contains("already exists")
}

/// 410, or 400 `syncStateNotFound`/`resyncRequired`: the delta token is no longer valid.
pub(crate) fn is_delta_expired(status: u16, body: &Value) -> bool {
    status == 410
        || (status == 400
            && matches!(
                code(body),
                "syncStateNotFound" | "resyncRequired" | "SyncStateNotFound" | "ResyncRequired"
            ))
}

/// Keeps an unexpected reply body short enough for a log line.
fn truncate(text: &str) -> String {
    const LIMIT: usize = 300;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(LIMIT).collect();
        format!("{cut}…")
    }
}

/// What went wrong with an HTTP exchange, in a few words: the innermost cause, never the URL.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    if error.is_connect() && !text.contains("connect") {
        format!("cannot connect: {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(status: u16, code: &str, message: &str) -> GraphError {
        GraphError::from_reply(
            "PATCH /v1.0/groups/g".to_owned(),
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }

    #[test]
    fn throttling_and_unavailability_are_transient() {
        for status in [429, 503, 504] {
            assert!(error(status, "x", "y").is_transient(), "{status}");
        }
        assert!(!error(400, "Request_BadRequest", "Invalid value").is_transient());
        assert!(!error(403, "Authorization_RequestDenied", "no").is_transient());
    }

    #[test]
    fn not_yet_replicated_group_is_transient() {
        let err = error(
            400,
            "Request_BadRequest",
            "The source resource object or one of the objects being referenced do not exist.",
        );
        assert!(err.is_transient());
        assert!(!err.is_not_found());
    }

    #[test]
    fn not_found_is_404_only() {
        assert!(
            error(
                404,
                "Request_ResourceNotFound",
                "Resource 'x' does not exist"
            )
            .is_not_found()
        );
        assert!(!error(400, "Request_BadRequest", "x").is_not_found());
        assert!(!GraphError::DeltaExpired.is_not_found());
    }

    #[test]
    fn transport_failures_are_transient_and_config_is_not() {
        let transport = GraphError::Transport {
            request: "GET /v1.0/users".to_owned(),
            reason: "connection closed".to_owned(),
        };
        assert!(transport.is_transient());
        let config = GraphError::Config {
            key: "endpoint".to_owned(),
            message: "m".to_owned(),
        };
        assert!(!config.is_transient());
    }

    #[test]
    fn sign_in_failure_is_transient_only_without_an_answer_or_on_5xx() {
        let sign_in = |status| GraphError::SignIn {
            token_url: "https://login.microsoftonline.com/t/oauth2/v2.0/token".to_owned(),
            status,
            reason: "r".to_owned(),
            next_step: "n".to_owned(),
        };
        assert!(sign_in(None).is_transient());
        assert!(sign_in(Some(503)).is_transient());
        assert!(!sign_in(Some(401)).is_transient());
    }

    #[test]
    fn reply_phrases_are_matched_on_status_code_and_phrase() {
        let already = json!({"error": {"code": "Request_BadRequest", "message": "One or more added object references already exist for the following modified properties: 'members'."}});
        assert!(is_already_member(400, &already));
        assert!(!is_already_member(404, &already));
        let taken = json!({"error": {"code": "Request_BadRequest", "message": "Another object with the same value for property mailNickname already exists."}});
        assert!(is_nickname_taken(400, &taken));
        assert!(!is_already_member(400, &taken));
        assert!(is_delta_expired(410, &json!(null)));
        assert!(is_delta_expired(
            400,
            &json!({"error": {"code": "resyncRequired", "message": ""}})
        ));
        assert!(!is_delta_expired(400, &already));
    }

    #[test]
    fn a_status_error_reads_back_from_its_text() {
        for err in [
            error(
                404,
                "Request_ResourceNotFound",
                "Resource 'u' does not exist: really",
            ),
            error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges",
            ),
            GraphError::from_reply("GET /v1.0/users".to_owned(), 502, &json!(null)),
        ] {
            let parsed = GraphError::parse_status(&err.to_string()).unwrap();
            assert_eq!(parsed.to_string(), err.to_string());
            let (
                GraphError::Status { code, message, .. },
                GraphError::Status {
                    code: c,
                    message: m,
                    ..
                },
            ) = (&parsed, &err)
            else {
                panic!("{parsed:?}");
            };
            assert_eq!((code, message), (c, m));
        }
        let transport = GraphError::Transport {
            request: "GET /v1.0/users".to_owned(),
            reason: "connection closed".to_owned(),
        };
        assert!(GraphError::parse_status(&transport.to_string()).is_none());
        assert!(GraphError::parse_status("the group of list `x` could not be created").is_none());
    }

    #[test]
    fn messages_name_the_request_and_never_more_than_a_short_body() {
        let err = GraphError::from_reply(
            "GET /v1.0/groups".to_owned(),
            502,
            &json!({"unexpected": "x".repeat(1_000)}),
        );
        let text = err.to_string();
        assert!(
            text.starts_with("GET /v1.0/groups: Microsoft Graph answered 502"),
            "{text}"
        );
        assert!(text.len() < 500, "{text}");
        let denied = error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges",
        );
        assert!(denied.to_string().contains("GroupMember.ReadWrite.All"));
    }
}
