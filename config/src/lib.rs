//! Typed configuration for switchboard: one TOML file (`[sip]`, `[media]`, `[admin]`,
//! `[storage]`, `[log]`, `[mqtt]`, `[devices]`, `[fax]`, `[media_ws]`, `[billing]`, `[[trunk]]`, `[[route]]`,
//! `[[app]]`) plus `SWITCHBOARD_*` environment overrides, parsed and validated once into
//! [`Config`] ("parse, don't validate").
//!
//! Loading never stops at the first problem: unknown keys, wrong types, bad addresses, unknown
//! trunks or apps in routes and bad env values are all collected into [`ConfigErrors`], one line each,
//! keyed like `trunk[1].address`. With no file at all the embedded defaults apply
//! ([`Config::default`]). See `config/switchboard.example.toml` for every key.

use std::net::IpAddr;
use std::path::Path;

mod apps;
mod billing;
mod devices;
mod env;
mod error;
mod fax;
mod media_ws;
mod raw;
mod route;
mod spans;
mod types;
mod validate;

pub use apps::{AppConfig, AppFailure, StreamDialect};
pub use billing::{AccountRule, BillingConfig};
pub use devices::{BrokerUrl, DevicesConfig, MqttConfig, MqttMode};
pub use env::{trunk_env_name, var_name, ENV_PREFIX, SCALAR_KEYS};
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, Position};
pub use fax::{FaxConfig, T38Policy};
pub use media_ws::MediaWsConfig;
pub use route::{RouteConfig, RoutePattern, RouteTarget};
pub use types::{
    is_api_key_shape, AdminConfig, LogConfig, MediaConfig, Secret, SipConfig, SipUser,
    StorageConfig, Transport, TrunkConfig,
};

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `[sip]`.
    pub sip: SipConfig,
    /// `[media]`.
    pub media: MediaConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[[trunk]]` entries, in file order.
    pub trunks: Vec<TrunkConfig>,
    /// `[[route]]` entries, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[mqtt]`: the embedded broker or the external one.
    pub mqtt: MqttConfig,
    /// `[devices]`: claim and command settings.
    pub devices: DevicesConfig,
    /// `[fax]`: fax jobs, T.30/T.38 settings and the job webhook.
    pub fax: FaxConfig,
    /// `[[app]]` entries (WebSocket media-stream apps), in file order.
    pub apps: Vec<AppConfig>,
    /// `[media_ws]`: the media WebSocket ingest server.
    pub media_ws: MediaWsConfig,
    /// `[billing]`: rating calls and faxes against the credits ledger.
    pub billing: BillingConfig,
}

impl Config {
    /// Routes chosen like a dial plan: exact match first, then the longest prefix, then "*";
    /// ties -> first in file order.
    pub fn route(&self, dialed: &str) -> Option<&RouteConfig> {
        route::select(&self.routes, dialed)
    }

    /// The trunk named `name`.
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The trunk whose `address` IP equals `ip` or whose `allow` list contains it. Address
    /// matches win over allow lists; otherwise the first in file order. IPv4-mapped IPv6
    /// sources are treated as IPv4.
    pub fn trunk_for_source(&self, ip: IpAddr) -> Option<&TrunkConfig> {
        let ip = ip.to_canonical();
        self.trunks
            .iter()
            .find(|t| t.address.ip().to_canonical() == ip)
            .or_else(|| {
                self.trunks
                    .iter()
                    .find(|t| t.allow.iter().any(|net| net.contains(&ip)))
            })
    }

    /// The route for `dialed` and the number to send (after strip + prepend).
    pub fn dial(&self, dialed: &str) -> Option<(&RouteConfig, String)> {
        self.route(dialed).map(|r| (r, r.rewrite(dialed)))
    }
}

/// Load: file (if Some) + env overrides from `std::env::vars()` (only valid-Unicode
/// `SWITCHBOARD_*` variables are considered).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let text = match path {
        None => String::new(),
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                p.display().to_string(),
                ConfigErrorKind::Io {
                    path: p.to_path_buf(),
                    kind: e.kind(),
                },
            )])
        })?,
    };
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    load_from_str(&text, &env)
}

/// Same from a string and an explicit env (for tests and check-config).
pub fn load_from_str(toml: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut raw = raw::parse(toml, &mut errors);
    let origins = env::apply(&mut raw, env, &mut errors);
    validate::validate(raw, origins, errors).map_err(|mut errors| {
        // Every error points at its line: the key's, or its table's for a missing key.
        let spans = spans::Spans::of(toml);
        for e in &mut errors {
            if e.position.is_none() {
                e.position = match e.kind {
                    ConfigErrorKind::Syntax { line, column, .. } => {
                        Some(error::Position { line, column })
                    }
                    _ => spans.find(&e.key),
                };
            }
        }
        ConfigErrors(errors)
    })
}

#[cfg(test)]
mod tests;
