//! `[mqtt]` and `[devices]`: the MQTT 3.1.1 (OASIS) broker the ESP32 devices connect to
//! (embedded, an external one, or off) and the device claim and command settings, validated
//! from the raw file plus `SWITCHBOARD_MQTT_*` / `SWITCHBOARD_DEVICES_*` overrides.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigErrorKind;
use crate::raw::{RawDevices, RawMqtt};
use crate::types::Secret;
use crate::validate::Checker;

/// Where the MQTT broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MqttMode {
    /// The gateway runs its own broker on `listen` (and `tls_listen`). The default.
    #[default]
    Embedded,
    /// The gateway connects as a client to the broker at `url`.
    External,
    /// No MQTT at all (no devices).
    Off,
}

impl MqttMode {
    /// The name as written in the file: `embedded`, `external` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttMode::Embedded => "embedded",
            MqttMode::External => "external",
            MqttMode::Off => "off",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "embedded" => Some(MqttMode::Embedded),
            "external" => Some(MqttMode::External),
            "off" => Some(MqttMode::Off),
            _ => None,
        }
    }
}

impl fmt::Display for MqttMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[mqtt]`: the broker devices connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Embedded (default), external or off.
    pub mode: MqttMode,
    /// Plain MQTT listener of the embedded broker (default `127.0.0.1:1883`).
    pub listen: SocketAddr,
    /// MQTT over TLS listener of the embedded broker (usually port 8883); needs `tls_cert` and
    /// `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for `tls_listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_listen`.
    pub tls_key: Option<PathBuf>,
    /// External broker, `mqtt://host:port` or `mqtts://host:port`; required in external mode.
    pub url: Option<String>,
    /// The gateway's own MQTT client id (default "switchboard").
    pub client_id: String,
    /// The gateway's user name at the external broker.
    pub username: Option<String>,
    /// The gateway's password at the external broker (needs `username`).
    pub password: Option<Secret>,
    /// Largest MQTT packet accepted, in bytes (1 KiB..=1 MiB, default 65536).
    pub max_packet_bytes: usize,
    /// Most simultaneous device connections (default 10000).
    pub max_connections: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            mode: MqttMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            url: None,
            client_id: "switchboard".into(),
            username: None,
            password: None,
            max_packet_bytes: 65_536,
            max_connections: 10_000,
        }
    }
}

/// `[devices]`: claiming (pairing), commands and calls to devices (`device:ID` routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicesConfig {
    /// The fleet secret every device's factory secret is derived from (at least 16 bytes;
    /// best from `SWITCHBOARD_DEVICES_FLEET_SECRET`). `None` = claiming is disabled.
    pub fleet_secret: Option<Secret>,
    /// Accepted clock difference of a claim, in seconds (10..=3600, default 300).
    pub claim_window_secs: u32,
    /// Account new devices are put in (default "default").
    pub default_account: String,
    /// How long to wait for a command reply before retrying, in seconds (1..=3600, default 10).
    pub command_timeout_secs: u32,
    /// Resends of an unanswered command before it fails (0..=10, default 2).
    pub command_retries: u32,
    /// How long a `device:ID` call rings the device before giving up, in seconds (1..=300,
    /// default 30); see [`DevicesConfig::ring_timeout`].
    pub ring_timeout_secs: u32,
    /// PCM16 sample rate offered to devices for voice, in Hz: 8000 or 16000 (default).
    pub audio_rate: u32,
}

impl DevicesConfig {
    /// `claim_window_secs` as a duration.
    pub fn claim_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.claim_window_secs))
    }

    /// `command_timeout_secs` as a duration.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.command_timeout_secs))
    }

    /// `ring_timeout_secs` as a duration.
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.ring_timeout_secs))
    }
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            fleet_secret: None,
            claim_window_secs: 300,
            default_account: "default".into(),
            command_timeout_secs: 10,
            command_retries: 2,
            ring_timeout_secs: 30,
            audio_rate: 16_000,
        }
    }
}

/// Shortest fleet secret accepted, in bytes.
const MIN_FLEET_SECRET: usize = 16;
/// Longest fleet secret accepted, in bytes.
const MAX_FLEET_SECRET: usize = 1024;

/// An external broker's address, from `[mqtt] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (default 1883, or 8883 for `mqtts://`).
    pub port: u16,
    /// `mqtts://`: MQTT over TLS.
    pub tls: bool,
}

impl BrokerUrl {
    /// Parse `mqtt://host[:port]` or `mqtts://host[:port]`, host a name, IPv4 or `[IPv6]`.
    pub fn parse(url: &str) -> Option<Self> {
        let (rest, tls) = match url.strip_prefix("mqtt://") {
            Some(r) => (r, false),
            None => (url.strip_prefix("mqtts://")?, true),
        };
        let (host, port) = match rest.find(']') {
            // `[v6]` or `[v6]:port`.
            Some(end) if rest.starts_with('[') => match &rest[end + 1..] {
                "" => (&rest[..=end], None),
                tail => (&rest[..=end], Some(tail.strip_prefix(':')?)),
            },
            _ => match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let port = match port {
            None if tls => 8883,
            None => 1883,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        };
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                v6.parse::<std::net::Ipv6Addr>().ok()?;
                v6
            }
            None => {
                let ok = !host.is_empty()
                    && host.len() <= 253
                    && host
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-');
                if !ok {
                    return None;
                }
                host
            }
        };
        Some(Self {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

fn valid_url(url: &str) -> bool {
    BrokerUrl::parse(url).is_some()
}

/// An optional path; empty means unset.
pub(crate) fn path(c: &mut Checker, key: &str, value: Option<String>) -> Option<PathBuf> {
    let p = value.filter(|p| !p.is_empty())?;
    if p.trim().is_empty() || p.chars().any(char::is_control) {
        c.invalid(key, &p, "a file path");
        return None;
    }
    Some(PathBuf::from(p))
}

/// A certificate/key pair `{section}.tls_cert` + `{section}.tls_key`: both or neither.
pub(crate) fn tls_pair(
    c: &mut Checker,
    section: &str,
    cert: Option<String>,
    key: Option<String>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let written = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let (cert_written, key_written) = (written(&cert), written(&key));
    let cert = path(c, &format!("{section}.tls_cert"), cert);
    let key = path(c, &format!("{section}.tls_key"), key);
    if cert_written && !key_written {
        c.err(
            &format!("{section}.tls_cert"),
            ConfigErrorKind::Requires { needs: "tls_key" },
        );
    }
    if key_written && !cert_written {
        c.err(
            &format!("{section}.tls_key"),
            ConfigErrorKind::Requires { needs: "tls_cert" },
        );
    }
    (cert, key)
}

/// A TLS listener `{section}.tls_listen` with its `tls_cert` + `tls_key` (PEM paths): the
/// listener needs both files, and the files without a listener are an error too (they would
/// silently leave only plain text served).
pub(crate) fn tls_listener(
    c: &mut Checker,
    section: &str,
    listen: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    example_port: u16,
) -> (Option<SocketAddr>, Option<PathBuf>, Option<PathBuf>) {
    let written = listen.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let addr = written.and_then(|s| {
        s.parse::<SocketAddr>().map_or_else(
            |_| {
                c.invalid(
                    &format!("{section}.tls_listen"),
                    s,
                    &format!("an IP address and port such as 0.0.0.0:{example_port}"),
                );
                None
            },
            Some,
        )
    });
    let cert = path(c, &format!("{section}.tls_cert"), cert);
    let key = path(c, &format!("{section}.tls_key"), key);
    if addr.is_some() {
        for (value, needs) in [(&cert, "tls_cert"), (&key, "tls_key")] {
            if value.is_none() {
                c.err(
                    &format!("{section}.tls_listen"),
                    ConfigErrorKind::Requires { needs },
                );
            }
        }
    } else if written.is_none() {
        for (value, name) in [(&cert, "tls_cert"), (&key, "tls_key")] {
            if value.is_some() {
                c.err(
                    &format!("{section}.{name}"),
                    ConfigErrorKind::Requires {
                        needs: "tls_listen",
                    },
                );
            }
        }
    }
    (addr, cert, key)
}

/// Validate `[mqtt]`.
pub(crate) fn mqtt(c: &mut Checker, raw: RawMqtt) -> MqttConfig {
    let d = MqttConfig::default();
    let mode = match raw.mode.as_deref() {
        None => d.mode,
        Some(s) => MqttMode::parse(s.trim()).unwrap_or_else(|| {
            c.invalid("mqtt.mode", s, "embedded, external or off");
            d.mode
        }),
    };
    let listen = c.socket("mqtt.listen", raw.listen.as_deref(), d.listen);
    let (tls_listen, tls_cert, tls_key) =
        tls_listener(c, "mqtt", raw.tls_listen, raw.tls_cert, raw.tls_key, 8883);
    let mut url_bad = false;
    let url = raw.url.filter(|u| !u.is_empty()).and_then(|u| {
        if valid_url(u.trim()) {
            Some(u.trim().to_string())
        } else {
            c.invalid("mqtt.url", &u, "mqtt://host:port or mqtts://host:port");
            url_bad = true;
            None
        }
    });
    if mode == MqttMode::External && url.is_none() && !url_bad {
        c.err("mqtt.url", ConfigErrorKind::Missing);
    }
    let client_id = match raw.client_id {
        Some(id) if id.is_empty() || id.len() > 64 || id.chars().any(|ch| ch.is_whitespace()) => {
            c.invalid(
                "mqtt.client_id",
                &id,
                "1 to 64 bytes without spaces or control characters",
            );
            d.client_id
        }
        other => c.text("mqtt.client_id", other, &d.client_id),
    };
    let username = raw.username.filter(|u| {
        let ok = !u.is_empty() && !u.chars().any(|ch| ch.is_control() || ch == ' ');
        if !ok {
            c.invalid("mqtt.username", u, "a non-empty user name without spaces");
        }
        ok
    });
    let password = raw.password.filter(|p| !p.is_empty()).map(Secret::new);
    if password.is_some() && username.is_none() {
        // MQTT 3.1.1 §3.1.2.9: no password without a user name.
        c.err(
            "mqtt.password",
            ConfigErrorKind::Requires { needs: "username" },
        );
    }
    let max_packet = c.ranged(
        "mqtt.max_packet_bytes",
        raw.max_packet_bytes,
        65_536,
        1024,
        1024 * 1024,
    );
    let max_connections = c.ranged(
        "mqtt.max_connections",
        raw.max_connections,
        10_000,
        1,
        1_000_000,
    );
    MqttConfig {
        mode,
        listen,
        tls_listen,
        tls_cert,
        tls_key,
        url,
        client_id,
        username,
        password,
        max_packet_bytes: usize::try_from(max_packet).unwrap_or(d.max_packet_bytes),
        max_connections: usize::try_from(max_connections).unwrap_or(d.max_connections),
    }
}

/// Validate `[devices]`.
pub(crate) fn devices(c: &mut Checker, raw: RawDevices) -> DevicesConfig {
    let d = DevicesConfig::default();
    let fleet_secret = raw.fleet_secret.and_then(|s| {
        if (MIN_FLEET_SECRET..=MAX_FLEET_SECRET).contains(&s.len()) {
            Some(Secret::new(s))
        } else {
            // Never echo the secret itself.
            c.invalid(
                "devices.fleet_secret",
                "***",
                &format!(
                    "a secret of {MIN_FLEET_SECRET} to {MAX_FLEET_SECRET} bytes (got {})",
                    s.len()
                ),
            );
            None
        }
    });
    let secs = |c: &mut Checker, key: &str, v: Option<u64>, def: u32, min: u64, max: u64| {
        let n = c.ranged(key, v, u64::from(def), min, max);
        u32::try_from(n).unwrap_or(def)
    };
    let claim_window_secs = secs(
        c,
        "devices.claim_window_secs",
        raw.claim_window_secs,
        d.claim_window_secs,
        10,
        3600,
    );
    let command_timeout_secs = secs(
        c,
        "devices.command_timeout_secs",
        raw.command_timeout_secs,
        d.command_timeout_secs,
        1,
        3600,
    );
    let command_retries = secs(
        c,
        "devices.command_retries",
        raw.command_retries,
        d.command_retries,
        0,
        10,
    );
    let ring_timeout_secs = secs(
        c,
        "devices.ring_timeout_secs",
        raw.ring_timeout_secs,
        d.ring_timeout_secs,
        1,
        300,
    );
    let audio_rate = match raw.audio_rate {
        None => d.audio_rate,
        Some(r @ (8000 | 16_000)) => u32::try_from(r).unwrap_or(d.audio_rate),
        Some(r) => {
            c.invalid("devices.audio_rate", &r.to_string(), "8000 or 16000");
            d.audio_rate
        }
    };
    let default_account = match raw.default_account {
        None => d.default_account,
        Some(a)
            if (1..=64).contains(&a.len())
                && a.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') =>
        {
            a
        }
        Some(a) => {
            c.invalid("devices.default_account", &a, "1 to 64 of A-Z a-z 0-9 _ -");
            d.default_account
        }
    };
    DevicesConfig {
        fleet_secret,
        claim_window_secs,
        default_account,
        command_timeout_secs,
        command_retries,
        ring_timeout_secs,
        audio_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for good in [
            "mqtt://broker.example:1883",
            "mqtts://10.0.0.1:8883",
            "mqtt://localhost",
            "mqtts://[2001:db8::1]:8883",
            "mqtt://[::1]",
        ] {
            assert!(valid_url(good), "{good}");
        }
        for bad in [
            "",
            "http://x:1",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://host:0",
            "mqtt://host:70000",
            "mqtt://host:1883/path",
            "mqtt://ho st",
            "mqtt://[zz]:1",
            "mqtt://2001:db8::1",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
    }

    #[test]
    fn url_parts_and_default_ports() {
        let u = BrokerUrl::parse("mqtts://[2001:db8::1]").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("2001:db8::1", 8883, true)
        );
        let u = BrokerUrl::parse("mqtt://broker.example").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("broker.example", 1883, false)
        );
        let u = BrokerUrl::parse("mqtt://10.0.0.1:2883").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 2883));
    }

    #[test]
    fn mode_names_round_trip() {
        for m in [MqttMode::Embedded, MqttMode::External, MqttMode::Off] {
            assert_eq!(MqttMode::parse(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!(MqttMode::parse("Embedded"), None);
    }

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
        let c = load_from_str("", &[]).unwrap();
        assert_eq!(c.mqtt, MqttConfig::default());
        assert_eq!(c.devices, DevicesConfig::default());
        assert_eq!(c.mqtt.mode, MqttMode::Embedded);
        assert_eq!(
            c.mqtt.listen,
            "127.0.0.1:1883".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.mqtt.client_id, "switchboard");
        assert_eq!(
            (c.mqtt.max_packet_bytes, c.mqtt.max_connections),
            (65_536, 10_000)
        );
        assert_eq!(c.devices.fleet_secret, None);
        assert_eq!(
            (
                c.devices.claim_window_secs,
                c.devices.command_timeout_secs,
                c.devices.command_retries
            ),
            (300, 10, 2)
        );
        assert_eq!(c.devices.default_account, "default");
        assert_eq!(
            (c.devices.ring_timeout_secs, c.devices.audio_rate),
            (30, 16_000)
        );
    }

    #[test]
    fn typed_values_from_the_file() {
        let c = load_from_str(
            r#"
            [mqtt]
            mode = "embedded"
            listen = "0.0.0.0:1883"
            tls_listen = "0.0.0.0:8883"
            tls_cert = "/etc/sb/c.pem"
            tls_key = "/etc/sb/k.pem"
            max_packet_bytes = 1024
            max_connections = 5
            [devices]
            fleet_secret = "0123456789abcdef"
            claim_window_secs = 10
            default_account = "acme-1"
            command_timeout_secs = 3600
            command_retries = 0
            ring_timeout_secs = 300
            audio_rate = 8000
            "#,
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.mqtt.tls_listen.map(|a| a.port()), Some(8883));
        assert_eq!(c.mqtt.tls_cert, Some(PathBuf::from("/etc/sb/c.pem")));
        assert_eq!(c.mqtt.max_packet_bytes, 1024);
        assert_eq!(
            c.devices.fleet_secret.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert!(!format!("{:?}", c.devices).contains("0123456789abcdef"));
        assert_eq!(c.devices.default_account, "acme-1");
        assert_eq!(c.devices.command_retries, 0);
        assert_eq!(c.devices.ring_timeout(), Duration::from_secs(300));
        assert_eq!(c.devices.audio_rate, 8000);
        let ext = load_from_str(
            "[mqtt]\nmode = \"external\"\nurl = \"mqtts://b.example:8883\"\n\
             username = \"gw\"\npassword = \"pw\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(ext.mqtt.mode, MqttMode::External);
        assert_eq!(ext.mqtt.url.as_deref(), Some("mqtts://b.example:8883"));
        assert_eq!(ext.mqtt.password.as_ref().map(Secret::expose), Some("pw"));
        let off = load_from_str("[mqtt]\nmode = \"off\"", &[]).unwrap();
        assert_eq!(off.mqtt.mode, MqttMode::Off);
    }

    #[test]
    fn every_error_at_its_key() {
        use ConfigErrorKind as K;
        let e = errs(
            r#"
            [mqtt]
            mode = "cloud"
            listen = "1883"
            tls_listen = "0.0.0.0:8883"
            url = "http://x"
            client_id = "has space"
            username = ""
            password = "pw"
            max_packet_bytes = 100
            max_connections = 0
            colour = "red"
            [devices]
            fleet_secret = "short-secret"
            claim_window_secs = 5
            default_account = "a/b"
            command_timeout_secs = 0
            command_retries = 11
            ring_timeout_secs = 0
            audio_rate = 44100
            "#,
        );
        let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
        assert!(matches!(at("mqtt.mode"), K::Invalid { value, .. } if value == "cloud"));
        assert!(matches!(at("mqtt.listen"), K::Invalid { .. }));
        assert_eq!(at("mqtt.tls_listen"), &K::Requires { needs: "tls_cert" });
        let tls: Vec<_> = e.0.iter().filter(|e| e.key == "mqtt.tls_listen").collect();
        assert_eq!(tls.len(), 2, "tls_cert and tls_key both missing");
        assert!(matches!(at("mqtt.url"), K::Invalid { .. }));
        assert!(matches!(at("mqtt.client_id"), K::Invalid { .. }));
        assert!(matches!(at("mqtt.username"), K::Invalid { .. }));
        assert_eq!(at("mqtt.password"), &K::Requires { needs: "username" });
        assert_eq!(
            at("mqtt.max_packet_bytes"),
            &K::OutOfRange {
                value: 100,
                min: 1024,
                max: 1_048_576
            }
        );
        assert!(matches!(at("mqtt.max_connections"), K::OutOfRange { .. }));
        assert!(matches!(at("mqtt.colour"), K::UnknownKey { .. }));
        match at("devices.fleet_secret") {
            K::Invalid { value, expected } => {
                assert_eq!(value, "***");
                assert!(expected.contains("got 12"), "{expected}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains("short-secret"), "secret leaked");
        assert!(matches!(
            at("devices.claim_window_secs"),
            K::OutOfRange { .. }
        ));
        assert!(matches!(at("devices.default_account"), K::Invalid { .. }));
        assert!(matches!(
            at("devices.command_timeout_secs"),
            K::OutOfRange { .. }
        ));
        assert_eq!(
            at("devices.command_retries"),
            &K::OutOfRange {
                value: 11,
                min: 0,
                max: 10
            }
        );
        assert_eq!(
            at("devices.ring_timeout_secs"),
            &K::OutOfRange {
                value: 0,
                min: 1,
                max: 300
            }
        );
        assert!(matches!(
            at("devices.audio_rate"),
            K::Invalid { value, .. } if value == "44100"
        ));
        assert!(matches!(
            errs("[devices]\nring_timeout_secs = 301").at("devices.ring_timeout_secs"),
            Some(K::OutOfRange { .. })
        ));
    }

    #[test]
    fn external_needs_url_and_certs_need_a_listener() {
        let e = errs("[mqtt]\nmode = \"external\"");
        assert_eq!(e.at("mqtt.url"), Some(&ConfigErrorKind::Missing));
        // A bad url is reported once, as invalid, not also as missing.
        let e = errs("[mqtt]\nmode = \"external\"\nurl = \"mqtt://\"");
        assert_eq!(e.0.len(), 1);
        assert!(matches!(
            e.at("mqtt.url"),
            Some(ConfigErrorKind::Invalid { .. })
        ));
        let e = errs("[mqtt]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
        assert_eq!(
            e.at("mqtt.tls_cert"),
            Some(&ConfigErrorKind::Requires {
                needs: "tls_listen"
            })
        );
        assert!(e.at("mqtt.tls_key").is_some());
    }

    #[test]
    fn env_overrides() {
        let c = load_from_str(
            "[mqtt]\nlisten = \"127.0.0.1:1884\"\n[devices]\ncommand_retries = 5\n",
            &env(&[
                ("SWITCHBOARD_MQTT_MODE", "external"),
                ("SWITCHBOARD_MQTT_URL", "mqtt://10.0.0.5:1883"),
                ("SWITCHBOARD_MQTT_USERNAME", "gw"),
                ("SWITCHBOARD_MQTT_PASSWORD", "env-pass"),
                ("SWITCHBOARD_MQTT_MAX_CONNECTIONS", "100"),
                (
                    "SWITCHBOARD_DEVICES_FLEET_SECRET",
                    "a-very-long-fleet-secret",
                ),
                ("SWITCHBOARD_DEVICES_CLAIM_WINDOW_SECS", "60"),
                ("SWITCHBOARD_DEVICES_DEFAULT_ACCOUNT", "acme"),
                ("SWITCHBOARD_DEVICES_COMMAND_RETRIES", ""),
                ("SWITCHBOARD_DEVICES_RING_TIMEOUT_SECS", "45"),
                ("SWITCHBOARD_DEVICES_AUDIO_RATE", "8000"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.mqtt.mode, MqttMode::External);
        assert_eq!(c.mqtt.listen.port(), 1884, "file value kept");
        assert_eq!(c.mqtt.url.as_deref(), Some("mqtt://10.0.0.5:1883"));
        assert_eq!(
            c.mqtt.password.as_ref().map(Secret::expose),
            Some("env-pass")
        );
        assert_eq!(c.mqtt.max_connections, 100);
        assert_eq!(
            c.devices.fleet_secret.as_ref().map(Secret::expose),
            Some("a-very-long-fleet-secret")
        );
        assert_eq!(c.devices.claim_window_secs, 60);
        assert_eq!(c.devices.default_account, "acme");
        assert_eq!(
            c.devices.command_retries, 2,
            "empty env clears the file value"
        );
        assert_eq!(c.devices.ring_timeout_secs, 45);
        assert_eq!(c.devices.audio_rate, 8000);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = load_from_str(
            "",
            &env(&[
                ("SWITCHBOARD_MQTT_MODE", "sideways"),
                ("SWITCHBOARD_MQTT_MAX_PACKET_BYTES", "lots"),
                ("SWITCHBOARD_MQTT_TLS_LISTEN", "0.0.0.0:8883"),
                ("SWITCHBOARD_DEVICES_FLEET_SECRET", "tiny"),
                ("SWITCHBOARD_DEVICES_COMMAND_RETRIES", "99"),
                ("SWITCHBOARD_DEVICES_RING_TIMEOUT_SECS", "0"),
                ("SWITCHBOARD_DEVICES_AUDIO_RATE", "11025"),
            ]),
        )
        .unwrap_err();
        let mut keys: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(
            keys,
            [
                "SWITCHBOARD_DEVICES_AUDIO_RATE",
                "SWITCHBOARD_DEVICES_COMMAND_RETRIES",
                "SWITCHBOARD_DEVICES_FLEET_SECRET",
                "SWITCHBOARD_DEVICES_RING_TIMEOUT_SECS",
                "SWITCHBOARD_MQTT_MAX_PACKET_BYTES",
                "SWITCHBOARD_MQTT_MODE",
                "SWITCHBOARD_MQTT_TLS_LISTEN",
            ]
        );
        assert!(!e.to_string().contains("tiny"), "secret leaked");
    }

    #[test]
    fn durations() {
        let d = DevicesConfig::default();
        assert_eq!(d.claim_window(), Duration::from_secs(300));
        assert_eq!(d.command_timeout(), Duration::from_secs(10));
        assert_eq!(d.ring_timeout(), Duration::from_secs(30));
    }
}
