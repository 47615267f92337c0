//! Admission control for the WebSocket media-ingest server.
//!
//! CPaaS providers (Twilio, Exotel, ...) connect to us and stream call audio. Before the
//! WebSocket upgrade we check, in this order (cheapest first):
//!
//! 1. [`Allowlist::permits`] on the peer address;
//! 2. [`ConnLimits::admit_ip`] (global cap and per-source cap);
//! 3. [`token_from_request`] + [`JwtVerifier::verify`] (RS256 JWT);
//! 4. [`Claims::allows`] for the requested target;
//! 5. [`ConnLimits::admit_tenant`] (per-tenant cap) -> [`ConnPermit`], held for the whole
//!    connection and released on drop.
//!
//! After the upgrade every received frame goes through [`FrameGuard::check`].
//!
//! The module does no I/O and never reads a clock: wall-clock time (`now_unix`) and monotonic
//! time (`Instant`) are always passed in, so everything here is deterministic under test.
//!
//! # Dependency choice
//!
//! `jsonwebtoken = { version = "~10.3", default-features = false, features = ["use_pem", "rust_crypto"] }`
//!
//! * Since 10.0 jsonwebtoken needs exactly one crypto backend feature: `aws_lc_rs` (C build of
//!   aws-lc) or `rust_crypto` (pure Rust: `rsa`, `sha2`, `hmac`, `p256`, ...). We pick
//!   `rust_crypto`: no C/asm build. 9.x would pull `ring` and lacks the 10.3 fix for exp/nbf
//!   type confusion.
//! * The newest release is 11.1, but 10.4+ and 11.x declare `rust-version = 1.88` while the
//!   gateway workspace declares 1.85; 10.3.x is the newest line that fits. This file uses only
//!   API common to 10.3 and 11.x, so moving to `"11"` later is a one-line Cargo.toml change.
//! * If *both* backend features end up enabled through Cargo feature unification, jsonwebtoken
//!   cannot pick a default and panics at the first verify. [`JwtVerifier::from_rsa_pem`]
//!   therefore installs the RustCrypto provider as process default if none is installed yet
//!   (a no-op if the application already installed one).
//! * `rsa` 0.9 carries RUSTSEC-2023-0071 (Marvin timing side channel). It concerns
//!   private-key operations; this module only ever verifies with a public key.
//! * We never rely on the library's clock: its `exp`/`nbf` checks are disabled and both are
//!   checked here against the caller's `now_unix` with [`LEEWAY_SECS`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Longest token accepted; anything longer is refused as [`Reject::BadToken`] unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest tenant identifier, in characters.
pub const MAX_TENANT_CHARS: usize = 64;
/// RSA modulus sizes accepted for the verification key.
pub const MIN_RSA_BITS: usize = 2048;
/// Upper bound imposed by the `rsa` crate's public-key validation.
pub const MAX_RSA_BITS: usize = 4096;
/// IPv6 peers are counted per /64 for the per-source limit (one host usually owns a whole
/// /64, so a per-address cap would be trivially bypassed). IPv4 is counted per address.
pub const IPV6_BUCKET_PREFIX: u8 = 64;

/// The only JWS algorithm accepted.
const EXPECTED_ALG: &str = "RS256";

// ---------------------------------------------------------------------------------------------
// Reject
// ---------------------------------------------------------------------------------------------

/// Why a connection was refused (before the upgrade) or cut (after it).
///
/// [`Reject::as_str`] is a stable snake_case label for metrics; [`Reject::http_status`] is the
/// response status for refusals before the upgrade; [`Reject::close_code`] is the WebSocket close
/// code when the reason arises after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Peer address outside the allowlist.
    #[error("source address not allowed")]
    NotAllowed,
    /// No bearer token in the header nor `token=` in the query.
    #[error("no token")]
    NoToken,
    /// Token malformed (structure, encoding, JSON, missing/invalid `exp`, bad `tenant`, too long).
    #[error("malformed token")]
    BadToken,
    /// `exp` more than [`LEEWAY_SECS`] in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` more than [`LEEWAY_SECS`] in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// Signature does not verify with the configured key.
    #[error("bad token signature")]
    BadSignature,
    /// Header `alg` is anything but `RS256` (incl. `none`, HMAC, PSS, EC).
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// `iss` missing or different while an issuer is configured.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` missing/different while an audience is configured, or `aud` present while none is.
    #[error("wrong token audience")]
    WrongAudience,
    /// Token valid but its `targets` do not cover the requested target.
    #[error("target not allowed for this token")]
    TargetNotAllowed,
    /// Global connection cap reached.
    #[error("too many connections")]
    TooManyConnections,
    /// Per-source cap reached.
    #[error("too many connections from this address")]
    TooManyFromIp,
    /// Per-tenant cap reached.
    #[error("too many connections for this tenant")]
    TooManyForTenant,
    /// A frame exceeded the size limit.
    #[error("frame too large")]
    FrameTooLarge,
    /// Frames arrive faster than the rate limit.
    #[error("frame rate exceeded")]
    FrameRate,
    /// Ingest disabled (configuration or draining).
    #[error("ingest disabled")]
    Disabled,
    /// The `start` message's `from` is not a dial string (see [`is_dial_string`]).
    #[error("from is not a dial string")]
    BadFrom,
}

impl Reject {
    /// Every variant, e.g. to pre-register metric label values.
    pub const ALL: [Reject; 17] = [
        Reject::NotAllowed,
        Reject::NoToken,
        Reject::BadToken,
        Reject::Expired,
        Reject::NotYetValid,
        Reject::BadSignature,
        Reject::WrongAlgorithm,
        Reject::WrongIssuer,
        Reject::WrongAudience,
        Reject::TargetNotAllowed,
        Reject::TooManyConnections,
        Reject::TooManyFromIp,
        Reject::TooManyForTenant,
        Reject::FrameTooLarge,
        Reject::FrameRate,
        Reject::Disabled,
        Reject::BadFrom,
    ];

    /// Stable snake_case label (metrics, logs).
    pub fn as_str(&self) -> &'static str {
        match self {
            Reject::NotAllowed => "not_allowed",
            Reject::NoToken => "no_token",
            Reject::BadToken => "bad_token",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::BadSignature => "bad_signature",
            Reject::WrongAlgorithm => "wrong_algorithm",
            Reject::WrongIssuer => "wrong_issuer",
            Reject::WrongAudience => "wrong_audience",
            Reject::TargetNotAllowed => "target_not_allowed",
            Reject::TooManyConnections => "too_many_connections",
            Reject::TooManyFromIp => "too_many_from_ip",
            Reject::TooManyForTenant => "too_many_for_tenant",
            Reject::FrameTooLarge => "frame_too_large",
            Reject::FrameRate => "frame_rate",
            Reject::Disabled => "disabled",
            Reject::BadFrom => "bad_from",
        }
    }

    /// HTTP status for a refusal before the upgrade. The two frame reasons only occur after the
    /// upgrade; they map to 413/429 for completeness.
    pub fn http_status(&self) -> u16 {
        match self {
            Reject::NotAllowed | Reject::TargetNotAllowed => 403,
            Reject::NoToken
            | Reject::BadToken
            | Reject::Expired
            | Reject::NotYetValid
            | Reject::BadSignature
            | Reject::WrongAlgorithm
            | Reject::WrongIssuer
            | Reject::WrongAudience => 401,
            Reject::TooManyConnections | Reject::Disabled => 503,
            Reject::TooManyFromIp | Reject::TooManyForTenant | Reject::FrameRate => 429,
            Reject::FrameTooLarge => 413,
            Reject::BadFrom => 400,
        }
    }

    /// WebSocket close code (RFC 6455 §7.4.1) for a reason raised after the upgrade:
    /// 1009 message too big, 1013 try again later (capacity), 1001 going away (disabled),
    /// 1008 policy violation for everything else.
    pub fn close_code(&self) -> u16 {
        match self {
            Reject::FrameTooLarge => 1009,
            Reject::TooManyConnections | Reject::TooManyFromIp | Reject::TooManyForTenant => 1013,
            Reject::Disabled => 1001,
            _ => 1008,
        }
    }
}

impl AsRef<str> for Reject {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

// ---------------------------------------------------------------------------------------------
// Dial strings
// ---------------------------------------------------------------------------------------------

/// Longest dial string (a number to call, or a calling number), in characters.
pub const MAX_DIAL_CHARS: usize = 32;

/// Whether `s` is a dial string: 1 to [`MAX_DIAL_CHARS`] of `0-9 + * #`. Stream values that
/// reach SIP headers (`call:` targets, `start.from`) must be one: nothing else (no quote,
/// angle bracket, `@`, control character) can then change the header they end up in.
pub fn is_dial_string(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DIAL_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#'))
}

/// The calling number of a stream: `start.from` when it is a dial string, `ingest` when
/// absent, refused ([`Reject::BadFrom`]) otherwise.
pub fn calling_number(from: Option<&str>) -> Result<String, Reject> {
    match from {
        None => Ok("ingest".to_owned()),
        Some(f) if is_dial_string(f) => Ok(f.to_owned()),
        Some(_) => Err(Reject::BadFrom),
    }
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// The verified claims we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `tenant` claim, or `sub` when `tenant` is absent. 1..=64 chars, no control characters.
    pub tenant: String,
    /// `sub`, if present.
    pub subject: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires: u64,
    /// `targets`; `None` = any target, `Some(vec![])` = no target.
    pub targets: Option<Vec<String>>,
}

impl Claims {
    /// Whether the token grants `target`. A pattern matches when it is `"*"`, equal to the
    /// target, or `"kind:*"` and the target is `"kind:<non-empty>"`. An empty target never
    /// matches.
    pub fn allows(&self, target: &str) -> bool {
        let Some(patterns) = &self.targets else {
            return !target.is_empty();
        };
        !target.is_empty() && patterns.iter().any(|p| pattern_matches(p, target))
    }
}

fn pattern_matches(pattern: &str, target: &str) -> bool {
    if pattern == "*" || pattern == target {
        return true;
    }
    match pattern.strip_suffix(":*") {
        Some(kind) if !kind.is_empty() => target
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|id| !id.is_empty()),
        _ => false,
    }
}

fn valid_tenant(t: &str) -> bool {
    let n = t.chars().count();
    (1..=MAX_TENANT_CHARS).contains(&n) && !t.chars().any(char::is_control)
}

// ---------------------------------------------------------------------------------------------
// JWT verification
// ---------------------------------------------------------------------------------------------

/// Why the verification key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not labelled `PUBLIC KEY` / `RSA PUBLIC KEY` (e.g. a private key or cert).
    #[error("expected a PEM `PUBLIC KEY` or `RSA PUBLIC KEY`")]
    NotPublicKey,
    /// PEM/DER could not be parsed as an RSA public key.
    #[error("invalid RSA public key: {0}")]
    Invalid(String),
    /// Modulus size outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`].
    #[error("RSA key is {0} bits; accepted range is 2048..=4096")]
    BadSize(usize),
    /// An issuer or audience was configured as the empty string.
    #[error("configured {0} must not be empty")]
    EmptyExpectation(&'static str),
}

/// RS256 JWT verifier holding one public key and the expected `iss`/`aud`.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    key_bits: usize,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawClaims {
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    sub: Option<String>,
    tenant: Option<String>,
    targets: Option<Vec<String>>,
}

impl JwtVerifier {
    /// Load an RSA public key (`-----BEGIN PUBLIC KEY-----` SPKI or
    /// `-----BEGIN RSA PUBLIC KEY-----` PKCS#1) of 2048..=4096 bits. When `issuer` / `audience`
    /// are given, tokens must carry a matching `iss` / `aud`. With no audience configured, a
    /// token that carries `aud` is refused (RFC 7519 §4.1.3).
    pub fn from_rsa_pem(
        pem: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, KeyError> {
        // See the module docs: guards against a panic if both jsonwebtoken backends are enabled.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );

        match pem_label(pem) {
            Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
            _ => return Err(KeyError::NotPublicKey),
        }
        let parsed =
            DecodingKey::from_rsa_pem(pem).map_err(|e| KeyError::Invalid(e.to_string()))?;
        // jsonwebtoken hands us the PKCS#1 `RSAPublicKey` DER (also for SPKI input). Parse it
        // once here so a bad or weak key fails at startup, not on every verify.
        let DecodingKeyKind::SecretOrDer(der) = parsed.kind() else {
            return Err(KeyError::Invalid("unexpected key representation".into()));
        };
        let (n, e) = parse_pkcs1_rsa_public(der)
            .ok_or_else(|| KeyError::Invalid("malformed RSAPublicKey".into()))?;
        let key_bits = bit_length(n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key_bits) {
            return Err(KeyError::BadSize(key_bits));
        }
        if !valid_rsa_params(n, e) {
            return Err(KeyError::Invalid("bad modulus or exponent".into()));
        }
        let key = DecodingKey::from_rsa_raw_components(n, e);

        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        // Time claims are checked by us against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = LEEWAY_SECS;
        validation.required_spec_claims.clear();
        validation.validate_aud = true;
        if let Some(iss) = issuer {
            if iss.is_empty() {
                return Err(KeyError::EmptyExpectation("issuer"));
            }
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if let Some(aud) = audience {
            if aud.is_empty() {
                return Err(KeyError::EmptyExpectation("audience"));
            }
            validation.set_audience(&[aud]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        Ok(Self {
            key,
            validation,
            key_bits,
        })
    }

    /// Modulus size of the loaded key.
    pub fn key_bits(&self) -> usize {
        self.key_bits
    }

    /// Verify `token` at wall-clock time `now_unix` (seconds since the epoch).
    ///
    /// Order: size/charset/shape -> header `alg` must be exactly `RS256` (checked by us before
    /// any crypto) -> signature, `iss`, `aud` (jsonwebtoken, restricted to RS256) -> `exp`
    /// (required) and `nbf` (optional) with [`LEEWAY_SECS`] -> tenant. A missing or
    /// non-numeric `exp` is [`Reject::BadToken`].
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, Reject> {
        let header_b64 = split_token(token)?;
        let header_json = b64url_decode(header_b64).ok_or(Reject::BadToken)?;
        let header: RawHeader =
            serde_json::from_slice(&header_json).map_err(|_| Reject::BadToken)?;
        if header.alg != EXPECTED_ALG {
            return Err(Reject::WrongAlgorithm);
        }
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: we understand no extensions, so must refuse.
            return Err(Reject::BadToken);
        }
        let raw = self.decode_checked(token)?;
        claims_from_raw(raw, now_unix)
    }

    /// Library part of verification: signature (RS256 only), `iss`, `aud`.
    fn decode_checked(&self, token: &str) -> Result<RawClaims, Reject> {
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(map_jwt_error)?;
        if data.header.alg != Algorithm::RS256 {
            return Err(Reject::WrongAlgorithm);
        }
        Ok(data.claims)
    }
}

fn claims_from_raw(raw: RawClaims, now_unix: u64) -> Result<Claims, Reject> {
    let expires = raw
        .exp
        .as_ref()
        .and_then(numeric_date)
        .ok_or(Reject::BadToken)?;
    if expires.saturating_add(LEEWAY_SECS) < now_unix {
        return Err(Reject::Expired);
    }
    if let Some(nbf) = &raw.nbf {
        let nbf = numeric_date(nbf).ok_or(Reject::BadToken)?;
        if nbf > now_unix.saturating_add(LEEWAY_SECS) {
            return Err(Reject::NotYetValid);
        }
    }
    let tenant = match raw.tenant {
        Some(t) => t,
        None => raw.sub.clone().ok_or(Reject::BadToken)?,
    };
    if !valid_tenant(&tenant) {
        return Err(Reject::BadToken);
    }
    Ok(Claims {
        tenant,
        subject: raw.sub,
        expires,
        targets: raw.targets,
    })
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> Reject {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => Reject::BadSignature,
        K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
            Reject::WrongAlgorithm
        }
        K::ExpiredSignature => Reject::Expired,
        K::ImmatureSignature => Reject::NotYetValid,
        K::InvalidIssuer => Reject::WrongIssuer,
        K::InvalidAudience => Reject::WrongAudience,
        K::MissingRequiredClaim(c) if c == "iss" => Reject::WrongIssuer,
        K::MissingRequiredClaim(c) if c == "aud" => Reject::WrongAudience,
        // The key was validated at load time; if the backend still fails on it, the token
        // cannot be verified with our key.
        K::InvalidRsaKey(_) | K::InvalidKeyFormat | K::Provider(_) => Reject::BadSignature,
        // InvalidToken, Base64, Json, Utf8, InvalidClaimFormat, MissingRequiredClaim(other), ...
        _ => Reject::BadToken,
    }
}

/// Checks size, charset and the three-segment shape; returns the header segment.
fn split_token(token: &str) -> Result<&str, Reject> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(Reject::BadToken);
    }
    if !token
        .bytes()
        .all(|b| b == b'.' || b64url_value(b).is_some())
    {
        return Err(Reject::BadToken);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        // The signature may be empty here so that `alg: none` is reported as WrongAlgorithm.
        (Some(h), Some(p), Some(_sig), None) if !h.is_empty() && !p.is_empty() => Ok(h),
        _ => Err(Reject::BadToken),
    }
}

/// JWT NumericDate: a non-negative JSON number (fractions are truncated).
fn numeric_date(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // Rejects NaN, infinities, negatives and values beyond 2^63 (far past any real date).
    (0.0..9.223_372_036_854_776e18)
        .contains(&f)
        .then_some(f as u64)
}

fn pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    Some(&rest[..rest.find("-----")?])
}

fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

/// Reads one DER TLV with the expected `tag`; returns (contents, rest). Lengths up to 2 bytes
/// (64 KiB), definite and minimal only.
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    if t != tag {
        return None;
    }
    let (len, rest) = match l0 {
        0..=0x7f => (usize::from(l0), rest),
        0x81 => match rest {
            [l, tail @ ..] if *l >= 0x80 => (usize::from(*l), tail),
            _ => return None,
        },
        0x82 => match rest {
            [hi, lo, tail @ ..] if *hi != 0 => (usize::from(*hi) << 8 | usize::from(*lo), tail),
            _ => return None,
        },
        _ => return None,
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Magnitude of a DER INTEGER that must be positive and minimally encoded.
fn der_positive_int(c: &[u8]) -> Option<&[u8]> {
    match c {
        [0, next, ..] if next & 0x80 != 0 => Some(&c[1..]),
        [0, _, ..] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [] => None,
        _ => Some(c),
    }
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` -> (n, e).
fn parse_pkcs1_rsa_public(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, trailing) = der_tlv(der, 0x30)?;
    let (n, rest) = der_tlv(seq, 0x02)?;
    let (e, rest) = der_tlv(rest, 0x02)?;
    if !trailing.is_empty() || !rest.is_empty() {
        return None;
    }
    Some((der_positive_int(n)?, der_positive_int(e)?))
}

/// Odd modulus; odd exponent in 3..2^33 (the range the `rsa` crate accepts).
fn valid_rsa_params(n: &[u8], e: &[u8]) -> bool {
    let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
    let e_val = (e.len() <= 8).then(|| e.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)));
    odd(n) && odd(e) && e_val.is_some_and(|v| (3..1 << 33).contains(&v))
}

fn b64url_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Strict unpadded base64url decoding (RFC 7515 §2): rejects padding, other alphabets,
/// impossible lengths and non-zero trailing bits.
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &c in bytes {
        acc = (acc << 6) | u32::from(b64url_value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

/// Token from `Authorization: Bearer <t>` (scheme case-insensitive) or else from the first
/// non-empty `token=` query parameter (`query` with or without a leading `?`). A header with
/// another scheme, or an empty/space-containing bearer value, falls through to the query.
pub fn token_from_request<'a>(
    authorization_header: Option<&'a str>,
    query: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization_header
        .and_then(|h| h.trim().split_once([' ', '\t']))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, rest)| rest.trim())
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace));
    if bearer.is_some() {
        return bearer;
    }
    let q = query?;
    let q = q.strip_prefix('?').unwrap_or(q);
    q.split('&').find_map(|kv| match kv.split_once('=') {
        Some(("token", v)) if !v.is_empty() => Some(v),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Allowlist
// ---------------------------------------------------------------------------------------------

/// Source allowlist; empty = allow all. IPv4-mapped IPv6 addresses (and mapped networks
/// `::ffff:a.b.c.d/96+n`) are treated as IPv4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<IpNet>);

impl Allowlist {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets.into_iter().map(canonical_net).collect())
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let ip = canonical_ip(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    let IpNet::V6(n) = net else { return net };
    match n.addr().to_ipv4_mapped() {
        Some(v4) if n.prefix_len() >= 96 => Ipv4Net::new(v4, n.prefix_len() - 96)
            .map(IpNet::V4)
            .unwrap_or(net),
        _ => net,
    }
}

/// Key for per-source counting: IPv4 (incl. mapped) per address, IPv6 per /64.
fn ip_bucket(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(IPV6_BUCKET_PREFIX));
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

// ---------------------------------------------------------------------------------------------
// Connection limits
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Counters {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_tenant: HashMap<String, usize>,
}

/// Connection counting: total, per source (see [`IPV6_BUCKET_PREFIX`]), per tenant.
/// Map entries are removed when they reach zero, so memory is bounded by live connections.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    max_per_tenant: usize,
    counters: Mutex<Counters>,
}

/// Holds one slot of the total and per-source counters; released on drop.
#[derive(Debug)]
#[must_use = "dropping the permit releases the slot immediately"]
pub struct IpPermit {
    limits: Arc<ConnLimits>,
    bucket: IpAddr,
    ip: IpAddr,
}

/// Holds a full connection slot (total, source, tenant); released on drop.
#[derive(Debug)]
#[must_use = "dropping the permit releases the slot immediately"]
pub struct ConnPermit {
    // Field order matters only for readability: `Drop` releases the tenant, then `ip` drops.
    ip: IpPermit,
    tenant: String,
}

impl ConnLimits {
    /// A limit of 0 refuses everything at that level.
    pub fn new(max_total: usize, max_per_ip: usize, max_per_tenant: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            max_per_tenant,
            counters: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters are never left half-updated (no panics while locked), so poison is harmless.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cheap pre-token admission: global cap, then per-source cap.
    pub fn admit_ip(self: &Arc<Self>, ip: IpAddr) -> Result<IpPermit, Reject> {
        let bucket = ip_bucket(ip);
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(Reject::TooManyConnections);
        }
        let n = c.per_ip.get(&bucket).copied().unwrap_or(0);
        if n >= self.max_per_ip {
            return Err(Reject::TooManyFromIp);
        }
        c.total += 1;
        c.per_ip.insert(bucket, n + 1);
        Ok(IpPermit {
            limits: Arc::clone(self),
            bucket,
            ip,
        })
    }

    /// Post-token admission. On refusal the `IpPermit` is dropped, releasing its slot.
    pub fn admit_tenant(
        self: &Arc<Self>,
        ip_permit: IpPermit,
        tenant: &str,
    ) -> Result<ConnPermit, Reject> {
        debug_assert!(
            Arc::ptr_eq(self, &ip_permit.limits),
            "permit from another ConnLimits"
        );
        let limits = &ip_permit.limits;
        {
            let mut c = limits.lock();
            let n = c.per_tenant.get(tenant).copied().unwrap_or(0);
            if n >= limits.max_per_tenant {
                return Err(Reject::TooManyForTenant);
            }
            match c.per_tenant.get_mut(tenant) {
                Some(v) => *v += 1,
                None => {
                    c.per_tenant.insert(tenant.to_owned(), 1);
                }
            }
        }
        Ok(ConnPermit {
            ip: ip_permit,
            tenant: tenant.to_owned(),
        })
    }

    pub fn active(&self) -> usize {
        self.lock().total
    }

    /// Live connections in `ip`'s bucket (the /64 for IPv6).
    pub fn active_for_ip(&self, ip: IpAddr) -> usize {
        self.lock().per_ip.get(&ip_bucket(ip)).copied().unwrap_or(0)
    }

    pub fn active_for_tenant(&self, tenant: &str) -> usize {
        self.lock().per_tenant.get(tenant).copied().unwrap_or(0)
    }

    /// Number of map entries (sources, tenants); for tests and leak monitoring.
    pub fn tracked_keys(&self) -> (usize, usize) {
        let c = self.lock();
        (c.per_ip.len(), c.per_tenant.len())
    }
}

fn decrement<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    map: &mut HashMap<K, usize>,
    key: &Q,
) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl IpPermit {
    /// The peer address this permit was issued for.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut c = self.limits.lock();
        c.total = c.total.saturating_sub(1);
        decrement(&mut c.per_ip, &self.bucket);
    }
}

impl ConnPermit {
    pub fn ip(&self) -> IpAddr {
        self.ip.ip
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.ip.limits.lock();
        decrement(&mut c.per_tenant, self.tenant.as_str());
        // `self.ip` is dropped afterwards and releases the total and per-source slots.
    }
}

// ---------------------------------------------------------------------------------------------
// Frame guard
// ---------------------------------------------------------------------------------------------

/// One frame's worth of bucket credit. Credit is kept as `frames * 1e9` so refill
/// (`elapsed_ns * rate`) is exact integer arithmetic.
const CREDIT_PER_FRAME: u128 = 1_000_000_000;

/// Per-connection frame limits: a token bucket refilled at `max_per_sec` frames/s with a burst
/// of `max_per_sec` (one second's worth, full at start), and a maximum frame size. A limit of 0
/// disables that check. Oversized frames are refused before consuming rate credit.
pub struct FrameGuard {
    max_frame_bytes: usize,
    max_per_sec: u32,
    credit: u128,
    last: Instant,
}

impl fmt::Debug for FrameGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameGuard")
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_per_sec", &self.max_per_sec)
            .field("credit_frames", &(self.credit / CREDIT_PER_FRAME))
            .finish()
    }
}

impl FrameGuard {
    pub fn new(max_frame_bytes: usize, max_per_sec: u32, now: Instant) -> Self {
        let mut g = Self {
            max_frame_bytes,
            max_per_sec,
            credit: 0,
            last: now,
        };
        g.credit = g.capacity();
        g
    }

    fn capacity(&self) -> u128 {
        u128::from(self.max_per_sec) * CREDIT_PER_FRAME
    }

    pub fn check(&mut self, len: usize, now: Instant) -> Result<(), Reject> {
        if self.max_frame_bytes != 0 && len > self.max_frame_bytes {
            return Err(Reject::FrameTooLarge);
        }
        if self.max_per_sec == 0 {
            return Ok(());
        }
        // `now` earlier than `last` (out-of-order callers) adds nothing and keeps `last`.
        if let Some(dt) = now.checked_duration_since(self.last) {
            let refill = dt.as_nanos().saturating_mul(u128::from(self.max_per_sec));
            self.credit = self.credit.saturating_add(refill).min(self.capacity());
            self.last = now;
        }
        if self.credit >= CREDIT_PER_FRAME {
            self.credit -= CREDIT_PER_FRAME;
            Ok(())
        } else {
            Err(Reject::FrameRate)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    // Test keys live next to the crate manifest so the paths survive moving this file.
    const SIGNING_PRIVATE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/signing_private.pem"
    ));
    const SIGNING_PUBLIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/signing_public.pem"
    ));
    const SIGNING_PUBLIC_PKCS1: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/signing_public_pkcs1.pem"
    ));
    const OTHER_PRIVATE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/other_private.pem"
    ));
    const OTHER_PUBLIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/other_public.pem"
    ));
    const WEAK_PUBLIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/weak1024_public.pem"
    ));

    const NOW: u64 = 1_750_000_000;
    const ISS: &str = "https://auth.example.test";
    const AUD: &str = "media-ingest";

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_rsa_pem(SIGNING_PUBLIC.as_bytes(), None, None).unwrap()
    }

    fn strict_verifier() -> JwtVerifier {
        JwtVerifier::from_rsa_pem(SIGNING_PUBLIC.as_bytes(), Some(ISS), Some(AUD)).unwrap()
    }

    fn sign_with(pem: &str, alg: Algorithm, claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        encode(&Header::new(alg), claims, &key).unwrap()
    }

    fn sign(claims: &Value) -> String {
        sign_with(SIGNING_PRIVATE, Algorithm::RS256, claims)
    }

    fn b64url(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    /// Hand-built token: arbitrary header/payload JSON, arbitrary signature segment.
    fn raw_token(header: &Value, payload: &Value, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes()),
            sig
        )
    }

    fn good_claims() -> Value {
        json!({ "tenant": "acme", "sub": "svc-twilio", "exp": NOW + 600,
                "targets": ["app:bot", "call:*"] })
    }

    // --- base64url ---------------------------------------------------------------------------

    #[test]
    fn b64url_roundtrip_and_strictness() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            assert_eq!(b64url_decode(&b64url(&data)).unwrap(), data);
        }
        assert_eq!(b64url_decode("aGk").unwrap(), b"hi");
        assert!(b64url_decode("aGk=").is_none(), "padding");
        assert!(b64url_decode("aGl").is_none(), "non-zero trailing bits");
        assert!(b64url_decode("a").is_none(), "impossible length");
        assert!(b64url_decode("a+/b").is_none(), "standard alphabet");
    }

    // --- good tokens -------------------------------------------------------------------------

    #[test]
    fn good_token_accepted() {
        let c = verifier().verify(&sign(&good_claims()), NOW).unwrap();
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.subject.as_deref(), Some("svc-twilio"));
        assert_eq!(c.expires, NOW + 600);
        assert_eq!(
            c.targets,
            Some(vec!["app:bot".to_owned(), "call:*".to_owned()])
        );
        assert!(c.allows("call:CA123") && c.allows("app:bot") && !c.allows("device:esp1"));
    }

    #[test]
    fn pkcs1_public_key_accepted() {
        let v = JwtVerifier::from_rsa_pem(SIGNING_PUBLIC_PKCS1.as_bytes(), None, None).unwrap();
        assert_eq!(v.key_bits(), 2048);
        assert!(v.verify(&sign(&good_claims()), NOW).is_ok());
    }

    #[test]
    fn tenant_falls_back_to_sub_and_targets_optional() {
        let c = verifier()
            .verify(&sign(&json!({ "sub": "exotel-7", "exp": NOW + 60 })), NOW)
            .unwrap();
        assert_eq!(c.tenant, "exotel-7");
        assert_eq!(c.subject.as_deref(), Some("exotel-7"));
        assert_eq!(c.targets, None);
        assert!(c.allows("device:esp1"));
    }

    #[test]
    fn tenant_validation() {
        let v = verifier();
        let t = |claims: Value| v.verify(&sign(&claims), NOW);
        assert_eq!(
            t(json!({ "exp": NOW + 60 })),
            Err(Reject::BadToken),
            "no tenant, no sub"
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": "" })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": "a".repeat(65) })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": "a\nb" })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": 7 })),
            Err(Reject::BadToken)
        );
        // An invalid `tenant` does not fall back to `sub`.
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": "", "sub": "ok" })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "tenant": "é".repeat(64) }))
                .unwrap()
                .tenant
                .chars()
                .count(),
            64
        );
        assert_eq!(
            t(json!({ "exp": NOW + 60, "sub": "x", "targets": "app:bot" })),
            Err(Reject::BadToken)
        );
    }

    // --- time claims -------------------------------------------------------------------------

    #[test]
    fn expiry_uses_passed_clock_with_leeway() {
        let v = verifier();
        let tok = sign(&json!({ "tenant": "acme", "exp": NOW }));
        assert!(v.verify(&tok, NOW).is_ok());
        assert!(v.verify(&tok, NOW + 20).is_ok(), "within leeway");
        assert!(v.verify(&tok, NOW + LEEWAY_SECS).is_ok(), "leeway boundary");
        assert_eq!(v.verify(&tok, NOW + LEEWAY_SECS + 1), Err(Reject::Expired));
        assert_eq!(v.verify(&tok, u64::MAX), Err(Reject::Expired));
        // The real clock is far from NOW; an ancient exp is fine if the caller says so.
        let old = sign(&json!({ "tenant": "acme", "exp": 1000 }));
        assert!(v.verify(&old, 990).is_ok());
        assert_eq!(v.verify(&old, NOW), Err(Reject::Expired));
        let huge = sign(&json!({ "tenant": "acme", "exp": u64::MAX }));
        assert!(v.verify(&huge, NOW).is_ok());
    }

    #[test]
    fn not_before() {
        let v = verifier();
        let tok = sign(&json!({ "tenant": "acme", "exp": NOW + 3600, "nbf": NOW + 100 }));
        assert_eq!(v.verify(&tok, NOW), Err(Reject::NotYetValid));
        assert_eq!(
            v.verify(&tok, NOW + 100 - LEEWAY_SECS - 1),
            Err(Reject::NotYetValid)
        );
        assert!(
            v.verify(&tok, NOW + 100 - LEEWAY_SECS).is_ok(),
            "within leeway"
        );
        assert!(v.verify(&tok, NOW + 200).is_ok());
        let bad = sign(&json!({ "tenant": "acme", "exp": NOW + 3600, "nbf": "soon" }));
        assert_eq!(v.verify(&bad, NOW), Err(Reject::BadToken));
    }

    #[test]
    fn exp_required_and_numeric() {
        let v = verifier();
        let t = |claims: Value| v.verify(&sign(&claims), NOW);
        assert_eq!(
            t(json!({ "tenant": "acme" })),
            Err(Reject::BadToken),
            "missing exp"
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": null })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": "9999999999" })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": -1 })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": 1e300 })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": [NOW + 60] })),
            Err(Reject::BadToken)
        );
        assert_eq!(
            t(json!({ "tenant": "acme", "exp": (NOW + 60) as f64 + 0.5 }))
                .unwrap()
                .expires,
            NOW + 60
        );
    }

    // --- algorithm confusion -----------------------------------------------------------------

    #[test]
    fn alg_none_refused() {
        let v = verifier();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let tok = raw_token(&json!({ "alg": alg, "typ": "JWT" }), &good_claims(), "");
            assert_eq!(v.verify(&tok, NOW), Err(Reject::WrongAlgorithm), "{alg}");
        }
        // `none` carrying a (real RS256) signature is still refused.
        let real_sig = sign(&good_claims()).rsplit('.').next().unwrap().to_owned();
        let tok = raw_token(&json!({ "alg": "none" }), &good_claims(), &real_sig);
        assert_eq!(v.verify(&tok, NOW), Err(Reject::WrongAlgorithm));
    }

    #[test]
    fn hs256_forged_with_public_key_refused() {
        let v = verifier();
        for pem in [SIGNING_PUBLIC, SIGNING_PUBLIC_PKCS1] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let key = EncodingKey::from_secret(pem.as_bytes());
                let forged = encode(&Header::new(alg), &good_claims(), &key).unwrap();
                assert_eq!(v.verify(&forged, NOW), Err(Reject::WrongAlgorithm));
                // Defence in depth: the library step alone refuses it too.
                assert_eq!(
                    v.decode_checked(&forged).err(),
                    Some(Reject::WrongAlgorithm)
                );
            }
        }
    }

    #[test]
    fn other_rsa_algorithms_refused() {
        let v = verifier();
        for alg in [
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            let tok = sign_with(SIGNING_PRIVATE, alg, &good_claims());
            assert_eq!(v.verify(&tok, NOW), Err(Reject::WrongAlgorithm), "{alg:?}");
            assert_eq!(
                v.decode_checked(&tok).err(),
                Some(Reject::WrongAlgorithm),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn foreign_alg_headers_refused() {
        let v = verifier();
        let sig = sign(&good_claims()).rsplit('.').next().unwrap().to_owned();
        for alg in [
            "ES256", "ES384", "EdDSA", "HS256", "rs256", "RS256 ", "RS2560", "",
        ] {
            let tok = raw_token(&json!({ "alg": alg, "typ": "JWT" }), &good_claims(), &sig);
            assert_eq!(v.verify(&tok, NOW), Err(Reject::WrongAlgorithm), "{alg:?}");
        }
        let tok = raw_token(&json!({ "typ": "JWT" }), &good_claims(), &sig);
        assert_eq!(v.verify(&tok, NOW), Err(Reject::BadToken), "missing alg");
        let tok = raw_token(&json!({ "alg": ["RS256"] }), &good_claims(), &sig);
        assert_eq!(v.verify(&tok, NOW), Err(Reject::BadToken), "non-string alg");
    }

    #[test]
    fn duplicate_alg_and_crit_refused() {
        let v = verifier();
        let payload = b64url(good_claims().to_string().as_bytes());
        let dup = format!(
            "{}.{}.AAAA",
            b64url(br#"{"alg":"RS256","alg":"none"}"#),
            payload
        );
        assert_eq!(v.verify(&dup, NOW), Err(Reject::BadToken));
        // A genuinely signed token with an unknown critical extension.
        let key = EncodingKey::from_rsa_pem(SIGNING_PRIVATE.as_bytes()).unwrap();
        let header_json = json!({ "alg": "RS256", "crit": ["exp-ext"], "exp-ext": 1 }).to_string();
        let signing_input = format!("{}.{}", b64url(header_json.as_bytes()), payload);
        let sig =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::RS256).unwrap();
        assert_eq!(
            v.verify(&format!("{signing_input}.{sig}"), NOW),
            Err(Reject::BadToken)
        );
    }

    // --- signatures --------------------------------------------------------------------------

    #[test]
    fn signed_by_other_key_refused() {
        let tok = sign_with(OTHER_PRIVATE, Algorithm::RS256, &good_claims());
        assert_eq!(verifier().verify(&tok, NOW), Err(Reject::BadSignature));
        let other = JwtVerifier::from_rsa_pem(OTHER_PUBLIC.as_bytes(), None, None).unwrap();
        assert!(other.verify(&tok, NOW).is_ok());
    }

    #[test]
    fn tampering_refused() {
        let v = verifier();
        let tok = sign(&good_claims());
        let parts: Vec<&str> = tok.split('.').collect();
        let mut evil = good_claims();
        evil["tenant"] = json!("victim");
        evil["targets"] = json!(["*"]);
        let forged_payload = b64url(evil.to_string().as_bytes());
        let t1 = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(v.verify(&t1, NOW), Err(Reject::BadSignature));
        // Header swapped for an equivalent-looking one.
        let h2 = b64url(
            json!({ "typ": "JWT", "alg": "RS256" })
                .to_string()
                .as_bytes(),
        );
        let t2 = format!("{}.{}.{}", h2, parts[1], parts[2]);
        assert_eq!(v.verify(&t2, NOW), Err(Reject::BadSignature));
        // One signature character changed.
        let mut sig = parts[2].to_owned().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        let t3 = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(sig).unwrap()
        );
        assert_eq!(v.verify(&t3, NOW), Err(Reject::BadSignature));
        // Signature shortened (still canonical base64url) / empty.
        let short = b64url(&b64url_decode(parts[2]).unwrap()[..250]);
        let t4 = format!("{}.{}.{}", parts[0], parts[1], short);
        assert_eq!(v.verify(&t4, NOW), Err(Reject::BadSignature));
        // Cut mid-group: not decodable base64url any more, so the token is malformed.
        let t4b = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 1]
        );
        assert_eq!(v.verify(&t4b, NOW), Err(Reject::BadToken));
        let t5 = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(v.verify(&t5, NOW), Err(Reject::BadSignature));
    }

    #[test]
    fn garbage_refused_as_bad_token() {
        let v = verifier();
        let good = sign(&good_claims());
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "..".into(),
            "a..c".into(),
            ".b.c".into(),
            "a$b.c.d".into(),
            format!(" {good}"),
            format!("{good}\n"),
            format!("{good}.x"),
            format!("Bearer {good}"),
            "eyJ.eyJ.sig".into(),
            format!("{}.e30.x", b64url(b"not json")),
            format!("{}.e30.x", b64url(b"[\"RS256\"]")),
            "x".repeat(MAX_TOKEN_LEN + 1),
            format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)),
            "é.é.é".into(),
        ];
        for c in &cases {
            assert_eq!(
                v.verify(c, NOW),
                Err(Reject::BadToken),
                "{:?}",
                &c[..c.len().min(40)]
            );
        }
        // Valid signature over a non-JSON payload.
        let key = EncodingKey::from_rsa_pem(SIGNING_PRIVATE.as_bytes()).unwrap();
        let input = format!("{}.{}", b64url(br#"{"alg":"RS256"}"#), b64url(b"\xff\xfe"));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
        assert_eq!(
            v.verify(&format!("{input}.{sig}"), NOW),
            Err(Reject::BadToken)
        );
    }

    // --- issuer / audience -------------------------------------------------------------------

    #[test]
    fn issuer_and_audience() {
        let v = strict_verifier();
        let base = |iss: Option<Value>, aud: Option<Value>| {
            let mut c = json!({ "tenant": "acme", "exp": NOW + 60 });
            if let Some(i) = iss {
                c["iss"] = i;
            }
            if let Some(a) = aud {
                c["aud"] = a;
            }
            v.verify(&sign(&c), NOW)
        };
        assert!(base(Some(json!(ISS)), Some(json!(AUD))).is_ok());
        assert!(base(Some(json!(ISS)), Some(json!(["other", AUD]))).is_ok());
        assert_eq!(
            base(Some(json!("https://evil")), Some(json!(AUD))),
            Err(Reject::WrongIssuer)
        );
        assert_eq!(base(None, Some(json!(AUD))), Err(Reject::WrongIssuer));
        assert_eq!(
            base(Some(json!(ISS)), Some(json!("other"))),
            Err(Reject::WrongAudience)
        );
        assert_eq!(
            base(Some(json!(ISS)), Some(json!(["a", "b"]))),
            Err(Reject::WrongAudience)
        );
        assert_eq!(base(Some(json!(ISS)), None), Err(Reject::WrongAudience));
        // Without configured audience, a token that names one is not for us (RFC 7519 4.1.3).
        let lax = verifier();
        let tok = sign(&json!({ "tenant": "acme", "exp": NOW + 60, "aud": "someone-else" }));
        assert_eq!(lax.verify(&tok, NOW), Err(Reject::WrongAudience));
        // Without configured issuer, any iss is fine.
        let tok = sign(&json!({ "tenant": "acme", "exp": NOW + 60, "iss": "whoever" }));
        assert!(lax.verify(&tok, NOW).is_ok());
    }

    // --- key loading -------------------------------------------------------------------------

    #[test]
    fn key_loading_errors() {
        let load = |pem: &str| JwtVerifier::from_rsa_pem(pem.as_bytes(), None, None).err();
        assert_eq!(load(SIGNING_PRIVATE), Some(KeyError::NotPublicKey));
        assert_eq!(load("hello"), Some(KeyError::NotPublicKey));
        assert!(matches!(
            load("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Some(KeyError::Invalid(_))
        ));
        assert_eq!(load(WEAK_PUBLIC), Some(KeyError::BadSize(1024)));
        let pem = SIGNING_PUBLIC.as_bytes();
        assert_eq!(
            JwtVerifier::from_rsa_pem(pem, Some(""), None).err(),
            Some(KeyError::EmptyExpectation("issuer"))
        );
        assert_eq!(
            JwtVerifier::from_rsa_pem(pem, None, Some("")).err(),
            Some(KeyError::EmptyExpectation("audience"))
        );
    }

    #[test]
    fn pkcs1_der_reader() {
        let seq = |body: &[u8]| [&[0x30, body.len() as u8][..], body].concat();
        // n = 0x00C5 (positive, needs the leading zero), e = 3.
        let ok = seq(&[0x02, 0x02, 0x00, 0xC5, 0x02, 0x01, 0x03]);
        assert_eq!(
            parse_pkcs1_rsa_public(&ok),
            Some((&[0xC5][..], &[0x03][..]))
        );
        let mut trailing = ok.clone();
        trailing.push(0);
        assert_eq!(parse_pkcs1_rsa_public(&trailing), None, "trailing bytes");
        assert_eq!(
            parse_pkcs1_rsa_public(&ok[..ok.len() - 1]),
            None,
            "truncated"
        );
        assert_eq!(
            parse_pkcs1_rsa_public(&seq(&[0x02, 0x01, 0x85, 0x02, 0x01, 0x03])),
            None,
            "negative n"
        );
        assert_eq!(
            parse_pkcs1_rsa_public(&seq(&[0x02, 0x02, 0x00, 0x45, 0x02, 0x01, 0x03])),
            None,
            "non-minimal n"
        );
        assert_eq!(
            parse_pkcs1_rsa_public(&seq(&[0x02, 0x00, 0x02, 0x01, 0x03])),
            None,
            "empty n"
        );
        assert_eq!(
            parse_pkcs1_rsa_public(&seq(&[0x04, 0x01, 0x05, 0x02, 0x01, 0x03])),
            None,
            "wrong tag"
        );
        assert_eq!(
            der_tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0], 0x30),
            None,
            "non-minimal length"
        );
        assert_eq!(
            der_tlv(&[0x30, 0x82, 0x00, 0x90], 0x30),
            None,
            "non-minimal long length"
        );
        assert_eq!(der_tlv(&[0x30, 0x80], 0x30), None, "indefinite length");
        assert_eq!(der_tlv(&[0x30, 0x83, 1, 0, 0], 0x30), None);
        assert!(valid_rsa_params(&[0xC5], &[1, 0, 1]));
        assert!(!valid_rsa_params(&[0xC4], &[1, 0, 1]), "even n");
        assert!(!valid_rsa_params(&[0xC5], &[1]), "e = 1");
        assert!(!valid_rsa_params(&[0xC5], &[4]), "even e");
        assert!(!valid_rsa_params(&[0xC5], &[2, 0, 0, 0, 1]), "e >= 2^33");
        assert!(!valid_rsa_params(&[0xC5], &[1; 9]), "e too long");
        assert_eq!(bit_length(&[0, 0x01, 0xFF]), 9);
        assert_eq!(bit_length(&[0, 0]), 0);
    }

    // --- targets -----------------------------------------------------------------------------

    #[test]
    fn claims_allows() {
        let with = |t: Option<&[&str]>| Claims {
            tenant: "t".into(),
            subject: None,
            expires: 0,
            targets: t.map(|v| v.iter().map(|s| s.to_string()).collect()),
        };
        let any = with(None);
        assert!(any.allows("app:bot") && any.allows("anything") && !any.allows(""));
        let none = with(Some(&[]));
        assert!(!none.allows("app:bot"));
        let star = with(Some(&["*"]));
        assert!(star.allows("device:esp1") && !star.allows(""));
        let c = with(Some(&["app:bot", "device:esp1", "call:*"]));
        assert!(c.allows("app:bot"));
        assert!(
            !c.allows("app:bot2")
                && !c.allows("app:bo")
                && !c.allows("app:*")
                && !c.allows("APP:bot")
        );
        assert!(c.allows("device:esp1") && !c.allows("device:esp2"));
        assert!(c.allows("call:CA1234") && c.allows("call:a:b"));
        assert!(
            !c.allows("call:") && !c.allows("call") && !c.allows("callx:1") && !c.allows("xcall:1")
        );
        let odd = with(Some(&[":*", "app*", "", "*:*"]));
        assert!(!odd.allows(":x") && !odd.allows("app:bot") && !odd.allows("apple"));
        assert!(
            odd.allows("*:x") && !odd.allows("a:x"),
            "only literal kind '*' before :*"
        );
    }

    // --- token extraction --------------------------------------------------------------------

    #[test]
    fn token_extraction() {
        assert_eq!(
            token_from_request(Some("Bearer abc.def.ghi"), None),
            Some("abc.def.ghi")
        );
        assert_eq!(token_from_request(Some("bearer abc"), None), Some("abc"));
        assert_eq!(
            token_from_request(Some("BEARER   abc  "), None),
            Some("abc")
        );
        assert_eq!(token_from_request(Some("Bearer\tabc"), None), Some("abc"));
        assert_eq!(token_from_request(Some("Bearer"), None), None);
        assert_eq!(token_from_request(Some("Bearer "), None), None);
        assert_eq!(token_from_request(Some("Bearer a b"), None), None);
        assert_eq!(token_from_request(Some("Bearerabc"), None), None);
        assert_eq!(token_from_request(Some("Basic dXNlcjpwdw=="), None), None);
        assert_eq!(
            token_from_request(Some("Basic x"), Some("token=q")),
            Some("q")
        );
        assert_eq!(
            token_from_request(Some("Bearer h"), Some("token=q")),
            Some("h"),
            "header wins"
        );
        assert_eq!(token_from_request(None, Some("token=abc")), Some("abc"));
        assert_eq!(token_from_request(None, Some("?token=abc")), Some("abc"));
        assert_eq!(
            token_from_request(None, Some("a=1&token=abc&b=2")),
            Some("abc")
        );
        assert_eq!(
            token_from_request(None, Some("token=abc&token=def")),
            Some("abc")
        );
        assert_eq!(
            token_from_request(None, Some("token=&token=def")),
            Some("def")
        );
        assert_eq!(token_from_request(None, Some("xtoken=abc&tokens=1")), None);
        assert_eq!(token_from_request(None, Some("token")), None);
        assert_eq!(token_from_request(None, Some("token=")), None);
        assert_eq!(token_from_request(None, Some("")), None);
        assert_eq!(token_from_request(None, None), None);
        assert_eq!(token_from_request(None, Some("token=a.b=c")), Some("a.b=c"));
    }

    // --- allowlist ---------------------------------------------------------------------------

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn allowlist() {
        let empty = Allowlist::new(vec![]);
        assert!(empty.is_empty() && empty.permits(ip("1.2.3.4")) && empty.permits(ip("::1")));

        let a = Allowlist::new(nets(&["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]));
        assert!(a.permits(ip("10.1.2.3")) && a.permits(ip("192.0.2.7")));
        assert!(!a.permits(ip("11.0.0.1")) && !a.permits(ip("192.0.2.8")));
        assert!(a.permits(ip("2001:db8:1::5")) && !a.permits(ip("2001:db9::1")));
        // IPv4-mapped IPv6 peers match IPv4 rules, and only those.
        assert!(a.permits(ip("::ffff:10.9.9.9")) && a.permits(ip("::ffff:192.0.2.7")));
        assert!(!a.permits(ip("::ffff:11.0.0.1")));
        // IPv4-compatible (not mapped) addresses are not treated as IPv4.
        assert!(!a.permits(ip("::10.9.9.9")));

        // Mapped networks in the list are normalised to IPv4.
        let m = Allowlist::new(nets(&["::ffff:172.16.0.0/108"]));
        assert_eq!(m.nets(), &nets(&["172.16.0.0/12"])[..]);
        assert!(
            m.permits(ip("172.16.5.5"))
                && m.permits(ip("::ffff:172.31.0.1"))
                && !m.permits(ip("172.32.0.1"))
        );
        let v6only = Allowlist::new(nets(&["::/0"]));
        assert!(v6only.permits(ip("2001:db8::1")) && !v6only.permits(ip("1.2.3.4")));
    }

    // --- connection limits -------------------------------------------------------------------

    #[test]
    fn per_ip_cap() {
        let l = ConnLimits::new(100, 2, 100);
        let a = ip("198.51.100.1");
        let p1 = l.admit_ip(a).unwrap();
        let p2 = l.admit_ip(ip("::ffff:198.51.100.1")).unwrap();
        assert_eq!(l.admit_ip(a).err(), Some(Reject::TooManyFromIp));
        assert!(
            l.admit_ip(ip("198.51.100.2")).is_ok(),
            "other source unaffected (permit dropped at once)"
        );
        assert_eq!((l.active(), l.active_for_ip(a)), (2, 2));
        drop(p1);
        let _p3 = l.admit_ip(a).unwrap();
        drop(p2);
        assert_eq!(l.active_for_ip(a), 1);
    }

    #[test]
    fn ipv6_counted_per_64() {
        let l = ConnLimits::new(100, 2, 100);
        let _a = l.admit_ip(ip("2001:db8:1:2::1")).unwrap();
        let _b = l.admit_ip(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            l.admit_ip(ip("2001:db8:1:2::3")).err(),
            Some(Reject::TooManyFromIp)
        );
        assert!(l.admit_ip(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(l.active_for_ip(ip("2001:db8:1:2::77")), 2);
        assert_eq!(_a.ip(), ip("2001:db8:1:2::1"));
    }

    #[test]
    fn total_cap() {
        let l = ConnLimits::new(2, 10, 10);
        let _a = l.admit_ip(ip("192.0.2.1")).unwrap();
        let b = l.admit_ip(ip("192.0.2.2")).unwrap();
        assert_eq!(
            l.admit_ip(ip("192.0.2.3")).err(),
            Some(Reject::TooManyConnections)
        );
        // Total is checked before per-ip.
        assert_eq!(
            l.admit_ip(ip("192.0.2.1")).err(),
            Some(Reject::TooManyConnections)
        );
        let conn = l.admit_tenant(b, "acme").unwrap();
        assert_eq!(
            l.admit_ip(ip("192.0.2.3")).err(),
            Some(Reject::TooManyConnections)
        );
        drop(conn);
        assert!(l.admit_ip(ip("192.0.2.3")).is_ok());
        let zero = ConnLimits::new(0, 10, 10);
        assert_eq!(
            zero.admit_ip(ip("192.0.2.3")).err(),
            Some(Reject::TooManyConnections)
        );
    }

    #[test]
    fn per_tenant_cap_and_release() {
        let l = ConnLimits::new(100, 100, 2);
        let c1 = l
            .admit_tenant(l.admit_ip(ip("192.0.2.1")).unwrap(), "acme")
            .unwrap();
        let c2 = l
            .admit_tenant(l.admit_ip(ip("192.0.2.2")).unwrap(), "acme")
            .unwrap();
        assert_eq!((c1.tenant(), c1.ip()), ("acme", ip("192.0.2.1")));
        let p = l.admit_ip(ip("192.0.2.3")).unwrap();
        assert_eq!(l.active(), 3);
        assert_eq!(
            l.admit_tenant(p, "acme").err(),
            Some(Reject::TooManyForTenant)
        );
        // The refused IpPermit was released.
        assert_eq!((l.active(), l.active_for_ip(ip("192.0.2.3"))), (2, 0));
        let other = l
            .admit_tenant(l.admit_ip(ip("192.0.2.3")).unwrap(), "globex")
            .unwrap();
        assert_eq!(
            (l.active_for_tenant("acme"), l.active_for_tenant("globex")),
            (2, 1)
        );
        drop(c1);
        assert_eq!(l.active_for_tenant("acme"), 1);
        let c3 = l
            .admit_tenant(l.admit_ip(ip("192.0.2.4")).unwrap(), "acme")
            .unwrap();
        drop((c2, c3, other));
        assert_eq!(
            (
                l.active(),
                l.active_for_tenant("acme"),
                l.active_for_ip(ip("192.0.2.1"))
            ),
            (0, 0, 0)
        );
        assert_eq!(l.tracked_keys(), (0, 0), "maps emptied");
    }

    #[test]
    fn limits_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ConnLimits>();
        assert_send_sync::<ConnPermit>();
        assert_send_sync::<IpPermit>();
        let l = ConnLimits::new(1000, 1000, 1000);
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for i in 0..500u16 {
                        let src = IpAddr::V4(Ipv4Addr::new(10, t, (i % 7) as u8, 1));
                        let p = l.admit_ip(src).unwrap();
                        let tenant = format!("t{}", i % 3);
                        let c = l.admit_tenant(p, &tenant).unwrap();
                        assert!(l.active() >= 1);
                        drop(c);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(l.active(), 0);
        assert_eq!(l.tracked_keys(), (0, 0));
    }

    // --- frame guard -------------------------------------------------------------------------

    #[test]
    fn frame_size_limit() {
        let t0 = Instant::now();
        let mut g = FrameGuard::new(1024, 50, t0);
        assert!(g.check(1024, t0).is_ok());
        assert_eq!(g.check(1025, t0), Err(Reject::FrameTooLarge));
        assert!(g.check(0, t0).is_ok());
        let mut unlimited = FrameGuard::new(0, 0, t0);
        for _ in 0..10_000 {
            assert!(unlimited.check(usize::MAX, t0).is_ok());
        }
    }

    #[test]
    fn frame_rate_burst_then_refill() {
        let t0 = Instant::now();
        let mut g = FrameGuard::new(4096, 50, t0);
        for i in 0..50 {
            assert!(g.check(160, t0).is_ok(), "burst frame {i}");
        }
        assert_eq!(g.check(160, t0), Err(Reject::FrameRate));
        // 20 ms at 50/s refills exactly one frame.
        let t1 = t0 + Duration::from_millis(20);
        assert!(g.check(160, t1).is_ok());
        assert_eq!(g.check(160, t1), Err(Reject::FrameRate));
        // Oversized frames do not consume credit.
        let t2 = t1 + Duration::from_millis(20);
        assert_eq!(g.check(5000, t2), Err(Reject::FrameTooLarge));
        assert!(g.check(160, t2).is_ok());
        // A long pause refills at most one second's worth.
        let t3 = t2 + Duration::from_secs(3600);
        for _ in 0..50 {
            assert!(g.check(160, t3).is_ok());
        }
        assert_eq!(g.check(160, t3), Err(Reject::FrameRate));
        // Out-of-order time neither panics nor refills.
        assert_eq!(g.check(160, t0), Err(Reject::FrameRate));
        // Steady 50 fps (Twilio's 20 ms cadence) is sustainable indefinitely.
        let mut t = t3;
        for _ in 0..1000 {
            t += Duration::from_millis(20);
            assert!(g.check(160, t).is_ok());
        }
    }

    #[test]
    fn frame_rate_sub_second_precision() {
        let t0 = Instant::now();
        let mut g = FrameGuard::new(0, 3, t0);
        for _ in 0..3 {
            g.check(1, t0).unwrap();
        }
        // 1/3 s is 333_333_333.3 ns: one nanosecond short is not enough.
        assert_eq!(
            g.check(1, t0 + Duration::from_nanos(333_333_333)),
            Err(Reject::FrameRate)
        );
        assert!(g.check(1, t0 + Duration::from_nanos(333_333_334)).is_ok());
    }

    // --- dial strings ------------------------------------------------------------------------

    #[test]
    fn calling_numbers_are_dial_strings() {
        assert_eq!(calling_number(None).unwrap(), "ingest");
        assert_eq!(calling_number(Some("+4930123*#")).unwrap(), "+4930123*#");
        for bad in [
            "",
            "1>\r\nP-Asserted-Identity: <sip:911@evil>",
            "1\r\n",
            "\"Bob\" <sip:1@x>",
            "sip:1@x",
            "1 2",
            "12a",
            &"1".repeat(MAX_DIAL_CHARS + 1),
        ] {
            assert_eq!(calling_number(Some(bad)), Err(Reject::BadFrom), "{bad:?}");
        }
        assert!(is_dial_string(&"9".repeat(MAX_DIAL_CHARS)));
    }

    // --- reject metadata ---------------------------------------------------------------------

    #[test]
    fn reject_metadata() {
        // Exhaustive match: adding a variant without updating ALL fails to compile here.
        let index = |r: Reject| match r {
            Reject::NotAllowed => 0,
            Reject::NoToken => 1,
            Reject::BadToken => 2,
            Reject::Expired => 3,
            Reject::NotYetValid => 4,
            Reject::BadSignature => 5,
            Reject::WrongAlgorithm => 6,
            Reject::WrongIssuer => 7,
            Reject::WrongAudience => 8,
            Reject::TargetNotAllowed => 9,
            Reject::TooManyConnections => 10,
            Reject::TooManyFromIp => 11,
            Reject::TooManyForTenant => 12,
            Reject::FrameTooLarge => 13,
            Reject::FrameRate => 14,
            Reject::Disabled => 15,
            Reject::BadFrom => 16,
        };
        let mut labels = std::collections::HashSet::new();
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(index(*r), i);
            let s = r.as_str();
            assert!(labels.insert(s), "duplicate label {s}");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!r.to_string().is_empty());
        }
        assert_eq!(Reject::NotAllowed.http_status(), 403);
        assert_eq!(Reject::TargetNotAllowed.http_status(), 403);
        for r in [
            Reject::NoToken,
            Reject::BadToken,
            Reject::Expired,
            Reject::BadSignature,
            Reject::WrongAlgorithm,
        ] {
            assert_eq!(r.http_status(), 401);
        }
        assert_eq!(Reject::TooManyConnections.http_status(), 503);
        assert_eq!(Reject::Disabled.http_status(), 503);
        assert_eq!(Reject::TooManyFromIp.http_status(), 429);
        assert_eq!(Reject::TooManyForTenant.http_status(), 429);
        assert_eq!(Reject::FrameTooLarge.close_code(), 1009);
        assert_eq!(Reject::FrameRate.close_code(), 1008);
        assert_eq!(Reject::BadSignature.close_code(), 1008);
        assert_eq!(Reject::TooManyForTenant.close_code(), 1013);
    }

    // --- randomized robustness ---------------------------------------------------------------

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let v = strict_verifier();
        let good = sign(&json!({ "tenant": "acme", "exp": NOW + 60, "iss": ISS, "aud": AUD }));
        assert!(v.verify(&good, NOW).is_ok());
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        const ALPHA: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=& \t?+/%";
        for round in 0..4000 {
            let input: String = match round % 4 {
                // Arbitrary bytes, lossily made UTF-8.
                0 => {
                    let len = rng.below(300);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                // Token-alphabet soup.
                1 => (0..rng.below(400))
                    .map(|_| ALPHA[rng.below(ALPHA.len())] as char)
                    .collect(),
                // A valid token with a few characters mutated, deleted or duplicated.
                2 => {
                    let mut b = good.clone().into_bytes();
                    for _ in 0..1 + rng.below(3) {
                        let i = rng.below(b.len());
                        match rng.below(3) {
                            0 => b[i] = ALPHA[rng.below(ALPHA.len())],
                            1 => {
                                b.remove(i);
                            }
                            _ => b.insert(i, b[i]),
                        }
                    }
                    String::from_utf8(b).unwrap()
                }
                // Structurally plausible: random JSON-ish header/payload.
                _ => {
                    let frag = |rng: &mut XorShift| -> String {
                        let pieces = [
                            "{",
                            "}",
                            "\"alg\"",
                            ":",
                            "\"RS256\"",
                            ",",
                            "\"exp\"",
                            "1e999",
                            "-5",
                            "\"tenant\"",
                            "[",
                            "]",
                            "null",
                            "\"\\u0000\"",
                            "\"crit\"",
                        ];
                        (0..rng.below(12))
                            .map(|_| pieces[rng.below(pieces.len())])
                            .collect()
                    };
                    let h = frag(&mut rng);
                    let p = frag(&mut rng);
                    format!(
                        "{}.{}.{}",
                        b64url(h.as_bytes()),
                        b64url(p.as_bytes()),
                        &good[good.len() - 20..]
                    )
                }
            };
            let res = v.verify(&input, rng.next());
            assert_ne!(res.as_ref().ok().map(|c| c.tenant.as_str()), Some("victim"));
            if input != good {
                // Any accepted mutation must decode to the very same claims (e.g. none here).
                if let Ok(c) = res {
                    assert_eq!(c.tenant, "acme");
                }
            }
            let _ = token_from_request(Some(&input), Some(&input));
            let _ = token_from_request(None, Some(&input));
            let _ = b64url_decode(&input);
            let _ = pem_label(input.as_bytes());
        }
        // Random addresses through the allowlist and limits.
        let a = Allowlist::new(nets(&[
            "10.0.0.0/8",
            "2001:db8::/32",
            "::ffff:192.0.2.0/120",
        ]));
        let l = ConnLimits::new(64, 3, 5);
        let mut held = Vec::new();
        for _ in 0..2000 {
            let addr = if rng.next() & 1 == 0 {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(
                    u128::from(rng.next()) << 64 | u128::from(rng.next()),
                ))
            };
            let _ = a.permits(addr);
            let tenant = ["a", "b", "c"][rng.below(3)];
            if let Ok(c) = l.admit_ip(addr).and_then(|p| l.admit_tenant(p, tenant)) {
                held.push(c);
            }
            if held.len() > 10 {
                let released = held.swap_remove(rng.below(held.len()));
                drop(released);
            }
        }
        drop(held);
        assert_eq!((l.active(), l.tracked_keys()), (0, (0, 0)));
    }
}
