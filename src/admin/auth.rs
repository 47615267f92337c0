//! Who may call the admin API: Bearer API keys with scopes, per-source and per-key rate
//! limits, CORS for listed browser origins, and the security headers every answer carries.
//!
//! A key is `sbk_{id}_{secret}`; only its SHA-256 is stored (compared in constant time), and
//! it is shown once, when it is created. Every route needs a scope (`admin` grants all;
//! `devices:*` grants `devices:read` and `devices:write`); `/health`, `/health/ready` and the
//! HMAC-authenticated device claim are open, `/metrics` is open to `[admin] metrics_allow`
//! sources and needs `metrics:read` from elsewhere. No key: 401; a key without the scope:
//! 403; revoked, expired or unknown keys: 401, all with the same answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_config::AdminConfig;
use switchboard_storage::{
    list_api_keys, now_unix_ms, put_api_key, ApiKeyRecord, Store, StoreError,
};

use super::ApiError;

pub use super::bodies::check_request;
#[cfg(test)]
use super::bodies::KeyRequestError;

/// Whether `granted` includes `needed`.
pub fn grants(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| {
        g == "admin"
            || g == needed
            || g.strip_suffix(":*")
                .is_some_and(|family| needed.split(':').next() == Some(family))
    })
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The API keys, cached from the store; writes go to the store (flushed) first.
pub struct Keys {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<String, ApiKeyRecord>>,
}

/// A key that was just made: the key itself (shown once) and its record.
pub struct NewKey {
    /// `sbk_{id}_{secret}`.
    pub key: String,
    /// What is stored.
    pub record: ApiKeyRecord,
}

/// What [`Keys::load`] did at start.
pub enum FirstStart {
    /// The store already had keys (or the bootstrap key was installed): nothing to show.
    Nothing,
    /// The store had no keys and no bootstrap key was configured: this admin key was made;
    /// the caller shows it once and never again.
    Generated(NewKey),
}

impl Keys {
    /// The keys of `store`, as they are (no bootstrap, nothing generated): for the offline
    /// `switchboard keys create --store`.
    pub fn open(store: Arc<dyn Store>) -> Result<Arc<Keys>, StoreError> {
        let cache = list_api_keys(store.as_ref())?
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        Ok(Arc::new(Keys {
            store,
            cache: RwLock::new(cache),
        }))
    }

    /// Load the keys at start. On a store without any: install `bootstrap` as an `admin`
    /// key, or, with no bootstrap key configured, generate an admin key (only its hash is
    /// stored) and hand it back to be shown once ([`FirstStart::Generated`]). A bootstrap
    /// key on a store that already has other keys is ignored, with a warning.
    pub fn load(
        store: Arc<dyn Store>,
        bootstrap: Option<&switchboard_config::Secret>,
    ) -> Result<(Arc<Keys>, FirstStart), StoreError> {
        let keys = Keys::open(store)?;
        let empty = keys.cache.read().map_or(true, |c| c.is_empty());
        match bootstrap {
            Some(key) if empty => {
                let id = key_id(key.expose()).unwrap_or_default().to_string();
                let record = ApiKeyRecord {
                    v: ApiKeyRecord::VERSION,
                    id: id.clone(),
                    name: "bootstrap".into(),
                    hash: sha256_hex(key.expose()),
                    scopes: vec!["admin".into()],
                    created_ms: now_unix_ms(),
                    expires_ms: None,
                    revoked_ms: None,
                    accounts: Vec::new(),
                };
                put_api_key(keys.store.as_ref(), &record)?;
                tracing::info!(key = %id, "bootstrap admin key installed");
                if let Ok(mut c) = keys.cache.write() {
                    c.insert(id, record);
                }
            }
            // The same key, installed at an earlier start: nothing to say.
            Some(key) if keys.is_stored(key.expose()) => {
                tracing::debug!("bootstrap key already installed");
            }
            Some(_) => tracing::warn!(
                "the bootstrap key ([admin] bootstrap_key / SWITCHBOARD_ADMIN_BOOTSTRAP_KEY) is \
                 IGNORED: the store already has API keys, and a bootstrap key is only installed \
                 on a store without any; use a stored admin key, or make one with \
                 `switchboard keys create --store PATH` while the gateway is stopped"
            ),
            None if empty => {
                let made = keys.create("first-admin", vec!["admin".into()], None, Vec::new())?;
                tracing::info!(
                    key = %made.record.id,
                    "first start: an admin key was generated and shown once on the console"
                );
                return Ok((keys, FirstStart::Generated(made)));
            }
            None => {}
        }
        Ok((keys, FirstStart::Nothing))
    }

    /// Whether `key` is stored with this very secret (revoked or not).
    fn is_stored(&self, key: &str) -> bool {
        let Some(id) = key_id(key) else { return false };
        let Some(record) = self.cache.read().ok().and_then(|c| c.get(id).cloned()) else {
            return false;
        };
        sha256_hex(key)
            .as_bytes()
            .ct_eq(record.hash.as_bytes())
            .into()
    }

    /// Make a key with `scopes`, valid for `ttl_secs` (none: until revoked), bound to the
    /// ledger `accounts` it may bill (empty: none of its own).
    pub fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<u64>,
        accounts: Vec<String>,
    ) -> Result<NewKey, StoreError> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let key = format!("sbk_{id}_{secret}");
        let now = now_unix_ms();
        let record = ApiKeyRecord {
            v: ApiKeyRecord::VERSION,
            id: id.clone(),
            name: name.to_string(),
            hash: sha256_hex(&key),
            scopes,
            created_ms: now,
            expires_ms: ttl_secs.map(|s| now.saturating_add(s.saturating_mul(1000))),
            revoked_ms: None,
            accounts,
        };
        put_api_key(self.store.as_ref(), &record)?;
        if let Ok(mut c) = self.cache.write() {
            c.insert(id, record.clone());
        }
        Ok(NewKey { key, record })
    }

    /// Revoke key `id`; false when there is no such key.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let Some(mut record) = self.cache.read().ok().and_then(|c| c.get(id).cloned()) else {
            return Ok(false);
        };
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(now_unix_ms());
            put_api_key(self.store.as_ref(), &record)?;
            if let Ok(mut c) = self.cache.write() {
                c.insert(id.to_string(), record);
            }
        }
        Ok(true)
    }

    /// Every key record, by id.
    pub fn list(&self) -> Vec<ApiKeyRecord> {
        let mut v: Vec<ApiKeyRecord> = self
            .cache
            .read()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The record of a valid key: known, hash equal (constant time), not revoked, not expired.
    pub fn check(&self, key: &str, now_ms: u64) -> Option<ApiKeyRecord> {
        let id = key_id(key)?;
        let record = self.cache.read().ok()?.get(id).cloned()?;
        let hash = sha256_hex(key);
        let equal: bool = hash.as_bytes().ct_eq(record.hash.as_bytes()).into();
        let live = record.revoked_ms.is_none() && record.expires_ms.is_none_or(|e| e > now_ms);
        (equal && live).then_some(record)
    }
}

/// The `{id}` of `sbk_{id}_{secret}`.
fn key_id(key: &str) -> Option<&str> {
    if !switchboard_config::is_api_key_shape(key) {
        return None;
    }
    key.strip_prefix("sbk_")?.split_once('_').map(|(id, _)| id)
}

/// What a route needs.
enum Need {
    Open,
    Metrics,
    Scope(&'static str),
}

fn need(method: &Method, route: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        // The status page's files are static; its data comes from /api/v1/overview.
        "/health"
        | "/health/ready"
        | "/api/v1/devices/claim"
        | "/"
        | "/status.css"
        | "/status.js" => Need::Open,
        "/metrics" => Need::Metrics,
        r if r.starts_with("/api/v1/admin/") => Need::Scope("admin"),
        "/api/v1/calls/{id}/crash" => Need::Scope("admin"),
        "/api/v1/status" | "/api/v1/calls" | "/api/v1/cdrs" | "/api/v1/streams"
        | "/api/v1/trunks" | "/api/v1/overview" => Need::Scope("calls:read"),
        "/api/v1/calls/{id}" if read => Need::Scope("calls:read"),
        "/api/v1/calls/{id}" => Need::Scope("calls:write"),
        r if r.starts_with("/api/v1/devices") && read => Need::Scope("devices:read"),
        r if r.starts_with("/api/v1/devices") => Need::Scope("devices:write"),
        "/api/v1/faxes" | "/api/v1/files" if !read => Need::Scope("fax:send"),
        r if r.starts_with("/api/v1/faxes") || r.starts_with("/api/v1/inbound-faxes") => {
            Need::Scope("fax:read")
        }
        r if (r.starts_with("/api/v1/accounts") || r.starts_with("/api/v1/transfers")) && read => {
            Need::Scope("credits:read")
        }
        r if r.starts_with("/api/v1/accounts") || r.starts_with("/api/v1/transfers") => {
            Need::Scope("credits:write")
        }
        // Anything else under the API is for admins only.
        _ => Need::Scope("admin"),
    }
}

/// Rate limiters and the policy of the admin API.
pub struct Guard {
    /// The keys.
    pub keys: Arc<Keys>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_key: DefaultKeyedRateLimiter<String>,
    metrics_allow: Vec<ipnet::IpNet>,
    cors: Vec<String>,
    /// The API is served over TLS: send HSTS.
    hsts: bool,
}

fn quota(per_sec: u32) -> Quota {
    let n = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_sec.max(1).saturating_mul(2)).unwrap_or(n);
    Quota::per_second(n).allow_burst(burst)
}

impl Guard {
    /// The policy of `cfg`.
    pub fn new(keys: Arc<Keys>, cfg: &AdminConfig) -> Arc<Guard> {
        let guard = Arc::new(Guard {
            keys,
            per_ip: RateLimiter::keyed(quota(cfg.rate_limit_per_ip)),
            per_key: RateLimiter::keyed(quota(cfg.rate_limit_per_key)),
            metrics_allow: cfg.metrics_allow.clone(),
            cors: cfg.cors_origins.clone(),
            hsts: cfg.tls_cert.is_some() && cfg.tls_key.is_some(),
        });
        // Forget idle sources and keys now and then: the maps must not grow without bound.
        let weak = Arc::downgrade(&guard);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(g) = weak.upgrade() else { break };
                g.per_ip.retain_recent();
                g.per_key.retain_recent();
            }
        });
        guard
    }
}

fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    metrics::counter!("switchboard_admin_rate_limited_total").increment(1);
    r
}

fn unauthorized() -> Response {
    metrics::counter!("switchboard_admin_auth_failures_total", "reason" => "unauthorized")
        .increment(1);
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid API key is required (Authorization: Bearer sbk_...)",
    )
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// Per-route: the key and its scope, then the key's rate limit.
pub async fn authorize(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let needed = match need(req.method(), &route) {
        Need::Open => return next.run(req).await,
        Need::Metrics
            if client_ip(&req)
                .is_some_and(|ip| g.metrics_allow.iter().any(|n| n.contains(&ip))) =>
        {
            return next.run(req).await
        }
        Need::Metrics => "metrics:read",
        Need::Scope(s) => s,
    };
    let Some(record) = bearer(&req).and_then(|k| g.keys.check(k, now_unix_ms())) else {
        return unauthorized();
    };
    if let Err(not_until) = g.per_key.check_key(&record.id) {
        return too_many(not_until.wait_time_from(DefaultClock::default().now()));
    }
    if !grants(&record.scopes, needed) {
        metrics::counter!("switchboard_admin_auth_failures_total", "reason" => "forbidden")
            .increment(1);
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key lacks the scope {needed}"),
        )
        .into_response();
    }
    let mut req = req;
    req.extensions_mut().insert(Granted {
        scopes: record.scopes.clone(),
        accounts: record.accounts.clone(),
    });
    next.run(req).await
}

/// The scopes and accounts of the key a request was authorised with (for handlers that show
/// more to keys with more scopes, and that check who a key may bill).
#[derive(Debug, Clone)]
pub struct Granted {
    scopes: Vec<String>,
    accounts: Vec<String>,
}

/// Why a key may not bill an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    /// One of the gateway's own accounts (`@...`): never named through the API.
    #[error("{0} is one of the gateway's own accounts")]
    Internal(String),
    /// Not one of the key's accounts (and the key is not an admin key).
    #[error("this key may not bill account {0}")]
    NotBound(String),
    /// The key is bound to several accounts: the request must name one.
    #[error("this key is bound to several accounts: name one")]
    Ambiguous,
}

impl Granted {
    /// Whether the key also has `scope`.
    pub fn has(&self, scope: &str) -> bool {
        grants(&self.scopes, scope)
    }

    /// Whether the key is bound to accounts.
    pub fn is_bound(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// Who pays when this key asks for `named` (or names nobody): an internal account is
    /// never allowed; a named one must be among the key's accounts, unless the key is an
    /// unbound `admin` key (the payer as an explicit admin-only choice); naming nobody gives
    /// the key's only account, or `None` (the configured default) for an unbound key.
    pub fn payer(&self, named: Option<&str>) -> Result<Option<String>, BillError> {
        match named {
            Some(a) if switchboard_storage::ledger::is_internal_account(a) => {
                Err(BillError::Internal(a.to_string()))
            }
            Some(a) if self.accounts.iter().any(|b| b == a) => Ok(Some(a.to_string())),
            Some(a) if !self.is_bound() && self.has("admin") => Ok(Some(a.to_string())),
            Some(a) => Err(BillError::NotBound(a.to_string())),
            None => match self.accounts.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(one.clone())),
                _ => Err(BillError::Ambiguous),
            },
        }
    }

    /// Whether the key may debit `account` (a transfer's debit side): its own accounts, or
    /// any customer account for an unbound key.
    pub fn may_debit(&self, account: &str) -> bool {
        !switchboard_storage::ledger::is_internal_account(account)
            && (!self.is_bound() || self.accounts.iter().any(|a| a == account))
    }
}

/// Outermost: CORS (preflights answered here), the per-source rate limit, security headers.
pub async fn perimeter(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = origin
        .as_deref()
        .filter(|o| g.cors.iter().any(|c| c.trim_end_matches('/') == *o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let api = req.uri().path().starts_with("/api/");
    let mut resp = if preflight {
        match allowed {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => {
                metrics::counter!("switchboard_admin_cors_refused_total").increment(1);
                ApiError::new(StatusCode::FORBIDDEN, "cors_refused", "origin not allowed")
                    .into_response()
            }
        }
    } else {
        match client_ip(&req).map(|ip| g.per_ip.check_key(&ip)) {
            Some(Err(not_until)) => {
                too_many(not_until.wait_time_from(DefaultClock::default().now()))
            }
            _ => next.run(req).await,
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if g.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if let Some(o) = allowed.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_grant_themselves_their_family_and_admin_everything() {
        let g = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(grants(&g(&["admin"]), "fax:send"));
        assert!(grants(&g(&["devices:*"]), "devices:write"));
        assert!(!grants(&g(&["devices:*"]), "calls:read"));
        assert!(grants(&g(&["calls:read"]), "calls:read"));
        assert!(!grants(&g(&["calls:read"]), "calls:write"));
        assert!(!grants(&g(&[]), "calls:read"));
        assert!(!grants(&g(&["calls"]), "calls:read"));
    }

    #[test]
    fn a_key_bills_only_its_accounts_and_never_the_gateways() {
        let g = |scopes: &[&str], accounts: &[&str]| Granted {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
        };
        let unbound = g(&["fax:send"], &[]);
        assert_eq!(unbound.payer(None), Ok(None));
        assert_eq!(
            unbound.payer(Some("acme")),
            Err(BillError::NotBound("acme".into()))
        );
        assert!(matches!(
            unbound.payer(Some("@calls")),
            Err(BillError::Internal(_))
        ));
        let acme = g(&["fax:send"], &["acme"]);
        assert_eq!(acme.payer(None), Ok(Some("acme".into())));
        assert_eq!(acme.payer(Some("acme")), Ok(Some("acme".into())));
        assert!(acme.payer(Some("other")).is_err());
        assert_eq!(
            g(&["fax:send"], &["a", "b"]).payer(None),
            Err(BillError::Ambiguous)
        );
        let admin = g(&["admin"], &[]);
        assert_eq!(admin.payer(Some("other")), Ok(Some("other".into())));
        assert!(admin.payer(Some("@faxes")).is_err());
        assert!(unbound.may_debit("acme") && !unbound.may_debit("@calls"));
        assert!(acme.may_debit("acme") && !acme.may_debit("other"));
    }

    #[test]
    fn keys_check_by_hash_and_honour_revocation_and_expiry() {
        let store: Arc<dyn Store> = Arc::new(switchboard_storage::SledStore::temporary().unwrap());
        let boot = format!("sbk_{}_{}", "a".repeat(16), "b".repeat(64));
        let (keys, first) = Keys::load(
            Arc::clone(&store),
            Some(&switchboard_config::Secret::new(boot.clone())),
        )
        .unwrap();
        assert!(matches!(first, FirstStart::Nothing));
        let now = now_unix_ms();
        assert_eq!(keys.check(&boot, now).unwrap().scopes, ["admin"]);
        // Same id, other secret: refused.
        let forged = format!("sbk_{}_{}", "a".repeat(16), "c".repeat(64));
        assert!(keys.check(&forged, now).is_none());
        assert!(keys.check("sbk_short", now).is_none());
        let k = keys
            .create("ops", vec!["calls:read".into()], Some(60), Vec::new())
            .unwrap();
        assert!(keys.check(&k.key, now).is_some());
        assert!(keys.check(&k.key, now + 61_000).is_none(), "expired");
        assert!(keys.revoke(&k.record.id).unwrap());
        assert!(keys.check(&k.key, now).is_none(), "revoked");
        assert!(!keys.revoke("0000000000000000").unwrap());
        // Durable: a reload sees both, and ignores the bootstrap key now.
        let (again, _) = Keys::load(
            Arc::clone(&store),
            Some(&switchboard_config::Secret::new(forged)),
        )
        .unwrap();
        assert_eq!(again.list().len(), 2);
        assert!(again.check(&boot, now).is_some());
        assert!(again.check(&k.key, now).is_none());
        // Only the hash is stored.
        let raw = format!("{:?}", list_api_keys(store.as_ref()).unwrap());
        assert!(!raw.contains(&k.key[21..]), "the secret must not be stored");
    }

    #[test]
    fn an_empty_store_without_bootstrap_gets_one_generated_admin_key_once() {
        let store: Arc<dyn Store> = Arc::new(switchboard_storage::SledStore::temporary().unwrap());
        let (keys, first) = Keys::load(Arc::clone(&store), None).unwrap();
        let FirstStart::Generated(made) = first else {
            panic!("no key generated on an empty store")
        };
        assert!(switchboard_config::is_api_key_shape(&made.key));
        assert_eq!(made.record.scopes, ["admin"]);
        assert!(keys.check(&made.key, now_unix_ms()).is_some());
        let raw = format!("{:?}", list_api_keys(store.as_ref()).unwrap());
        assert!(!raw.contains(&made.key[21..]), "only the hash is stored");
        // The next start generates nothing, and the key still works.
        let (again, first) = Keys::load(Arc::clone(&store), None).unwrap();
        assert!(matches!(first, FirstStart::Nothing));
        assert_eq!(again.list().len(), 1);
        assert!(again.check(&made.key, now_unix_ms()).is_some());
    }

    #[test]
    fn key_requests_are_checked_alike_online_and_offline() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(check_request("ops", &s(&["admin"]), None), Ok(()));
        assert_eq!(
            check_request("", &s(&["admin"]), None),
            Err(KeyRequestError::BadName)
        );
        assert_eq!(
            check_request("ops", &[], None),
            Err(KeyRequestError::NoScopes)
        );
        assert!(matches!(
            check_request("ops", &s(&["root"]), None),
            Err(KeyRequestError::UnknownScope { .. })
        ));
        assert_eq!(
            check_request("ops", &s(&["admin"]), Some(0)),
            Err(KeyRequestError::BadExpiry)
        );
    }
}
