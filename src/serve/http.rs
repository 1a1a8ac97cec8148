//! `serve`'s HTTP endpoint: `/healthz` for probes, `/metrics` for Prometheus, and `/` for
//! people (see [`super::page`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::health::judge;
use super::html;
use super::metrics::{Metrics, RECONCILING};
use super::page;
use crate::store::{RunStatus, Store};

/// What the endpoints read.
#[derive(Debug)]
pub struct Endpoint {
    /// The state store, for the last success and the gauges.
    pub store: Store,
    /// The counters the scheduler fills.
    pub metrics: Arc<Metrics>,
    /// When `serve` started: a fresh start has `max_success_age` to succeed.
    pub started_at: DateTime<Utc>,
    /// `[serve].max_success_age`, replaced by a reload.
    pub max_success_age: RwLock<Duration>,
    /// `[serve].show_members`, replaced by a reload.
    pub show_members: AtomicBool,
}

impl Endpoint {
    fn max_success_age(&self) -> Duration {
        *self
            .max_success_age
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The routes.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(endpoint)
}

async fn status_page(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let view = page::View::read(
        &endpoint.store,
        endpoint.started_at,
        endpoint.max_success_age(),
        endpoint.show_members.load(Ordering::Relaxed),
    )
    .await;
    let (status, body) = match view {
        Ok(view) => (StatusCode::OK, page::render(&view)),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>rollcall status</title></head><body><h1>rollcall status</h1>\
                 <p>The state database cannot be read: {}</p></body></html>\n",
                html::escape(&e.to_string())
            ),
        ),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Nothing runs and nothing loads from elsewhere: the page has inline CSS only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn healthz(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let max_age = endpoint.max_success_age();
    match endpoint
        .store
        .last_finished_run(RECONCILING, RunStatus::Succeeded)
        .await
    {
        Ok(run) => {
            let health = judge(
                Utc::now(),
                endpoint.started_at,
                run.and_then(|r| r.finished_at),
                max_age,
            );
            let status = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, axum::Json(health)).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "healthy": false,
                "reason": format!("the state database cannot be read: {e}"),
            })),
        )
            .into_response(),
    }
}

async fn metrics(State(endpoint): State<Arc<Endpoint>>) -> Response {
    if let Err(e) = endpoint.metrics.refresh(&endpoint.store).await {
        // The counters are still worth scraping; the gauges keep their last values.
        tracing::warn!(error = %e, "could not read the state database for /metrics");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        endpoint.metrics.render(),
    )
        .into_response()
}
