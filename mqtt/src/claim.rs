//! Device claim (pairing) over `claim/{id}/request` → `claim/{id}/response`: HMAC-SHA256
//! (RFC 2104 with FIPS 180-4 SHA-256) over `{device_id}|{nonce}|{ts}`, keyed with a per-device
//! factory secret derived from the fleet secret, plus a timestamp window and single-use nonces
//! against replay.
//!
//! Sans-IO: nothing here reads the clock or the store. The caller passes the current time and
//! whether the nonce was already used, and after [`verify`] succeeds records the nonce durably
//! (until `ts + window`) **before** answering, then issues a credential
//! ([`crate::credential::issue`]). The caller must also check that the id in the topic equals
//! [`ClaimRequest::device_id`].
//!
//! Order of checks in [`verify`]: the MAC first (constant time), then the clock window, then the
//! nonce. So an unauthenticated sender learns nothing (it is always `rejected`), a genuine device
//! with a wrong clock is told `clock_skew`, and only genuine requests touch the nonce memory.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::DeviceId;

type HmacSha256 = Hmac<Sha256>;

/// Largest claim request accepted, in bytes of JSON.
pub const MAX_CLAIM_JSON: usize = 1024;
/// Shortest nonce accepted.
pub const MIN_NONCE: usize = 16;
/// Longest nonce accepted.
pub const MAX_NONCE: usize = 64;
/// Domain separation prefix of [`device_secret`].
pub const DEVICE_SECRET_CONTEXT: &str = "switchboard-device-v1|";

/// HMAC-SHA256 of `parts` (concatenated) under `key`. HMAC takes keys of any length.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // `new_from_slice` never fails for HMAC (any key length is valid); fall back to the
    // digest of an empty key rather than panic if that ever changed.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Per-device factory secret derived from the fleet secret:
/// HMAC-SHA256(fleet_secret, `"switchboard-device-v1|"` + device_id).
///
/// Flashed into each device at the factory; the gateway re-derives it from the fleet secret,
/// so no per-device secret needs storing before the claim.
pub fn device_secret(fleet_secret: &[u8], device_id: &str) -> [u8; 32] {
    hmac(
        fleet_secret,
        &[DEVICE_SECRET_CONTEXT.as_bytes(), device_id.as_bytes()],
    )
}

fn raw_claim_mac(device_secret: &[u8], device_id: &str, nonce: &str, ts: i64) -> [u8; 32] {
    let ts = ts.to_string();
    hmac(
        device_secret,
        &[
            device_id.as_bytes(),
            b"|",
            nonce.as_bytes(),
            b"|",
            ts.as_bytes(),
        ],
    )
}

/// The MAC a device sends: HMAC-SHA256(device_secret, `"{device_id}|{nonce}|{ts}"`) as
/// lowercase hex (64 characters); `ts` in decimal.
pub fn claim_mac(device_secret: &[u8], device_id: &str, nonce: &str, ts: i64) -> String {
    hex::encode(raw_claim_mac(device_secret, device_id, nonce, ts))
}

/// Constant-time equality of two MACs (`subtle`): the time taken does not depend on where
/// they differ, so a sender cannot find a valid MAC byte by byte.
fn macs_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// A pairing request as a device publishes it on `claim/{id}/request`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ClaimRequest {
    /// The device id (`[A-Za-z0-9_-]{1,64}`, see [`DeviceId`]).
    pub device_id: String,
    /// A fresh random nonce, 16..=64 of `[A-Za-z0-9_-]`, never reused.
    pub nonce: String,
    /// The device's clock, unix seconds.
    pub ts: i64,
    /// [`claim_mac`] of the other fields: 64 hex digits (either case accepted).
    pub hmac: String,
}

impl ClaimRequest {
    /// Parse and check a request: at most [`MAX_CLAIM_JSON`] bytes of JSON, a valid device id,
    /// a nonce of [`MIN_NONCE`]..=[`MAX_NONCE`] of `[A-Za-z0-9_-]` and an `hmac` of 64 hex
    /// digits. Unknown fields are ignored (they are not covered by the MAC). Any problem is
    /// [`ClaimRejection::Malformed`].
    pub fn from_json(data: &[u8]) -> Result<Self, ClaimRejection> {
        if data.len() > MAX_CLAIM_JSON {
            return Err(ClaimRejection::Malformed);
        }
        let req: ClaimRequest =
            serde_json::from_slice(data).map_err(|_| ClaimRejection::Malformed)?;
        let nonce_ok = (MIN_NONCE..=MAX_NONCE).contains(&req.nonce.len())
            && req
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let hmac_ok = req.hmac.len() == 64 && req.hmac.bytes().all(|b| b.is_ascii_hexdigit());
        if DeviceId::parse(&req.device_id).is_err() || !nonce_ok || !hmac_ok {
            return Err(ClaimRejection::Malformed);
        }
        Ok(req)
    }

    /// The MAC bytes, if `hmac` is 64 hex digits.
    fn mac_bytes(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.hmac, &mut out).ok()?;
        Some(out)
    }
}

/// Why a claim was refused.
///
/// [`ClaimRejection::code`] is what the device is told: only `malformed`, `clock_skew` (so it
/// can fix its clock), `already_claimed` (only after the MAC, the clock and the nonce are
/// checked: the caller holds the device secret, and must ask an operator to reset the device)
/// or `rejected` (a bad MAC, a replayed nonce, an unknown or disabled device all look the same
/// to the device). [`ClaimRejection::metric_reason`] is the detailed reason for metrics and
/// logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ClaimRejection {
    /// Not a valid claim request (JSON, size, id, nonce or MAC format).
    #[error("malformed claim request")]
    Malformed,
    /// The timestamp is outside the accepted window around the gateway's clock.
    #[error("claim timestamp outside the accepted window")]
    ClockSkew,
    /// The MAC does not match the device secret.
    #[error("claim MAC does not match")]
    BadHmac,
    /// The nonce was already used by this device.
    #[error("claim nonce already used")]
    Replay,
    /// The device is disabled (decided by the caller).
    #[error("device is disabled")]
    Disabled,
    /// The device is already claimed and may not be claimed again (decided by the caller).
    #[error("device is already claimed")]
    AlreadyClaimed,
}

impl ClaimRejection {
    /// What the device is told: `"malformed"`, `"clock_skew"`, `"already_claimed"` or
    /// `"rejected"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::ClockSkew => "clock_skew",
            Self::AlreadyClaimed => "already_claimed",
            Self::BadHmac | Self::Replay | Self::Disabled => "rejected",
        }
    }

    /// The detailed reason for metrics and logs: `"malformed"`, `"clock_skew"`, `"bad_hmac"`,
    /// `"replay"`, `"disabled"` or `"already_claimed"`.
    pub fn metric_reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::ClockSkew => "clock_skew",
            Self::BadHmac => "bad_hmac",
            Self::Replay => "replay",
            Self::Disabled => "disabled",
            Self::AlreadyClaimed => "already_claimed",
        }
    }
}

/// Check a claim against the device secret ([`device_secret`]).
///
/// In order: the MAC, compared in constant time; `ts` within ±`window_secs` of `now_unix`
/// (inclusive; a negative window counts as zero); then `nonce_seen`, whether this
/// (device, nonce) was already used, which the caller looks up in its durable store. The
/// nonce is checked after the MAC so a forged request cannot probe the nonce memory.
///
/// `Ok(())` means the claim is genuine and fresh; the caller then records the nonce durably
/// until `ts + window_secs` (a request with that `ts` is stale afterwards, so the record may
/// be purged) **before** answering.
pub fn verify(
    req: &ClaimRequest,
    device_secret: &[u8],
    now_unix: i64,
    window_secs: i64,
    nonce_seen: bool,
) -> Result<(), ClaimRejection> {
    let presented = req.mac_bytes().ok_or(ClaimRejection::Malformed)?;
    let expected = raw_claim_mac(device_secret, &req.device_id, &req.nonce, req.ts);
    if !macs_equal(&presented, &expected) {
        return Err(ClaimRejection::BadHmac);
    }
    let window = u64::try_from(window_secs).unwrap_or(0);
    if now_unix.abs_diff(req.ts) > window {
        return Err(ClaimRejection::ClockSkew);
    }
    if nonce_seen {
        return Err(ClaimRejection::Replay);
    }
    Ok(())
}

/// The gateway's answer on `claim/{id}/response`.
///
/// `{"ok":true,"device_id":..,"username":..,"password":..,"broker":..}` or
/// `{"ok":false,"reason":..}` with the reason's [`ClaimRejection::code`]. Debug never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimResponse(Answer);

#[derive(Clone, PartialEq, Eq)]
enum Answer {
    Success {
        device_id: String,
        username: String,
        password: String,
        broker: String,
    },
    Rejected(ClaimRejection),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Wire<'a> {
    Success {
        ok: bool,
        device_id: &'a str,
        username: &'a str,
        password: &'a str,
        broker: &'a str,
    },
    Rejected {
        ok: bool,
        reason: &'static str,
    },
}

impl ClaimResponse {
    /// A successful claim: the MQTT credential (shown to the device this once) and the broker
    /// URL to connect to.
    pub fn success(
        device_id: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        broker_url: impl Into<String>,
    ) -> Self {
        Self(Answer::Success {
            device_id: device_id.into(),
            username: username.into(),
            password: password.into(),
            broker: broker_url.into(),
        })
    }

    /// A refusal; the device sees only [`ClaimRejection::code`].
    pub fn rejected(r: ClaimRejection) -> Self {
        Self(Answer::Rejected(r))
    }

    /// Whether this is a success.
    pub fn is_ok(&self) -> bool {
        matches!(self.0, Answer::Success { .. })
    }

    /// The JSON body to publish.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = match &self.0 {
            Answer::Success {
                device_id,
                username,
                password,
                broker,
            } => Wire::Success {
                ok: true,
                device_id,
                username,
                password,
                broker,
            },
            Answer::Rejected(r) => Wire::Rejected {
                ok: false,
                reason: r.code(),
            },
        };
        // Serializing strings and bools cannot fail; answer a plain refusal if it ever did.
        serde_json::to_vec(&wire)
            .unwrap_or_else(|_| br#"{"ok":false,"reason":"rejected"}"#.to_vec())
    }
}

impl std::fmt::Debug for ClaimResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Answer::Success {
                device_id,
                username,
                broker,
                ..
            } => f
                .debug_struct("ClaimResponse::Success")
                .field("device_id", device_id)
                .field("username", username)
                .field("password", &"***")
                .field("broker", broker)
                .finish(),
            Answer::Rejected(r) => f.debug_tuple("ClaimResponse::Rejected").field(r).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &[u8] = b"fleet-secret-0123456789abcdef";
    const ID: &str = "esp32-a1b2c3";
    const NONCE: &str = "n0nce-0123456789AB";
    const TS: i64 = 1_795_459_201;

    fn request(secret: &[u8], nonce: &str, ts: i64) -> ClaimRequest {
        ClaimRequest {
            device_id: ID.into(),
            nonce: nonce.into(),
            ts,
            hmac: claim_mac(secret, ID, nonce, ts),
        }
    }

    #[test]
    fn golden_vector() {
        // Computed once with Python's hmac module and pinned.
        let secret = device_secret(FLEET, ID);
        assert_eq!(
            hex::encode(secret),
            "102bccd90a4e067b70bc6b08b2505b68720a0dfdd6c5e4af471993b12840690a"
        );
        assert_eq!(
            claim_mac(&secret, ID, NONCE, TS),
            "f2caa340a14e9b37aa9cf57293453c41f69a4c1821685c53ba538354eb11a7f3"
        );
        // RFC 4231 test case 2 pins the HMAC itself.
        assert_eq!(
            hex::encode(hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn genuine_fresh_claim_is_accepted() {
        let secret = device_secret(FLEET, ID);
        let json = serde_json::to_vec(&request(&secret, NONCE, TS)).unwrap();
        let req = ClaimRequest::from_json(&json).unwrap();
        assert_eq!(verify(&req, &secret, TS, 300, false), Ok(()));
        assert_eq!(verify(&req, &secret, TS + 300, 300, false), Ok(()));
        assert_eq!(verify(&req, &secret, TS - 300, 300, false), Ok(()));
    }

    #[test]
    fn replay_is_rejected_after_the_mac() {
        let secret = device_secret(FLEET, ID);
        let req = request(&secret, NONCE, TS);
        assert_eq!(
            verify(&req, &secret, TS, 300, true),
            Err(ClaimRejection::Replay)
        );
        // A forged request with a seen nonce is a bad MAC, not a replay: no nonce probing.
        let mut forged = req.clone();
        forged.hmac = "00".repeat(32);
        assert_eq!(
            verify(&forged, &secret, TS, 300, true),
            Err(ClaimRejection::BadHmac)
        );
    }

    #[test]
    fn stale_in_both_directions() {
        let secret = device_secret(FLEET, ID);
        let req = request(&secret, NONCE, TS);
        for now in [TS + 301, TS - 301, i64::MAX, i64::MIN] {
            assert_eq!(
                verify(&req, &secret, now, 300, false),
                Err(ClaimRejection::ClockSkew),
                "now = {now}"
            );
        }
        assert_eq!(
            verify(&req, &secret, TS + 1, -5, false),
            Err(ClaimRejection::ClockSkew)
        );
        let extreme = request(&secret, NONCE, i64::MIN);
        assert_eq!(
            verify(&extreme, &secret, i64::MAX, i64::MAX, false),
            Err(ClaimRejection::ClockSkew)
        );
    }

    #[test]
    fn bad_hmac_is_rejected() {
        let secret = device_secret(FLEET, ID);
        let other = device_secret(b"another-fleet-secret!", ID);
        let mut req = request(&other, NONCE, TS);
        assert_eq!(
            verify(&req, &secret, TS, 300, false),
            Err(ClaimRejection::BadHmac)
        );
        // Any field changed after signing breaks the MAC.
        req = request(&secret, NONCE, TS);
        req.ts += 1;
        assert_eq!(
            verify(&req, &secret, TS, 300, false),
            Err(ClaimRejection::BadHmac)
        );
        // Another device's secret does not sign for this one.
        let mut req = request(&device_secret(FLEET, "esp32-other"), NONCE, TS);
        req.device_id = ID.into();
        assert_eq!(
            verify(&req, &secret, TS, 300, false),
            Err(ClaimRejection::BadHmac)
        );
        assert_eq!(ClaimRejection::BadHmac.code(), "rejected");
    }

    #[test]
    fn mac_compare_is_constant_time_over_bytes() {
        let secret = device_secret(FLEET, ID);
        let mut req = request(&secret, NONCE, TS);
        let good = req.mac_bytes().unwrap();
        assert!(macs_equal(&good, &good));
        // A difference in the first or the last byte is found alike (subtle's ct_eq).
        for i in [0, 31] {
            let mut bad = good;
            bad[i] ^= 1;
            assert!(!macs_equal(&good, &bad));
        }
        // Bytes are compared, not text: upper-case hex is the same MAC.
        req.hmac = req.hmac.to_ascii_uppercase();
        assert_eq!(verify(&req, &secret, TS, 300, false), Ok(()));
        // A non-hex MAC built by hand (bypassing from_json) is malformed, not a panic.
        req.hmac = "zz".repeat(32);
        assert_eq!(
            verify(&req, &secret, TS, 300, false),
            Err(ClaimRejection::Malformed)
        );
    }

    #[test]
    fn malformed_requests() {
        let ok = r#"{"device_id":"esp32-a1b2c3","nonce":"n0nce-0123456789AB","ts":1795459201,"hmac":"f2caa340a14e9b37aa9cf57293453c41f69a4c1821685c53ba538354eb11a7f3"}"#;
        assert!(ClaimRequest::from_json(ok.as_bytes()).is_ok());
        let with_extra = ok.replace("{", r#"{"fw":"1.2","#);
        assert!(ClaimRequest::from_json(with_extra.as_bytes()).is_ok());
        let bad = [
            String::new(),
            "null".into(),
            "{".into(),
            "[1,2]".into(),
            "\u{0}\u{ff}".into(),
            ok.replace("esp32-a1b2c3", ""),
            ok.replace("esp32-a1b2c3", "esp32/+"),
            ok.replace("esp32-a1b2c3", &"x".repeat(65)),
            ok.replace("n0nce-0123456789AB", "short"),
            ok.replace("n0nce-0123456789AB", &"n".repeat(65)),
            ok.replace("n0nce-0123456789AB", "n0nce 0123456789AB"),
            ok.replace("f2caa3", "f2caa"),
            ok.replace("f2caa3", "g2caa3"),
            ok.replace("1795459201", "\"1795459201\""),
            ok.replace("1795459201", "1.5"),
            ok.replace("1795459201", "99999999999999999999"),
            ok.replace(r#","ts":1795459201"#, ""),
            ok.replace("{", r#"{"ts":1,"#),
        ];
        for b in &bad {
            assert_eq!(
                ClaimRequest::from_json(b.as_bytes()),
                Err(ClaimRejection::Malformed),
                "{b}"
            );
        }
        let padded = format!("{ok}{}", " ".repeat(MAX_CLAIM_JSON - ok.len()));
        assert!(ClaimRequest::from_json(padded.as_bytes()).is_ok());
        let oversized = format!("{padded} ");
        assert_eq!(
            ClaimRequest::from_json(oversized.as_bytes()),
            Err(ClaimRejection::Malformed)
        );
    }

    #[test]
    fn codes_hide_details_but_metrics_do_not() {
        use ClaimRejection as R;
        let all = [
            R::Malformed,
            R::ClockSkew,
            R::BadHmac,
            R::Replay,
            R::Disabled,
            R::AlreadyClaimed,
        ];
        let codes: Vec<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "malformed",
                "clock_skew",
                "rejected",
                "rejected",
                "rejected",
                "already_claimed"
            ]
        );
        let reasons: Vec<_> = all.iter().map(|r| r.metric_reason()).collect();
        assert_eq!(
            reasons,
            [
                "malformed",
                "clock_skew",
                "bad_hmac",
                "replay",
                "disabled",
                "already_claimed"
            ]
        );
    }

    #[test]
    fn response_json_and_debug() {
        let ok = ClaimResponse::success(ID, ID, "pa55word", "mqtts://gw.example:8883");
        assert!(ok.is_ok());
        let v: serde_json::Value = serde_json::from_slice(&ok.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ok": true,
                "device_id": ID,
                "username": ID,
                "password": "pa55word",
                "broker": "mqtts://gw.example:8883"
            })
        );
        assert!(!format!("{ok:?}").contains("pa55word"));
        for (r, code) in [
            (ClaimRejection::Replay, "rejected"),
            (ClaimRejection::ClockSkew, "clock_skew"),
        ] {
            let resp = ClaimResponse::rejected(r);
            assert!(!resp.is_ok());
            assert_eq!(
                resp.to_json(),
                format!(r#"{{"ok":false,"reason":"{code}"}}"#).into_bytes()
            );
        }
    }
}
