//! The file as written: serde structs mirroring the TOML layout with every key optional and
//! `deny_unknown_fields`. Each section and each `[[trunk]]`/`[[route]]`/`[[app]]` entry is decoded on its
//! own, and a bad key is dropped and the decode retried, so one pass reports every unknown key
//! and every wrongly typed value with its full key.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{ConfigError, ConfigErrorKind};

/// `[sip]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub t1_ms: Option<u64>,
    pub t2_ms: Option<u64>,
    pub t4_ms: Option<u64>,
    pub user_agent: Option<String>,
    pub max_calls: Option<u64>,
    pub no_answer_timeout_secs: Option<u64>,
    pub trusted: Option<Vec<String>>,
    pub realm: Option<String>,
    pub rate_limit_per_source: Option<u64>,
    pub ban_after: Option<u64>,
    pub ban_window_secs: Option<u64>,
    pub ban_secs: Option<u64>,
    pub nonce_lifetime_secs: Option<u64>,
    pub tls_listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub max_tcp_connections: Option<u64>,
    pub max_tcp_per_source: Option<u64>,
    pub tcp_message_timeout_secs: Option<u64>,
    pub tcp_idle_secs: Option<u64>,
    pub max_call_secs: Option<u64>,
    pub journal_checkpoint_secs: Option<u64>,
    pub drain_secs: Option<u64>,
}

/// One `[[sip_user]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSipUser {
    pub username: Option<String>,
    pub password: Option<String>,
    pub account: Option<String>,
}

/// `[media]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMedia {
    pub rtp_ports: Option<String>,
    pub advertise: Option<String>,
    pub allow_loopback: Option<bool>,
    pub rtp_timeout_secs: Option<u64>,
}

/// `[admin]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<String>,
    pub test_hooks: Option<bool>,
    pub bootstrap_key: Option<String>,
    pub metrics_allow: Option<Vec<String>>,
    pub cors_origins: Option<Vec<String>>,
    pub rate_limit_per_ip: Option<u64>,
    pub rate_limit_per_key: Option<u64>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub max_connections: Option<u64>,
    pub max_connections_per_source: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
}

/// `[storage]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub path: Option<String>,
}

/// `[log]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<String>,
    pub json: Option<bool>,
}

/// `[mqtt]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMqtt {
    pub mode: Option<String>,
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_packet_bytes: Option<u64>,
    pub max_connections: Option<u64>,
}

/// `[devices]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevices {
    pub fleet_secret: Option<String>,
    pub claim_window_secs: Option<u64>,
    pub default_account: Option<String>,
    pub command_timeout_secs: Option<u64>,
    pub command_retries: Option<u64>,
    pub ring_timeout_secs: Option<u64>,
    pub audio_rate: Option<u64>,
}

/// One `[[trunk]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrunk {
    pub name: Option<String>,
    pub address: Option<String>,
    pub transport: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub register: Option<bool>,
    pub register_expires: Option<i64>,
    pub keepalive_secs: Option<u64>,
    pub qualify: Option<bool>,
    pub allow: Option<Vec<String>>,
    pub from_domain: Option<String>,
    pub t38: Option<String>,
    pub tls_ca: Option<String>,
    pub tls_server_name: Option<String>,
    pub price_per_minute: Option<u64>,
    pub account: Option<String>,
}

/// One `[[route]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub to: Option<String>,
    pub strip: Option<u64>,
    pub prepend: Option<String>,
    pub parameters: Option<toml::Table>,
    pub fork: Option<String>,
    pub price_per_minute: Option<u64>,
    pub account: Option<String>,
}

/// The whole file as written.
#[derive(Debug, Default, Clone)]
pub(crate) struct RawConfig {
    pub sip: RawSip,
    pub media: RawMedia,
    pub admin: RawAdmin,
    pub storage: RawStorage,
    pub log: RawLog,
    pub mqtt: RawMqtt,
    pub devices: RawDevices,
    pub fax: crate::fax::RawFax,
    pub media_ws: crate::media_ws::RawMediaWs,
    pub billing: crate::billing::RawBilling,
    pub trunks: Vec<RawTrunk>,
    pub sip_users: Vec<RawSipUser>,
    pub routes: Vec<RawRoute>,
    pub apps: Vec<crate::apps::RawApp>,
}

/// Parse TOML text into [`RawConfig`], appending every problem to `errors`.
pub(crate) fn parse(text: &str, errors: &mut Vec<ConfigError>) -> RawConfig {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            errors.push(ConfigError::new(
                "file",
                ConfigErrorKind::Syntax {
                    line,
                    column,
                    message: e.message().trim().to_string(),
                },
            ));
            return RawConfig::default();
        }
    };
    let mut raw = RawConfig::default();
    for (key, value) in table {
        match key.as_str() {
            "sip" => raw.sip = section(&key, value, errors),
            "media" => raw.media = section(&key, value, errors),
            "admin" => raw.admin = section(&key, value, errors),
            "storage" => raw.storage = section(&key, value, errors),
            "log" => raw.log = section(&key, value, errors),
            "mqtt" => raw.mqtt = section(&key, value, errors),
            "devices" => raw.devices = section(&key, value, errors),
            "fax" => raw.fax = section(&key, value, errors),
            "media_ws" => raw.media_ws = section(&key, value, errors),
            "billing" => raw.billing = section(&key, value, errors),
            "trunk" => raw.trunks = array(&key, value, errors),
            "sip_user" => raw.sip_users = array(&key, value, errors),
            "route" => raw.routes = array(&key, value, errors),
            "app" => raw.apps = array(&key, value, errors),
            _ => {
                let did_you_mean = closest(&key, SECTIONS.iter().copied());
                errors.push(ConfigError::new(
                    key,
                    ConfigErrorKind::UnknownKey { did_you_mean },
                ))
            }
        }
    }
    raw
}

/// The top-level sections and arrays of tables.
const SECTIONS: &[&str] = &[
    "sip", "media", "admin", "storage", "log", "mqtt", "devices", "fax", "media_ws", "billing",
    "trunk", "sip_user", "route", "app",
];

use crate::spans::line_col;

/// Levenshtein distance (characters), for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The known key closest to `unknown`, if it is close enough to be a typo: at most one edit
/// per three characters (at least one), or the same letters in another case.
pub(crate) fn closest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (unknown.chars().count() / 3).max(1);
    known
        .map(|k| (distance(&unknown.to_ascii_lowercase(), k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

/// The field names serde lists in "unknown field `x`, expected one of `a`, `b`".
fn expected_fields(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.split_once("expected") else {
        return Vec::new();
    };
    list.split('`').skip(1).step_by(2).collect()
}

/// What serde expected, in words: no Rust type names (`u64`, `struct RawSip`, `a sequence`).
pub(crate) fn human_expected(expected: &str) -> String {
    let e = expected.trim();
    let words = match e {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" | "u128" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "a string or bytes" => "a string (in quotes)",
        "a character" | "char" => "a single character",
        "a sequence" => "a list, such as [\"a\", \"b\"]",
        "a map" => "a table",
        _ if e.starts_with("struct ") || e.starts_with("map") => "a table",
        _ if e.starts_with("enum ") => "one of the allowed values",
        _ => return e.to_string(),
    };
    words.to_string()
}

/// An array of tables (`[[trunk]]`), each entry decoded on its own as `name[i]`.
fn array<T: DeserializeOwned + Default>(
    name: &str,
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
) -> Vec<T> {
    match value {
        toml::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| section(&format!("{name}[{i}]"), item, errors))
            .collect(),
        other => {
            errors.push(ConfigError::new(
                name,
                ConfigErrorKind::Invalid {
                    value: render(&other),
                    expected: format!("an array of tables ([[{name}]])"),
                },
            ));
            Vec::new()
        }
    }
}

/// Decode one table into `T`; a bad key is reported, removed, and the decode retried.
fn section<T: DeserializeOwned + Default>(
    prefix: &str,
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
) -> T {
    let mut table = match value {
        toml::Value::Table(t) => t,
        other => {
            errors.push(ConfigError::new(
                prefix,
                ConfigErrorKind::Invalid {
                    value: render(&other),
                    expected: "a table".into(),
                },
            ));
            return T::default();
        }
    };
    // Each retry removes one key, so this ends; the bound is a belt and braces.
    for _ in 0..=table.len() {
        let err = match serde_path_to_error::deserialize::<_, T>(table.clone()) {
            Ok(t) => return t,
            Err(e) => e,
        };
        let field = err
            .path()
            .iter()
            .next()
            .and_then(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .filter(|f| table.contains_key(f));
        let message = err.into_inner().message().to_string();
        let Some(field) = field else {
            // Not attributable to a key (should not happen with all-optional fields).
            errors.push(ConfigError::new(
                prefix,
                ConfigErrorKind::Invalid {
                    value: String::new(),
                    expected: human_expected(&message),
                },
            ));
            return T::default();
        };
        let key = format!("{prefix}.{field}");
        let bad = table.remove(&field).unwrap_or(toml::Value::Boolean(false));
        let kind = if message.starts_with("unknown field") {
            ConfigErrorKind::UnknownKey {
                did_you_mean: closest(&field, expected_fields(&message).into_iter()),
            }
        } else {
            ConfigErrorKind::Invalid {
                value: render(&bad),
                expected: human_expected(
                    message
                        .split_once("expected ")
                        .map_or(message.as_str(), |(_, e)| e),
                ),
            }
        };
        errors.push(ConfigError::new(key, kind));
    }
    T::default()
}

/// A value as the user would recognise it (strings without quotes).
pub(crate) fn render(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_unknown_and_mistyped_key() {
        let mut errors = Vec::new();
        let raw = parse(
            r#"
            bogus = 1
            [sip]
            listn = "x"
            t1_ms = "fast"
            t2_ms = 100
            [[trunk]]
            name = "a"
            colour = "red"
            [[route]]
            match = 5
            "#,
            &mut errors,
        );
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bogus",
                "route[0].match",
                "sip.listn",
                "sip.t1_ms",
                "trunk[0].colour"
            ]
        );
        assert_eq!(
            errors[0].kind,
            ConfigErrorKind::UnknownKey { did_you_mean: None }
        );
        assert!(matches!(
            &errors[3].kind,
            ConfigErrorKind::Invalid { value, .. } if value == "fast"
        ));
        // Good keys next to bad ones still count.
        assert_eq!(raw.sip.t2_ms, Some(100));
        assert_eq!(raw.trunks[0].name.as_deref(), Some("a"));
    }

    #[test]
    fn syntax_error_has_position() {
        let mut errors = Vec::new();
        parse("[sip]\nlisten = \n", &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(matches!(
            errors[0].kind,
            ConfigErrorKind::Syntax { line: 2, .. }
        ));
    }

    #[test]
    fn wrong_shapes() {
        let mut errors = Vec::new();
        parse("sip = 3\ntrunk = \"x\"\nroute = [1]\n", &mut errors);
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["route[0]", "sip", "trunk"]);
    }
}
