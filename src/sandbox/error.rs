//! Graph error replies: status, code and message, with the exact phrases GRAPH.md records.

/// A Graph error, rendered as `{"error":{"code","message","innerError":{…}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The HTTP status.
    pub status: u16,
    /// The Graph error code, e.g. `Request_ResourceNotFound`.
    pub code: &'static str,
    /// The human message.
    pub message: String,
}

impl GraphError {
    /// An error with any status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `Request_BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Request_BadRequest", message)
    }

    /// 400 `Request_UnsupportedQuery`.
    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(400, "Request_UnsupportedQuery", message)
    }

    /// 404 `Request_ResourceNotFound` naming the object that is missing.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// 400 for adding a member that is already there.
    pub fn already_member() -> Self {
        Self::bad_request(
            "One or more added object references already exist for the following modified properties: 'members'.",
        )
    }

    /// 400 for member changes on a mail-enabled security group or distribution list.
    pub fn read_only_group() -> Self {
        Self::bad_request("Cannot Update a mail-enabled security groups and or distribution list.")
    }

    /// 400 for a property with an invalid value.
    pub fn invalid_property(property: &str) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource 'Group'."
        ))
    }

    /// 400 for a skip or delta token that does not decode.
    pub fn bad_page_token() -> Self {
        Self::new(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    }

    /// 400 for a route the sandbox (and Graph) does not serve.
    pub fn unknown_segment(segment: &str) -> Self {
        Self::new(
            400,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 405 for a known route with the wrong method.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "Request_BadRequest",
            format!("Specified HTTP method is not allowed for the request target: '{method}'."),
        )
    }
}
