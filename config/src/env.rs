//! Environment overrides: `SWITCHBOARD_<SECTION>_<KEY>` for every scalar key of `[sip]`,
//! `[media]`, `[admin]`, `[storage]`, `[log]`, `[mqtt]`, `[devices]`, `[fax]`, `[media_ws]` and `[billing]`
//! (e.g. `SWITCHBOARD_MQTT_PASSWORD`, `SWITCHBOARD_DEVICES_FLEET_SECRET`,
//! `SWITCHBOARD_FAX_WEBHOOK_SECRET`, `SWITCHBOARD_MEDIA_WS_ENABLED`), list keys of those
//! sections as comma-separated values (`SWITCHBOARD_MEDIA_WS_ALLOW=127.0.0.0/8,::1`), plus
//! per-trunk credentials `SWITCHBOARD_TRUNK_<NAME>_USERNAME` / `_PASSWORD` and per-app
//! `SWITCHBOARD_APP_<NAME>_AUTH_HEADER` (NAME upper-cased, `-` as `_`).
//!
//! The environment wins over the file. An empty value clears the key (the default applies).
//! Other `SWITCHBOARD_` variables are ignored: the binary has its own (e.g. for the CLI).

use std::collections::HashMap;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::raw::RawConfig;

/// Prefix of every variable read here.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// Every scalar (or comma-separated list) key that has an env override, as (section, key).
pub const SCALAR_KEYS: &[(&str, &str)] = &[
    ("sip", "listen"),
    ("sip", "advertise"),
    ("sip", "t1_ms"),
    ("sip", "t2_ms"),
    ("sip", "t4_ms"),
    ("sip", "user_agent"),
    ("sip", "max_calls"),
    ("sip", "no_answer_timeout_secs"),
    ("sip", "trusted"),
    ("sip", "realm"),
    ("sip", "rate_limit_per_source"),
    ("sip", "ban_after"),
    ("sip", "ban_window_secs"),
    ("sip", "ban_secs"),
    ("sip", "nonce_lifetime_secs"),
    ("sip", "tls_listen"),
    ("sip", "tls_cert"),
    ("sip", "tls_key"),
    ("media", "rtp_ports"),
    ("media", "advertise"),
    ("media", "allow_loopback"),
    ("media", "rtp_timeout_secs"),
    ("sip", "max_call_secs"),
    ("sip", "journal_checkpoint_secs"),
    ("sip", "drain_secs"),
    ("admin", "listen"),
    ("admin", "test_hooks"),
    ("admin", "bootstrap_key"),
    ("admin", "metrics_allow"),
    ("admin", "cors_origins"),
    ("admin", "rate_limit_per_ip"),
    ("admin", "rate_limit_per_key"),
    ("admin", "tls_cert"),
    ("admin", "tls_key"),
    ("storage", "path"),
    ("log", "level"),
    ("log", "json"),
    ("mqtt", "mode"),
    ("mqtt", "listen"),
    ("mqtt", "tls_listen"),
    ("mqtt", "tls_cert"),
    ("mqtt", "tls_key"),
    ("mqtt", "url"),
    ("mqtt", "client_id"),
    ("mqtt", "username"),
    ("mqtt", "password"),
    ("mqtt", "max_packet_bytes"),
    ("mqtt", "max_connections"),
    ("devices", "fleet_secret"),
    ("devices", "claim_window_secs"),
    ("devices", "default_account"),
    ("devices", "command_timeout_secs"),
    ("devices", "command_retries"),
    ("devices", "ring_timeout_secs"),
    ("devices", "audio_rate"),
    ("fax", "max_attempts"),
    ("fax", "retry_delay_secs"),
    ("fax", "spool"),
    ("fax", "ident"),
    ("fax", "ecm"),
    ("fax", "max_rate"),
    ("fax", "t38_version"),
    ("fax", "max_pages"),
    ("fax", "max_file_bytes"),
    ("fax", "webhook_url"),
    ("fax", "webhook_secret"),
    ("fax", "t38_switch_timeout_secs"),
    ("fax", "gs"),
    ("billing", "reject_status"),
    ("billing", "initial_secs"),
    ("billing", "increment_secs"),
    ("billing", "max_call_secs"),
    ("billing", "account"),
    ("billing", "price_per_page"),
    ("media_ws", "enabled"),
    ("media_ws", "listen"),
    ("media_ws", "tls_cert"),
    ("media_ws", "tls_key"),
    ("media_ws", "jwt_public_key"),
    ("media_ws", "jwt_issuer"),
    ("media_ws", "jwt_audience"),
    ("media_ws", "allow"),
    ("media_ws", "max_connections"),
    ("media_ws", "max_per_ip"),
    ("media_ws", "max_per_tenant"),
    ("media_ws", "max_frame_bytes"),
    ("media_ws", "max_frames_per_sec"),
    ("media_ws", "handshake_timeout_ms"),
    ("media_ws", "idle_timeout_secs"),
    ("sip", "max_tcp_connections"),
    ("sip", "max_tcp_per_source"),
    ("sip", "tcp_message_timeout_secs"),
    ("sip", "tcp_idle_secs"),
    ("admin", "max_connections"),
    ("admin", "max_connections_per_source"),
    ("admin", "header_timeout_secs"),
    ("admin", "request_timeout_secs"),
    ("fax", "gs_timeout_secs"),
    ("fax", "upload_ttl_secs"),
    ("fax", "spool_max_bytes"),
];

/// Env variable name for a scalar key, e.g. `SWITCHBOARD_SIP_T1_MS`.
pub fn var_name(section: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{}_{}", section, key).to_ascii_uppercase()
}

/// The `<NAME>` part of a trunk's or app's env variables: upper-cased, `-` as `_`.
pub fn trunk_env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A typed place in the raw config an env value lands in.
enum Slot<'a> {
    Str(&'a mut Option<String>),
    U64(&'a mut Option<u64>),
    Bool(&'a mut Option<bool>),
    /// Comma-separated; items are trimmed and empty items skipped.
    List(&'a mut Option<Vec<String>>),
}

fn slot<'a>(raw: &'a mut RawConfig, section: &str, key: &str) -> Option<Slot<'a>> {
    Some(match (section, key) {
        ("sip", "listen") => Slot::Str(&mut raw.sip.listen),
        ("sip", "advertise") => Slot::Str(&mut raw.sip.advertise),
        ("sip", "t1_ms") => Slot::U64(&mut raw.sip.t1_ms),
        ("sip", "t2_ms") => Slot::U64(&mut raw.sip.t2_ms),
        ("sip", "t4_ms") => Slot::U64(&mut raw.sip.t4_ms),
        ("sip", "user_agent") => Slot::Str(&mut raw.sip.user_agent),
        ("sip", "max_calls") => Slot::U64(&mut raw.sip.max_calls),
        ("sip", "no_answer_timeout_secs") => Slot::U64(&mut raw.sip.no_answer_timeout_secs),
        ("sip", "trusted") => Slot::List(&mut raw.sip.trusted),
        ("sip", "realm") => Slot::Str(&mut raw.sip.realm),
        ("sip", "rate_limit_per_source") => Slot::U64(&mut raw.sip.rate_limit_per_source),
        ("sip", "ban_after") => Slot::U64(&mut raw.sip.ban_after),
        ("sip", "ban_window_secs") => Slot::U64(&mut raw.sip.ban_window_secs),
        ("sip", "ban_secs") => Slot::U64(&mut raw.sip.ban_secs),
        ("sip", "nonce_lifetime_secs") => Slot::U64(&mut raw.sip.nonce_lifetime_secs),
        ("sip", "tls_listen") => Slot::Str(&mut raw.sip.tls_listen),
        ("sip", "tls_cert") => Slot::Str(&mut raw.sip.tls_cert),
        ("sip", "tls_key") => Slot::Str(&mut raw.sip.tls_key),
        ("media", "rtp_ports") => Slot::Str(&mut raw.media.rtp_ports),
        ("media", "advertise") => Slot::Str(&mut raw.media.advertise),
        ("media", "allow_loopback") => Slot::Bool(&mut raw.media.allow_loopback),
        ("media", "rtp_timeout_secs") => Slot::U64(&mut raw.media.rtp_timeout_secs),
        ("sip", "max_call_secs") => Slot::U64(&mut raw.sip.max_call_secs),
        ("sip", "journal_checkpoint_secs") => Slot::U64(&mut raw.sip.journal_checkpoint_secs),
        ("sip", "drain_secs") => Slot::U64(&mut raw.sip.drain_secs),
        ("admin", "listen") => Slot::Str(&mut raw.admin.listen),
        ("admin", "test_hooks") => Slot::Bool(&mut raw.admin.test_hooks),
        ("admin", "bootstrap_key") => Slot::Str(&mut raw.admin.bootstrap_key),
        ("admin", "metrics_allow") => Slot::List(&mut raw.admin.metrics_allow),
        ("admin", "cors_origins") => Slot::List(&mut raw.admin.cors_origins),
        ("admin", "rate_limit_per_ip") => Slot::U64(&mut raw.admin.rate_limit_per_ip),
        ("admin", "rate_limit_per_key") => Slot::U64(&mut raw.admin.rate_limit_per_key),
        ("admin", "tls_cert") => Slot::Str(&mut raw.admin.tls_cert),
        ("admin", "tls_key") => Slot::Str(&mut raw.admin.tls_key),
        ("storage", "path") => Slot::Str(&mut raw.storage.path),
        ("log", "level") => Slot::Str(&mut raw.log.level),
        ("log", "json") => Slot::Bool(&mut raw.log.json),
        ("mqtt", "mode") => Slot::Str(&mut raw.mqtt.mode),
        ("mqtt", "listen") => Slot::Str(&mut raw.mqtt.listen),
        ("mqtt", "tls_listen") => Slot::Str(&mut raw.mqtt.tls_listen),
        ("mqtt", "tls_cert") => Slot::Str(&mut raw.mqtt.tls_cert),
        ("mqtt", "tls_key") => Slot::Str(&mut raw.mqtt.tls_key),
        ("mqtt", "url") => Slot::Str(&mut raw.mqtt.url),
        ("mqtt", "client_id") => Slot::Str(&mut raw.mqtt.client_id),
        ("mqtt", "username") => Slot::Str(&mut raw.mqtt.username),
        ("mqtt", "password") => Slot::Str(&mut raw.mqtt.password),
        ("mqtt", "max_packet_bytes") => Slot::U64(&mut raw.mqtt.max_packet_bytes),
        ("mqtt", "max_connections") => Slot::U64(&mut raw.mqtt.max_connections),
        ("devices", "fleet_secret") => Slot::Str(&mut raw.devices.fleet_secret),
        ("devices", "claim_window_secs") => Slot::U64(&mut raw.devices.claim_window_secs),
        ("devices", "default_account") => Slot::Str(&mut raw.devices.default_account),
        ("devices", "command_timeout_secs") => Slot::U64(&mut raw.devices.command_timeout_secs),
        ("devices", "command_retries") => Slot::U64(&mut raw.devices.command_retries),
        ("devices", "ring_timeout_secs") => Slot::U64(&mut raw.devices.ring_timeout_secs),
        ("devices", "audio_rate") => Slot::U64(&mut raw.devices.audio_rate),
        ("fax", "max_attempts") => Slot::U64(&mut raw.fax.max_attempts),
        ("fax", "retry_delay_secs") => Slot::U64(&mut raw.fax.retry_delay_secs),
        ("fax", "spool") => Slot::Str(&mut raw.fax.spool),
        ("fax", "ident") => Slot::Str(&mut raw.fax.ident),
        ("fax", "ecm") => Slot::Bool(&mut raw.fax.ecm),
        ("fax", "max_rate") => Slot::U64(&mut raw.fax.max_rate),
        ("fax", "t38_version") => Slot::U64(&mut raw.fax.t38_version),
        ("fax", "max_pages") => Slot::U64(&mut raw.fax.max_pages),
        ("fax", "max_file_bytes") => Slot::U64(&mut raw.fax.max_file_bytes),
        ("fax", "webhook_url") => Slot::Str(&mut raw.fax.webhook_url),
        ("fax", "webhook_secret") => Slot::Str(&mut raw.fax.webhook_secret),
        ("fax", "t38_switch_timeout_secs") => Slot::U64(&mut raw.fax.t38_switch_timeout_secs),
        ("fax", "gs") => Slot::Str(&mut raw.fax.gs),
        ("sip", "max_tcp_connections") => Slot::U64(&mut raw.sip.max_tcp_connections),
        ("sip", "max_tcp_per_source") => Slot::U64(&mut raw.sip.max_tcp_per_source),
        ("sip", "tcp_message_timeout_secs") => Slot::U64(&mut raw.sip.tcp_message_timeout_secs),
        ("sip", "tcp_idle_secs") => Slot::U64(&mut raw.sip.tcp_idle_secs),
        ("admin", "max_connections") => Slot::U64(&mut raw.admin.max_connections),
        ("admin", "max_connections_per_source") => {
            Slot::U64(&mut raw.admin.max_connections_per_source)
        }
        ("admin", "header_timeout_secs") => Slot::U64(&mut raw.admin.header_timeout_secs),
        ("admin", "request_timeout_secs") => Slot::U64(&mut raw.admin.request_timeout_secs),
        ("fax", "gs_timeout_secs") => Slot::U64(&mut raw.fax.gs_timeout_secs),
        ("fax", "upload_ttl_secs") => Slot::U64(&mut raw.fax.upload_ttl_secs),
        ("fax", "spool_max_bytes") => Slot::U64(&mut raw.fax.spool_max_bytes),
        ("billing", "reject_status") => Slot::U64(&mut raw.billing.reject_status),
        ("billing", "initial_secs") => Slot::U64(&mut raw.billing.initial_secs),
        ("billing", "increment_secs") => Slot::U64(&mut raw.billing.increment_secs),
        ("billing", "max_call_secs") => Slot::U64(&mut raw.billing.max_call_secs),
        ("billing", "account") => Slot::Str(&mut raw.billing.account),
        ("billing", "price_per_page") => Slot::U64(&mut raw.billing.price_per_page),
        ("media_ws", "enabled") => Slot::Bool(&mut raw.media_ws.enabled),
        ("media_ws", "listen") => Slot::Str(&mut raw.media_ws.listen),
        ("media_ws", "tls_cert") => Slot::Str(&mut raw.media_ws.tls_cert),
        ("media_ws", "tls_key") => Slot::Str(&mut raw.media_ws.tls_key),
        ("media_ws", "jwt_public_key") => Slot::Str(&mut raw.media_ws.jwt_public_key),
        ("media_ws", "jwt_issuer") => Slot::Str(&mut raw.media_ws.jwt_issuer),
        ("media_ws", "jwt_audience") => Slot::Str(&mut raw.media_ws.jwt_audience),
        ("media_ws", "allow") => Slot::List(&mut raw.media_ws.allow),
        ("media_ws", "max_connections") => Slot::U64(&mut raw.media_ws.max_connections),
        ("media_ws", "max_per_ip") => Slot::U64(&mut raw.media_ws.max_per_ip),
        ("media_ws", "max_per_tenant") => Slot::U64(&mut raw.media_ws.max_per_tenant),
        ("media_ws", "max_frame_bytes") => Slot::U64(&mut raw.media_ws.max_frame_bytes),
        ("media_ws", "max_frames_per_sec") => Slot::U64(&mut raw.media_ws.max_frames_per_sec),
        ("media_ws", "handshake_timeout_ms") => Slot::U64(&mut raw.media_ws.handshake_timeout_ms),
        ("media_ws", "idle_timeout_secs") => Slot::U64(&mut raw.media_ws.idle_timeout_secs),
        _ => return None,
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Apply overrides from `env` (later duplicates win) to `raw`. Returns, for each overridden
/// config key (`sip.listen`, `trunk[0].password`), the variable that set it, so later errors
/// name the variable.
pub(crate) fn apply(
    raw: &mut RawConfig,
    env: &[(String, String)],
    errors: &mut Vec<ConfigError>,
) -> HashMap<String, String> {
    let vars: HashMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut origins = HashMap::new();
    for &(section, key) in SCALAR_KEYS {
        let var = var_name(section, key);
        let Some(&value) = vars.get(var.as_str()) else {
            continue;
        };
        let Some(slot) = slot(raw, section, key) else {
            continue;
        };
        let value = value.trim();
        let result: Result<(), &str> = match slot {
            _ if value.is_empty() => {
                clear(slot);
                Ok(())
            }
            Slot::Str(s) => {
                *s = Some(value.to_string());
                Ok(())
            }
            Slot::U64(n) => value
                .parse()
                .map(|v| *n = Some(v))
                .map_err(|_| "a non-negative integer"),
            Slot::Bool(b) => parse_bool(value)
                .map(|v| *b = Some(v))
                .ok_or("true or false"),
            Slot::List(l) => {
                *l = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(String::from)
                        .collect(),
                );
                Ok(())
            }
        };
        match result {
            Ok(()) => {
                origins.insert(format!("{section}.{key}"), var);
            }
            Err(expected) => errors.push(ConfigError::new(
                var,
                ConfigErrorKind::Invalid {
                    value: value.to_string(),
                    expected: expected.into(),
                },
            )),
        }
    }
    for (i, trunk) in raw.trunks.iter_mut().enumerate() {
        let Some(name) = trunk.name.as_deref() else {
            continue;
        };
        let base = format!("{ENV_PREFIX}TRUNK_{}_", trunk_env_name(name));
        for (field, dest) in [
            ("username", &mut trunk.username),
            ("password", &mut trunk.password),
        ] {
            let var = format!("{base}{}", field.to_ascii_uppercase());
            if let Some(&value) = vars.get(var.as_str()) {
                *dest = (!value.is_empty()).then(|| value.to_string());
                origins.insert(format!("trunk[{i}].{field}"), var);
            }
        }
    }
    for (i, user) in raw.sip_users.iter_mut().enumerate() {
        let Some(name) = user.username.as_deref() else {
            continue;
        };
        let var = format!("{ENV_PREFIX}SIP_USER_{}_PASSWORD", trunk_env_name(name));
        if let Some(&value) = vars.get(var.as_str()) {
            user.password = (!value.is_empty()).then(|| value.to_string());
            origins.insert(format!("sip_user[{i}].password"), var);
        }
        let var = format!("{ENV_PREFIX}SIP_USER_{}_ACCOUNT", trunk_env_name(name));
        if let Some(&value) = vars.get(var.as_str()) {
            user.account = (!value.is_empty()).then(|| value.to_string());
            origins.insert(format!("sip_user[{i}].account"), var);
        }
    }
    for (i, app) in raw.apps.iter_mut().enumerate() {
        let Some(name) = app.name.as_deref() else {
            continue;
        };
        let var = format!("{ENV_PREFIX}APP_{}_AUTH_HEADER", trunk_env_name(name));
        if let Some(&value) = vars.get(var.as_str()) {
            app.auth_header = (!value.is_empty()).then(|| value.to_string());
            origins.insert(format!("app[{i}].auth_header"), var);
        }
    }
    origins
}

fn clear(slot: Slot<'_>) {
    match slot {
        Slot::Str(s) => *s = None,
        Slot::U64(n) => *n = None,
        Slot::Bool(b) => *b = None,
        Slot::List(l) => *l = None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_scalar_key_has_a_slot() {
        let mut raw = RawConfig::default();
        for &(s, k) in SCALAR_KEYS {
            assert!(slot(&mut raw, s, k).is_some(), "{s}.{k}");
        }
        assert_eq!(var_name("sip", "t1_ms"), "SWITCHBOARD_SIP_T1_MS");
        assert_eq!(
            var_name("media_ws", "max_per_ip"),
            "SWITCHBOARD_MEDIA_WS_MAX_PER_IP"
        );
        // `[media]` and `[media_ws]` share a prefix: no two keys may map to one variable.
        let mut names: Vec<_> = SCALAR_KEYS.iter().map(|&(s, k)| var_name(s, k)).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "two keys share an env variable");
        assert_eq!(trunk_env_name("my-Trunk_2"), "MY_TRUNK_2");
    }

    #[test]
    fn applies_typed_values_and_reports_bad_ones() {
        let mut raw = RawConfig::default();
        raw.sip.t2_ms = Some(1);
        let mut errors = Vec::new();
        let origins = apply(
            &mut raw,
            &env(&[
                ("SWITCHBOARD_SIP_T1_MS", "250"),
                ("SWITCHBOARD_SIP_T2_MS", ""),
                ("SWITCHBOARD_SIP_T4_MS", "soon"),
                ("SWITCHBOARD_ADMIN_TEST_HOOKS", "yes"),
                ("SWITCHBOARD_LOG_JSON", "maybe"),
                ("SWITCHBOARD_LOG_LEVEL", "debug"),
                ("SWITCHBOARD_MEDIA_WS_ALLOW", "10.0.0.0/8, ,::1,"),
                ("SWITCHBOARD_CONFIG", "/etc/x.toml"),
                ("PATH", "/bin"),
            ]),
            &mut errors,
        );
        assert_eq!(raw.sip.t1_ms, Some(250));
        assert_eq!(raw.sip.t2_ms, None, "empty clears");
        assert_eq!(raw.admin.test_hooks, Some(true));
        assert_eq!(raw.log.level.as_deref(), Some("debug"));
        assert_eq!(
            raw.media_ws.allow,
            Some(vec!["10.0.0.0/8".to_string(), "::1".to_string()])
        );
        assert_eq!(origins["media_ws.allow"], "SWITCHBOARD_MEDIA_WS_ALLOW");
        assert_eq!(origins["sip.t1_ms"], "SWITCHBOARD_SIP_T1_MS");
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["SWITCHBOARD_SIP_T4_MS", "SWITCHBOARD_LOG_JSON"]);
        assert!(matches!(
            &errors[1].kind,
            ConfigErrorKind::Invalid { expected, .. } if expected == "true or false"
        ));
    }
}
