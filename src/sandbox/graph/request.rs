//! What a Graph handler reads (query options, body, where links point) and what it answers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::sandbox::error::GraphError;

/// Most items a page may hold (`$top`), and how many it holds by default.
pub const MAX_PAGE: usize = 999;
const DEFAULT_PAGE: usize = 100;

/// Query options, decoded the way graph-rs-sdk encodes them (`%24select`, `+` for space).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes a raw query string as `application/x-www-form-urlencoded`.
    pub fn parse(raw: Option<&str>) -> Self {
        Self {
            pairs: raw
                .map(|raw| {
                    form_urlencoded::parse(raw.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of an option; names compare without case (`$skipToken` = `$skiptoken`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `$select` as a list of property names.
    pub fn select(&self) -> Option<Vec<String>> {
        self.get("$select").map(|s| {
            s.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
    }

    /// `$top`, checked against Graph's 1..=999 range.
    pub fn top(&self) -> Result<usize, GraphError> {
        match self.get("$top") {
            None => Ok(DEFAULT_PAGE),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(top) if (1..=MAX_PAGE).contains(&top) => Ok(top),
                _ => Err(GraphError::bad_request(format!(
                    "Invalid page size specified: '{raw}'. Must be between 1 and {MAX_PAGE} inclusive."
                ))),
            },
        }
    }

    /// The query again, without the named options, for building the next link.
    pub fn without(&self, names: &[&str]) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(key, _)| !names.iter().any(|n| key.eq_ignore_ascii_case(n)))
            .cloned()
            .collect()
    }
}

/// Where the request came in, so that links point back at the same host and prefix.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `http://host:port` plus `/v1.0` when the request had that prefix.
    pub base: String,
}

impl Origin {
    /// An absolute link to `path` with the given query pairs, form-encoded.
    pub fn link(&self, path: &str, pairs: &[(String, String)]) -> String {
        let mut link = format!("{}{path}", self.base);
        if !pairs.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            link.push('?');
            link.push_str(&query);
        }
        link
    }
}

/// The `@odata.context` value for an entity set, as Graph prints it.
pub fn context(set: &str) -> String {
    format!("https://graph.microsoft.com/v1.0/$metadata#{set}")
}

/// A request as a handler sees it, whether it came alone or inside a batch.
#[derive(Debug)]
pub struct Input<'a> {
    /// The decoded query options.
    pub query: Query,
    /// The body, when there is one.
    pub body: Option<&'a Value>,
    /// Where links point.
    pub origin: &'a Origin,
    /// `ConsistencyLevel: eventual` was sent (an advanced query).
    pub eventual: bool,
    /// The application permissions the request's token carries.
    pub roles: &'a [String],
}

impl Input<'_> {
    /// The JSON object body, or the 400 Graph gives for a missing or malformed one.
    pub fn object(&self) -> Result<&serde_json::Map<String, Value>, GraphError> {
        self.body.and_then(Value::as_object).ok_or_else(|| {
            GraphError::new(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )
        })
    }
}

/// A reply's JSON body: built as a value, or (for hot paths) already serialized.
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// A JSON value.
    Json(Value),
    /// Serialized JSON text.
    Raw(Vec<u8>),
}

impl ReplyBody {
    /// The body as bytes on the wire.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            ReplyBody::Json(value) => value.to_string().into_bytes(),
            ReplyBody::Raw(bytes) => bytes,
        }
    }

    /// The body as a value, for embedding in a `$batch` reply.
    pub fn into_value(self) -> Value {
        match self {
            ReplyBody::Json(value) => value,
            ReplyBody::Raw(bytes) => {
                serde_json::from_slice(&bytes).expect("a raw body is JSON the sandbox wrote")
            }
        }
    }
}

/// A handler's answer: status, extra headers, body, and the writes it accepted.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers beyond the standard ones.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body (none for 204).
    pub body: Option<ReplyBody>,
    /// Accepted write operations (each member bound counts one).
    pub writes: u64,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: Some(ReplyBody::Json(body)),
            writes: 0,
        }
    }

    /// 200 with a body already serialized as JSON.
    pub fn ok_raw(json: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: Some(ReplyBody::Raw(json)),
            writes: 0,
        }
    }

    /// 201 with a JSON body and the number of accepted writes.
    pub fn created(body: Value, writes: u64) -> Self {
        Self {
            status: 201,
            headers: Vec::new(),
            body: Some(ReplyBody::Json(body)),
            writes,
        }
    }

    /// 204 after `writes` accepted write operations.
    pub fn no_content(writes: u64) -> Self {
        Self {
            status: 204,
            headers: Vec::new(),
            body: None,
            writes,
        }
    }

    /// A Graph error reply with its `innerError` block.
    pub fn error(error: &GraphError) -> Self {
        let request_id = uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string();
        Self {
            status: error.status,
            headers: vec![
                ("request-id", request_id.clone()),
                ("client-request-id", request_id.clone()),
            ],
            body: Some(ReplyBody::Json(json!({
                "error": {
                    "code": error.code,
                    "message": error.message,
                    "innerError": {
                        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                        "request-id": request_id,
                        "client-request-id": request_id,
                    }
                }
            }))),
            writes: 0,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<GraphError> for Reply {
    fn from(error: GraphError) -> Self {
        Reply::error(&error)
    }
}

/// Turns a handler result into a reply.
pub fn reply(result: Result<Reply, GraphError>) -> Reply {
    result.unwrap_or_else(|e| Reply::error(&e))
}

/// Encodes a page cursor as an opaque token.
pub fn encode_token(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor)
}

/// Decodes an opaque token back into its cursor and fields; `None` if it is not one of ours.
pub fn decode_token(token: &str, kind: &str) -> Option<Vec<String>> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut fields = text.split(':');
    (fields.next()? == kind).then(|| fields.map(str::to_owned).collect())
}

/// One clause of a `$filter`: `property eq 'value'` or `property in ('a','b')`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The property, as written.
    pub property: String,
    /// The values compared against (one for `eq`).
    pub values: Vec<String>,
}

/// Parses the `$filter` forms the sandbox serves: `p eq 'v'`, `p in ('a','b')`, and clauses
/// joined by `or`. Anything else is the 400 Graph gives for an unsupported query.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, GraphError> {
    let unsupported = || GraphError::unsupported_query(format!("Unsupported Query: '{filter}'."));
    let mut clauses = Vec::new();
    let mut rest = filter.trim();
    loop {
        let (property, after) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(unsupported)?;
        let after = after.trim_start();
        let (operator, after) = after
            .split_once(char::is_whitespace)
            .ok_or_else(unsupported)?;
        let after = after.trim_start();
        let (values, after) = match operator.to_ascii_lowercase().as_str() {
            "eq" => {
                let (value, after) = string_literal(after).ok_or_else(unsupported)?;
                (vec![value], after)
            }
            "in" => {
                let mut after = after
                    .strip_prefix('(')
                    .ok_or_else(unsupported)?
                    .trim_start();
                let mut values = Vec::new();
                loop {
                    let (value, next) = string_literal(after).ok_or_else(unsupported)?;
                    values.push(value);
                    let next = next.trim_start();
                    if let Some(next) = next.strip_prefix(',') {
                        after = next.trim_start();
                    } else {
                        after = next.strip_prefix(')').ok_or_else(unsupported)?;
                        break;
                    }
                }
                (values, after)
            }
            _ => return Err(unsupported()),
        };
        clauses.push(Clause {
            property: property.to_owned(),
            values,
        });
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(clauses);
        }
        let (joiner, next) = after
            .split_once(char::is_whitespace)
            .ok_or_else(unsupported)?;
        if !joiner.eq_ignore_ascii_case("or") {
            return Err(unsupported());
        }
        rest = next.trim_start();
    }
}

/// A single-quoted OData string (`''` is a quote) and what follows it.
pub(super) fn string_literal(input: &str) -> Option<(String, &str)> {
    let mut chars = input.strip_prefix('\'')?.char_indices().peekable();
    let body = &input[1..];
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                chars.next();
                value.push('\'');
            } else {
                return Some((value, &body[i + 1..]));
            }
        } else {
            value.push(c);
        }
    }
    None
}

/// The JSON view of selected properties: all of `props` when nothing is selected, else the
/// selected ones; a selected property the type does not have is Graph's 400.
pub fn project(
    props: Vec<(&'static str, Value)>,
    optional: &[(&'static str, Value)],
    select: Option<&[String]>,
    type_name: &str,
) -> Result<serde_json::Map<String, Value>, GraphError> {
    let mut object = serde_json::Map::new();
    match select {
        None => {
            for (name, value) in props {
                object.insert(name.to_owned(), value);
            }
        }
        Some(select) => {
            for wanted in select {
                let found = props
                    .iter()
                    .chain(optional.iter())
                    .find(|(name, _)| name.eq_ignore_ascii_case(wanted));
                match found {
                    Some((name, value)) => {
                        object.insert((*name).to_owned(), value.clone());
                    }
                    None => {
                        return Err(GraphError::bad_request(format!(
                            "Could not find a property named '{wanted}' on type 'microsoft.graph.{type_name}'."
                        )));
                    }
                }
            }
        }
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoded_options_decode() {
        let query = Query::parse(Some(
            "%24select=id%2CuserPrincipalName&%24filter=mail+eq+%27a%27",
        ));
        assert_eq!(
            query.select(),
            Some(vec!["id".to_owned(), "userPrincipalName".to_owned()])
        );
        assert_eq!(query.get("$filter"), Some("mail eq 'a'"));
    }

    #[test]
    fn option_names_ignore_case() {
        let query = Query::parse(Some("$skipToken=abc"));
        assert_eq!(query.get("$skiptoken"), Some("abc"));
    }

    #[test]
    fn top_beyond_999_is_refused() {
        assert!(Query::parse(Some("$top=1000")).top().is_err());
        assert_eq!(Query::parse(Some("$top=999")).top().unwrap(), 999);
    }

    #[test]
    fn filter_forms_parse() {
        assert_eq!(
            parse_filter("mailNickname eq 'o''brien'").unwrap(),
            vec![Clause {
                property: "mailNickname".to_owned(),
                values: vec!["o'brien".to_owned()]
            }]
        );
        assert_eq!(
            parse_filter("userPrincipalName in ('a', 'b')").unwrap()[0].values,
            vec!["a", "b"]
        );
        assert_eq!(parse_filter("id eq 'a' or id eq 'b'").unwrap().len(), 2);
        assert!(parse_filter("startswith(displayName,'a')").is_err());
        assert!(parse_filter("id eq 'a' and id eq 'b'").is_err());
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let token = encode_token("m:3:17");
        assert_eq!(
            decode_token(&token, "m"),
            Some(vec!["3".to_owned(), "17".to_owned()])
        );
        assert_eq!(decode_token(&token, "g"), None);
        assert_eq!(decode_token("%%%", "m"), None);
    }
}
