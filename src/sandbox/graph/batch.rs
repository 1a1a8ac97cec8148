//! `POST /$batch`: up to 20 requests, each gated, throttled and answered on its own.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::request::{Input, Query, Reply};
use super::route::Route;
use super::{Outcome, Tenant};
use crate::sandbox::error::GraphError;
use crate::sandbox::stats::count;

/// Most requests one batch may carry.
const MAX_REQUESTS: usize = 20;

fn invalid(message: impl Into<String>) -> Reply {
    GraphError::new(400, "BadRequest", message).into()
}

/// One parsed inner request.
struct Inner<'a> {
    id: &'a str,
    method: String,
    url: &'a str,
    body: Option<&'a Value>,
    depends_on: Vec<&'a str>,
    /// `ConsistencyLevel: eventual` among the inner request's headers.
    eventual: bool,
}

fn parse(body: Option<&Value>) -> Result<Vec<Inner<'_>>, Reply> {
    let requests = body
        .and_then(|b| b.get("requests"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Invalid batch payload format: a 'requests' array is required."))?;
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(format!(
            "The batch has {} requests; a batch may contain at most {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut ids = HashSet::new();
    let mut parsed = Vec::with_capacity(requests.len());
    for request in requests {
        let id = request
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| invalid("Every batch request needs a non-empty string 'id'."))?;
        if !ids.insert(id) {
            return Err(invalid(format!(
                "Batch request ids must be unique; '{id}' appears more than once."
            )));
        }
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Batch request '{id}' has no 'method'.")))?
            .to_ascii_uppercase();
        let url = request
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Batch request '{id}' has no 'url'.")))?;
        let body = request.get("body").filter(|b| !b.is_null());
        let headers = request.get("headers").and_then(Value::as_object);
        let has_content_type =
            headers.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
        let eventual = headers.is_some_and(|h| {
            h.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("consistencylevel")
                    && v.as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
            })
        });
        if body.is_some() && !has_content_type {
            return Err(invalid(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        let depends_on = request
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parsed.push(Inner {
            id,
            method,
            url,
            body,
            depends_on,
            eventual,
        });
    }
    Ok(parsed)
}

/// Runs a batch; `None` means the connection must be dropped (the sandbox was told to stop
/// answering after N writes, and this batch reached N part way through).
pub fn run(tenant: &Tenant, input: &Input<'_>) -> Option<Reply> {
    let requests = match parse(input.body) {
        Ok(requests) => requests,
        Err(reply) => return Some(reply),
    };
    let mut statuses: HashMap<&str, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(requests.len());
    let mut carried_writes = false;
    for request in &requests {
        if tenant.interrupted() {
            return None;
        }
        let (template, reply, write) = answer(tenant, input, request, &statuses);
        if write && !carried_writes {
            carried_writes = true;
            tenant.stats.update(|s| s.write_round_trips += 1);
        }
        tenant.stats.update(|s| {
            s.batch_inner += 1;
            count(&mut s.batch_inner_by_route, &template, reply.status);
        });
        statuses.insert(request.id, reply.status);
        let mut headers = Map::new();
        if reply.body.is_some() {
            headers.insert("Content-Type".to_owned(), json!("application/json"));
        }
        for (name, value) in &reply.headers {
            headers.insert((*name).to_owned(), json!(value));
        }
        let mut response = json!({"id": request.id, "status": reply.status, "headers": headers});
        if let Some(body) = reply.body {
            response["body"] = body.into_value();
        }
        responses.push(response);
    }
    // Graph answers in any order; shuffling makes clients that assume request order fail here.
    let order = tenant
        .dice
        .lock()
        .expect("dice lock")
        .shuffled(responses.len());
    let mut slots: Vec<Option<Value>> = responses.into_iter().map(Some).collect();
    let shuffled: Vec<Value> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Some(Reply::ok(json!({ "responses": shuffled })))
}

fn answer(
    tenant: &Tenant,
    outer: &Input<'_>,
    request: &Inner<'_>,
    statuses: &HashMap<&str, u16>,
) -> (String, Reply, bool) {
    let unmatched = format!("{} (unmatched)", request.method);
    if request
        .depends_on
        .iter()
        .any(|d| statuses.get(d).is_none_or(|&status| status >= 400))
    {
        let reply = GraphError::new(
            424,
            "FailedDependency",
            "The request depends on a request that failed or was not run.",
        )
        .into();
        return (unmatched, reply, false);
    }
    if request.url.starts_with("http://") || request.url.starts_with("https://") {
        return (
            unmatched,
            invalid("Batch request URLs must be relative to the Graph version, e.g. /groups/{id}."),
            false,
        );
    }
    let relative = format!("/{}", request.url.trim_start_matches('/'));
    let (path, query) = match relative.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (relative.as_str(), None),
    };
    let route = match Route::parse(&request.method, path) {
        Ok(route) => route,
        Err(error) => return (unmatched, error.into(), false),
    };
    let input = Input {
        query: Query::parse(query),
        body: request.body,
        origin: outer.origin,
        eventual: request.eventual,
        roles: outer.roles,
    };
    let reply = match tenant.evaluate(&route, &input, false) {
        Outcome::Reply(reply) => reply,
        // Inner requests roll no drops; a drop here would mean the dice changed their rules.
        Outcome::Drop => GraphError::new(503, "serviceNotAvailable", "Service unavailable.").into(),
    };
    (route.template().to_owned(), reply, route.is_write())
}
