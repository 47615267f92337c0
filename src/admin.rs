//! Admin HTTP API (axum): health, readiness, Prometheus metrics and the JSON
//! status of calls, CDRs and trunks. Errors are JSON bodies
//! `{"error":{"code":..,"message":..}}` and never carry internals.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use switchboard_actors::call::CallId;
use switchboard_actors::endpoint::EndpointMsg;
use switchboard_actors::supervisor::SupervisorMsg;
use switchboard_actors::Gateway;
use switchboard_storage::{recent_cdrs, Store, Tree};

/// Longest wait for an actor to answer an admin request.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Most CDRs one request may ask for.
const MAX_CDRS: usize = 1000;

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The running gateway.
    pub gateway: Gateway,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Whether test-only routes are on.
    pub test_hooks: bool,
}

/// A JSON error response.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway is not ready",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok_json(v: impl serde::Serialize) -> ApiResult {
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response())
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call).delete(hangup_call))
        .route("/api/v1/calls/{id}/crash", post(crash_call))
        .route("/api/v1/cdrs", get(list_cdrs))
        .route("/api/v1/trunks", get(list_trunks))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

async fn health() -> ApiResult {
    ok_json(json!({"status": "ok"}))
}

async fn sip_up(s: &AdminState) -> bool {
    let Some(ep) = s.gateway.endpoint() else {
        return false;
    };
    ractor::call_t!(ep, EndpointMsg::Status, ACTOR_TIMEOUT.as_millis() as u64).is_ok()
}

async fn ready(State(s): State<AdminState>) -> Response {
    let store = s.store.get(Tree::Meta, b"schema_version").is_ok();
    let sip = sip_up(&s).await;
    let code = if store && sip {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"ready": store && sip, "store": store, "sip": sip})),
    )
        .into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn status(State(s): State<AdminState>) -> ApiResult {
    let ep = match s.gateway.endpoint() {
        Some(ep) => ractor::call_t!(ep, EndpointMsg::Status, ACTOR_TIMEOUT.as_millis() as u64).ok(),
        None => None,
    };
    let calls = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::List,
        ACTOR_TIMEOUT.as_millis() as u64
    )
    .map(|c| c.len())
    .map_err(|_| ApiError::unavailable())?;
    ok_json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sip_listen": s.gateway.sip_addr.to_string(),
        "calls_active": calls,
        "rtp_port_pairs_free": s.gateway.ports.free(),
        "rtp_port_pairs_total": s.gateway.ports.total(),
        "endpoint": ep,
    }))
}

async fn list_calls(State(s): State<AdminState>) -> ApiResult {
    let calls = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::List,
        ACTOR_TIMEOUT.as_millis() as u64
    )
    .map_err(|_| ApiError::unavailable())?;
    ok_json(json!({"calls": calls}))
}

async fn get_call(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let call = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::Get,
        ACTOR_TIMEOUT.as_millis() as u64,
        CallId(id)
    )
    .map_err(|_| ApiError::unavailable())?;
    match call {
        Some(c) => ok_json(c),
        None => Err(ApiError::not_found("call")),
    }
}

async fn hangup_call(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let found = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::Hangup,
        ACTOR_TIMEOUT.as_millis() as u64,
        CallId(id.clone())
    )
    .map_err(|_| ApiError::unavailable())?;
    if !found {
        return Err(ApiError::not_found("call"));
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"id": id, "hangup": true})),
    )
        .into_response())
}

async fn crash_call(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    if !s.test_hooks {
        return Err(ApiError::not_found("route"));
    }
    let found = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::Crash,
        ACTOR_TIMEOUT.as_millis() as u64,
        CallId(id.clone())
    )
    .map_err(|_| ApiError::unavailable())?;
    if !found {
        return Err(ApiError::not_found("call"));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "crashed": true})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct CdrQuery {
    limit: Option<usize>,
}

async fn list_cdrs(State(s): State<AdminState>, Query(q): Query<CdrQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100).min(MAX_CDRS);
    let store = Arc::clone(&s.store);
    let cdrs = tokio::task::spawn_blocking(move || recent_cdrs(store.as_ref(), limit))
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|err| {
            tracing::error!(%err, "reading CDRs failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                "CDRs could not be read",
            )
        })?;
    ok_json(json!({"cdrs": cdrs}))
}

async fn list_trunks(State(s): State<AdminState>) -> ApiResult {
    let trunks: Vec<_> = s
        .gateway
        .trunks
        .iter()
        .map(|t| t.borrow().clone())
        .collect();
    ok_json(json!({"trunks": trunks}))
}
