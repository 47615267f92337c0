//! The credits ledger over HTTP: accounts, top-ups (idempotency key), transfers (single or
//! two-phase), their posts and voids. Every answer comes after the ledger actor has written
//! and flushed: an acknowledged transfer survives a crash.
//!
//! The gateway's own bookkeeping is out of the API's reach (issue 11): transfer ids starting
//! `call:` or `fax:` are the gateway's (403 `reserved_id`, whether created, posted or
//! voided), its `@` accounts are never a transfer's side (403 `reserved_account`; money
//! enters only through a top-up), and a key bound to accounts debits only those and tops up
//! nothing (403 `account_not_allowed`). Amounts and balances are exact; what would take an
//! account past [`MAX_AMOUNT`] is refused (422 `overflow`).

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_actors::ledger::{LedgerMsg, TOPUP_ACCOUNT};
use switchboard_storage::ledger::{
    is_gateway_transfer, is_internal_account, Account, LedgerError, Outcome, TransferKind,
    TransferRequest, MAX_AMOUNT,
};

use super::auth::Granted;
pub use super::bodies::{NewAccount, NewTransfer, Settle, Topup};
use super::{ok_json, AdminState, ApiError, ApiResult, ACTOR_TIMEOUT};

/// The key's grant (always there behind `authorize`; an absent one allows nothing special).
type Key = Option<Extension<Granted>>;

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// Refuse the gateway's own transfer ids.
fn client_id(id: &str) -> Result<(), ApiError> {
    if is_gateway_transfer(id) {
        return Err(forbidden(
            "reserved_id",
            "transfer ids starting call: or fax: are the gateway's own",
        ));
    }
    Ok(())
}

/// Refuse the gateway's own accounts.
fn client_account(id: &str) -> Result<(), ApiError> {
    if is_internal_account(id) {
        return Err(forbidden(
            "reserved_account",
            "accounts starting with @ are the gateway's own",
        ));
    }
    Ok(())
}

fn not_allowed(account: &str) -> ApiError {
    forbidden(
        "account_not_allowed",
        format!("this key may not bill account {account}"),
    )
}

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
        LedgerError::ExceedsCredits(_)
        | LedgerError::ExceedsPendingAmount
        | LedgerError::Overflow => StatusCode::UNPROCESSABLE_ENTITY,
        LedgerError::Store(_) | LedgerError::NotDurable => return ApiError::unavailable(),
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// An exact JSON number: every sum stays within [`MAX_AMOUNT`], so within `i64`; a record
/// from before that limit that does not fit is shown as a decimal string, never clamped.
fn exact(v: i128) -> Value {
    i64::try_from(v).map_or_else(|_| json!(v.to_string()), |n| json!(n))
}

fn account_view(a: &Account) -> Value {
    json!({
        "id": a.id,
        "balance": exact(a.balance()),
        "available": exact(a.available()),
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

/// `POST /api/v1/accounts/{id}/topup`
pub async fn topup(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    key: Key,
    b: Body<Topup>,
) -> ApiResult {
    let b = body(b)?;
    client_id(&b.idempotency_key)?;
    client_account(&id)?;
    if key.is_some_and(|Extension(k)| k.is_bound()) {
        // Minting credit is the operator's act, not a customer key's.
        return Err(not_allowed(&id));
    }
    if b.amount > MAX_AMOUNT {
        return Err(ledger_error(LedgerError::Overflow));
    }
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

/// `POST /api/v1/transfers`
pub async fn create_transfer(
    State(s): State<AdminState>,
    key: Key,
    b: Body<NewTransfer>,
) -> ApiResult {
    let b = body(b)?;
    client_id(&b.id)?;
    client_account(&b.debit_account)?;
    client_account(&b.credit_account)?;
    if key.is_some_and(|Extension(k)| !k.may_debit(&b.debit_account)) {
        return Err(not_allowed(&b.debit_account));
    }
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

async fn settle(
    s: &AdminState,
    key: Key,
    pending: String,
    b: Settle,
    kind: TransferKind,
) -> ApiResult {
    // The gateway settles its own reservations (calls, fax jobs); nobody else does.
    client_id(&pending)?;
    client_id(&b.id)?;
    if let Some(Extension(k)) = key.filter(|Extension(k)| k.is_bound()) {
        let id = pending.clone();
        let found = ractor::call_t!(
            s.ledger,
            LedgerMsg::Transfer,
            ACTOR_TIMEOUT.as_millis() as u64 * 5,
            id
        )
        .map_err(|_| ApiError::unavailable())?
        .map_err(ledger_error)?;
        if let Some(p) = found.filter(|p| !k.may_debit(&p.debit_account)) {
            return Err(not_allowed(&p.debit_account));
        }
    }
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
    key: Key,
    b: Body<Settle>,
) -> ApiResult {
    settle(&s, key, id, body(b)?, TransferKind::PostPending).await
}

/// `POST /api/v1/transfers/{id}/void`
pub async fn void_pending(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    key: Key,
    b: Body<Settle>,
) -> ApiResult {
    settle(&s, key, id, body(b)?, TransferKind::VoidPending).await
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
