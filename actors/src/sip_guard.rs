//! SIP abuse protection: who may call without a challenge, digest authentication for
//! everyone else, per-source rate limits and temporary bans.
//!
//! - Trunk sources (`[[trunk]] address`/`allow`) and `[sip] trusted` networks pass as before.
//! - From anywhere else, an out-of-dialog INVITE or REGISTER must carry digest credentials
//!   (RFC 3261 §22, RFC 2617/7616 with `qop=auth`) of a `[[sip_user]]`. The nonce is
//!   stateless: a timestamp and an HMAC of it and the source address, valid five minutes.
//! - Every failure looks the same: a fresh 401 challenge, whether the user exists or not,
//!   whatever the extension dialled (no enumeration). An unknown user's response is checked
//!   against a dummy password so both take the same time.
//! - `ban_after` failures within `ban_window_secs` ban the source for `ban_secs`: its
//!   requests are then dropped without an answer. Requests beyond `rate_limit_per_source` a
//!   second are dropped too. Trunks and trusted sources are never limited or banned.
//!
//! Shared between the endpoint (which may restart) and the admin API (`/api/v1/bans`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use switchboard_config::Config;
use switchboard_sip::digest::Authorization;

/// How long a nonce is accepted.
const NONCE_LIFETIME_SECS: u64 = 300;
/// Sources tracked at most (rate buckets and failure windows); beyond, the idle are forgotten.
const MAX_TRACKED: usize = 50_000;

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

/// A ban, as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BanView {
    /// The source address.
    pub ip: String,
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

#[derive(Default)]
struct State {
    bans: HashMap<IpAddr, Ban>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    buckets: HashMap<IpAddr, Bucket>,
}

/// The guard.
pub struct SipGuard {
    key: [u8; 32],
    state: Mutex<State>,
}

impl Default for SipGuard {
    fn default() -> Self {
        SipGuard {
            key: rand::random(),
            state: Mutex::new(State::default()),
        }
    }
}

impl std::fmt::Debug for SipGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipGuard")
    }
}

fn mac(key: &[u8; 32], ts: u64, ip: IpAddr) -> String {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    m.update(&ts.to_be_bytes());
    m.update(ip.to_string().as_bytes());
    hex::encode(&m.finalize().into_bytes()[..12])
}

impl SipGuard {
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
        let ip = ip.to_canonical();
        let Ok(mut st) = self.state.lock() else {
            return Admit::Yes;
        };
        if let Some(b) = st.bans.get(&ip) {
            if b.until > now {
                return Admit::Banned;
            }
            st.bans.remove(&ip);
            metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        }
        if st.buckets.len() > MAX_TRACKED {
            let idle = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
            st.buckets.retain(|_, b| b.last > idle);
        }
        let rate = f64::from(config.sip.rate_limit_per_source);
        let b = st.buckets.entry(ip).or_insert(Bucket {
            tokens: rate * 2.0,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate * 2.0);
        b.last = now;
        if b.tokens < 1.0 {
            return Admit::RateLimited;
        }
        b.tokens -= 1.0;
        Admit::Yes
    }

    /// A fresh nonce for `ip`.
    pub fn nonce(&self, ip: IpAddr, now_unix: u64) -> String {
        let ip = ip.to_canonical();
        format!("{now_unix:x}.{}", mac(&self.key, now_unix, ip))
    }

    fn nonce_ok(&self, nonce: &str, ip: IpAddr, now_unix: u64) -> bool {
        let Some((ts, tag)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(ts) = u64::from_str_radix(ts, 16) else {
            return false;
        };
        let fresh = ts <= now_unix && now_unix - ts <= NONCE_LIFETIME_SECS;
        let expected = mac(&self.key, ts, ip.to_canonical());
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), tag.as_bytes()).into();
        fresh && same
    }

    /// Whether the credentials in `auth_header` are a `[[sip_user]]`'s, for `method` from `ip`.
    pub fn verify(
        &self,
        config: &Config,
        auth_header: &str,
        method: &str,
        ip: IpAddr,
        now_unix: u64,
    ) -> bool {
        let Ok(auth) = Authorization::parse(auth_header) else {
            return false;
        };
        let user = config
            .sip
            .users
            .iter()
            .find(|u| u.username == auth.username);
        // Unknown users are checked against a dummy password: same work, same answer.
        let password = user.map_or("\u{0}no-such-user\u{0}", |u| u.password.expose());
        let hash_ok = auth.verify(method, password);
        let realm_ok = auth.realm == config.sip.realm;
        let nonce_ok = self.nonce_ok(&auth.nonce, ip, now_unix);
        hash_ok && realm_ok && nonce_ok && user.is_some()
    }

    /// Count a failed authentication from `ip`; true when it is now banned.
    pub fn failure(&self, config: &Config, ip: IpAddr, now: Instant, now_ms: u64) -> bool {
        let ip = ip.to_canonical();
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        metrics::counter!("switchboard_sip_auth_failures_total").increment(1);
        let window = Duration::from_secs(u64::from(config.sip.ban_window_secs));
        if st.failures.len() > MAX_TRACKED {
            st.failures.retain(|_, f| {
                f.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        let f = st.failures.entry(ip).or_default();
        f.push_back(now);
        while f
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            f.pop_front();
        }
        if f.len() < config.sip.ban_after as usize {
            return false;
        }
        st.failures.remove(&ip);
        st.bans.insert(
            ip,
            Ban {
                until: now + Duration::from_secs(u64::from(config.sip.ban_secs)),
                since_ms: now_ms,
                reason: "authentication failures",
            },
        );
        metrics::counter!("switchboard_sip_bans_total").increment(1);
        metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        tracing::warn!(%ip, "SIP source banned after repeated authentication failures");
        true
    }

    /// Current bans.
    pub fn bans(&self, now: Instant) -> Vec<BanView> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        let mut v: Vec<BanView> = st
            .bans
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(ip, b)| BanView {
                ip: ip.to_string(),
                reason: b.reason,
                since: switchboard_storage::rfc3339(b.since_ms),
                remaining_secs: b.until.saturating_duration_since(now).as_secs(),
            })
            .collect();
        v.sort_by(|a, b| a.ip.cmp(&b.ip));
        v
    }

    /// Lift a ban; false when `ip` was not banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let found = st.bans.remove(&ip.to_canonical()).is_some();
        metrics::gauge!("switchboard_sip_bans_active").set(st.bans.len() as f64);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sip::digest::{self, Algorithm, Challenge};

    fn config() -> Config {
        switchboard_config::load_from_str(
            "[sip]\nban_after = 3\nrate_limit_per_source = 5\n\n[[sip_user]]\nusername = \"alice\"\npassword = \"correct horse\"\n",
            &[],
        )
        .unwrap()
    }

    fn answer(guard: &SipGuard, user: &str, pass: &str, ip: IpAddr, now: u64) -> String {
        let challenge = Challenge::parse(&digest::challenge_header(
            "switchboard",
            &guard.nonce(ip, now),
            Algorithm::Md5,
        ))
        .unwrap();
        digest::authorization(
            &challenge,
            user,
            pass,
            "REGISTER",
            "sip:switchboard",
            1,
            "c1",
        )
    }

    #[test]
    fn digest_checks_user_password_realm_and_nonce() {
        let (c, g) = (config(), SipGuard::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = 1_800_000_000;
        let good = answer(&g, "alice", "correct horse", ip, now);
        assert!(g.verify(&c, &good, "REGISTER", ip, now));
        assert!(!g.verify(&c, &good, "INVITE", ip, now), "method is hashed");
        assert!(
            !g.verify(&c, &good, "REGISTER", "192.0.2.8".parse().unwrap(), now),
            "nonce bound to the source"
        );
        assert!(
            !g.verify(&c, &good, "REGISTER", ip, now + 301),
            "stale nonce"
        );
        assert!(!g.verify(
            &c,
            &answer(&g, "alice", "wrong", ip, now),
            "REGISTER",
            ip,
            now
        ));
        assert!(!g.verify(
            &c,
            &answer(&g, "mallory", "correct horse", ip, now),
            "REGISTER",
            ip,
            now
        ));
        assert!(!g.verify(&c, "Digest garbage", "REGISTER", ip, now));
    }

    #[test]
    fn failures_ban_and_bans_drop_until_lifted_and_rates_are_capped() {
        let (c, g) = (config(), SipGuard::default());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let t = Instant::now();
        assert!(!g.failure(&c, ip, t, 0));
        assert!(!g.failure(&c, ip, t, 0));
        assert!(g.failure(&c, ip, t, 0), "third failure bans");
        assert_eq!(g.admit(&c, ip, t), Admit::Banned);
        assert_eq!(g.bans(t).len(), 1);
        assert!(g.unban(ip));
        // Burst of twice the rate, then refused, then refilled.
        let n = (0..20).filter(|_| g.admit(&c, ip, t) == Admit::Yes).count();
        assert_eq!(n, 10);
        assert_eq!(g.admit(&c, ip, t), Admit::RateLimited);
        assert_eq!(g.admit(&c, ip, t + Duration::from_secs(1)), Admit::Yes);
        // Trusted sources are never limited.
        let trusted =
            switchboard_config::load_from_str("[sip]\ntrusted = [\"10.0.0.0/8\"]\n", &[]).unwrap();
        for _ in 0..1000 {
            assert_eq!(
                g.admit(&trusted, "10.1.2.3".parse().unwrap(), t),
                Admit::Yes
            );
        }
    }
}
