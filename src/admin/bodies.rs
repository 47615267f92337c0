//! The JSON bodies of the admin API's POST routes and the checks on them that need no
//! state: API keys (`POST /api/v1/admin/api-keys`), accounts, top-ups and transfers
//! (`/api/v1/accounts`, `/api/v1/transfers`, their posts and voids) and JSON fax jobs
//! (`POST /api/v1/faxes`). Kept apart from the handlers, with no dependency on axum or the
//! actors, so the `admin_json` fuzz target (fuzz/fuzz_targets/admin_json.rs) compiles this
//! very file (RFC 8259 JSON through serde_json).

use serde::Deserialize;

/// Scopes a key can be given.
pub const SCOPES: &[&str] = &[
    "admin",
    "calls:read",
    "calls:write",
    "calls:*",
    "fax:send",
    "fax:read",
    "fax:*",
    "devices:read",
    "devices:write",
    "devices:*",
    "credits:read",
    "credits:write",
    "credits:*",
    "metrics:read",
];

/// Why a key request (online or offline) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRequestError {
    /// The name is empty, too long or has control characters.
    #[error("name: 1 to 64 characters")]
    BadName,
    /// No scopes, or too many.
    #[error("scopes: at least one")]
    NoScopes,
    /// A scope this version does not know.
    #[error("unknown scope {scope:?}; known: {known}")]
    UnknownScope {
        /// The scope as given.
        scope: String,
        /// Every known scope.
        known: String,
    },
    /// A lifetime of zero or over ten years.
    #[error("expires_in_secs: 1 second to 10 years")]
    BadExpiry,
}

impl KeyRequestError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyRequestError::BadName => "bad_name",
            KeyRequestError::NoScopes | KeyRequestError::UnknownScope { .. } => "bad_scopes",
            KeyRequestError::BadExpiry => "bad_expiry",
        }
    }
}

/// Check a key's name, scopes and lifetime, as the API and the offline command both do.
pub fn check_request(
    name: &str,
    scopes: &[String],
    expires_in_secs: Option<u64>,
) -> Result<(), KeyRequestError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(KeyRequestError::BadName);
    }
    if scopes.is_empty() || scopes.len() > SCOPES.len() {
        return Err(KeyRequestError::NoScopes);
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(KeyRequestError::UnknownScope {
            scope: bad.clone(),
            known: SCOPES.join(", "),
        });
    }
    if expires_in_secs == Some(0) || expires_in_secs.is_some_and(|t| t > 10 * 365 * 86_400) {
        return Err(KeyRequestError::BadExpiry);
    }
    Ok(())
}

/// Whether `accounts` may be bound to a new key: at most 64 customer account ids (1 to
/// [`switchboard_storage::ledger::MAX_ID`] of `A-Z a-z 0-9 _ . : @ + -`, not the gateway's
/// own `@` accounts).
pub fn valid_key_accounts(accounts: &[String]) -> bool {
    let valid_account = |a: &String| {
        !switchboard_storage::ledger::is_internal_account(a)
            && a.len() <= switchboard_storage::ledger::MAX_ID
            && !a.is_empty()
            && a.bytes().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'@' | b'+' | b'-')
            })
    };
    accounts.len() <= 64 && accounts.iter().all(valid_account)
}

/// `POST /api/v1/admin/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub(crate) name: String,
    pub(crate) scopes: Vec<String>,
    #[serde(default)]
    pub(crate) expires_in_secs: Option<u64>,
    /// The ledger accounts the key may bill (issue 11: keys bound to accounts).
    #[serde(default)]
    pub(crate) accounts: Vec<String>,
}

/// `POST /api/v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub(crate) id: String,
    #[serde(default = "yes")]
    pub(crate) debits_must_not_exceed_credits: bool,
}

/// `POST /api/v1/accounts/{id}/topup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topup {
    pub(crate) amount: u64,
    pub(crate) idempotency_key: String,
}

/// `POST /api/v1/transfers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    pub(crate) id: String,
    pub(crate) debit_account: String,
    pub(crate) credit_account: String,
    pub(crate) amount: u64,
    #[serde(default)]
    pub(crate) pending: bool,
    #[serde(default)]
    pub(crate) timeout_secs: u64,
    #[serde(default)]
    pub(crate) reference: Option<String>,
}

/// `POST /api/v1/transfers/{id}/post` and `/void`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) amount: u64,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/faxes` as JSON (after `POST /api/v1/files`).
#[derive(Debug, Deserialize)]
pub struct JsonJob {
    pub(crate) to: String,
    pub(crate) file_id: String,
    #[serde(default)]
    pub(crate) account: Option<String>,
}
