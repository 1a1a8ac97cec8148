//! rollcall's own paging loop: every page retried on its own, links followed as given, and a
//! listing that ends early an error, never "fewer items" (GRAPH.md, graph-rs-sdk section).

use serde_json::Value;

use super::error::{GraphError, is_delta_expired};
use super::transport::{Reply, Request, Transport};

/// The largest page Graph serves (`$top`).
pub(crate) const MAX_PAGE: &str = "999";

/// Reads every page after `first` (whose reply is already in hand), handing each page's
/// items to `take`; returns the round's `@odata.deltaLink`, if the listing has one.
pub(crate) async fn follow(
    transport: &Transport,
    first: Request,
    reply: Reply,
    mut take: impl FnMut(Vec<Value>) -> Result<(), GraphError>,
) -> Result<Option<String>, GraphError> {
    let mut request = first;
    let mut reply = reply;
    loop {
        let Page { items, next, delta } = page(transport, &request, reply)?;
        take(items)?;
        match next {
            None => return Ok(delta),
            Some(next) => {
                request = next;
                reply = transport.send(&request).await?;
            }
        }
    }
}

/// Every item of a listing, from its first request.
pub(crate) async fn list_all(
    transport: &Transport,
    first: Request,
) -> Result<Vec<Value>, GraphError> {
    let reply = transport.send(&first).await?;
    let mut all = Vec::new();
    follow(transport, first, reply, |items| {
        all.extend(items);
        Ok(())
    })
    .await?;
    Ok(all)
}

/// One page of a listing.
struct Page {
    /// Its items.
    items: Vec<Value>,
    /// The request for the next page.
    next: Option<Request>,
    /// The link for the next delta round, on a delta listing's last page.
    delta: Option<String>,
}

/// Reads one page's reply.
fn page(transport: &Transport, request: &Request, mut reply: Reply) -> Result<Page, GraphError> {
    if is_delta(request) && is_delta_expired(reply.status, &reply.body) {
        tracing::warn!(
            request = %request.describe(),
            status = reply.status,
            code = reply.body["error"]["code"].as_str().unwrap_or_default(),
            "Microsoft Graph no longer knows the delta link (expired or unknown); reading in full instead"
        );
        return Err(GraphError::DeltaExpired);
    }
    if !reply.is_success() {
        return Err(reply.error(request));
    }
    let Value::Array(items) = reply.body["value"].take() else {
        return Err(GraphError::Other(format!(
            "{}: a page without a `value` array; the listing is incomplete, so nothing is \
             concluded from it",
            request.describe()
        )));
    };
    let next = match reply.body["@odata.nextLink"].as_str() {
        None => None,
        Some(link) => {
            let next = Request::get(transport.link(link).ok_or_else(|| {
                GraphError::Other(format!(
                    "{}: the next-page link does not point at `graph.endpoint`; rollcall does \
                     not send its token elsewhere",
                    request.describe()
                ))
            })?);
            // An advanced query's next pages are advanced queries too.
            Some(if request.eventual {
                next.eventual()
            } else {
                next
            })
        }
    };
    let delta = reply.body["@odata.deltaLink"].as_str().map(str::to_owned);
    Ok(Page { items, next, delta })
}

fn is_delta(request: &Request) -> bool {
    let path = request.url.path();
    path.ends_with("/delta") || path.ends_with("/delta()")
}
