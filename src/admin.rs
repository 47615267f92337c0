//! Admin HTTP API (axum): health, readiness, Prometheus metrics and the JSON
//! status of calls, CDRs and trunks. Errors are JSON bodies
//! `{"error":{"code":..,"message":..}}` and never carry internals: axum's own rejections
//! (405, 413, a bad query string or path) are rewritten into that shape too.
//!
//! Bodies are small ([`JSON_BODY_LIMIT`]) except on the two upload routes, and every request
//! is answered within `[admin] request_timeout_secs` (408 past it).

pub mod auth;
mod bodies;
mod fax;
mod ledger;
pub mod serve;
mod status;

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
use switchboard_actors::devices::{CommandError, DeviceSupervisorMsg, MAX_COMMAND_BYTES};
use switchboard_actors::endpoint::EndpointMsg;
use switchboard_actors::mqtt::BrokerMsg;
use switchboard_actors::supervisor::SupervisorMsg;
use switchboard_actors::Gateway;
use switchboard_mqtt::claim::{ClaimRejection, ClaimRequest};
use switchboard_mqtt::DeviceId;
use switchboard_storage::{recent_cdrs, Store, Tree};

/// Longest wait for an actor to answer an admin request.
pub(crate) const ACTOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Most CDRs one request may ask for.
const MAX_CDRS: usize = 1000;
/// Largest body of every route but the file and fax uploads.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

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
    /// The configuration in force.
    pub config: Arc<switchboard_config::Config>,
    /// API keys, rate limits and CORS.
    pub guard: Arc<auth::Guard>,
    /// Configuration reload.
    pub reloader: Arc<crate::reload::Reloader>,
    /// The credits ledger.
    pub ledger: ractor::ActorRef<switchboard_actors::ledger::LedgerMsg>,
}

/// A JSON error response.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn unavailable() -> Self {
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

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn ok_json(v: impl serde::Serialize) -> ApiResult {
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response())
}

/// A JSON body that could not be read: 413 when it was too large, else 400 with `code`.
pub(crate) fn json_rejection(
    code: &'static str,
    e: axum::extract::rejection::JsonRejection,
) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request(code, e.body_text())
    }
}

/// 413 for a body over its route's limit.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the request body is too large for this route",
    )
}

/// Rewrite an error answer that is not JSON (axum's rejections: 405, 413, 400 for a bad
/// query string or path, 415...) into the API's error shape, keeping `Allow`,
/// `Retry-After` and `WWW-Authenticate`.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, fallback) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method (see Allow)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("too_large", "the request body is too large for this route")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "unsupported Content-Type for this route",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::BAD_REQUEST if text.starts_with("Failed to deserialize query string") => {
            ("bad_query", "the query string is invalid")
        }
        StatusCode::BAD_REQUEST if text.contains("JSON") => ("bad_json", "the body must be JSON"),
        StatusCode::BAD_REQUEST => ("bad_request", "the request is invalid"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("error", "the request failed"),
    };
    // The 413 text names axum internals; other rejection texts say what was wrong.
    let message =
        if text.is_empty() || status == StatusCode::PAYLOAD_TOO_LARGE || status.is_server_error() {
            fallback.to_string()
        } else {
            text.chars().take(300).collect()
        };
    let mut out = ApiError::new(status, code, message).into_response();
    for h in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

/// Answer 408 when a request (its body upload included) takes longer than `limit`.
async fn request_timeout(
    State(limit): State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            metrics::counter!("switchboard_admin_request_timeouts_total").increment(1);
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request took too long",
            )
            .into_response()
        }
    }
}

/// Delete fax uploads past `[fax] upload_ttl_secs` every minute (or every TTL if shorter).
pub fn spawn_upload_sweeper(config: Arc<switchboard_config::Config>) {
    let ttl = Duration::from_secs(u64::from(config.fax.upload_ttl_secs));
    let dir = config.fax.spool_dir(&config.storage.path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ttl.min(Duration::from_secs(60)));
        loop {
            tick.tick().await;
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || {
                switchboard_actors::fax::document::sweep_uploads(&dir, ttl)
            })
            .await;
        }
    });
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    // Fax documents are the largest bodies; multipart framing needs a little more.
    let file_limit = usize::try_from(state.config.fax.max_file_bytes).unwrap_or(usize::MAX);
    let upload = axum::extract::DefaultBodyLimit::max(file_limit);
    let fax_form = axum::extract::DefaultBodyLimit::max(file_limit.saturating_add(64 * 1024));
    let timeout = state.config.admin.request_timeout;
    Router::new()
        .route("/", get(status::page))
        .route("/status.css", get(status::css))
        .route("/status.js", get(status::script))
        .route("/api/v1/overview", get(status::overview))
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call).delete(hangup_call))
        .route("/api/v1/calls/{id}/crash", post(crash_call))
        .route("/api/v1/cdrs", get(list_cdrs))
        .route("/api/v1/streams", get(list_streams))
        .route("/api/v1/trunks", get(list_trunks))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/claim", post(claim_device))
        .route("/api/v1/devices/{id}", get(get_device))
        .route("/api/v1/devices/{id}/reset", post(reset_device))
        .route("/api/v1/devices/{id}/commands", post(post_command))
        .route("/api/v1/devices/{id}/commands/{req}", get(get_command))
        .route(
            "/api/v1/faxes",
            get(fax::list).post(fax::submit).layer(fax_form),
        )
        .route("/api/v1/faxes/{id}", get(fax::get))
        .route("/api/v1/faxes/{id}/file", get(fax::file))
        .route("/api/v1/files", post(fax::upload).layer(upload))
        .route("/api/v1/inbound-faxes", get(fax::list_inbound))
        .route("/api/v1/inbound-faxes/{id}", get(fax::get_inbound))
        .route("/api/v1/inbound-faxes/{id}/file", get(fax::inbound_file))
        .route("/api/v1/admin/api-keys", get(list_keys).post(create_key))
        .route("/api/v1/admin/reload", post(reload_config))
        .route("/api/v1/admin/backup", post(crate::backup::handler))
        .route("/api/v1/admin/drain", post(start_drain))
        .route("/api/v1/accounts", post(ledger::create_account))
        .route("/api/v1/accounts/{id}", get(ledger::get_account))
        .route("/api/v1/accounts/{id}/topup", post(ledger::topup))
        .route(
            "/api/v1/accounts/{id}/transfers",
            get(ledger::account_transfers),
        )
        .route("/api/v1/transfers", post(ledger::create_transfer))
        .route("/api/v1/transfers/{id}", get(ledger::get_transfer))
        .route("/api/v1/transfers/{id}/post", post(ledger::post_pending))
        .route("/api/v1/transfers/{id}/void", post(ledger::void_pending))
        .route("/api/v1/bans", get(list_bans))
        .route("/api/v1/bans/{ip}", axum::routing::delete(lift_ban))
        .route(
            "/api/v1/admin/api-keys/{id}",
            axum::routing::delete(revoke_key),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.guard),
            auth::authorize,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.guard),
            auth::perimeter,
        ))
        .with_state(state)
}

async fn health(State(s): State<AdminState>) -> ApiResult {
    ok_json(json!({
        "status": "ok",
        "features": {"media_ingest": s.gateway.ingest},
    }))
}

async fn sip_up(s: &AdminState) -> bool {
    let Some(ep) = s.gateway.endpoint() else {
        return false;
    };
    ractor::call_t!(ep, EndpointMsg::Status, ACTOR_TIMEOUT.as_millis() as u64).is_ok()
}

/// The embedded broker answers, or the link to the external broker is
/// connected (true when devices are off).
async fn broker_up(s: &AdminState) -> bool {
    if s.gateway.devices.is_none() {
        return true;
    }
    let Some(b) = s.gateway.broker.borrow().clone() else {
        return false;
    };
    ractor::call_t!(b, BrokerMsg::Status, ACTOR_TIMEOUT.as_millis() as u64)
        .is_ok_and(|st| st.connected)
}

async fn ready(State(s): State<AdminState>) -> Response {
    let store = s.store.get(Tree::Meta, b"schema_version").is_ok();
    let sip = sip_up(&s).await;
    let broker = broker_up(&s).await;
    // A draining gateway is not ready: load balancers and dispatchers take it out.
    let draining = s.gateway.drain.is_draining();
    let ready = store && sip && broker && !draining;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "ready": ready,
            "store": store,
            "sip": sip,
            "mqtt": broker,
            "draining": draining,
        })),
    )
        .into_response()
}

/// `POST /api/v1/admin/drain`: start a drain (as SIGTERM does) and say what is in progress.
/// Calling it again during a drain changes nothing and answers the same way.
async fn start_drain(State(s): State<AdminState>) -> ApiResult {
    let started = s.gateway.start_drain();
    let calls = ractor::call_t!(
        s.gateway.supervisor,
        SupervisorMsg::List,
        ACTOR_TIMEOUT.as_millis() as u64
    )
    .unwrap_or_default();
    let live = s.gateway.live_calls().await;
    let broker = s.gateway.broker.borrow().clone();
    let devices = match broker {
        Some(b) => ractor::call_t!(b, BrokerMsg::Status, ACTOR_TIMEOUT.as_millis() as u64)
            .map(|st| st.clients)
            .unwrap_or(0),
        None => 0,
    };
    let remaining = s.gateway.drain.deadline().map(|d| {
        d.saturating_duration_since(std::time::Instant::now())
            .as_secs()
    });
    let calls: Vec<_> = calls
        .iter()
        .map(|c| json!({"id": c.id, "state": c.state, "src": c.src, "dst": c.dst, "answer": c.answer}))
        .collect();
    ok_json(json!({
        "draining": true,
        "started": started,
        "stage": s.gateway.drain.stage(),
        "drain_secs": s.gateway.drain.window().as_secs(),
        "deadline_in_secs": remaining,
        "in_progress": {
            "calls": live,
            "call_list": calls,
            "streams": s.gateway.streams.len(),
            "mqtt_clients": devices,
        },
    }))
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
        "sip_tls_listen": s.gateway.sip_tls_addr.map(|a| a.to_string()),
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

/// A key as listed (never the key or its hash).
fn key_view(k: &switchboard_storage::ApiKeyRecord) -> serde_json::Value {
    let now = switchboard_storage::now_unix_ms();
    let state = if k.revoked_ms.is_some() {
        "revoked"
    } else if k.expires_ms.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": k.id,
        "name": k.name,
        "scopes": k.scopes,
        "accounts": k.accounts,
        "state": state,
        "created_at": switchboard_storage::rfc3339(k.created_ms),
        "expires_at": k.expires_ms.map(switchboard_storage::rfc3339),
        "revoked_at": k.revoked_ms.map(switchboard_storage::rfc3339),
    })
}

async fn list_keys(State(s): State<AdminState>) -> ApiResult {
    let keys: Vec<serde_json::Value> = s.guard.keys.list().iter().map(key_view).collect();
    ok_json(json!({"keys": keys}))
}

async fn create_key(
    State(s): State<AdminState>,
    body: Result<Json<bodies::NewKeyBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) = body.map_err(|e| json_rejection("bad_body", e))?;
    if let Err(e) = auth::check_request(&b.name, &b.scopes, b.expires_in_secs) {
        return Err(ApiError::bad_request(e.code(), e.to_string()));
    }
    if !bodies::valid_key_accounts(&b.accounts) {
        return Err(ApiError::bad_request(
            "bad_accounts",
            "accounts: up to 64 customer account ids (not starting with @)",
        ));
    }
    // The key is flushed before it is shown, off the async workers.
    let keys = Arc::clone(&s.guard.keys);
    let made = switchboard_actors::store_io::blocking(move || {
        keys.create(&b.name, b.scopes, b.expires_in_secs, b.accounts)
    })
    .await
    .map_err(|_| ApiError::unavailable())?;
    tracing::info!(key = %made.record.id, name = %made.record.name, "API key created");
    let mut v = key_view(&made.record);
    v["key"] = json!(made.key);
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(v),
    )
        .into_response())
}

async fn revoke_key(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let (keys, key) = (Arc::clone(&s.guard.keys), id.clone());
    match switchboard_actors::store_io::blocking(move || keys.revoke(&key)).await {
        Ok(true) => {
            tracing::info!(key = %id, "API key revoked");
            ok_json(json!({"id": id, "revoked": true}))
        }
        Ok(false) => Err(ApiError::not_found("key")),
        Err(_) => Err(ApiError::unavailable()),
    }
}

async fn reload_config(State(s): State<AdminState>) -> ApiResult {
    let r = Arc::clone(&s.reloader);
    match tokio::task::spawn_blocking(move || r.reload()).await {
        Ok(Ok((routes, apps))) => {
            ok_json(json!({"reloaded": true, "routes": routes, "apps": apps}))
        }
        Ok(Err(crate::reload::ReloadError::Invalid(errors))) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"error": {
                "code": "invalid_config",
                "message": "the configuration is invalid; the running one stays",
                "errors": errors,
            }})),
        )
            .into_response()),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "restart_needed",
            e.to_string(),
        )),
        Err(_) => Err(ApiError::unavailable()),
    }
}

async fn list_bans(State(s): State<AdminState>) -> ApiResult {
    ok_json(json!({"bans": s.gateway.sip_guard.bans(std::time::Instant::now())}))
}

async fn lift_ban(State(s): State<AdminState>, Path(ip): Path<String>) -> ApiResult {
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("bad_ip", "an IP address"))?;
    if s.gateway.sip_guard.unban(ip) {
        tracing::info!(%ip, "SIP ban lifted by an operator");
        ok_json(json!({"ip": ip.to_string(), "banned": false}))
    } else {
        Err(ApiError::not_found("ban"))
    }
}

async fn list_streams(State(s): State<AdminState>) -> ApiResult {
    ok_json(json!({"streams": s.gateway.streams.list()}))
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
        Some(c) => {
            let streams = s.gateway.streams.for_call(&c.id.0);
            let mut v = serde_json::to_value(c).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("streams".into(), json!(streams));
            }
            ok_json(v)
        }
        None => Err(ApiError::not_found("call")),
    }
}

/// Send a per-call order to the call supervisor: 202 when the call exists.
async fn order_call(
    s: &AdminState,
    id: String,
    msg: fn(CallId, ractor::RpcReplyPort<bool>) -> SupervisorMsg,
    done: &str,
) -> ApiResult {
    let found = ractor::call_t!(
        s.gateway.supervisor,
        msg,
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
        Json(json!({"id": id, done: true})),
    )
        .into_response())
}

async fn hangup_call(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    order_call(&s, id, SupervisorMsg::Hangup, "hangup").await
}

async fn crash_call(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    if !s.test_hooks {
        return Err(ApiError::not_found("route"));
    }
    order_call(&s, id, SupervisorMsg::Crash, "crashed").await
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

/// Every trunk's live status, in config order.
fn trunk_statuses(s: &AdminState) -> Vec<switchboard_actors::trunk::TrunkStatus> {
    s.gateway
        .trunks
        .iter()
        .map(|t| t.borrow().clone())
        .collect()
}

async fn list_trunks(State(s): State<AdminState>) -> ApiResult {
    ok_json(json!({"trunks": trunk_statuses(&s)}))
}

fn devices_actor(s: &AdminState) -> Result<ractor::ActorRef<DeviceSupervisorMsg>, ApiError> {
    s.gateway.devices.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "devices_disabled",
            "devices are off ([mqtt] mode = \"off\")",
        )
    })
}

fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(id).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_device_id",
            "device ids are 1-64 characters of A-Z a-z 0-9 _ -",
        )
    })
}

async fn list_devices(State(s): State<AdminState>) -> ApiResult {
    let d = devices_actor(&s)?;
    let list = ractor::call_t!(
        d,
        DeviceSupervisorMsg::List,
        ACTOR_TIMEOUT.as_millis() as u64
    )
    .map_err(|_| ApiError::unavailable())?;
    ok_json(json!({"devices": list}))
}

async fn get_device(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let d = devices_actor(&s)?;
    let id = device_id(&id)?;
    let dev = ractor::call_t!(
        d,
        DeviceSupervisorMsg::Get,
        ACTOR_TIMEOUT.as_millis() as u64,
        id
    )
    .map_err(|_| ApiError::unavailable())?;
    match dev {
        Some(v) => ok_json(v),
        None => Err(ApiError::not_found("device")),
    }
}

/// `POST /api/v1/devices/{id}/reset` (devices:write): the operator's
/// re-provisioning. The device's credential is deleted and every connection
/// still open with it closed; it may then be claimed again.
async fn reset_device(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let d = devices_actor(&s)?;
    let device = device_id(&id)?;
    let done = ractor::call_t!(
        d,
        DeviceSupervisorMsg::Reset,
        ACTOR_TIMEOUT.as_millis() as u64,
        device.clone()
    )
    .map_err(|_| ApiError::unavailable())?;
    match done {
        Ok(true) => ok_json(json!({"id": device.as_str(), "reset": true})),
        Ok(false) => Err(ApiError::not_found("device")),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            "the device could not be reset",
        )),
    }
}

async fn post_command(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let d = devices_actor(&s)?;
    let device = device_id(&id)?;
    if body.len() > MAX_COMMAND_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("commands are at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", "the body must be JSON"))?;
    let rec = ractor::call_t!(
        d,
        |reply| DeviceSupervisorMsg::Command {
            device,
            payload,
            reply
        },
        ACTOR_TIMEOUT.as_millis() as u64
    )
    .map_err(|_| ApiError::unavailable())?;
    match rec {
        Ok(rec) => Ok((
            StatusCode::ACCEPTED,
            [(header::CACHE_CONTROL, "no-store")],
            Json(rec),
        )
            .into_response()),
        Err(CommandError::UnknownDevice) => Err(ApiError::not_found("device")),
        Err(CommandError::Store) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            "the command could not be stored",
        )),
    }
}

async fn get_command(
    State(s): State<AdminState>,
    Path((id, req)): Path<(String, String)>,
) -> ApiResult {
    let device = device_id(&id)?;
    let store = Arc::clone(&s.store);
    let rec = tokio::task::spawn_blocking(move || {
        switchboard_storage::get_command(store.as_ref(), device.as_str(), &req)
    })
    .await
    .map_err(|_| ApiError::unavailable())?
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            "the command could not be read",
        )
    })?;
    match rec {
        Some(r) => ok_json(r),
        None => Err(ApiError::not_found("command")),
    }
}

async fn claim_device(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let reply = |code: StatusCode, body: Vec<u8>| {
        (
            code,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    };
    let d = match devices_actor(&s) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let req = match ClaimRequest::from_json(&body) {
        Ok(r) => r,
        Err(r) => {
            metrics::counter!("switchboard_claim_failures_total", "reason" => r.metric_reason())
                .increment(1);
            return reply(
                StatusCode::BAD_REQUEST,
                switchboard_mqtt::claim::ClaimResponse::rejected(r).to_json(),
            );
        }
    };
    match ractor::call_t!(
        d,
        DeviceSupervisorMsg::Claim,
        ACTOR_TIMEOUT.as_millis() as u64,
        req
    ) {
        Ok(Ok(ok)) => reply(StatusCode::OK, ok.to_json()),
        Ok(Err(r)) => {
            let code = match r {
                ClaimRejection::Malformed => StatusCode::BAD_REQUEST,
                ClaimRejection::AlreadyClaimed => StatusCode::CONFLICT,
                _ => StatusCode::FORBIDDEN,
            };
            reply(
                code,
                switchboard_mqtt::claim::ClaimResponse::rejected(r).to_json(),
            )
        }
        Err(_) => ApiError::unavailable().into_response(),
    }
}
