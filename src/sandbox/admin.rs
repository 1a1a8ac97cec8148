//! Admin endpoints under `/_sandbox/`: seed, state, stats, fault knobs, delta expiry, the
//! app's certificate and federated credentials, and its granted permissions.
//!
//! They need no token and are never throttled or faulted: tests and benchmarks steer the
//! tenant through them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::directory::Directory;
use super::graph::Tenant;
use super::seed::Seed;

/// The largest seed `POST /_sandbox/seed` reads. Every other admin endpoint keeps axum's
/// 2 MB; a seed is the whole directory: the large university's (40,000 students) is 10.5 MB,
/// 14.5 MB with `--drift`, so the biggest `rollcall generate --students 2000000` comes to
/// about 0.75 GB by the same measure.
pub const SEED_BODY_LIMIT: usize = 1024 * 1024 * 1024;

/// The admin router, sharing the tenant with the Graph surface.
pub fn router(tenant: Arc<Tenant>) -> Router {
    Router::new()
        .route(
            "/_sandbox/seed",
            post(seed).layer(DefaultBodyLimit::max(SEED_BODY_LIMIT)),
        )
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/stats/reset", post(reset_stats))
        .route("/_sandbox/faults", get(faults).put(set_faults))
        .route("/_sandbox/delta/expire", post(expire_delta))
        .route("/_sandbox/client-certs", post(add_client_cert))
        .route("/_sandbox/federated-credentials", post(add_federated))
        .route("/_sandbox/roles", get(roles).put(set_roles))
        .fallback(unknown)
        .with_state(tenant)
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn seed(State(tenant): State<Arc<Tenant>>, body: Bytes) -> Response {
    let seed: Seed = match serde_json::from_slice(&body) {
        Ok(seed) => seed,
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("invalid seed JSON: {e}")),
    };
    match Directory::from_seed(&seed) {
        Ok(directory) => {
            let counts = json!({
                "users": directory.user_count(),
                "groups": directory.group_count(),
            });
            tenant.replace_directory(directory);
            axum::Json(counts).into_response()
        }
        Err(e) => refused(StatusCode::BAD_REQUEST, format!("invalid seed: {e}")),
    }
}

async fn state(State(tenant): State<Arc<Tenant>>) -> axum::Json<Seed> {
    axum::Json(tenant.directory().to_seed())
}

async fn stats(State(tenant): State<Arc<Tenant>>) -> axum::Json<Value> {
    axum::Json(tenant.stats_json())
}

async fn reset_stats(State(tenant): State<Arc<Tenant>>) -> StatusCode {
    tenant.stats.reset();
    StatusCode::NO_CONTENT
}

/// `GET /_sandbox/roles`: the application permissions new tokens carry.
async fn roles(State(tenant): State<Arc<Tenant>>) -> Response {
    axum::Json(json!({ "roles": tenant.roles() })).into_response()
}

/// `PUT /_sandbox/roles` `{"roles": [...]}`: what new tokens carry from now on (a consent
/// change: tokens already issued keep theirs).
async fn set_roles(State(tenant): State<Arc<Tenant>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Roles {
        roles: Vec<String>,
    }
    match serde_json::from_slice::<Roles>(&body) {
        Ok(Roles { roles }) => {
            tenant.set_roles(roles);
            axum::Json(json!({ "roles": tenant.roles() })).into_response()
        }
        Err(e) => refused(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"roles\": [\"Group.ReadWrite.All\", …]}}: {e}"),
        ),
    }
}

async fn faults(State(tenant): State<Arc<Tenant>>) -> Response {
    axum::Json(tenant.faults()).into_response()
}

async fn set_faults(State(tenant): State<Arc<Tenant>>, body: Bytes) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    match tenant.faults().merged(&patch) {
        Ok(faults) => {
            tenant.set_faults(faults.clone());
            axum::Json(faults).into_response()
        }
        Err(e) => refused(StatusCode::BAD_REQUEST, e.0),
    }
}

/// `POST /_sandbox/client-certs` with a PEM certificate: registers it on the app.
async fn add_client_cert(State(tenant): State<Arc<Tenant>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match tenant.registrations.add_certificate(&text) {
        Ok(described) => (StatusCode::CREATED, axum::Json(described)).into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, format!("invalid certificate: {e}")),
    }
}

/// `POST /_sandbox/federated-credentials` with `{"issuer", "subject", "audience"?,
/// "certificate"}`: trusts tokens from that issuer about that subject, signed by the
/// certificate's key.
async fn add_federated(State(tenant): State<Arc<Tenant>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let (Some(issuer), Some(subject), Some(certificate)) = (
        request["issuer"].as_str(),
        request["subject"].as_str(),
        request["certificate"].as_str(),
    ) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "give `issuer`, `subject` and `certificate` (PEM), and optionally `audience`",
        );
    };
    match tenant.registrations.add_federated(
        issuer,
        subject,
        request["audience"].as_str(),
        certificate,
    ) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, format!("invalid certificate: {e}")),
    }
}

async fn expire_delta(State(tenant): State<Arc<Tenant>>) -> StatusCode {
    tenant.expire_delta_tokens();
    StatusCode::NO_CONTENT
}

async fn unknown(uri: Uri) -> Response {
    refused(
        StatusCode::NOT_FOUND,
        format!(
            "no admin endpoint at {}; see seed, state, stats, stats/reset, faults, delta/expire, client-certs, \
             federated-credentials",
            uri.path()
        ),
    )
}
