//! HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).
//!
//! Client side: parse a `WWW-Authenticate` / `Proxy-Authenticate` challenge ([`Challenge`]) and
//! compute the `Authorization` / `Proxy-Authorization` value ([`authorization`]) toward a trunk.
//! Server side: issue a challenge ([`challenge_header`]) and verify a received
//! [`Authorization`] in constant time. MD5 and SHA-256 (and their `-sess` variants) with
//! `qop=auth` or the RFC 2069 form without qop; `auth-int` is not supported. Header values are
//! bounded ([`MAX_HEADER_LEN`], [`MAX_PARAMS`]); quoted strings may contain backslash escapes.
//! A server that refuses replays also needs [`Authorization::has_qop_auth`] (nonce counts),
//! [`uri_matches`] (the digest-uri is the Request-URI) and [`challenge_header_stale`].

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Longest challenge or credentials header value accepted.
pub const MAX_HEADER_LEN: usize = 4096;
/// Most parameters accepted in one header value.
pub const MAX_PARAMS: usize = 32;

/// Digest hash algorithm (RFC 7616 §3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5` (the default when a challenge names none).
    #[default]
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The token used in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Parses an algorithm token, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lowercase hex digest of `data`.
    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }
}

/// Why a digest header value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header value is longer than [`MAX_HEADER_LEN`].
    #[error("digest header of {len} bytes exceeds {max}")]
    TooLong {
        /// Length of the value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("digest header has more than {max} parameters")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// The scheme is not `Digest`.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A parameter list that does not follow `name=token` / `name="quoted"`.
    #[error("digest header syntax error at byte {offset}: {reason}")]
    Syntax {
        /// Byte offset into the header value.
        offset: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// A required parameter is absent.
    #[error("digest header lacks the {name} parameter")]
    MissingParam {
        /// The parameter name.
        name: &'static str,
    },
    /// The algorithm is not one of MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported digest algorithm {name:?}")]
    UnsupportedAlgorithm {
        /// The algorithm token as received.
        name: String,
    },
    /// `nc` is not eight hex digits.
    #[error("invalid digest nonce count")]
    BadNonceCount,
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// Offered qop values (`auth`, `auth-int`), empty for RFC 2069 servers.
    pub qop: Vec<String>,
    /// The previous credentials used a stale nonce: retry with the same password.
    pub stale: bool,
}

impl Challenge {
    /// Parses the value of a `WWW-Authenticate` or `Proxy-Authenticate` header:
    /// `Digest realm="..", nonce="..", ...`.
    pub fn parse(header_value: &str) -> Result<Self, DigestError> {
        let params = parse_params(header_value)?;
        let mut realm = None;
        let mut nonce = None;
        let mut ch = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: Vec::new(),
            stale: false,
        };
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => ch.opaque = Some(value),
                "algorithm" => ch.algorithm = parse_algorithm(&value)?,
                "qop" => {
                    ch.qop = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "stale" => ch.stale = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        ch.realm = realm.ok_or(DigestError::MissingParam { name: "realm" })?;
        ch.nonce = nonce.ok_or(DigestError::MissingParam { name: "nonce" })?;
        Ok(ch)
    }

    /// True when the challenge offers `qop=auth`.
    pub fn offers_auth(&self) -> bool {
        self.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"))
    }
}

fn parse_algorithm(value: &str) -> Result<Algorithm, DigestError> {
    Algorithm::parse(value).ok_or_else(|| DigestError::UnsupportedAlgorithm {
        name: value.chars().take(64).collect(),
    })
}

/// Computes the `response` value (RFC 7616 §3.4.1). `qop_nc_cnonce` is `Some` for `qop=auth`.
#[allow(clippy::too_many_arguments)]
fn response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
    nc: Option<&str>,
) -> String {
    let mut ha1 = algorithm.hash(&format!("{username}:{realm}:{password}"));
    if algorithm.is_sess() {
        ha1 = algorithm.hash(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    match nc {
        Some(nc) => algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// `Authorization` / `Proxy-Authorization` header value answering `ch` for a request with
/// `method` and Request-URI `uri` (client side, toward trunks).
///
/// Uses `qop=auth` with `nc` (formatted as eight hex digits) and `cnonce` when the challenge
/// offers it, else the RFC 2069 form (with `cnonce` only for `-sess` algorithms).
pub fn authorization(
    ch: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let qop = ch.offers_auth();
    let nc_str = format!("{nc:08x}");
    let resp = response(
        ch.algorithm,
        username,
        &ch.realm,
        password,
        &ch.nonce,
        cnonce,
        method,
        uri,
        qop.then_some(nc_str.as_str()),
    );
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        quote(&resp),
        ch.algorithm.as_str()
    );
    if qop || ch.algorithm.is_sess() {
        out.push_str(", cnonce=");
        out.push_str(&quote(cnonce));
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(", opaque=");
        out.push_str(&quote(opaque));
    }
    if qop {
        out.push_str(", qop=auth, nc=");
        out.push_str(&nc_str);
    }
    out
}

/// `WWW-Authenticate` / `Proxy-Authenticate` value for a 401/407 offering `qop="auth"`.
pub fn challenge_header(realm: &str, nonce: &str, algorithm: Algorithm) -> String {
    challenge_header_stale(realm, nonce, algorithm, false)
}

/// [`challenge_header`] with `stale=true` when `stale` (RFC 7616 §3.3): the previous
/// credentials were right but their nonce expired or was used up; the client may retry with
/// the new nonce without asking its user again.
pub fn challenge_header_stale(
    realm: &str,
    nonce: &str,
    algorithm: Algorithm,
    stale: bool,
) -> String {
    let mut h = format!(
        "Digest realm={}, nonce={}, algorithm={}, qop=\"auth\"",
        quote(realm),
        quote(nonce),
        algorithm.as_str()
    );
    if stale {
        h.push_str(", stale=true");
    }
    h
}

/// Whether the `uri` of an `Authorization` names the same resource as the request's
/// Request-URI (RFC 3261 §22.4: the digest-uri is the Request-URI). Equal text matches; so
/// do two SIP URIs with the same scheme, user, host (case-insensitive) and port, whatever their
/// parameters' spelling. Anything unparsable only matches itself.
pub fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    let (a, b) = (digest_uri.trim(), request_uri.trim());
    if a == b {
        return true;
    }
    match (UriParts::parse(a), UriParts::parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The parts of a SIP URI that name a resource: scheme, user, host and port.
#[derive(Debug, PartialEq, Eq)]
struct UriParts {
    scheme: String,
    user: Option<String>,
    host: String,
    port: Option<String>,
}

impl UriParts {
    fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        // Parameters and headers end the hostport.
        let rest = rest.split(['?', ';']).next().unwrap_or_default();
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.split(':').next().unwrap_or_default().to_owned()), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(UriParts {
            scheme,
            user,
            host: host.to_ascii_lowercase(),
            port: port.map(str::to_owned),
        })
    }
}

/// Parsed credentials from an `Authorization` / `Proxy-Authorization` header (server side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// User name.
    pub username: String,
    /// Realm the credentials are for.
    pub realm: String,
    /// The nonce the client answers (the caller checks it is one it issued and fresh).
    pub nonce: String,
    /// The digest-uri the client hashed.
    pub uri: String,
    /// The client's response hash (hex).
    pub response: String,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// `qop` chosen by the client (`auth`), if any.
    pub qop: Option<String>,
    /// Nonce count, present with qop.
    pub nc: Option<u32>,
    /// Client nonce, present with qop and with `-sess` algorithms.
    pub cnonce: Option<String>,
    /// Opaque value echoed from the challenge.
    pub opaque: Option<String>,
}

impl Authorization {
    /// Parses the value of an `Authorization` or `Proxy-Authorization` header.
    pub fn parse(v: &str) -> Result<Self, DigestError> {
        let params = parse_params(v)?;
        let (mut username, mut realm, mut nonce, mut uri, mut resp) =
            (None, None, None, None, None);
        let mut a = Authorization {
            username: String::new(),
            realm: String::new(),
            nonce: String::new(),
            uri: String::new(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            qop: None,
            nc: None,
            cnonce: None,
            opaque: None,
        };
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "username" => username = Some(value),
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "uri" => uri = Some(value),
                "response" => resp = Some(value),
                "algorithm" => a.algorithm = parse_algorithm(&value)?,
                "qop" => a.qop = Some(value),
                "nc" => {
                    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(DigestError::BadNonceCount);
                    }
                    a.nc = Some(
                        u32::from_str_radix(&value, 16).map_err(|_| DigestError::BadNonceCount)?,
                    );
                }
                "cnonce" => a.cnonce = Some(value),
                "opaque" => a.opaque = Some(value),
                _ => {}
            }
        }
        a.username = username.ok_or(DigestError::MissingParam { name: "username" })?;
        a.realm = realm.ok_or(DigestError::MissingParam { name: "realm" })?;
        a.nonce = nonce.ok_or(DigestError::MissingParam { name: "nonce" })?;
        a.uri = uri.ok_or(DigestError::MissingParam { name: "uri" })?;
        a.response = resp.ok_or(DigestError::MissingParam { name: "response" })?;
        Ok(a)
    }

    /// True when the client chose `qop=auth` and sent the `nc` and `cnonce` that go with it
    /// (the only form a server that tracks nonce counts accepts).
    pub fn has_qop_auth(&self) -> bool {
        self.qop
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
            && self.nc.is_some()
            && self.cnonce.is_some()
    }

    /// Checks the response against `password` for a request with `method`, comparing in
    /// constant time. Only checks the hash: the caller checks realm, nonce freshness, nonce
    /// count and that `uri` matches the Request-URI. `qop=auth-int` is rejected.
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let cnonce = self.cnonce.as_deref().unwrap_or("");
        if self.algorithm.is_sess() && self.cnonce.is_none() {
            return false;
        }
        let expected = match self.qop.as_deref() {
            None => vec![self.expected(method, password, cnonce, None)],
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(_)) = (self.nc, &self.cnonce) else {
                    return false;
                };
                // RFC 7616 says lowercase hex; tolerate clients that hashed it in uppercase.
                vec![
                    self.expected(method, password, cnonce, Some(&format!("{nc:08x}"))),
                    self.expected(method, password, cnonce, Some(&format!("{nc:08X}"))),
                ]
            }
            Some(_) => return false,
        };
        let got = self.response.to_ascii_lowercase();
        expected.iter().fold(false, |ok, e| {
            ok | constant_time_eq(e.as_bytes(), got.as_bytes())
        })
    }

    fn expected(&self, method: &str, password: &str, cnonce: &str, nc: Option<&str>) -> String {
        response(
            self.algorithm,
            &self.username,
            &self.realm,
            password,
            &self.nonce,
            cnonce,
            method,
            &self.uri,
            nc,
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Quotes a value as an RFC 3261 quoted-string, escaping `"` and `\`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        // CR and LF cannot appear in a header value; drop them rather than inject headers.
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Splits `Digest name=value, name="quoted", ...` into (name, unquoted value) pairs.
fn parse_params(v: &str) -> Result<Vec<(String, String)>, DigestError> {
    if v.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong {
            len: v.len(),
            max: MAX_HEADER_LEN,
        });
    }
    let b = v.as_bytes();
    let mut i = skip_ws(b, 0);
    let scheme_end = i + b[i..]
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(b.len() - i);
    if !v[i..scheme_end].eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    i = skip_ws(b, scheme_end);
    let mut params = Vec::new();
    while i < b.len() {
        if params.len() >= MAX_PARAMS {
            return Err(DigestError::TooManyParams { max: MAX_PARAMS });
        }
        let name_start = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(syntax(i, "parameter name"));
        }
        let name = v[name_start..i].to_owned();
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            return Err(syntax(i, "'='"));
        }
        i = skip_ws(b, i + 1);
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(syntax(i, "closing quote")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = b.get(i + 1) else {
                            return Err(syntax(i, "escaped character"));
                        };
                        if c == b'\r' || c == b'\n' {
                            return Err(syntax(i, "escaped character"));
                        }
                        value.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            // Escapes only drop ASCII backslashes, so the bytes stay valid UTF-8.
            String::from_utf8(value).map_err(|_| syntax(i, "UTF-8 value"))?
        } else {
            let start = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == start {
                return Err(syntax(i, "parameter value"));
            }
            v[start..i].to_owned()
        };
        params.push((name, value));
        i = skip_ws(b, i);
        match b.get(i) {
            None => break,
            Some(b',') => i = skip_ws(b, i + 1),
            Some(_) => return Err(syntax(i, "','")),
        }
    }
    Ok(params)
}

fn syntax(offset: usize, reason: &'static str) -> DigestError {
    DigestError::Syntax { offset, reason }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// RFC 3261 token characters (plus `/` and `:` seen in unquoted values of sloppy peers).
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~/:@".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2617 §3.5.
    const RFC2617_CHALLENGE: &str = "Digest\r\n realm=\"testrealm@host.com\",\r\n \
        qop=\"auth,auth-int\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    const RFC2617_AUTHORIZATION: &str = "Digest username=\"Mufasa\",\r\n \
        realm=\"testrealm@host.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
        uri=\"/dir/index.html\",\r\n qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
        response=\"6629fae49393a05397450978507c4ef1\",\r\n \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    // RFC 7616 §3.9.1.
    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn response_of(header: &str) -> String {
        Authorization::parse(header).unwrap().response
    }

    #[test]
    fn rfc2617_challenge_and_response() {
        let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        assert_eq!(ch.realm, "testrealm@host.com");
        assert_eq!(ch.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(
            ch.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(ch.qop, vec!["auth", "auth-int"]);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert!(!ch.stale);

        let h = authorization(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(response_of(&h), "6629fae49393a05397450978507c4ef1");
        assert!(h.contains("qop=auth, nc=00000001"));
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));

        let a = Authorization::parse(RFC2617_AUTHORIZATION).unwrap();
        assert_eq!(a.username, "Mufasa");
        assert_eq!(a.nc, Some(1));
        assert_eq!(a.cnonce.as_deref(), Some("0a4f113b"));
        assert!(a.verify("GET", "Circle Of Life"));
        assert!(!a.verify("GET", "Circle of Life"));
        assert!(!a.verify("POST", "Circle Of Life"));
    }

    fn rfc7616(algorithm: &str) -> Challenge {
        Challenge::parse(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm={algorithm}, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
        .unwrap()
    }

    #[test]
    fn rfc7616_md5_and_sha256() {
        for (alg, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ch = rfc7616(alg);
            assert_eq!(ch.qop, vec!["auth", "auth-int"]);
            let h = authorization(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                RFC7616_CNONCE,
            );
            assert_eq!(response_of(&h), expected, "{alg}");
            let a = Authorization::parse(&h).unwrap();
            assert_eq!(a.algorithm.as_str(), alg);
            assert!(a.verify("GET", "Circle of Life"));
        }
    }

    #[test]
    fn round_trips_all_algorithms_with_and_without_qop() {
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ] {
            let with_qop =
                Challenge::parse(&challenge_header("sip.example.com", "n0nce", alg)).unwrap();
            assert_eq!(with_qop.algorithm, alg);
            let mut without_qop = with_qop.clone();
            without_qop.qop.clear();
            for ch in [with_qop, without_qop] {
                let h = authorization(&ch, "alice", "s\"cr\\t", "INVITE", "sip:bob@b", 7, "c1");
                let a = Authorization::parse(&h).unwrap();
                assert_eq!(a.uri, "sip:bob@b");
                assert!(a.verify("INVITE", "s\"cr\\t"), "{alg:?} {h}");
                assert!(!a.verify("INVITE", "wrong"));
            }
        }
    }

    #[test]
    fn rfc2069_golden() {
        // RFC 2069 §2.4 example: response without qop is H(H(A1):nonce:H(A2)). The RFC prints
        // e966c932a9242554e42c8ee200cec7f6, a known erratum; the correct hash is below.
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        )
        .unwrap();
        let h = authorization(
            &ch,
            "Mufasa",
            "CircleOfLife",
            "GET",
            "/dir/index.html",
            1,
            "x",
        );
        assert_eq!(response_of(&h), "1949323746fe6a43ef61f9606e7febea");
        assert!(!h.contains("qop"));
        assert!(!h.contains("cnonce"));
    }

    #[test]
    fn stale_and_escapes() {
        let ch = Challenge::parse(
            "digest realm=\"a \\\"b\\\" c\", nonce=abc, stale=TRUE, algorithm=sha-256-SESS",
        )
        .unwrap();
        assert_eq!(ch.realm, "a \"b\" c");
        assert_eq!(ch.nonce, "abc");
        assert!(ch.stale);
        assert_eq!(ch.algorithm, Algorithm::Sha256Sess);
    }

    #[test]
    fn stale_challenge_and_qop_auth() {
        let h = challenge_header_stale("r", "n", Algorithm::Md5, true);
        let ch = Challenge::parse(&h).unwrap();
        assert!(ch.stale && ch.offers_auth());
        assert!(
            !Challenge::parse(&challenge_header("r", "n", Algorithm::Md5))
                .unwrap()
                .stale
        );
        let with = authorization(&ch, "a", "p", "INVITE", "sip:1@h", 1, "c");
        assert!(Authorization::parse(&with).unwrap().has_qop_auth());
        let mut rfc2069 = ch.clone();
        rfc2069.qop.clear();
        let without = authorization(&rfc2069, "a", "p", "INVITE", "sip:1@h", 1, "c");
        assert!(!Authorization::parse(&without).unwrap().has_qop_auth());
    }

    #[test]
    fn digest_uri_must_name_the_request_uri() {
        for (d, r) in [
            ("sip:100@10.0.0.1:5060", "sip:100@10.0.0.1:5060"),
            ("sip:100@Example.COM", "SIP:100@example.com;transport=udp"),
            (
                "sip:100@[2001:db8::1]:5070",
                "sip:100@[2001:db8::1]:5070;lr",
            ),
            ("sip:10.0.0.1", "sip:10.0.0.1"),
            ("sip:100:pw@h", "sip:100@h"),
        ] {
            assert!(uri_matches(d, r), "{d} vs {r}");
        }
        for (d, r) in [
            ("sip:100@10.0.0.1:5060", "sip:200@10.0.0.1:5060"),
            ("sip:100@10.0.0.1:5060", "sip:100@10.0.0.1:5070"),
            ("sip:100@10.0.0.1", "sip:100@10.0.0.1:5060"),
            ("sip:100@a", "sips:100@a"),
            ("sip:100@a", "sip:100@b"),
            ("tel:+100", "tel:+200"),
            ("", "sip:100@a"),
            ("sip:[::1", "sip:[::1]"),
        ] {
            assert!(!uri_matches(d, r), "{d} vs {r}");
        }
    }

    #[test]
    fn truncated_input_never_panics() {
        for text in [
            RFC2617_CHALLENGE,
            RFC2617_AUTHORIZATION,
            "Digest a=\"\u{e9}\\\u{e9}\"",
        ] {
            for i in 0..=text.len() {
                if !text.is_char_boundary(i) {
                    continue;
                }
                for candidate in [&text[..i], &text[i..]] {
                    let _ = Challenge::parse(candidate);
                    if let Ok(a) = Authorization::parse(candidate) {
                        let _ = a.verify("GET", "x");
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"x\""),
            Err(DigestError::MissingParam { name: "realm" })
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"x, nonce=y"),
            Err(DigestError::Syntax { .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"x\" nonce=y"),
            Err(DigestError::Syntax { .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=x, nonce=y, algorithm=SHA-512-256"),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        let long = format!("Digest realm=\"{}\"", "a".repeat(MAX_HEADER_LEN));
        assert!(matches!(
            Challenge::parse(&long),
            Err(DigestError::TooLong { .. })
        ));
        let many = format!("Digest {}", vec!["a=b"; MAX_PARAMS + 1].join(","));
        assert_eq!(
            Challenge::parse(&many),
            Err(DigestError::TooManyParams { max: MAX_PARAMS })
        );
        assert_eq!(
            Authorization::parse("Digest username=a, realm=b, nonce=c, uri=d, response=e, nc=1"),
            Err(DigestError::BadNonceCount)
        );
        assert_eq!(Challenge::parse(""), Err(DigestError::NotDigest));
        assert!(Challenge::parse("Digest").is_err());
        assert!(Challenge::parse("Digest realm=\"\\").is_err());
        // qop=auth without nc must not verify.
        let a = Authorization::parse(
            "Digest username=a, realm=b, nonce=c, uri=d, response=e, qop=auth",
        )
        .unwrap();
        assert!(!a.verify("GET", "p"));
    }
}
