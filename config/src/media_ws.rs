//! `[media_ws]`: the media WebSocket ingest server (apps and devices connect in and stream
//! audio), with JWT authentication, source allow list and per-connection limits, validated
//! from the raw file plus `SWITCHBOARD_MEDIA_WS_*` overrides.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::devices::path;
use crate::error::ConfigErrorKind;
use crate::validate::Checker;

/// `[media_ws]`: the media WebSocket ingest server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaWsConfig {
    /// Run the ingest server (default false: off).
    pub enabled: bool,
    /// Listen address (default `127.0.0.1:8091`).
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the server speaks `wss://` (both or neither).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// RSA public key (PEM file) connection JWTs are verified with; required when `enabled`.
    /// Not read at load.
    pub jwt_public_key: Option<PathBuf>,
    /// Required JWT `iss` claim, at most 256 bytes (default none: not checked).
    pub jwt_issuer: Option<String>,
    /// Required JWT `aud` claim, at most 256 bytes (default none: not checked).
    pub jwt_audience: Option<String>,
    /// Source networks allowed to connect (a single IP is a /32 or /128); empty (the default) =
    /// any source. See [`MediaWsConfig::allows`].
    pub allow: Vec<ipnet::IpNet>,
    /// Most simultaneous connections (1..=100000, default 1000).
    pub max_connections: usize,
    /// Most simultaneous connections from one source IP (1..=100000, default 50).
    pub max_per_ip: usize,
    /// Most simultaneous connections of one tenant (1..=100000, default 200).
    pub max_per_tenant: usize,
    /// Largest WebSocket frame accepted, in bytes (1024..=1048576, default 65536).
    pub max_frame_bytes: usize,
    /// Most frames per second on one connection (1..=10000, default 200).
    pub max_frames_per_sec: u32,
    /// Time allowed for the upgrade and authentication, in ms (100..=60000, default 5000); see
    /// [`MediaWsConfig::handshake_timeout`].
    pub handshake_timeout_ms: u32,
    /// No frame for this many seconds ends the stream (1..=3600, default 30); see
    /// [`MediaWsConfig::idle_timeout`].
    pub idle_timeout_secs: u32,
}

impl MediaWsConfig {
    /// `handshake_timeout_ms` as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.handshake_timeout_ms))
    }

    /// `idle_timeout_secs` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.idle_timeout_secs))
    }

    /// The certificate and key when TLS is configured.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Whether `ip` may connect: any source when `allow` is empty, else one in the list.
    /// IPv4-mapped IPv6 sources are treated as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

impl Default for MediaWsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8091)),
            tls_cert: None,
            tls_key: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            allow: Vec::new(),
            max_connections: 1000,
            max_per_ip: 50,
            max_per_tenant: 200,
            max_frame_bytes: 65_536,
            max_frames_per_sec: 200,
            handshake_timeout_ms: 5000,
            idle_timeout_secs: 30,
        }
    }
}

/// `[media_ws]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMediaWs {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub jwt_public_key: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub allow: Option<Vec<String>>,
    pub max_connections: Option<u64>,
    pub max_per_ip: Option<u64>,
    pub max_per_tenant: Option<u64>,
    pub max_frame_bytes: Option<u64>,
    pub max_frames_per_sec: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}

/// Longest `jwt_issuer` / `jwt_audience`, in bytes.
const MAX_CLAIM: usize = 256;

/// An optional JWT claim value; empty means unset.
fn claim(c: &mut Checker, key: &str, value: Option<String>) -> Option<String> {
    let v = value.filter(|v| !v.is_empty())?;
    if v.len() > MAX_CLAIM || v.trim().is_empty() || v.chars().any(char::is_control) {
        c.invalid(
            key,
            &v,
            "a single-line string of at most 256 bytes (empty = not checked)",
        );
        return None;
    }
    Some(v)
}

/// Validate `[media_ws]`.
pub(crate) fn media_ws(c: &mut Checker, raw: RawMediaWs) -> MediaWsConfig {
    let d = MediaWsConfig::default();
    let enabled = raw.enabled.unwrap_or(d.enabled);
    let listen = c.socket("media_ws.listen", raw.listen.as_deref(), d.listen);
    let key_file_written = raw.jwt_public_key.as_deref().is_some_and(|s| !s.is_empty());
    let (tls_cert, tls_key) = crate::devices::tls_pair(c, "media_ws", raw.tls_cert, raw.tls_key);
    let jwt_public_key = path(c, "media_ws.jwt_public_key", raw.jwt_public_key);
    if enabled && !key_file_written {
        c.err("media_ws.jwt_public_key", ConfigErrorKind::Missing);
    }
    let jwt_issuer = claim(c, "media_ws.jwt_issuer", raw.jwt_issuer);
    let jwt_audience = claim(c, "media_ws.jwt_audience", raw.jwt_audience);
    let allow = c.nets("media_ws.allow", raw.allow);
    let count = |c: &mut Checker, key: &str, v: Option<u64>, def: usize, min: u64, max: u64| {
        let n = c.ranged(key, v, u64::try_from(def).unwrap_or(u64::MAX), min, max);
        usize::try_from(n).unwrap_or(def)
    };
    let max_connections = count(
        c,
        "media_ws.max_connections",
        raw.max_connections,
        d.max_connections,
        1,
        100_000,
    );
    let max_per_ip = count(
        c,
        "media_ws.max_per_ip",
        raw.max_per_ip,
        d.max_per_ip,
        1,
        100_000,
    );
    let max_per_tenant = count(
        c,
        "media_ws.max_per_tenant",
        raw.max_per_tenant,
        d.max_per_tenant,
        1,
        100_000,
    );
    let max_frame_bytes = count(
        c,
        "media_ws.max_frame_bytes",
        raw.max_frame_bytes,
        d.max_frame_bytes,
        1024,
        1024 * 1024,
    );
    let num = |c: &mut Checker, key: &str, v: Option<u64>, def: u32, min: u64, max: u64| {
        let n = c.ranged(key, v, u64::from(def), min, max);
        u32::try_from(n).unwrap_or(def)
    };
    let max_frames_per_sec = num(
        c,
        "media_ws.max_frames_per_sec",
        raw.max_frames_per_sec,
        d.max_frames_per_sec,
        1,
        10_000,
    );
    let handshake_timeout_ms = num(
        c,
        "media_ws.handshake_timeout_ms",
        raw.handshake_timeout_ms,
        d.handshake_timeout_ms,
        100,
        60_000,
    );
    let idle_timeout_secs = num(
        c,
        "media_ws.idle_timeout_secs",
        raw.idle_timeout_secs,
        d.idle_timeout_secs,
        1,
        3600,
    );
    MediaWsConfig {
        enabled,
        listen,
        tls_cert,
        tls_key,
        jwt_public_key,
        jwt_issuer,
        jwt_audience,
        allow,
        max_connections,
        max_per_ip,
        max_per_tenant,
        max_frame_bytes,
        max_frames_per_sec,
        handshake_timeout_ms,
        idle_timeout_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_from_str, ConfigErrors};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn errs(toml: &str) -> ConfigErrors {
        load_from_str(toml, &[]).expect_err("expected errors")
    }

    #[test]
    fn defaults_without_a_file() {
        let m = load_from_str("", &[]).unwrap().media_ws;
        assert_eq!(m, MediaWsConfig::default());
        assert!(!m.enabled);
        assert_eq!(m.listen, "127.0.0.1:8091".parse::<SocketAddr>().unwrap());
        assert_eq!((m.tls(), m.jwt_public_key.as_ref()), (None, None));
        assert_eq!(
            (m.jwt_issuer.as_ref(), m.jwt_audience.as_ref()),
            (None, None)
        );
        assert!(m.allow.is_empty());
        assert!(m.allows("203.0.113.9".parse().unwrap()), "empty = any");
        assert_eq!(
            (m.max_connections, m.max_per_ip, m.max_per_tenant),
            (1000, 50, 200)
        );
        assert_eq!((m.max_frame_bytes, m.max_frames_per_sec), (65_536, 200));
        assert_eq!(m.handshake_timeout(), Duration::from_secs(5));
        assert_eq!(m.idle_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn typed_values_from_the_file() {
        let m = load_from_str(
            r#"
            [media_ws]
            enabled = true
            listen = "0.0.0.0:8443"
            tls_cert = "/etc/sb/ws.crt"
            tls_key = "/etc/sb/ws.key"
            jwt_public_key = "/etc/sb/jwt.pub"
            jwt_issuer = "https://auth.example"
            jwt_audience = "switchboard-media"
            allow = ["127.0.0.0/8", "::1/128", "192.0.2.7", "2001:db8::1"]
            max_connections = 100000
            max_per_ip = 1
            max_per_tenant = 100000
            max_frame_bytes = 1024
            max_frames_per_sec = 10000
            handshake_timeout_ms = 100
            idle_timeout_secs = 3600
            "#,
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .media_ws;
        assert!(m.enabled);
        assert_eq!(m.listen.port(), 8443);
        assert_eq!(
            m.tls(),
            Some((Path::new("/etc/sb/ws.crt"), Path::new("/etc/sb/ws.key")))
        );
        assert_eq!(m.jwt_public_key, Some(PathBuf::from("/etc/sb/jwt.pub")));
        assert_eq!(m.jwt_issuer.as_deref(), Some("https://auth.example"));
        assert_eq!(m.jwt_audience.as_deref(), Some("switchboard-media"));
        let nets: Vec<_> = m.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            nets,
            ["127.0.0.0/8", "::1/128", "192.0.2.7/32", "2001:db8::1/128"]
        );
        assert!(m.allows("127.1.2.3".parse().unwrap()));
        assert!(m.allows("::ffff:192.0.2.7".parse().unwrap()), "mapped v4");
        assert!(!m.allows("192.0.2.8".parse().unwrap()));
        assert_eq!(
            (m.max_connections, m.max_per_ip, m.max_per_tenant),
            (100_000, 1, 100_000)
        );
        assert_eq!((m.max_frame_bytes, m.max_frames_per_sec), (1024, 10_000));
        assert_eq!(m.handshake_timeout(), Duration::from_millis(100));
        assert_eq!(m.idle_timeout(), Duration::from_secs(3600));
    }

    #[test]
    fn every_error_at_its_key() {
        use ConfigErrorKind as K;
        let e = errs(
            r#"
            [media_ws]
            enabled = true
            listen = "8091"
            tls_cert = "/etc/sb/ws.crt"
            jwt_issuer = "a\nb"
            allow = ["10.0.0.0/33", "::1", "not-an-ip"]
            max_connections = 0
            max_per_ip = 100001
            max_per_tenant = 0
            max_frame_bytes = 1023
            max_frames_per_sec = 10001
            handshake_timeout_ms = 99
            idle_timeout_secs = 0
            colour = "red"
            "#,
        );
        let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
        assert!(matches!(at("media_ws.listen"), K::Invalid { .. }));
        assert_eq!(at("media_ws.tls_cert"), &K::Requires { needs: "tls_key" });
        assert_eq!(at("media_ws.jwt_public_key"), &K::Missing);
        assert!(matches!(at("media_ws.jwt_issuer"), K::Invalid { .. }));
        assert!(
            matches!(at("media_ws.allow[0]"), K::Invalid { value, .. } if value == "10.0.0.0/33")
        );
        assert!(e.at("media_ws.allow[1]").is_none());
        assert!(matches!(at("media_ws.allow[2]"), K::Invalid { .. }));
        assert_eq!(
            at("media_ws.max_connections"),
            &K::OutOfRange {
                value: 0,
                min: 1,
                max: 100_000
            }
        );
        assert!(matches!(at("media_ws.max_per_ip"), K::OutOfRange { .. }));
        assert!(matches!(
            at("media_ws.max_per_tenant"),
            K::OutOfRange { .. }
        ));
        assert_eq!(
            at("media_ws.max_frame_bytes"),
            &K::OutOfRange {
                value: 1023,
                min: 1024,
                max: 1_048_576
            }
        );
        assert!(matches!(
            at("media_ws.max_frames_per_sec"),
            K::OutOfRange { .. }
        ));
        assert_eq!(
            at("media_ws.handshake_timeout_ms"),
            &K::OutOfRange {
                value: 99,
                min: 100,
                max: 60_000
            }
        );
        assert!(matches!(
            at("media_ws.idle_timeout_secs"),
            K::OutOfRange { .. }
        ));
        assert!(matches!(at("media_ws.colour"), K::UnknownKey { .. }));
    }

    #[test]
    fn key_rules() {
        // Off: no key needed; a key alone without the certificate is reported there.
        let e = errs("[media_ws]\ntls_key = \"/k.pem\"");
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(
            e.at("media_ws.tls_key"),
            Some(&ConfigErrorKind::Requires { needs: "tls_cert" })
        );
        // Enabled with a key file: fine without TLS.
        let c = load_from_str(
            "[media_ws]\nenabled = true\njwt_public_key = \"/k.pub\"",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.media_ws.enabled && c.media_ws.tls().is_none());
        // A bad key path is reported once, as invalid, not also as missing.
        let e = errs("[media_ws]\nenabled = true\njwt_public_key = \" \"");
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(matches!(
            e.at("media_ws.jwt_public_key"),
            Some(ConfigErrorKind::Invalid { .. })
        ));
        // Empty strings mean unset.
        let c = load_from_str(
            "[media_ws]\njwt_issuer = \"\"\njwt_audience = \"\"\ntls_cert = \"\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.media_ws, MediaWsConfig::default());
        let long = "a".repeat(257);
        let e = errs(&format!("[media_ws]\njwt_audience = \"{long}\""));
        assert!(e.at("media_ws.jwt_audience").is_some());
    }

    #[test]
    fn env_overrides() {
        let c = load_from_str(
            "[media_ws]\nmax_per_ip = 5\nallow = [\"10.0.0.0/8\"]\nidle_timeout_secs = 9\n",
            &env(&[
                ("SWITCHBOARD_MEDIA_WS_ENABLED", "true"),
                ("SWITCHBOARD_MEDIA_WS_LISTEN", "0.0.0.0:9443"),
                ("SWITCHBOARD_MEDIA_WS_TLS_CERT", "/c.pem"),
                ("SWITCHBOARD_MEDIA_WS_TLS_KEY", "/k.pem"),
                ("SWITCHBOARD_MEDIA_WS_JWT_PUBLIC_KEY", "/jwt.pub"),
                ("SWITCHBOARD_MEDIA_WS_JWT_ISSUER", "iss"),
                ("SWITCHBOARD_MEDIA_WS_JWT_AUDIENCE", "aud"),
                (
                    "SWITCHBOARD_MEDIA_WS_ALLOW",
                    " 127.0.0.0/8, ::1 ,,192.0.2.0/24",
                ),
                ("SWITCHBOARD_MEDIA_WS_MAX_CONNECTIONS", "10"),
                ("SWITCHBOARD_MEDIA_WS_MAX_PER_TENANT", "3"),
                ("SWITCHBOARD_MEDIA_WS_MAX_FRAME_BYTES", "2048"),
                ("SWITCHBOARD_MEDIA_WS_MAX_FRAMES_PER_SEC", "50"),
                ("SWITCHBOARD_MEDIA_WS_HANDSHAKE_TIMEOUT_MS", "250"),
                ("SWITCHBOARD_MEDIA_WS_IDLE_TIMEOUT_SECS", ""),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let m = &c.media_ws;
        assert!(m.enabled);
        assert_eq!(m.listen.port(), 9443);
        assert_eq!(m.tls(), Some((Path::new("/c.pem"), Path::new("/k.pem"))));
        assert_eq!(m.jwt_public_key.as_deref(), Some(Path::new("/jwt.pub")));
        assert_eq!(
            (m.jwt_issuer.as_deref(), m.jwt_audience.as_deref()),
            (Some("iss"), Some("aud"))
        );
        let nets: Vec<_> = m.allow.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["127.0.0.0/8", "::1/128", "192.0.2.0/24"], "env wins");
        assert_eq!(m.max_per_ip, 5, "file value kept");
        assert_eq!((m.max_connections, m.max_per_tenant), (10, 3));
        assert_eq!((m.max_frame_bytes, m.max_frames_per_sec), (2048, 50));
        assert_eq!(m.handshake_timeout_ms, 250);
        assert_eq!(m.idle_timeout_secs, 30, "empty env clears the file value");
        // An empty allow variable clears the file's list: any source.
        let c = load_from_str(
            "[media_ws]\nallow = [\"10.0.0.0/8\"]\n",
            &env(&[("SWITCHBOARD_MEDIA_WS_ALLOW", "")]),
        )
        .unwrap();
        assert!(c.media_ws.allow.is_empty());
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = load_from_str(
            "",
            &env(&[
                ("SWITCHBOARD_MEDIA_WS_ENABLED", "true"),
                ("SWITCHBOARD_MEDIA_WS_ALLOW", "127.0.0.1,10.0.0.0/40"),
                ("SWITCHBOARD_MEDIA_WS_MAX_PER_IP", "0"),
                ("SWITCHBOARD_MEDIA_WS_MAX_FRAME_BYTES", "big"),
                ("SWITCHBOARD_MEDIA_WS_TLS_CERT", "/c.pem"),
            ]),
        )
        .unwrap_err();
        let mut keys: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "SWITCHBOARD_MEDIA_WS_ALLOW",
                "SWITCHBOARD_MEDIA_WS_MAX_FRAME_BYTES",
                "SWITCHBOARD_MEDIA_WS_MAX_PER_IP",
                "SWITCHBOARD_MEDIA_WS_TLS_CERT",
                "media_ws.jwt_public_key",
            ]
        );
        assert!(matches!(
            e.at("SWITCHBOARD_MEDIA_WS_ALLOW"),
            Some(ConfigErrorKind::Invalid { value, .. }) if value == "10.0.0.0/40"
        ));
    }
}
