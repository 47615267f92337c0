//! The status page at `/` (static HTML, CSS and script, with a strict CSP) and the one JSON
//! document it polls, `/api/v1/overview` (scope `calls:read`): calls (with their trunk,
//! duration, packets and loss each way), trunks (monitored ones up or down with their last
//! OPTIONS reply, unmonitored ones as such), devices, fax jobs, streams and bans at a glance, and, for a key that also has `credits:read`, the
//! balances of the first accounts. `switchboard status` prints the same document.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use switchboard_actors::devices::DeviceSupervisorMsg;
use switchboard_actors::supervisor::SupervisorMsg;
use switchboard_storage::{list_fax_jobs, FaxStatus};

use super::{ok_json, AdminState, ApiError, ApiResult, ACTOR_TIMEOUT};

const HTML: &str = include_str!("static/status.html");
const CSS: &str = include_str!("static/status.css");
const JS: &str = include_str!("static/status.js");

/// Everything on the page comes from this origin; no inline script or style, no framing.
/// Most accounts the overview lists.
const ACCOUNTS_SHOWN: usize = 50;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        HTML,
    )
        .into_response()
}

/// `GET /status.css`
pub async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// `GET /status.js`
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// Packets lost as a share of those expected (relayed + lost), in percent with one decimal.
fn loss_pct(d: &switchboard_actors::media::DirectionSnapshot) -> f64 {
    let expected = d.packets.saturating_add(d.lost);
    if expected == 0 {
        return 0.0;
    }
    (d.lost as f64 * 1000.0 / expected as f64).round() / 10.0
}

/// `GET /api/v1/overview`
pub async fn overview(
    State(s): State<AdminState>,
    granted: Option<Extension<super::auth::Granted>>,
) -> ApiResult {
    let ms = ACTOR_TIMEOUT.as_millis() as u64;
    let calls = ractor::call_t!(s.gateway.supervisor, SupervisorMsg::List, ms)
        .map_err(|_| ApiError::unavailable())?;
    let trunks = super::trunk_statuses(&s);
    let devices = match &s.gateway.devices {
        Some(d) => ractor::call_t!(d, DeviceSupervisorMsg::List, ms).unwrap_or_default(),
        None => Vec::new(),
    };
    let store = std::sync::Arc::clone(&s.store);
    let jobs = tokio::task::spawn_blocking(move || list_fax_jobs(store.as_ref(), 20))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let open = jobs
        .iter()
        .filter(|j| matches!(j.status, FaxStatus::Queued | FaxStatus::InProgress))
        .count();
    let now_ms = switchboard_storage::now_unix_ms();
    let calls: Vec<_> = calls
        .iter()
        .map(|c| {
            let (ab, ba) = (&c.media.a_to_b, &c.media.b_to_a);
            json!({
                "id": c.id.0, "state": c.state, "src": c.src, "dst": c.dst,
                "codec": c.codec, "start": c.start,
                "trunk": c.trunk_out.as_ref().or(c.trunk_in.as_ref()),
                "duration_secs": c.duration_secs(now_ms),
                "billsec": c.billsec(now_ms),
                "packets": {"a_to_b": ab.packets, "b_to_a": ba.packets},
                "lost": {"a_to_b": ab.lost, "b_to_a": ba.lost},
                "loss_pct": {"a_to_b": loss_pct(ab), "b_to_a": loss_pct(ba)},
            })
        })
        .collect();
    let online = devices.iter().filter(|d| d.online).count();
    let devices: Vec<_> = devices
        .iter()
        .take(50)
        .map(|d| json!({"id": d.id, "online": d.online, "last_seen": d.last_seen, "firmware": d.firmware}))
        .collect();
    let faxes: Vec<_> = jobs
        .iter()
        .map(|j| json!({"id": j.id, "to": j.to, "status": j.status.as_str(), "pages": j.pages, "error": j.error}))
        .collect();
    // Balances only for keys allowed to read credits; `null` tells the page why none show.
    let accounts = match granted {
        Some(Extension(g)) if g.has("credits:read") => {
            let list = ractor::call_t!(
                s.ledger,
                switchboard_actors::ledger::LedgerMsg::Accounts,
                ms,
                ACCOUNTS_SHOWN
            )
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
            let rows: Vec<_> = list
                .iter()
                .filter(|a| !a.id.starts_with('@'))
                .map(|a| {
                    json!({
                        "id": a.id,
                        "balance": i64::try_from(a.balance()).unwrap_or(i64::MAX),
                        "available": i64::try_from(a.available()).unwrap_or(i64::MAX),
                        "pending": a.debits_pending,
                    })
                })
                .collect();
            json!(rows)
        }
        _ => serde_json::Value::Null,
    };
    ok_json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "accounts": accounts,
        "calls": calls,
        "trunks": trunks,
        "devices": devices,
        "devices_online": online,
        "faxes": faxes,
        "faxes_open": open,
        "streams_active": s.gateway.streams.len(),
        "bans_active": s.gateway.sip_guard.bans(std::time::Instant::now()).len(),
    }))
}
