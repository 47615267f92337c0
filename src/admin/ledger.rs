//! The credits ledger over HTTP: accounts, top-ups (idempotency key), transfers (single or
//! two-phase), their posts and voids. Every answer comes after the ledger actor has written
//! and flushed: an acknowledged transfer survives a crash.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_actors::ledger::{LedgerMsg, TOPUP_ACCOUNT};
use switchboard_storage::ledger::{Account, LedgerError, Outcome, TransferKind, TransferRequest};

use super::{ok_json, AdminState, ApiError, ApiResult, ACTOR_TIMEOUT};

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(b: Body<T>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| super::json_rejection("bad_body", e))
}

fn ledger_error(e: LedgerError) -> ApiError {
    let status = match &e {
        LedgerError::NoAccount(_) | LedgerError::NoPending(_) => StatusCode::NOT_FOUND,
        LedgerError::ExistsWithDifferentFields(_)
        | LedgerError::AccountExists(_)
        | LedgerError::PendingNotPending { .. } => StatusCode::CONFLICT,
        LedgerError::ExceedsCredits(_) | LedgerError::ExceedsPendingAmount => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        LedgerError::Store(_) | LedgerError::NotDurable => return ApiError::unavailable(),
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

fn account_view(a: &Account) -> Value {
    json!({
        "id": a.id,
        "balance": a.balance().to_string().parse::<i64>().unwrap_or(i64::MAX),
        "available": a.available().to_string().parse::<i64>().unwrap_or(i64::MAX),
        "debits_pending": a.debits_pending,
        "debits_posted": a.debits_posted,
        "credits_pending": a.credits_pending,
        "credits_posted": a.credits_posted,
        "debits_must_not_exceed_credits": a.debits_must_not_exceed_credits,
        "created_at": switchboard_storage::rfc3339(a.created_ms),
    })
}

fn outcome(o: Outcome) -> Response {
    let status = if o.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = serde_json::to_value(&o.transfer).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("v");
        m.insert("created".into(), json!(o.created));
    }
    (status, [(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

async fn apply(s: &AdminState, req: TransferRequest) -> ApiResult {
    let r = ractor::call_t!(
        s.ledger,
        LedgerMsg::Apply,
        ACTOR_TIMEOUT.as_millis() as u64 * 5,
        req
    )
    .map_err(|_| ApiError::unavailable())?;
    r.map(outcome).map_err(ledger_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    id: String,
    #[serde(default = "yes")]
    debits_must_not_exceed_credits: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/accounts`
pub async fn create_account(State(s): State<AdminState>, b: Body<NewAccount>) -> ApiResult {
    let b = body(b)?;
    if b.id.starts_with('@') {
        return Err(ApiError::bad_request(
            "bad_id",
            "ids starting with @ are the gateway's own",
        ));
    }
    let r = ractor::call_t!(
        s.ledger,
        |reply| LedgerMsg::CreateAccount {
            id: b.id,
            limited: b.debits_must_not_exceed_credits,
            reply
        },
        ACTOR_TIMEOUT.as_millis() as u64 * 5
    )
    .map_err(|_| ApiError::unavailable())?;
    let (a, created) = r.map_err(ledger_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(account_view(&a)),
    )
        .into_response())
}

/// `GET /api/v1/accounts/{id}`
pub async fn get_account(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let r = ractor::call_t!(
        s.ledger,
        LedgerMsg::Account,
        ACTOR_TIMEOUT.as_millis() as u64 * 5,
        id
    )
    .map_err(|_| ApiError::unavailable())?;
    match r.map_err(ledger_error)? {
        Some(a) => ok_json(account_view(&a)),
        None => Err(ApiError::not_found("account")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topup {
    amount: u64,
    idempotency_key: String,
}

/// `POST /api/v1/accounts/{id}/topup`
pub async fn topup(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Body<Topup>,
) -> ApiResult {
    let b = body(b)?;
    apply(
        &s,
        TransferRequest {
            id: b.idempotency_key,
            debit_account: TOPUP_ACCOUNT.into(),
            credit_account: id,
            amount: b.amount,
            kind: TransferKind::Single,
            pending_id: None,
            timeout_secs: 0,
            reference: Some("topup".into()),
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

/// `GET /api/v1/accounts/{id}/transfers`
pub async fn account_transfers(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let r = ractor::call_t!(
        s.ledger,
        LedgerMsg::Transfers,
        ACTOR_TIMEOUT.as_millis() as u64 * 5,
        id,
        limit
    )
    .map_err(|_| ApiError::unavailable())?;
    let list = r.map_err(ledger_error)?;
    ok_json(json!({"transfers": list}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    id: String,
    debit_account: String,
    credit_account: String,
    amount: u64,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    timeout_secs: u64,
    #[serde(default)]
    reference: Option<String>,
}

/// `POST /api/v1/transfers`
pub async fn create_transfer(State(s): State<AdminState>, b: Body<NewTransfer>) -> ApiResult {
    let b = body(b)?;
    if b.reference.as_ref().is_some_and(|r| r.len() > 256) {
        return Err(ApiError::bad_request(
            "bad_reference",
            "reference: at most 256 bytes",
        ));
    }
    apply(
        &s,
        TransferRequest {
            id: b.id,
            debit_account: b.debit_account,
            credit_account: b.credit_account,
            amount: b.amount,
            kind: if b.pending {
                TransferKind::Pending
            } else {
                TransferKind::Single
            },
            pending_id: None,
            timeout_secs: b.timeout_secs.min(86_400 * 30),
            reference: b.reference,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    id: String,
    #[serde(default)]
    amount: u64,
}

async fn settle(s: &AdminState, pending: String, b: Settle, kind: TransferKind) -> ApiResult {
    apply(
        s,
        TransferRequest {
            id: b.id,
            debit_account: String::new(),
            credit_account: String::new(),
            amount: b.amount,
            kind,
            pending_id: Some(pending),
            timeout_secs: 0,
            reference: None,
        },
    )
    .await
}

/// `POST /api/v1/transfers/{id}/post`
pub async fn post_pending(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Body<Settle>,
) -> ApiResult {
    settle(&s, id, body(b)?, TransferKind::PostPending).await
}

/// `POST /api/v1/transfers/{id}/void`
pub async fn void_pending(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Body<Settle>,
) -> ApiResult {
    settle(&s, id, body(b)?, TransferKind::VoidPending).await
}

/// `GET /api/v1/transfers/{id}`
pub async fn get_transfer(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let r = ractor::call_t!(
        s.ledger,
        LedgerMsg::Transfer,
        ACTOR_TIMEOUT.as_millis() as u64 * 5,
        id
    )
    .map_err(|_| ApiError::unavailable())?;
    match r.map_err(ledger_error)? {
        Some(t) => ok_json(t),
        None => Err(ApiError::not_found("transfer")),
    }
}
