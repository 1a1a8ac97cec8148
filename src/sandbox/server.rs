//! The HTTP listener: one hyper connection per task, so that a fault can close a connection
//! without writing a reply (axum's own `serve` always answers).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::graph::{IncomingRequest, Outcome, Reply, Tenant};

/// Largest request body the sandbox reads (a full batch of extensions is far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Returned to hyper to make it close the connection without a reply.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the sandbox's fault injection")]
struct Dropped;

/// Accepts connections until `shutdown` turns true; each connection also stops then.
pub async fn serve(
    listener: TcpListener,
    tenant: Arc<Tenant>,
    admin: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "sandbox: accepting a connection failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let local = stream.local_addr().ok();
        let tenant = tenant.clone();
        let admin = admin.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let tenant = tenant.clone();
                let admin = admin.clone();
                async move { handle(&tenant, admin, local, request).await }
            });
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(
    tenant: &Tenant,
    admin: Router,
    local: Option<SocketAddr>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    if request.uri().path().starts_with("/_sandbox/") {
        let response: Result<_, Infallible> = admin.oneshot(request.map(Body::new)).await;
        return Ok(response.unwrap_or_else(|never| match never {}));
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let mut response = Response::new(Body::from("request body unreadable or too large"));
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let incoming = IncomingRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        host,
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        eventual: parts
            .headers
            .get("consistencylevel")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        body,
    };
    match tenant.serve(incoming).await {
        Outcome::Reply(reply) => Ok(into_response(reply)),
        Outcome::Drop => Err(Dropped),
    }
}

fn into_response(reply: Reply) -> Response<Body> {
    let mut response = match reply.body {
        Some(body) => {
            let mut response = Response::new(Body::from(body.into_bytes()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        None => Response::new(Body::empty()),
    };
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // From the thread-local generator: uuid's own v4 asks the kernel for every id.
    let request_id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value.clone());
        headers.insert("client-request-id", value);
    }
    // An error reply carries its own ids (the same as in its innerError); they replace these.
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
