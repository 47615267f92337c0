//! SIP abuse protection: who may call without a challenge, digest authentication for
//! everyone else, per-source rate limits and temporary bans (RFC 3261 §22, RFC 7616).
//!
//! - Trunk sources (`[[trunk]] address`/`allow`) and `[sip] trusted` networks pass as before.
//! - From anywhere else, an out-of-dialog INVITE or REGISTER must carry digest credentials
//!   of a `[[sip_user]]` with `qop=auth`. The endpoint challenges without one statelessly (one
//!   401 per request, no 100 Trying, no retransmission, no transaction) so a spoofed source
//!   cannot turn the gateway into an amplifier.
//! - The nonce is stateless: `{time}.{serial}.{HMAC(key, time, serial, source IP)}`, valid
//!   `[sip] nonce_lifetime_secs`. [`SipGuard::verify`] accepts it only from the source it was
//!   issued to, only with `qop=auth`, a digest-uri naming the Request-URI and a nonce count
//!   above the last one accepted for that nonce (a bounded cache; a nonce it had to forget is
//!   stale). An expired nonce is answered `stale=true`.
//! - Every failure looks the same: a fresh 401 challenge, whether the user exists or not,
//!   whatever the extension dialled (no enumeration). An unknown user's response is checked
//!   against a dummy password so both take the same time.
//! - Only a wrong response to a nonce we issued to that very source counts as a failure: a
//!   spoofed request with junk credentials cannot get a real customer banned. `ban_after`
//!   failures within `ban_window_secs` (counted from the first) ban the source for
//!   `ban_secs`: its requests are then dropped without an answer. Requests beyond
//!   `rate_limit_per_source` a second are dropped too. Trunks and trusted sources are never
//!   limited or banned.
//! - Sources are IPv4 addresses or IPv6 /64 networks (one subscriber's allocation). Bans, rate
//!   buckets, failure windows and nonce counts are least-recently-used maps with fixed caps;
//!   no packet ever scans them.
//!
//! Shared between the endpoint (which may restart) and the admin API (`/api/v1/bans`).

mod lru;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use switchboard_config::Config;
use switchboard_sip::digest::{uri_matches, Authorization};

pub use lru::Lru;

/// Caps of the guard's maps (entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Bans kept at once; beyond, the least recently active ban is forgotten.
    pub bans: usize,
    /// Sources tracked for rate limits, and separately for failure windows.
    pub sources: usize,
    /// Nonces whose last nonce count is remembered.
    pub nonces: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            bans: 100_000,
            sources: 50_000,
            nonces: 65_536,
        }
    }
}

/// What to do with a request from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Yes,
    /// Drop it: the source is banned.
    Banned,
    /// Drop it: over the source's rate.
    RateLimited,
}

/// Why credentials were not accepted; every case is answered with a 401 challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No credentials, unparsable ones, or a nonce we did not issue to this source (junk, or
    /// a spoofed source): not counted.
    Foreign,
    /// Our nonce, past its lifetime or forgotten: `stale=true`, not counted.
    Stale,
    /// Our nonce with a nonce count not above the last one accepted (a replay): `stale=true`,
    /// not counted.
    Replayed,
    /// Our nonce, but no `qop=auth`, or a realm or digest-uri that is not this request's:
    /// refused before the password is looked at, so not counted.
    Mismatch,
    /// Our nonce, fresh, and a wrong password or an unknown user: counted toward a ban.
    WrongCredentials,
}

impl Reject {
    /// Whether the new challenge says `stale=true`.
    pub fn stale(self) -> bool {
        matches!(self, Reject::Stale | Reject::Replayed)
    }

    /// Whether this counts as a failed authentication of the source.
    pub fn counts(self) -> bool {
        self == Reject::WrongCredentials
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::Foreign => "foreign_nonce",
            Reject::Stale => "stale",
            Reject::Replayed => "replayed",
            Reject::Mismatch => "mismatch",
            Reject::WrongCredentials => "wrong_credentials",
        }
    }
}

/// The outcome of [`SipGuard::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The request is `[[sip_user]] username`'s: the identity that pays for its calls.
    Authenticated {
        /// The authenticated `[[sip_user]]`.
        username: String,
    },
    /// Challenge again.
    Rejected(Reject),
}

impl Verdict {
    /// The authenticated `[[sip_user]]`'s username, if any.
    pub fn username(&self) -> Option<&str> {
        match self {
            Verdict::Authenticated { username } => Some(username),
            Verdict::Rejected(_) => None,
        }
    }
}

/// A ban, as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BanView {
    /// The source address (the network address for an IPv6 /64).
    pub ip: String,
    /// 32 for an IPv4 address, 64 for an IPv6 network.
    pub prefix_len: u8,
    /// Why.
    pub reason: &'static str,
    /// When it started (RFC 3339).
    pub since: String,
    /// Seconds left.
    pub remaining_secs: u64,
}

struct Ban {
    until: Instant,
    since_ms: u64,
    reason: &'static str,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Failures counted in a window that opens with the first one.
struct Failures {
    count: u32,
    since: Instant,
}

struct State {
    bans: Lru<IpAddr, Ban>,
    failures: Lru<IpAddr, Failures>,
    buckets: Lru<IpAddr, Bucket>,
    /// Nonce serial → highest nonce count accepted.
    nonce_counts: Lru<u64, u32>,
    /// Highest serial ever forgotten by `nonce_counts`: a nonce at or below it that is not
    /// remembered may have been used, so it is stale.
    forgotten_up_to: u64,
}

/// The guard.
pub struct SipGuard {
    key: [u8; 32],
    serial: AtomicU64,
    state: Mutex<State>,
}

impl Default for SipGuard {
    fn default() -> Self {
        SipGuard::with_caps(Caps::default())
    }
}

impl std::fmt::Debug for SipGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipGuard")
    }
}

/// The unit bans, rate limits and failures apply to: an IPv4 address (IPv4-mapped IPv6
/// included) or the /64 an IPv6 address is in.
pub fn source_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

fn mac(key: &[u8; 32], ts: u64, serial: u64, ip: IpAddr) -> String {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    m.update(&ts.to_be_bytes());
    m.update(&serial.to_be_bytes());
    m.update(ip.to_string().as_bytes());
    hex::encode(&m.finalize().into_bytes()[..12])
}

/// A lowercase-or-uppercase hex number of 1..=16 digits (no sign, unlike `from_str_radix`).
fn hex_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl SipGuard {
    /// A guard whose maps hold at most `caps` entries.
    pub fn with_caps(caps: Caps) -> Self {
        SipGuard {
            key: rand::random(),
            serial: AtomicU64::new(0),
            state: Mutex::new(State {
                bans: Lru::new(caps.bans),
                failures: Lru::new(caps.sources),
                buckets: Lru::new(caps.sources),
                nonce_counts: Lru::new(caps.nonces),
                forgotten_up_to: 0,
            }),
        }
    }

    /// Whether `ip` is a trunk or a trusted source.
    pub fn trusted(config: &Config, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        config.trunk_for_source(ip).is_some() || config.sip.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Rate limit and bans for a request from `ip` (untrusted sources only).
    pub fn admit(&self, config: &Config, ip: IpAddr, now: Instant) -> Admit {
        if Self::trusted(config, ip) {
            return Admit::Yes;
        }
        let src = source_bucket(ip);
        let Ok(mut st) = self.state.lock() else {
            return Admit::Yes;
        };
        if let Some(until) = st.bans.get_mut(&src).map(|b| b.until) {
            if until > now {
                return Admit::Banned;
            }
            st.bans.remove(&src);
            metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        }
        let rate = f64::from(config.sip.rate_limit_per_source);
        if st.buckets.peek(&src).is_none() {
            st.buckets.insert(
                src,
                Bucket {
                    tokens: rate * 2.0,
                    last: now,
                },
            );
        }
        let Some(b) = st.buckets.get_mut(&src) else {
            return Admit::Yes;
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate * 2.0);
        b.last = now;
        if b.tokens < 1.0 {
            return Admit::RateLimited;
        }
        b.tokens -= 1.0;
        Admit::Yes
    }

    /// A fresh nonce for `ip`, unique to this challenge.
    pub fn nonce(&self, ip: IpAddr, now_unix: u64) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let ip = ip.to_canonical();
        format!(
            "{now_unix:x}.{serial:x}.{}",
            mac(&self.key, now_unix, serial, ip)
        )
    }

    /// The (time, serial) of `nonce` when we issued it to `ip`.
    fn open_nonce(&self, nonce: &str, ip: IpAddr) -> Option<(u64, u64)> {
        let mut parts = nonce.splitn(3, '.');
        let ts = hex_u64(parts.next()?)?;
        let serial = hex_u64(parts.next()?)?;
        let tag = parts.next()?;
        let expected = mac(&self.key, ts, serial, ip.to_canonical());
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), tag.as_bytes()).into();
        same.then_some((ts, serial))
    }

    /// Checks the credentials in `auth_header` (an `Authorization` value) for a request with
    /// `method` and Request-URI `request_uri` from `ip`, at `now_unix` (seconds). On success
    /// the nonce count is recorded, so the same credentials never pass twice.
    pub fn verify(
        &self,
        config: &Config,
        auth_header: &str,
        method: &str,
        request_uri: &str,
        ip: IpAddr,
        now_unix: u64,
    ) -> Verdict {
        let verdict = self.check(config, auth_header, method, request_uri, ip, now_unix);
        if let Verdict::Rejected(r) = verdict {
            metrics::counter!("switchboard_sip_auth_rejects_total", "reason" => r.label())
                .increment(1);
        }
        verdict
    }

    fn check(
        &self,
        config: &Config,
        auth_header: &str,
        method: &str,
        request_uri: &str,
        ip: IpAddr,
        now_unix: u64,
    ) -> Verdict {
        let reject = Verdict::Rejected;
        let Ok(auth) = Authorization::parse(auth_header) else {
            return reject(Reject::Foreign);
        };
        let Some((ts, serial)) = self.open_nonce(&auth.nonce, ip) else {
            return reject(Reject::Foreign);
        };
        let lifetime = u64::from(config.sip.nonce_lifetime_secs);
        if ts > now_unix || now_unix - ts > lifetime {
            return reject(Reject::Stale);
        }
        let nc = match auth.nc {
            Some(nc) if nc > 0 && auth.has_qop_auth() => nc,
            _ => return reject(Reject::Mismatch),
        };
        if auth.realm != config.sip.realm || !uri_matches(&auth.uri, request_uri) {
            return reject(Reject::Mismatch);
        }
        let user = config
            .sip
            .users
            .iter()
            .find(|u| u.username == auth.username);
        // Unknown users are checked against a dummy password: same work, same answer.
        let password = user.map_or("\u{0}no-such-user\u{0}", |u| u.password.expose());
        let hash_ok = auth.verify(method, password);
        let Some(user) = user.filter(|_| hash_ok) else {
            return reject(Reject::WrongCredentials);
        };
        let Ok(mut guard) = self.state.lock() else {
            return reject(Reject::Stale);
        };
        let st = &mut *guard;
        match st.nonce_counts.get_mut(&serial) {
            Some(last) if nc <= *last => return reject(Reject::Replayed),
            Some(last) => *last = nc,
            None if serial <= st.forgotten_up_to => return reject(Reject::Stale),
            None => {
                if let Some((forgotten, _)) = st.nonce_counts.insert(serial, nc) {
                    st.forgotten_up_to = st.forgotten_up_to.max(forgotten);
                }
            }
        }
        Verdict::Authenticated {
            username: user.username.clone(),
        }
    }

    /// Count a failed authentication from `ip` (a [`Reject::counts`] one); true when its
    /// source is now banned.
    pub fn failure(&self, config: &Config, ip: IpAddr, now: Instant, now_ms: u64) -> bool {
        let src = source_bucket(ip);
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        metrics::counter!("switchboard_sip_auth_failures_total").increment(1);
        let window = Duration::from_secs(u64::from(config.sip.ban_window_secs));
        let count = match st.failures.get_mut(&src) {
            Some(f) if now.saturating_duration_since(f.since) <= window => {
                f.count += 1;
                f.count
            }
            _ => {
                st.failures.insert(
                    src,
                    Failures {
                        count: 1,
                        since: now,
                    },
                );
                1
            }
        };
        if count < config.sip.ban_after {
            return false;
        }
        st.failures.remove(&src);
        st.bans.insert(
            src,
            Ban {
                until: now + Duration::from_secs(u64::from(config.sip.ban_secs)),
                since_ms: now_ms,
                reason: "authentication failures",
            },
        );
        metrics::counter!("switchboard_sip_bans_total").increment(1);
        metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        tracing::warn!(source = %src, "SIP source banned after repeated authentication failures");
        true
    }

    /// Current bans (expired ones are dropped here, for the admin API).
    pub fn bans(&self, now: Instant) -> Vec<BanView> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        st.bans.retain(|_, b| b.until > now);
        metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        let mut v: Vec<BanView> = st
            .bans
            .iter()
            .map(|(ip, b)| BanView {
                ip: ip.to_string(),
                prefix_len: if ip.is_ipv4() { 32 } else { 64 },
                reason: b.reason,
                since: switchboard_storage::rfc3339(b.since_ms),
                remaining_secs: b.until.saturating_duration_since(now).as_secs(),
            })
            .collect();
        v.sort_by(|a, b| a.ip.cmp(&b.ip));
        v
    }

    /// Lift the ban of `ip`'s source (its /64 for IPv6); false when it was not banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let found = st.bans.remove(&source_bucket(ip)).is_some();
        metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        found
    }
}
