//! `[[app]]`: WebSocket media-stream applications a call can be handed to (`to = "app:NAME"`)
//! or forked to (`fork = "NAME"` on a trunk route), speaking the Twilio or Exotel stream
//! dialect; plus the `parameters` table shared by apps and routes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::env::trunk_env_name;
use crate::error::ConfigErrorKind;
use crate::raw::render;
use crate::types::Secret;
use crate::validate::{valid_name, Checker};

/// The message dialect spoken on an app's WebSocket (app key `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StreamDialect {
    /// Twilio Media Streams: base64 µ-law 8 kHz in `media` events (written `twilio`). The
    /// default.
    #[default]
    Twilio,
    /// Exotel voicebot streams: base64 PCM16 at `sample_rate` (written `exotel`).
    Exotel,
}

impl StreamDialect {
    /// The name as written in the file: `twilio` or `exotel`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamDialect::Twilio => "twilio",
            StreamDialect::Exotel => "exotel",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "twilio" => Some(StreamDialect::Twilio),
            "exotel" => Some(StreamDialect::Exotel),
            _ => None,
        }
    }
}

impl fmt::Display for StreamDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call does when its app cannot be reached or goes away (app key `on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppFailure {
    /// End the call (written `hangup`). The default.
    #[default]
    Hangup,
    /// Carry on without the app: a forked trunk call stays bridged, an app call stays up
    /// until the caller hangs up (written `continue`).
    Continue,
}

impl AppFailure {
    /// The name as written in the file: `hangup` or `continue`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppFailure::Hangup => "hangup",
            AppFailure::Continue => "continue",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "hangup" => Some(AppFailure::Hangup),
            "continue" => Some(AppFailure::Continue),
            _ => None,
        }
    }
}

impl fmt::Display for AppFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[app]]`: a WebSocket media-stream application. Its `Debug` hides `auth_header` and
/// any credentials or query in `url` (see [`AppConfig::redacted_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Unique name, `[A-Za-z0-9_-]{1,64}` (the trunk name rule); routes say `app:NAME`.
    pub name: String,
    /// Where to connect: `ws://` or `wss://`, at most 2048 characters, no whitespace.
    pub url: String,
    /// Stream dialect: `twilio` (default) or `exotel`.
    pub mode: StreamDialect,
    /// Play the app's audio to the caller (default true); false = listen only.
    pub bidirectional: bool,
    /// Audio sample rate in Hz: 8000 (default) or 16000. Only exotel (PCM16) can use 16000;
    /// twilio streams are always µ-law 8 kHz.
    pub sample_rate: u32,
    /// What the call does when the app cannot be reached or goes away (default `hangup`).
    pub on_failure: AppFailure,
    /// WebSocket connect (TCP + TLS + upgrade) timeout in ms (100..=30000, default 3000); see
    /// [`AppConfig::connect_timeout`].
    pub connect_timeout_ms: u32,
    /// Most app audio queued for playback, in ms (200..=600000, default 30000); see
    /// [`AppConfig::max_playout`].
    pub max_playout_ms: u32,
    /// Custom parameters sent in the stream `start` message; a route's own `parameters`
    /// override these by name. At most 32 entries, names 1 to 64 of `[A-Za-z0-9_.-]`, values
    /// at most 256 bytes (default empty).
    pub parameters: BTreeMap<String, String>,
    /// `Authorization` header value sent when connecting, 1 to 4096 bytes without control
    /// characters (default none; also from `SWITCHBOARD_APP_<NAME>_AUTH_HEADER`); never
    /// printed.
    pub auth_header: Option<Secret>,
    /// PEM file with the CA certificate(s) a `wss://` app's server certificate must chain to
    /// (or the app's own self-signed certificate). When set, only these are trusted, not the
    /// public (webpki) roots; default none: the public roots. Only for `wss://` URLs; read and
    /// checked at load (and at each connect, so a renewed file needs no restart).
    pub tls_ca: Option<PathBuf>,
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("mode", &self.mode)
            .field("bidirectional", &self.bidirectional)
            .field("sample_rate", &self.sample_rate)
            .field("on_failure", &self.on_failure)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_playout_ms", &self.max_playout_ms)
            .field("parameters", &self.parameters)
            .field("auth_header", &self.auth_header)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// `url` fit for logs: user info (`user:pass@`) and the query (often `?token=...`) become `***`;
/// scheme, host, port and path stay.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(q) if tail[q..].starts_with('?') => format!("{}?***", &tail[..q]),
        Some(q) => tail[..q].to_string(),
        None => tail.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}

impl AppConfig {
    /// `url` fit for logs: user info and query replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.connect_timeout_ms))
    }

    /// `max_playout_ms` as a duration.
    pub fn max_playout(&self) -> Duration {
        Duration::from_millis(u64::from(self.max_playout_ms))
    }

    /// The parameters for a call through `route_parameters`: the app's, overridden by the
    /// route's of the same name.
    pub fn parameters_with(
        &self,
        route_parameters: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut all = self.parameters.clone();
        all.extend(route_parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }
}

/// One `[[app]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Option<String>,
    pub url: Option<String>,
    pub mode: Option<String>,
    pub bidirectional: Option<bool>,
    pub sample_rate: Option<u64>,
    pub on_failure: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub max_playout_ms: Option<u64>,
    pub parameters: Option<toml::Table>,
    pub auth_header: Option<String>,
    pub tls_ca: Option<String>,
}

/// Most entries in a `parameters` table.
pub(crate) const MAX_PARAMETERS: usize = 32;
/// Longest parameter name.
const MAX_PARAMETER_NAME: usize = 64;
/// Longest parameter value, in bytes.
const MAX_PARAMETER_VALUE: usize = 256;
/// Longest app URL.
const MAX_URL: usize = 2048;
/// Longest `auth_header`, in bytes.
const MAX_AUTH_HEADER: usize = 4096;
/// Largest `tls_ca` file, in bytes.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Check a `tls_ca` file at load: readable, at most 1 MiB, with at least one PEM
/// `CERTIFICATE` block. Whether the certificates themselves parse is left to the connect.
fn ca_file(c: &mut Checker, key: &str, path: &Path) {
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > MAX_CA_FILE {
            Ok(None)
        } else {
            std::fs::read(path).map(Some)
        }
    });
    match read {
        Err(e) => c.err(
            key,
            ConfigErrorKind::Io {
                path: path.to_path_buf(),
                kind: e.kind(),
            },
        ),
        Ok(None) => c.invalid(
            key,
            &path.display().to_string(),
            "a PEM certificate file of at most 1 MiB",
        ),
        Ok(Some(bytes)) => {
            let has_cert = bytes
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----");
            if !has_cert {
                c.invalid(
                    key,
                    &path.display().to_string(),
                    "a PEM file with at least one -----BEGIN CERTIFICATE----- block",
                );
            }
        }
    }
}

fn valid_parameter_name(name: &str) -> bool {
    (1..=MAX_PARAMETER_NAME).contains(&name.len())
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
}

/// Validate a `parameters` table at `key` (e.g. `route[0].parameters`): at most 32 entries,
/// names `[A-Za-z0-9_.-]{1,64}`, string values of at most 256 bytes.
pub(crate) fn parameters(
    c: &mut Checker,
    key: &str,
    raw: Option<toml::Table>,
) -> BTreeMap<String, String> {
    let table = raw.unwrap_or_default();
    if table.len() > MAX_PARAMETERS {
        c.invalid(
            key,
            &format!("{} entries", table.len()),
            &format!("at most {MAX_PARAMETERS} parameters"),
        );
    }
    let mut out = BTreeMap::new();
    for (name, value) in table {
        if !valid_parameter_name(&name) {
            c.invalid(
                key,
                &name,
                "parameter names of 1 to 64 of A-Z a-z 0-9 _ . -",
            );
            continue;
        }
        let at = format!("{key}.{name}");
        match value {
            toml::Value::String(v) if v.len() <= MAX_PARAMETER_VALUE => {
                out.insert(name, v);
            }
            toml::Value::String(v) => c.invalid(
                &at,
                &format!("<{} bytes>", v.len()),
                "a string of at most 256 bytes",
            ),
            other => c.invalid(&at, &render(&other), "a string"),
        }
    }
    out
}

/// `ws://` or `wss://` with a non-empty host (name, IPv4 or `[IPv6]`) and an optional port
/// in 1..=65535, at most 2048 characters, no whitespace or control characters.
pub(crate) fn valid_ws_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return false;
    };
    if url.len() > MAX_URL || url.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.find(']') {
        Some(end) if host_port.starts_with('[') => {
            let Ok(_) = host_port[1..end].parse::<std::net::Ipv6Addr>() else {
                return false;
            };
            match &host_port[end + 1..] {
                "" => (&host_port[..=end], None),
                tail => match tail.strip_prefix(':') {
                    Some(p) => (&host_port[..=end], Some(p)),
                    None => return false,
                },
            }
        }
        _ => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-'));
    port_ok && host_ok
}

/// Validate the `[[app]]` entries; entries with errors are left out (the load fails anyway).
pub(crate) fn apps(c: &mut Checker, raw: Vec<RawApp>) -> Vec<AppConfig> {
    let mut seen: HashMap<String, String> = HashMap::new(); // env name -> key of first use
    let mut out = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let p = format!("app[{i}]");
        let before = c.errors.len();
        let name = match a.name {
            None => {
                c.err(&format!("{p}.name"), ConfigErrorKind::Missing);
                String::new()
            }
            Some(n) if !valid_name(&n) => {
                c.invalid(&format!("{p}.name"), &n, "1 to 64 of A-Z a-z 0-9 _ -");
                n
            }
            Some(n) => {
                // Names must also differ as env names, or their secrets would be shared.
                let env_name = trunk_env_name(&n);
                if let Some(first) = seen.get(&env_name) {
                    let first = first.clone();
                    c.err(
                        &format!("{p}.name"),
                        ConfigErrorKind::Duplicate {
                            name: n.clone(),
                            first,
                        },
                    );
                } else {
                    seen.insert(env_name, format!("{p}.name"));
                }
                n
            }
        };
        let url = match a.url {
            None => {
                c.err(&format!("{p}.url"), ConfigErrorKind::Missing);
                String::new()
            }
            Some(u) if valid_ws_url(&u) => u,
            Some(u) => {
                c.invalid(
                    &format!("{p}.url"),
                    &u,
                    "a ws:// or wss:// URL with a host, at most 2048 characters",
                );
                u
            }
        };
        let mode = match a.mode.as_deref() {
            None => StreamDialect::default(),
            Some(s) => StreamDialect::parse(s.trim()).unwrap_or_else(|| {
                c.invalid(&format!("{p}.mode"), s, "twilio or exotel");
                StreamDialect::default()
            }),
        };
        let sample_rate = match a.sample_rate {
            None => 8000,
            Some(r @ (8000 | 16_000)) if mode == StreamDialect::Exotel || r == 8000 => {
                u32::try_from(r).unwrap_or(8000)
            }
            Some(r @ 16_000) => {
                c.invalid(
                    &format!("{p}.sample_rate"),
                    &r.to_string(),
                    "8000 (twilio streams are µ-law 8 kHz; 16000 needs mode = \"exotel\")",
                );
                8000
            }
            Some(r) => {
                c.invalid(&format!("{p}.sample_rate"), &r.to_string(), "8000 or 16000");
                8000
            }
        };
        let on_failure = match a.on_failure.as_deref() {
            None => AppFailure::default(),
            Some(s) => AppFailure::parse(s.trim()).unwrap_or_else(|| {
                c.invalid(&format!("{p}.on_failure"), s, "hangup or continue");
                AppFailure::default()
            }),
        };
        let ms = |c: &mut Checker, key: &str, v: Option<u64>, def: u32, min: u64, max: u64| {
            let n = c.ranged(&format!("{p}.{key}"), v, u64::from(def), min, max);
            u32::try_from(n).unwrap_or(def)
        };
        let connect_timeout_ms = ms(
            c,
            "connect_timeout_ms",
            a.connect_timeout_ms,
            3000,
            100,
            30_000,
        );
        let max_playout_ms = ms(c, "max_playout_ms", a.max_playout_ms, 30_000, 200, 600_000);
        let parameters = parameters(c, &format!("{p}.parameters"), a.parameters);
        let auth_header = a.auth_header.and_then(|h| {
            let ok = (1..=MAX_AUTH_HEADER).contains(&h.len()) && !h.chars().any(char::is_control);
            if ok {
                Some(Secret::new(h))
            } else {
                // Never echo the secret itself.
                c.invalid(
                    &format!("{p}.auth_header"),
                    "***",
                    &format!(
                        "a header value of 1 to {MAX_AUTH_HEADER} bytes without control \
                         characters (got {} bytes)",
                        h.len()
                    ),
                );
                None
            }
        });
        let tls_ca = crate::devices::path(c, &format!("{p}.tls_ca"), a.tls_ca);
        if let Some(ca) = &tls_ca {
            let key = format!("{p}.tls_ca");
            if url.starts_with("wss://") {
                ca_file(c, &key, ca);
            } else if !url.is_empty() {
                c.invalid(
                    &key,
                    &ca.display().to_string(),
                    "no tls_ca: it applies to wss:// URLs only",
                );
            }
        }
        if c.errors.len() == before {
            out.push(AppConfig {
                name,
                url,
                mode,
                bidirectional: a.bidirectional.unwrap_or(true),
                sample_rate,
                on_failure,
                connect_timeout_ms,
                max_playout_ms,
                parameters,
                auth_header,
                tls_ca,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_from_str, ConfigErrors, RouteTarget};

    fn errs(toml: &str) -> ConfigErrors {
        load_from_str(toml, &[]).expect_err("expected errors")
    }

    const TRUNK: &str = "[[trunk]]\nname = \"t\"\naddress = \"192.0.2.1\"\n";

    #[test]
    fn defaults_of_an_app() {
        let c = load_from_str(
            "[[app]]\nname = \"bot\"\nurl = \"wss://bot.example/s\"\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(load_from_str("", &[]).unwrap().apps.is_empty());
        let a = c.app("bot").unwrap();
        assert_eq!(a.url, "wss://bot.example/s");
        assert_eq!(a.mode, StreamDialect::Twilio);
        assert!(a.bidirectional);
        assert_eq!(a.sample_rate, 8000);
        assert_eq!(a.on_failure, AppFailure::Hangup);
        assert_eq!((a.connect_timeout_ms, a.max_playout_ms), (3000, 30_000));
        assert_eq!(a.connect_timeout(), Duration::from_secs(3));
        assert_eq!(a.max_playout(), Duration::from_secs(30));
        assert!(a.parameters.is_empty());
        assert_eq!(a.auth_header, None);
        assert!(c.app("nope").is_none());
    }

    #[test]
    fn full_example_with_routes_to_apps_and_devices() {
        let c = load_from_str(
            &format!(
                r#"
                {TRUNK}
                [[app]]
                name = "agent"
                url = "wss://agent.example:8443/stream?v=2"
                mode = "twilio"
                bidirectional = true
                sample_rate = 8000
                on_failure = "continue"
                connect_timeout_ms = 100
                max_playout_ms = 600000
                parameters = {{ tenant = "acme", "lang.primary" = "de-DE" }}
                auth_header = "Bearer very-secret-token"
                [[app]]
                name = "recorder"
                url = "ws://[::1]:9000"
                mode = "exotel"
                bidirectional = false
                sample_rate = 16000
                connect_timeout_ms = 30000
                max_playout_ms = 200
                [[route]]
                match = "800*"
                to = "app:agent"
                parameters = {{ "lang.primary" = "en-GB", campaign = "spring" }}
                [[route]]
                match = "100"
                to = "device:esp32-kitchen_1"
                [[route]]
                match = "*"
                to = "trunk:t"
                fork = "recorder"
                "#
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.apps.len(), 2);
        let agent = c.app("agent").unwrap();
        assert_eq!(agent.on_failure, AppFailure::Continue);
        assert_eq!(agent.connect_timeout(), Duration::from_millis(100));
        assert_eq!(agent.max_playout_ms, 600_000);
        assert_eq!(
            agent.auth_header.as_ref().map(Secret::expose),
            Some("Bearer very-secret-token")
        );
        assert!(
            !format!("{c:?}").contains("very-secret-token"),
            "secret leaked"
        );
        let rec = c.app("recorder").unwrap();
        assert_eq!((rec.mode, rec.sample_rate), (StreamDialect::Exotel, 16_000));
        assert!(!rec.bidirectional);
        assert_eq!(rec.on_failure, AppFailure::Hangup);

        let (r, number) = c.dial("8001234").unwrap();
        assert_eq!(r.to, RouteTarget::App("agent".into()));
        assert_eq!(r.to.to_string(), "app:agent");
        assert_eq!(number, "8001234");
        assert_eq!(r.fork, None);
        assert_eq!(r.parameters.len(), 2);
        assert_eq!(r.parameters["lang.primary"], "en-GB");
        assert_eq!(r.parameters["campaign"], "spring");
        // A dotted TOML key inside an inline table is a nested table, not a string.
        let e = errs(&format!(
            "[[app]]\nname = \"a\"\nurl = \"ws://a\"\n[[route]]\nmatch = \"1\"\n\
             to = \"app:a\"\nparameters = {{ x.y = \"z\" }}\n{TRUNK}"
        ));
        assert!(
            matches!(
                e.at("route[0].parameters.x"),
                Some(ConfigErrorKind::Invalid { .. })
            ),
            "{e}"
        );
        assert_eq!(agent.parameters["tenant"], "acme");
        assert_eq!(agent.parameters["lang.primary"], "de-DE");
        let route_params: BTreeMap<String, String> =
            [("lang.primary".to_string(), "en-GB".to_string())].into();
        let merged = agent.parameters_with(&route_params);
        assert_eq!(merged["lang.primary"], "en-GB", "route wins");
        assert_eq!(merged["tenant"], "acme");

        let dev = c.route("100").unwrap();
        assert_eq!(dev.to, RouteTarget::Device("esp32-kitchen_1".into()));
        assert_eq!(dev.to.to_string(), "device:esp32-kitchen_1");
        assert!(dev.parameters.is_empty());

        let trunk = c.route("0044").unwrap();
        assert_eq!(trunk.to, RouteTarget::Trunk("t".into()));
        assert_eq!(trunk.fork.as_deref(), Some("recorder"));
    }

    #[test]
    fn route_parameters_table() {
        let c = load_from_str(
            &format!(
                "{TRUNK}[[route]]\nmatch = \"1\"\nto = \"trunk:t\"\n\
                 [route.parameters]\ncustomer-id = \"42\"\n\"a.b_c\" = \"\"\n"
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = &c.routes[0].parameters;
        assert_eq!(p.len(), 2);
        assert_eq!(p["customer-id"], "42");
        assert_eq!(p["a.b_c"], "");
    }

    #[test]
    fn every_app_error_at_its_key() {
        use ConfigErrorKind as K;
        let many: String = (0..33).map(|i| format!("p{i} = \"v\"\n")).collect();
        let long_value = "v".repeat(257);
        let e = errs(&format!(
            r#"
            {TRUNK}
            [[app]]
            name = "bot"
            url = "http://bot.example"
            mode = "vonage"
            sample_rate = 16000
            on_failure = "retry"
            connect_timeout_ms = 99
            max_playout_ms = 600001
            auth_header = "Bearer x\r\nInjected: 1"
            colour = "red"
            [[app]]
            name = "bot"
            url = "wss://ok.example"
            [[app]]
            name = "tw"
            url = "ws://tw.example"
            sample_rate = 16000
            [[app]]
            name = "ex"
            mode = "exotel"
            url = "wss://ex.example"
            sample_rate = 44100
            connect_timeout_ms = 30001
            max_playout_ms = 199
            [[app]]
            name = "bad name"
            [[app]]
            url = "ws://"
            parameters = {{ "" = "x", "a b" = "y", ok = 5, long = "{long_value}" }}
            [[app]]
            name = "many"
            url = "ws://many.example"
            [app.parameters]
            {many}
            "#
        ));
        let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
        assert!(
            matches!(at("app[0].url"), K::Invalid { value, .. } if value == "http://bot.example")
        );
        assert!(matches!(at("app[0].mode"), K::Invalid { value, .. } if value == "vonage"));
        assert!(
            matches!(at("app[0].sample_rate"), K::Invalid { .. }),
            "vonage falls back to twilio"
        );
        assert!(matches!(at("app[0].on_failure"), K::Invalid { value, .. } if value == "retry"));
        assert_eq!(
            at("app[0].connect_timeout_ms"),
            &K::OutOfRange {
                value: 99,
                min: 100,
                max: 30_000
            }
        );
        assert_eq!(
            at("app[0].max_playout_ms"),
            &K::OutOfRange {
                value: 600_001,
                min: 200,
                max: 600_000
            }
        );
        assert!(matches!(at("app[0].auth_header"), K::Invalid { value, .. } if value == "***"));
        assert!(!e.to_string().contains("Injected"), "secret leaked");
        assert!(matches!(at("app[0].colour"), K::UnknownKey { .. }));
        assert_eq!(
            at("app[1].name"),
            &K::Duplicate {
                name: "bot".into(),
                first: "app[0].name".into()
            }
        );
        match at("app[2].sample_rate") {
            K::Invalid { value, expected } => {
                assert_eq!(value, "16000");
                assert!(
                    expected.contains("twilio streams are µ-law 8 kHz"),
                    "{expected}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(at("app[3].sample_rate"), K::Invalid { value, .. } if value == "44100"));
        assert!(matches!(
            at("app[3].connect_timeout_ms"),
            K::OutOfRange { .. }
        ));
        assert!(matches!(at("app[3].max_playout_ms"), K::OutOfRange { .. }));
        assert!(matches!(at("app[4].name"), K::Invalid { .. }));
        assert_eq!(at("app[4].url"), &K::Missing);
        assert_eq!(at("app[5].name"), &K::Missing);
        assert!(matches!(at("app[5].url"), K::Invalid { .. }));
        let bad_keys: Vec<_> =
            e.0.iter()
                .filter(|e| e.key == "app[5].parameters")
                .map(|e| match &e.kind {
                    K::Invalid { value, .. } => value.as_str(),
                    _ => "?",
                })
                .collect();
        assert_eq!(bad_keys, ["", "a b"]);
        assert!(matches!(at("app[5].parameters.ok"), K::Invalid { value, .. } if value == "5"));
        assert!(
            matches!(at("app[5].parameters.long"), K::Invalid { value, .. } if value == "<257 bytes>")
        );
        assert!(
            matches!(at("app[6].parameters"), K::Invalid { value, .. } if value == "33 entries")
        );
    }

    #[test]
    fn route_errors_for_apps_devices_fork_and_parameters() {
        use ConfigErrorKind as K;
        let many: String = (0..33).map(|i| format!("p{i} = \"v\"\n")).collect();
        let e = errs(&format!(
            r#"
            {TRUNK}
            [[app]]
            name = "bot"
            url = "wss://bot.example"
            [[route]]
            match = "1"
            to = "app:nobody"
            [[route]]
            match = "2"
            to = "trunk:t"
            fork = "ghost"
            [[route]]
            match = "3"
            to = "app:bot"
            fork = "bot"
            [[route]]
            match = "4"
            to = "device:has space"
            [[route]]
            match = "5"
            to = "device:esp"
            parameters = {{ "bad key!" = "x" }}
            [[route]]
            match = "6"
            to = "fax"
            fork = "ghost"
            [[route]]
            match = "7"
            to = "app:"
            [[route]]
            match = "8"
            to = "trunk:t"
            [route.parameters]
            {many}
            "#
        ));
        let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
        assert_eq!(
            at("route[0].to"),
            &K::UnknownApp {
                name: "nobody".into()
            }
        );
        assert_eq!(
            at("route[1].fork"),
            &K::UnknownApp {
                name: "ghost".into()
            }
        );
        match at("route[2].fork") {
            K::Invalid { value, expected } => {
                assert_eq!(value, "bot");
                assert!(expected.contains("trunk:NAME"), "{expected}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.at("route[2].to").is_none(), "app:bot itself is fine");
        match at("route[3].to") {
            K::Invalid { expected, .. } => assert!(expected.contains("device:ID"), "{expected}"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(at("route[4].parameters"), K::Invalid { value, .. } if value == "bad key!")
        );
        // Both problems of route[5]'s fork are reported.
        let fork5: Vec<_> = e.0.iter().filter(|e| e.key == "route[5].fork").collect();
        assert_eq!(fork5.len(), 2, "{e}");
        match at("route[6].to") {
            K::Invalid { expected, .. } => {
                assert_eq!(expected, "trunk:NAME, fax, app:NAME or device:ID");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(at("route[7].parameters"), K::Invalid { value, .. } if value == "33 entries")
        );
        // Exactly 32 is fine.
        let many: String = (0..32).map(|i| format!("p{i} = \"v\"\n")).collect();
        let c = load_from_str(
            &format!(
                "{TRUNK}[[route]]\nmatch = \"8\"\nto = \"trunk:t\"\n[route.parameters]\n{many}"
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.routes[0].parameters.len(), 32);
    }

    #[test]
    fn a_broken_app_is_not_also_unknown() {
        // The app entry has an error, so routes naming it must not add "unknown app".
        let e = errs(
            "[[app]]\nname = \"bot\"\nurl = \"ftp://x\"\n\
             [[route]]\nmatch = \"1\"\nto = \"app:bot\"\n",
        );
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.at("app[0].url").is_some());
    }

    #[test]
    fn auth_header_from_env() {
        let file = "[[app]]\nname = \"my-bot\"\nurl = \"wss://b.example\"\n\
                    auth_header = \"Bearer file\"\n";
        let env = |v: &str| {
            vec![(
                "SWITCHBOARD_APP_MY_BOT_AUTH_HEADER".to_string(),
                v.to_string(),
            )]
        };
        let c = load_from_str(file, &env("Bearer from-env")).unwrap();
        let a = c.app("my-bot").unwrap();
        assert_eq!(
            a.auth_header.as_ref().map(Secret::expose),
            Some("Bearer from-env")
        );
        let c = load_from_str(file, &env("")).unwrap();
        assert_eq!(c.app("my-bot").unwrap().auth_header, None, "empty clears");
        let e = load_from_str(file, &env("Bearer x\ny")).unwrap_err();
        assert!(e.at("SWITCHBOARD_APP_MY_BOT_AUTH_HEADER").is_some(), "{e}");
        assert!(!e.to_string().contains("Bearer"), "secret leaked");
        // Names must differ as env names.
        let e = errs(
            "[[app]]\nname = \"a-b\"\nurl = \"ws://x\"\n[[app]]\nname = \"A_B\"\nurl = \"ws://y\"\n",
        );
        assert!(matches!(
            e.at("app[1].name"),
            Some(ConfigErrorKind::Duplicate { .. })
        ));
    }

    #[test]
    fn ws_urls() {
        for good in [
            "ws://a",
            "wss://bot.example/stream",
            "wss://bot.example:443/s?token=x#frag",
            "ws://10.0.0.1:8080",
            "ws://[::1]:9000/x",
            "wss://user:pw@bot.example/s",
        ] {
            assert!(valid_ws_url(good), "{good}");
        }
        let long = format!("wss://a.example/{}", "x".repeat(2048));
        for bad in [
            "",
            "http://a",
            "WS://a",
            "ws://",
            "ws:///path",
            "ws://:80",
            "ws://a:0",
            "ws://a:70000",
            "ws://a b",
            "ws://a/b c",
            "ws://[zz]:1",
            "ws://[::1]x",
            "ws://a_b",
            long.as_str(),
        ] {
            assert!(!valid_ws_url(bad), "{bad}");
        }
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        for (url, shown) in [
            ("wss://bot.example/s", "wss://bot.example/s"),
            ("ws://[::1]:9000/x", "ws://[::1]:9000/x"),
            (
                "wss://user:pw@bot.example:443/s?token=abc#f",
                "wss://***@bot.example:443/s?***",
            ),
            ("wss://bot.example?token=abc", "wss://bot.example?***"),
            ("wss://a@b@bot.example/p#frag", "wss://***@bot.example/p"),
            ("no-scheme?x=1", "no-scheme?***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let c = load_from_str(
            "[[app]]\nname = \"b\"\nurl = \"wss://u:hunter2@b.example/s?token=t0k3n\"\n\
             auth_header = \"Bearer s3cr3t\"\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let dbg = format!("{c:?}");
        for secret in ["hunter2", "t0k3n", "s3cr3t"] {
            assert!(!dbg.contains(secret), "{secret} leaked: {dbg}");
        }
        assert!(dbg.contains("wss://***@b.example/s?***"), "{dbg}");
        assert_eq!(c.apps[0].url, "wss://u:hunter2@b.example/s?token=t0k3n");
    }

    #[test]
    fn no_secret_in_the_debug_of_a_whole_config() {
        let secrets = [
            "trunk-pw-Q1",
            "sip-user-pw-Q2",
            "mqtt-pw-Q3",
            "fleet-secret-0123456789-Q4",
            "webhook-secret-0123456789-Q5",
            "Bearer app-token-Q6",
            "url-pw-Q7",
            "url-token-Q8",
        ];
        let c = load_from_str(
            &format!(
                r#"
                [admin]
                bootstrap_key = "sbk_00000000000000aa_{key}"
                [mqtt]
                mode = "external"
                url = "mqtt://b.example"
                username = "gw"
                password = "{}"
                [devices]
                fleet_secret = "{}"
                [fax]
                webhook_url = "http://hooks.example/fax"
                webhook_secret = "{}"
                [[sip_user]]
                username = "alice"
                password = "{}"
                [[trunk]]
                name = "t"
                address = "192.0.2.1"
                username = "u"
                password = "{}"
                register = true
                [[app]]
                name = "bot"
                url = "wss://u:{}@bot.example/s?token={}"
                auth_header = "{}"
                "#,
                secrets[2],
                secrets[3],
                secrets[4],
                secrets[1],
                secrets[0],
                secrets[6],
                secrets[7],
                secrets[5],
                key = "cd".repeat(32),
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let dbg = format!("{c:?}");
        for secret in secrets.iter().copied().chain([&*"cd".repeat(32)]) {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
        assert!(dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn tls_ca_is_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("sb-cfg-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.join("key.pem");
        std::fs::write(&not_pem, "-----BEGIN PRIVATE KEY-----\nMIIB\n").unwrap();
        let missing = dir.join("missing.pem");
        let app = |url: &str, ca: &Path| {
            format!(
                "[[app]]\nname = \"b\"\nurl = \"{url}\"\ntls_ca = \"{}\"\n",
                ca.display()
            )
        };
        let c = load_from_str(&app("wss://127.0.0.1:9/s", &good), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.apps[0].tls_ca.as_deref(), Some(good.as_path()));
        assert_eq!(
            load_from_str("[[app]]\nname = \"b\"\nurl = \"wss://b\"\n", &[])
                .unwrap()
                .apps[0]
                .tls_ca,
            None
        );
        let e = errs(&app("wss://b", &missing));
        assert_eq!(
            e.at("app[0].tls_ca"),
            Some(&ConfigErrorKind::Io {
                path: missing.clone(),
                kind: std::io::ErrorKind::NotFound
            }),
            "{e}"
        );
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = errs(&app("wss://b", &not_pem));
        match e.at("app[0].tls_ca") {
            Some(ConfigErrorKind::Invalid { expected, .. }) => {
                assert!(expected.contains("BEGIN CERTIFICATE"), "{expected}")
            }
            other => panic!("{other:?}"),
        }
        let e = errs(&app("ws://b", &good));
        match e.at("app[0].tls_ca") {
            Some(ConfigErrorKind::Invalid { expected, .. }) => {
                assert!(expected.contains("wss://"), "{expected}")
            }
            other => panic!("{other:?}"),
        }
        let e = errs("[[app]]\nname = \"b\"\nurl = \"wss://b\"\ntls_ca = \"a\\nb\"\n");
        assert!(e.at("app[0].tls_ca").is_some(), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_round_trip() {
        for d in [StreamDialect::Twilio, StreamDialect::Exotel] {
            assert_eq!(StreamDialect::parse(d.as_str()), Some(d));
            assert_eq!(d.to_string(), d.as_str());
        }
        for f in [AppFailure::Hangup, AppFailure::Continue] {
            assert_eq!(AppFailure::parse(f.as_str()), Some(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(StreamDialect::parse("Twilio"), None);
        assert_eq!(AppFailure::parse("HANGUP"), None);
    }
}
