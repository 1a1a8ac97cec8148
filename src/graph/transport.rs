//! The one place requests leave rollcall: bounded concurrency, the throttle gate, the bearer
//! token, graph-rs-sdk, and the retry loop around them.
//!
//! Every request is a method, an absolute URL on the endpoint and an optional JSON body. URLs
//! are built here rather than through graph-rs-sdk's typed builders because the same request
//! goes either alone or inside a `$batch` (which needs it relative), and paging follows the
//! absolute links Graph returns; graph-rs-sdk carries each request (`custom` with the URL
//! set), adding the bearer token and enforcing https off loopback.

use std::time::{Duration, Instant, SystemTime};

use graph_rs_sdk::GraphFailure;
use graph_rs_sdk::http::{BodyRead, Method};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::auth::SignIn;
use super::counters::Counters;
use super::error::{GraphError, describe};
use super::retry::{Attempts, Fault, RetryPolicy, Throttle, parse_retry_after};

/// One Graph request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The HTTP method.
    pub(crate) method: Method,
    /// The absolute URL, on the endpoint.
    pub(crate) url: Url,
    /// The JSON body, if any.
    pub(crate) body: Option<Value>,
    /// Sent with `ConsistencyLevel: eventual` (an advanced query; its next pages too).
    pub(crate) eventual: bool,
}

impl Request {
    /// A GET.
    pub(crate) fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
            eventual: false,
        }
    }

    /// A request with a JSON body.
    pub(crate) fn with_body(method: Method, url: Url, body: Value) -> Self {
        Self {
            method,
            url,
            body: Some(body),
            eventual: false,
        }
    }

    /// The same request as an advanced query (`ConsistencyLevel: eventual`).
    pub(crate) fn eventual(self) -> Self {
        Self {
            eventual: true,
            ..self
        }
    }

    /// `METHOD /path` for messages and logs: never the token, and never the query (skip
    /// tokens are long, and filters may name people).
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }

    /// The URL relative to the endpoint, as a `$batch` entry names it.
    pub(crate) fn relative_url(&self, endpoint: &Url) -> String {
        let base = endpoint.path().trim_end_matches('/');
        let path = self.url.path();
        let path = path.strip_prefix(base).unwrap_or(path);
        match self.url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        }
    }

    fn is_batch(&self) -> bool {
        self.url.path().ends_with("/$batch")
    }
}

/// An answer from Graph: its status, `Retry-After`, load and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The `Retry-After` header, read.
    pub(crate) retry_after: Option<Duration>,
    /// `x-ms-throttle-limit-percentage`: how full the tightest throttling bucket is, sent
    /// only from 80 %.
    pub(crate) load: Option<u32>,
    /// The body.
    pub(crate) body: Value,
}

impl Reply {
    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// This reply as an error of `request`.
    pub(crate) fn error(&self, request: &Request) -> GraphError {
        GraphError::from_reply(request.describe(), self.status, &self.body)
    }
}

/// How one attempt ended.
enum Attempt {
    /// Graph answered (any status).
    Reply { reply: Reply, generation: u64 },
    /// No answer: worth another try if the request may be repeated.
    NoReply(GraphError),
    /// Not sent, or not worth another try (signing in failed, the request cannot be built).
    Failed(GraphError),
}

/// Sends requests: bounded concurrency, the shared throttle, retries, token renewal.
#[derive(Debug)]
pub(crate) struct Transport {
    sign_in: SignIn,
    /// The retry policy every request follows.
    pub(crate) policy: RetryPolicy,
    /// The gate, window and pace shared by every request.
    pub(crate) throttle: Throttle,
    /// What was sent.
    pub(crate) counters: Counters,
    permits: Semaphore,
    max_concurrency: usize,
}

impl Transport {
    /// A transport for this sign-in, with `max_concurrency` requests in flight at most.
    pub(crate) fn new(sign_in: SignIn, policy: RetryPolicy, max_concurrency: usize) -> Self {
        Self {
            sign_in,
            policy,
            throttle: Throttle::default(),
            counters: Counters::default(),
            permits: Semaphore::new(max_concurrency.max(1)),
            max_concurrency: max_concurrency.max(1),
        }
    }

    /// Most requests in flight at once.
    pub(crate) fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Signs in now, so that bad credentials fail before any work starts.
    pub(crate) async fn sign_in(&self) -> Result<(), GraphError> {
        self.sign_in
            .session(&self.policy, &self.counters)
            .await
            .map(drop)
    }

    /// The current token's `roles` claim (signing in first if need be); `None` when the
    /// token does not say.
    pub(crate) async fn roles(&self) -> Result<Option<Vec<String>>, GraphError> {
        let session = self.sign_in.session(&self.policy, &self.counters).await?;
        Ok(session.roles.clone())
    }

    /// Graph's base URL.
    pub(crate) fn endpoint(&self) -> &Url {
        self.sign_in.endpoint()
    }

    /// `{endpoint}/{segments…}?{query}`, each segment and pair encoded.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.endpoint().clone();
        url.path_segments_mut()
            .expect("endpoint URLs are http(s) and have a path")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A link Graph returned (`@odata.nextLink`, `@odata.deltaLink`), followed as given but
    /// only on the endpoint's own scheme, host and port: the bearer token goes with it.
    pub(crate) fn link(&self, link: &str) -> Option<Url> {
        let url = Url::parse(link).ok()?;
        let endpoint = self.endpoint();
        (url.scheme() == endpoint.scheme()
            && url.host() == endpoint.host()
            && url.port_or_known_default() == endpoint.port_or_known_default())
        .then_some(url)
    }

    /// Sends `request`, retrying throttling, 503/504 and lost connections as the policy
    /// allows. Any answer Graph gave comes back as a `Reply`; `Err` means no answer (or a
    /// sign-in failure).
    pub(crate) async fn send(&self, request: &Request) -> Result<Reply, GraphError> {
        self.send_with(request, true).await
    }

    /// Sends a request that must not be repeated when its outcome is unknown (a create): only
    /// answers that prove Graph did not act on it (429, 401) are retried; a lost connection
    /// or a 5xx comes back to the caller as it is.
    pub(crate) async fn send_once(&self, request: &Request) -> Result<Reply, GraphError> {
        self.send_with(request, false).await
    }

    async fn send_with(
        &self,
        request: &Request,
        repeat_unknown: bool,
    ) -> Result<Reply, GraphError> {
        let mut attempts = Attempts::start();
        let mut renewed = false;
        loop {
            let (outcome, fault) = match self.attempt(request).await {
                Attempt::Failed(error) => return Err(error),
                Attempt::NoReply(error) if repeat_unknown => (Err(error), Fault::NoReply),
                Attempt::NoReply(error) => return Err(error),
                Attempt::Reply { reply, generation } => match reply.status {
                    401 if !renewed => {
                        // An expired or revoked token: renew it once, then try again.
                        renewed = true;
                        self.sign_in
                            .renew(Some(generation), &self.policy, &self.counters)
                            .await?;
                        continue;
                    }
                    429 => {
                        let retry_after = reply.retry_after;
                        (Ok(reply), Fault::Throttled(retry_after))
                    }
                    503 | 504 if repeat_unknown => {
                        let retry_after = reply.retry_after;
                        (Ok(reply), Fault::Unavailable(retry_after))
                    }
                    _ => return Ok(reply),
                },
            };
            let Some(delay) = self.policy.next_delay(&mut attempts, fault) else {
                return outcome;
            };
            let failure = match &outcome {
                Ok(reply) => reply.status.to_string(),
                Err(error) => error.to_string(),
            };
            tracing::debug!(
                request = %request.describe(),
                failure = %failure,
                retries = attempts.retries(),
                delay_ms = delay.as_millis() as u64,
                "retrying a Graph request"
            );
            self.counters.retry();
            if matches!(fault, Fault::Throttled(_)) {
                self.throttle.close_for(delay);
            } else {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// One attempt: a permit, the gate, then the request through graph-rs-sdk. Throttling in
    /// the reply (outer or inside a batch) closes the gate before the permit is given back,
    /// so that no request waiting for a permit slips out before its `Retry-After`.
    async fn attempt(&self, request: &Request) -> Attempt {
        let session = match self.sign_in.session(&self.policy, &self.counters).await {
            Ok(session) => session,
            Err(error) => return Attempt::Failed(error),
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let held = Instant::now();
        self.throttle.wait_open().await;
        self.counters.waited(held.elapsed());
        self.counters.request();
        let body = request
            .body
            .as_ref()
            .map(|body| BodyRead::new(body.to_string()));
        let mut handler = session.sdk.custom(request.method.clone(), body);
        *handler.as_mut() = request.url.clone();
        if request.eventual {
            handler.headers_mut().insert(
                "ConsistencyLevel",
                reqwest::header::HeaderValue::from_static("eventual"),
            );
        }
        let no_reply = |reason: String| {
            self.counters.no_reply();
            Attempt::NoReply(GraphError::Transport {
                request: request.describe(),
                reason,
            })
        };
        let response = match handler.send().await {
            Ok(response) => response,
            Err(failure) => {
                return match failure {
                    GraphFailure::ReqwestError(e) if !e.is_builder() => no_reply(describe(&e)),
                    GraphFailure::Other(e) => match e.downcast_ref::<reqwest::Error>() {
                        Some(e) if e.is_builder() => Attempt::Failed(GraphError::Other(format!(
                            "{}: cannot build the request: {}",
                            request.describe(),
                            describe(e)
                        ))),
                        Some(e) => no_reply(describe(e)),
                        None => no_reply(e.to_string()),
                    },
                    other => Attempt::Failed(GraphError::Other(format!(
                        "{}: cannot send the request: {other}",
                        request.describe()
                    ))),
                };
            }
        };
        let status = response.status().as_u16();
        self.counters.status(status);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let load = response
            .headers()
            .get(LOAD_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_load);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return no_reply(format!("reply cut short: {}", describe(&e))),
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(body) => body,
                // A gateway's HTML error page: the status says enough.
                Err(_) if !(200..300).contains(&status) => Value::Null,
                Err(e) => {
                    return Attempt::Failed(GraphError::Other(format!(
                        "{}: the reply is not JSON ({e})",
                        request.describe()
                    )));
                }
            }
        };
        let reply = Reply {
            status,
            retry_after,
            load,
            body,
        };
        self.note_throttling(request, &reply);
        Attempt::Reply {
            reply,
            generation: session.generation,
        }
    }

    /// Counts 429s and closes the gate for their `Retry-After`, batch-inner ones included.
    fn note_throttling(&self, request: &Request, reply: &Reply) {
        let close = |retry_after: Option<Duration>| {
            self.counters.throttled();
            if let Some(wait) = retry_after {
                self.throttle.close_for(wait);
            }
        };
        if reply.status == 429 {
            close(reply.retry_after);
        }
        if request.is_batch() && reply.status == 200 {
            for inner in reply.body["responses"].as_array().into_iter().flatten() {
                if inner["status"].as_u64() == Some(429) {
                    close(inner_retry_after(inner));
                }
            }
        }
    }
}

/// The header Graph reports a throttling bucket's fill in, from 80 % (GRAPH.md).
const LOAD_HEADER: &str = "x-ms-throttle-limit-percentage";

/// Reads an `x-ms-throttle-limit-percentage` value (`87`, or `87.5` read as 87).
fn parse_load(value: &str) -> Option<u32> {
    let percent = value.trim().parse::<f64>().ok()?;
    (percent.is_finite() && percent >= 0.0).then(|| percent.min(1_000.0) as u32)
}

/// A header of a batch response's `headers` object (any case), as text.
fn inner_header(response: &Value, header: &str) -> Option<String> {
    response["headers"]
        .as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(header))
        .and_then(|(_, value)| match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// The `Retry-After` in a batch response's `headers` object (any case).
pub(crate) fn inner_retry_after(response: &Value) -> Option<Duration> {
    parse_retry_after(&inner_header(response, "retry-after")?, SystemTime::now())
}

/// The `x-ms-throttle-limit-percentage` in a batch response's `headers` object (any case).
pub(crate) fn inner_load(response: &Value) -> Option<u32> {
    parse_load(&inner_header(response, LOAD_HEADER)?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn batch_urls_are_relative_to_the_endpoint_version() {
        let endpoint = Url::parse("https://graph.microsoft.com/v1.0").unwrap();
        let request = Request::get(
            Url::parse("https://graph.microsoft.com/v1.0/groups/g/members/microsoft.graph.user?%24select=id&%24top=999")
                .unwrap(),
        );
        assert_eq!(
            request.relative_url(&endpoint),
            "/groups/g/members/microsoft.graph.user?%24select=id&%24top=999"
        );
        assert_eq!(
            request.describe(),
            "GET /v1.0/groups/g/members/microsoft.graph.user"
        );
    }

    #[test]
    fn inner_retry_after_is_read_in_any_case_and_form() {
        assert_eq!(
            inner_retry_after(&json!({"headers": {"Retry-After": "2.128"}})),
            Some(Duration::from_millis(2_128))
        );
        assert_eq!(
            inner_retry_after(&json!({"headers": {"retry-after": 3}})),
            Some(Duration::from_secs(3))
        );
        assert_eq!(inner_retry_after(&json!({"status": 429})), None);
    }

    #[test]
    fn load_is_read_from_inner_headers_in_any_case_and_form() {
        assert_eq!(
            inner_load(&json!({"headers": {"x-ms-throttle-limit-percentage": "87"}})),
            Some(87)
        );
        assert_eq!(
            inner_load(&json!({"headers": {"X-MS-Throttle-Limit-Percentage": 93.5}})),
            Some(93)
        );
        assert_eq!(inner_load(&json!({"headers": {"Retry-After": "1"}})), None);
        assert_eq!(parse_load("-3"), None);
        assert_eq!(parse_load("lots"), None);
    }
}
