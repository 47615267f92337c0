//! Turn the raw file (plus env overrides) into the typed [`Config`], checking every key and
//! collecting every problem. Failed keys fall back to their defaults internally so checking
//! continues; the result is an error whenever anything failed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::fax::T38Policy;
use crate::raw::{RawConfig, RawRoute, RawTrunk};
use crate::route::{is_dial_string, RouteConfig, RoutePattern, RouteTarget, TargetError};
use crate::types::{
    AdminConfig, LogConfig, MediaConfig, Secret, SipConfig, StorageConfig, Transport, TrunkConfig,
};
use crate::{env, Config};

/// Collects errors; keys overridden from the environment are reported by variable name.
pub(crate) struct Checker {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) origins: HashMap<String, String>,
}

impl Checker {
    pub(crate) fn err(&mut self, key: &str, kind: ConfigErrorKind) {
        let key = self.origins.get(key).map_or(key, String::as_str);
        self.errors.push(ConfigError::new(key, kind));
    }

    pub(crate) fn invalid(&mut self, key: &str, value: &str, expected: &str) {
        self.err(
            key,
            ConfigErrorKind::Invalid {
                value: value.to_string(),
                expected: expected.to_string(),
            },
        );
    }

    /// A number in `min..=max` (or the default when absent).
    pub(crate) fn ranged(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        match value {
            None => default,
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                self.err(
                    key,
                    ConfigErrorKind::OutOfRange {
                        value: clamp(v),
                        min: clamp(min),
                        max: clamp(max),
                    },
                );
                default
            }
        }
    }

    pub(crate) fn socket(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: SocketAddr,
    ) -> SocketAddr {
        match value {
            None => default,
            Some(s) => s.trim().parse().unwrap_or_else(|_| {
                self.invalid(key, s, "an IP address and port such as 0.0.0.0:5060");
                default
            }),
        }
    }

    /// An optional, specified IP address; empty means unset.
    fn advertise(&mut self, key: &str, value: Option<&str>) -> Option<IpAddr> {
        let s = value.map(str::trim).filter(|s| !s.is_empty())?;
        match s.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                self.invalid(key, s, "a specific IP address (not 0.0.0.0 or ::)");
                None
            }
        }
    }

    /// A list of networks (`192.0.2.0/24`, `::1/128`; a bare IP is a /32 or /128). A bad
    /// entry is reported at `key[j]`, or at the env variable when the list came from there.
    pub(crate) fn nets(&mut self, key: &str, value: Option<Vec<String>>) -> Vec<ipnet::IpNet> {
        let from_env = self.origins.get(key).cloned();
        let mut out = Vec::new();
        for (j, a) in value.unwrap_or_default().into_iter().enumerate() {
            let s = a.trim();
            let net = s
                .parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
            match net {
                Some(net) => out.push(net),
                None => self.errors.push(ConfigError::new(
                    from_env.clone().unwrap_or_else(|| format!("{key}[{j}]")),
                    ConfigErrorKind::Invalid {
                        value: a,
                        expected: "an IP address or CIDR such as 192.0.2.0/24".into(),
                    },
                )),
            }
        }
        out
    }

    /// A non-empty single-line string.
    pub(crate) fn text(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        match value {
            None => default.to_string(),
            Some(s) if !s.trim().is_empty() && !s.chars().any(char::is_control) => s,
            Some(s) => {
                self.invalid(key, &s, "a non-empty single-line string");
                default.to_string()
            }
        }
    }
}

/// Validate `raw` into a [`Config`]; `origins` maps overridden keys to env variable names.
pub(crate) fn validate(
    raw: RawConfig,
    origins: HashMap<String, String>,
    mut errors: Vec<ConfigError>,
) -> Result<Config, Vec<ConfigError>> {
    let mut c = Checker {
        errors: std::mem::take(&mut errors),
        origins,
    };
    let mut sip = sip(&mut c, raw.sip);
    sip.users = sip_users(&mut c, raw.sip_users);
    let media = MediaConfig {
        rtp_ports: rtp_ports(&mut c, raw.media.rtp_ports.as_deref()),
        advertise: c.advertise("media.advertise", raw.media.advertise.as_deref()),
        allow_loopback: raw.media.allow_loopback.unwrap_or(false),
        rtp_timeout: match c.ranged(
            "media.rtp_timeout_secs",
            raw.media.rtp_timeout_secs,
            60,
            0,
            86_400,
        ) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        },
    };
    let (admin_cert, admin_key) = crate::devices::tls_pair(
        &mut c,
        "admin",
        raw.admin.tls_cert.clone(),
        raw.admin.tls_key.clone(),
    );
    let admin = AdminConfig {
        tls_cert: admin_cert,
        tls_key: admin_key,
        listen: c.socket(
            "admin.listen",
            raw.admin.listen.as_deref(),
            AdminConfig::default().listen,
        ),
        test_hooks: raw.admin.test_hooks.unwrap_or(false),
        bootstrap_key: match raw.admin.bootstrap_key {
            None => None,
            Some(k) if crate::types::is_api_key_shape(&k) => Some(crate::types::Secret::new(k)),
            // The value is a secret: never echo it in the error.
            Some(_) => {
                c.invalid(
                    "admin.bootstrap_key",
                    "(hidden)",
                    "sbk_ + 16 hex digits + _ + 64 hex digits",
                );
                None
            }
        },
        metrics_allow: match raw.admin.metrics_allow {
            None => crate::types::default_metrics_allow(),
            list => c.nets("admin.metrics_allow", list),
        },
        cors_origins: {
            let list = raw.admin.cors_origins.unwrap_or_default();
            for (j, o) in list.iter().enumerate() {
                let ok = (o.starts_with("https://") || o.starts_with("http://"))
                    && o.len() <= 256
                    && !o.contains('*')
                    && !o
                        .trim_end_matches('/')
                        .contains(|ch: char| ch.is_whitespace())
                    && o.splitn(4, '/').count() == 3;
                if !ok {
                    c.invalid(
                        &format!("admin.cors_origins[{j}]"),
                        o,
                        "an exact origin such as https://ops.example.com (no wildcard, no path)",
                    );
                }
            }
            list
        },
        rate_limit_per_ip: c.ranged(
            "admin.rate_limit_per_ip",
            raw.admin.rate_limit_per_ip,
            100,
            1,
            100_000,
        ) as u32,
        rate_limit_per_key: c.ranged(
            "admin.rate_limit_per_key",
            raw.admin.rate_limit_per_key,
            200,
            1,
            100_000,
        ) as u32,
        max_connections: c.ranged(
            "admin.max_connections",
            raw.admin.max_connections,
            256,
            1,
            100_000,
        ) as usize,
        max_connections_per_source: c.ranged(
            "admin.max_connections_per_source",
            raw.admin.max_connections_per_source,
            16,
            1,
            100_000,
        ) as usize,
        header_timeout: Duration::from_secs(c.ranged(
            "admin.header_timeout_secs",
            raw.admin.header_timeout_secs,
            10,
            1,
            300,
        )),
        request_timeout: Duration::from_secs(c.ranged(
            "admin.request_timeout_secs",
            raw.admin.request_timeout_secs,
            120,
            1,
            3600,
        )),
    };
    let storage = StorageConfig {
        path: match raw.storage.path {
            Some(p) if p.trim().is_empty() => {
                c.invalid("storage.path", &p, "a directory path");
                StorageConfig::default().path
            }
            Some(p) => PathBuf::from(p),
            None => StorageConfig::default().path,
        },
    };
    let log = LogConfig {
        level: match raw.log.level {
            Some(l) if l.is_empty() || l.chars().any(char::is_whitespace) => {
                c.invalid(
                    "log.level",
                    &l,
                    "a level or filter such as info or info,sip=debug",
                );
                LogConfig::default().level
            }
            Some(l) => l,
            None => LogConfig::default().level,
        },
        json: raw.log.json.unwrap_or(false),
    };
    let mqtt = crate::devices::mqtt(&mut c, raw.mqtt);
    let devices = crate::devices::devices(&mut c, raw.devices);
    let fax = crate::fax::fax(&mut c, raw.fax);
    let media_ws = crate::media_ws::media_ws(&mut c, raw.media_ws);
    let billing = crate::billing::billing(&mut c, raw.billing);
    // Routes are checked against the names as written, so a trunk or app with an error of its
    // own is not also reported as unknown.
    let written = Written {
        trunks: raw.trunks.iter().filter_map(|t| t.name.clone()).collect(),
        apps: raw.apps.iter().filter_map(|a| a.name.clone()).collect(),
    };
    let trunks = trunks(&mut c, raw.trunks);
    let apps = crate::apps::apps(&mut c, raw.apps);
    duplicate_routes(&mut c, &raw.routes);
    let routes = raw
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| route(&mut c, i, r, &written))
        .collect();
    if c.errors.is_empty() {
        Ok(Config {
            sip,
            media,
            admin,
            storage,
            trunks,
            routes,
            log,
            mqtt,
            devices,
            fax,
            apps,
            media_ws,
            billing,
        })
    } else {
        Err(c.errors)
    }
}

fn sip_users(c: &mut Checker, raw: Vec<crate::raw::RawSipUser>) -> Vec<crate::types::SipUser> {
    let mut out: Vec<crate::types::SipUser> = Vec::new();
    for (i, u) in raw.into_iter().enumerate() {
        let p = format!("sip_user[{i}]");
        let Some(name) = u.username else {
            c.err(&format!("{p}.username"), ConfigErrorKind::Missing);
            continue;
        };
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !valid {
            c.invalid(
                &format!("{p}.username"),
                &name,
                "1 to 64 of A-Z a-z 0-9 _ -",
            );
            continue;
        }
        if out.iter().any(|o| o.username == name) {
            c.invalid(
                &format!("{p}.username"),
                &name,
                "a name not used by another sip_user",
            );
            continue;
        }
        let account = match u.account {
            None => None,
            Some(a) => match crate::billing::AccountRule::parse(&a) {
                Some(crate::billing::AccountRule::Fixed(id)) => Some(id),
                _ => {
                    c.invalid(
                        &format!("{p}.account"),
                        &a,
                        "an account id of 1 to 64 of A-Z a-z 0-9 _ . : @ + - (not starting with @; not caller)",
                    );
                    continue;
                }
            },
        };
        match u.password {
            Some(pw) if pw.len() >= 8 && pw.len() <= 256 => out.push(crate::types::SipUser {
                username: name,
                password: crate::types::Secret::new(pw),
                account,
            }),
            // A secret: never echo it.
            Some(_) => c.invalid(&format!("{p}.password"), "(hidden)", "8 to 256 bytes"),
            None => c.err(&format!("{p}.password"), ConfigErrorKind::Missing),
        }
    }
    out
}

fn sip(c: &mut Checker, raw: crate::raw::RawSip) -> SipConfig {
    let d = SipConfig::default();
    let ms = |v: Duration| u64::try_from(v.as_millis()).unwrap_or(u64::MAX);
    let t1 = c.ranged("sip.t1_ms", raw.t1_ms, ms(d.t1), 1, 60_000);
    let t2 = c.ranged("sip.t2_ms", raw.t2_ms, ms(d.t2), 1, 600_000);
    let t4 = c.ranged("sip.t4_ms", raw.t4_ms, ms(d.t4), 1, 600_000);
    if t2 < t1 {
        c.err(
            "sip.t2_ms",
            ConfigErrorKind::OutOfRange {
                value: i64::try_from(t2).unwrap_or(i64::MAX),
                min: i64::try_from(t1).unwrap_or(i64::MAX),
                max: 600_000,
            },
        );
    }
    let max_calls = c.ranged("sip.max_calls", raw.max_calls, 10_000, 1, 1_000_000);
    let no_answer = c.ranged(
        "sip.no_answer_timeout_secs",
        raw.no_answer_timeout_secs,
        d.no_answer_timeout.as_secs(),
        1,
        86_400,
    );
    let (tls_listen, tls_cert, tls_key) =
        crate::devices::tls_listener(c, "sip", raw.tls_listen, raw.tls_cert, raw.tls_key, 5061);
    SipConfig {
        tls_listen,
        tls_cert,
        tls_key,
        listen: c.socket("sip.listen", raw.listen.as_deref(), d.listen),
        advertise: c.advertise("sip.advertise", raw.advertise.as_deref()),
        t1: Duration::from_millis(t1),
        t2: Duration::from_millis(t2),
        t4: Duration::from_millis(t4),
        user_agent: c.text("sip.user_agent", raw.user_agent, &d.user_agent),
        max_calls: usize::try_from(max_calls).unwrap_or(usize::MAX),
        no_answer_timeout: Duration::from_secs(no_answer),
        trusted: c.nets("sip.trusted", raw.trusted),
        realm: c.text("sip.realm", raw.realm, &d.realm),
        users: Vec::new(),
        rate_limit_per_source: c.ranged(
            "sip.rate_limit_per_source",
            raw.rate_limit_per_source,
            u64::from(d.rate_limit_per_source),
            1,
            100_000,
        ) as u32,
        ban_after: c.ranged(
            "sip.ban_after",
            raw.ban_after,
            u64::from(d.ban_after),
            1,
            1000,
        ) as u32,
        ban_window_secs: c.ranged(
            "sip.ban_window_secs",
            raw.ban_window_secs,
            u64::from(d.ban_window_secs),
            1,
            86_400,
        ) as u32,
        ban_secs: c.ranged(
            "sip.ban_secs",
            raw.ban_secs,
            u64::from(d.ban_secs),
            1,
            604_800,
        ) as u32,
        max_tcp_connections: c.ranged(
            "sip.max_tcp_connections",
            raw.max_tcp_connections,
            d.max_tcp_connections as u64,
            1,
            100_000,
        ) as usize,
        max_tcp_per_source: c.ranged(
            "sip.max_tcp_per_source",
            raw.max_tcp_per_source,
            d.max_tcp_per_source as u64,
            1,
            100_000,
        ) as usize,
        tcp_message_timeout: Duration::from_secs(c.ranged(
            "sip.tcp_message_timeout_secs",
            raw.tcp_message_timeout_secs,
            d.tcp_message_timeout.as_secs(),
            1,
            600,
        )),
        tcp_idle: Duration::from_secs(c.ranged(
            "sip.tcp_idle_secs",
            raw.tcp_idle_secs,
            d.tcp_idle.as_secs(),
            1,
            86_400,
        )),
        nonce_lifetime_secs: c.ranged(
            "sip.nonce_lifetime_secs",
            raw.nonce_lifetime_secs,
            u64::from(d.nonce_lifetime_secs),
            1,
            3600,
        ) as u32,
        max_call: Duration::from_secs(c.ranged(
            "sip.max_call_secs",
            raw.max_call_secs,
            d.max_call.as_secs(),
            1,
            604_800,
        )),
        journal_checkpoint: Duration::from_secs(c.ranged(
            "sip.journal_checkpoint_secs",
            raw.journal_checkpoint_secs,
            d.journal_checkpoint.as_secs(),
            1,
            3600,
        )),
        drain: Duration::from_secs(c.ranged(
            "sip.drain_secs",
            raw.drain_secs,
            d.drain.as_secs(),
            0,
            86_400,
        )),
    }
}

/// `"LOW-HIGH"`: LOW even and non-zero, LOW <= HIGH, at least 4 ports.
fn rtp_ports(c: &mut Checker, value: Option<&str>) -> RangeInclusive<u16> {
    const KEY: &str = "media.rtp_ports";
    let Some(s) = value else {
        return MediaConfig::default().rtp_ports;
    };
    let parsed = s.split_once('-').and_then(|(lo, hi)| {
        Some((
            lo.trim().parse::<u16>().ok()?,
            hi.trim().parse::<u16>().ok()?,
        ))
    });
    match parsed {
        Some((lo, hi)) if lo > 0 && lo % 2 == 0 && lo <= hi && hi - lo >= 3 => lo..=hi,
        Some(_) => {
            c.invalid(
                KEY,
                s,
                "an even, non-zero start, start <= end and at least 4 ports",
            );
            MediaConfig::default().rtp_ports
        }
        None => {
            c.invalid(KEY, s, "a port range such as 20000-20999");
            MediaConfig::default().rtp_ports
        }
    }
}

/// A trunk or app name, or a device id: `[A-Za-z0-9_-]{1,64}` (the device id rule of the MQTT
/// topics, so an id is always one topic level).
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn trunks(c: &mut Checker, raw: Vec<RawTrunk>) -> Vec<TrunkConfig> {
    let mut seen: HashMap<String, String> = HashMap::new(); // env name -> key of first use
    let mut out = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let p = format!("trunk[{i}]");
        let before = c.errors.len();
        let name = match t.name {
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
                let env_name = env::trunk_env_name(&n);
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
        let transport = match t.transport.as_deref() {
            None => Transport::Udp,
            Some(s) => Transport::parse(s).unwrap_or_else(|| {
                c.invalid(&format!("{p}.transport"), s, "udp, tcp or tls");
                Transport::Udp
            }),
        };
        let resolved = match t.address.as_deref() {
            None => {
                c.err(&format!("{p}.address"), ConfigErrorKind::Missing);
                None
            }
            Some(a) => address(c, &format!("{p}.address"), a, transport.default_port()),
        };
        let username = t.username.filter(|u| {
            let ok = !u.is_empty() && !u.chars().any(|ch| ch.is_control() || ch == ' ');
            if !ok {
                c.invalid(
                    &format!("{p}.username"),
                    u,
                    "a non-empty user name without spaces",
                );
            }
            ok
        });
        let password = t.password.map(Secret::new);
        let register = t.register.unwrap_or(false);
        if register && username.is_none() {
            c.err(
                &format!("{p}.register"),
                ConfigErrorKind::Requires { needs: "username" },
            );
        }
        if register && password.is_none() {
            c.err(
                &format!("{p}.register"),
                ConfigErrorKind::Requires { needs: "password" },
            );
        }
        let register_expires = match t.register_expires {
            None => 3600,
            Some(v) => u32::try_from(v)
                .ok()
                .filter(|v| (60..=86_400).contains(v))
                .unwrap_or_else(|| {
                    c.err(
                        &format!("{p}.register_expires"),
                        ConfigErrorKind::OutOfRange {
                            value: v,
                            min: 60,
                            max: 86_400,
                        },
                    );
                    3600
                }),
        };
        let interval = c.ranged(
            &format!("{p}.keepalive_secs"),
            t.keepalive_secs,
            30,
            0,
            86_400,
        );
        // `qualify` (as Asterisk's) turns OPTIONS probing on; without it, an explicit
        // `keepalive_secs` above zero does, as it did before `qualify` existed.
        let keepalive = match (t.qualify, t.keepalive_secs) {
            (Some(true), Some(0)) => {
                c.invalid(
                    &format!("{p}.keepalive_secs"),
                    "0",
                    "1 to 86400 seconds when qualify = true (or qualify = false)",
                );
                0
            }
            (Some(true), _) => interval,
            (Some(false), _) | (None, None) => 0,
            (None, Some(_)) => interval,
        };
        let allow = c.nets(&format!("{p}.allow"), t.allow);
        let from_domain = t.from_domain.filter(|d| {
            let ok = !d.is_empty()
                && d.chars().all(|ch| {
                    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':' | '[' | ']')
                });
            if !ok {
                c.invalid(&format!("{p}.from_domain"), d, "a host name or IP address");
            }
            ok
        });
        let tls_ca = crate::devices::path(c, &format!("{p}.tls_ca"), t.tls_ca);
        let tls_server_name = t.tls_server_name.filter(|n| {
            let ok = valid_tls_name(n);
            if !ok {
                c.invalid(
                    &format!("{p}.tls_server_name"),
                    n,
                    "a DNS name or an IP address",
                );
            }
            ok
        });
        if transport != Transport::Tls {
            for (set, key) in [
                (tls_ca.is_some(), "tls_ca"),
                (tls_server_name.is_some(), "tls_server_name"),
            ] {
                if set {
                    c.err(
                        &format!("{p}.{key}"),
                        ConfigErrorKind::Requires {
                            needs: "transport = \"tls\"",
                        },
                    );
                }
            }
        }
        let t38 = match t.t38.as_deref() {
            None => T38Policy::default(),
            Some(s) => T38Policy::parse(s.trim()).unwrap_or_else(|| {
                c.invalid(&format!("{p}.t38"), s, "prefer or never");
                T38Policy::default()
            }),
        };
        let price_per_minute =
            crate::billing::price(c, &format!("{p}.price_per_minute"), t.price_per_minute);
        let account = crate::billing::account_rule(c, &format!("{p}.account"), t.account);
        if let (Some((address, host)), true) = (resolved, c.errors.len() == before) {
            out.push(TrunkConfig {
                name,
                address,
                host,
                transport,
                username,
                password,
                register,
                register_expires,
                keepalive: Duration::from_secs(keepalive),
                allow,
                from_domain,
                t38,
                tls_ca,
                tls_server_name,
                price_per_minute,
                account,
            });
        }
    }
    out
}

/// A TLS server name: an IP address, or a DNS name of letters, digits, `-` and `.`.
fn valid_tls_name(n: &str) -> bool {
    if n.parse::<IpAddr>().is_ok() {
        return true;
    }
    (1..=253).contains(&n.len())
        && n.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Split `host[:port]` (IPv6 as `[addr]:port` or bare), resolve it (first IPv4 preferred).
/// Returns (address, host as written without port).
fn address(
    c: &mut Checker,
    key: &str,
    written: &str,
    default_port: u16,
) -> Option<(SocketAddr, String)> {
    let s = written.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        let host = match sa {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        return Some((sa, host));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        return Some((SocketAddr::new(ip, default_port), host));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, port),
            _ => {
                c.invalid(key, written, "host or host:port with a port in 1..=65535");
                return None;
            }
        },
        None => (s, default_port),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-');
    if !host_ok {
        c.invalid(key, written, "host or host:port");
        return None;
    }
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => Vec::new(),
    };
    match addrs.iter().find(|a| a.is_ipv4()).or_else(|| addrs.first()) {
        Some(a) => Some((*a, host.to_string())),
        None => {
            c.err(
                key,
                ConfigErrorKind::Unresolvable {
                    host: host.to_string(),
                },
            );
            None
        }
    }
}

/// Trunk and app names as written in the file.
struct Written {
    trunks: HashSet<String>,
    apps: HashSet<String>,
}

/// A route whose `match` an earlier route already has is never chosen (ties go to the first
/// in file order): flag it. `0044*` and `0044` differ (prefix and exact number).
fn duplicate_routes(c: &mut Checker, routes: &[RawRoute]) {
    let mut seen: HashMap<RoutePattern, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let Some(pattern) = r.pattern.as_deref().and_then(RoutePattern::parse) else {
            continue;
        };
        match seen.get(&pattern) {
            Some(first) => c.err(
                &format!("route[{i}].match"),
                ConfigErrorKind::DuplicateRoute {
                    pattern: pattern.to_string(),
                    first: format!("route[{first}]"),
                },
            ),
            None => {
                seen.insert(pattern, i);
            }
        }
    }
}

fn route(c: &mut Checker, i: usize, r: RawRoute, written: &Written) -> Option<RouteConfig> {
    let p = format!("route[{i}]");
    let before = c.errors.len();
    // Whether `to` is a trunk route (`None` when `to` is absent or not a target at all).
    let mut is_trunk = None;
    let pattern = match r.pattern.as_deref() {
        None => {
            c.err(&format!("{p}.match"), ConfigErrorKind::Missing);
            None
        }
        Some(s) => RoutePattern::parse(s).or_else(|| {
            c.invalid(
                &format!("{p}.match"),
                s,
                "digits, +, # and * (NUMBER, PREFIX* or *)",
            );
            None
        }),
    };
    let to = match r.to.as_deref() {
        None => {
            c.err(&format!("{p}.to"), ConfigErrorKind::Missing);
            None
        }
        Some(s) => match RouteTarget::parse(s) {
            Ok(t) => {
                is_trunk = Some(matches!(t, RouteTarget::Trunk(_)));
                match t {
                    RouteTarget::Trunk(name) if !written.trunks.contains(&name) => {
                        c.err(&format!("{p}.to"), ConfigErrorKind::UnknownTrunk { name });
                        None
                    }
                    RouteTarget::App(name) if !written.apps.contains(&name) => {
                        c.err(&format!("{p}.to"), ConfigErrorKind::UnknownApp { name });
                        None
                    }
                    t => Some(t),
                }
            }
            Err(TargetError::Unsupported) => {
                c.err(
                    &format!("{p}.to"),
                    ConfigErrorKind::UnsupportedTarget {
                        target: s.to_string(),
                    },
                );
                None
            }
            Err(TargetError::Invalid) => {
                c.invalid(
                    &format!("{p}.to"),
                    s,
                    "trunk:NAME, fax, app:NAME or device:ID",
                );
                None
            }
            Err(TargetError::BadDeviceId) => {
                c.invalid(
                    &format!("{p}.to"),
                    s,
                    "device:ID with an ID of 1 to 64 of A-Z a-z 0-9 _ -",
                );
                None
            }
        },
    };
    let fork = r.fork.inspect(|name| {
        let key = format!("{p}.fork");
        if is_trunk == Some(false) {
            c.invalid(
                &key,
                name,
                "no fork: only a trunk:NAME route can fork its audio to an app",
            );
        }
        if !written.apps.contains(name) {
            c.err(&key, ConfigErrorKind::UnknownApp { name: name.clone() });
        }
    });
    let parameters = crate::apps::parameters(c, &format!("{p}.parameters"), r.parameters);
    let price_per_minute = r.price_per_minute.map(|v| {
        let key = format!("{p}.price_per_minute");
        if is_trunk == Some(false) {
            c.invalid(
                &key,
                &v.to_string(),
                "no price: only trunk:NAME routes are rated (fax pages: [billing] price_per_page)",
            );
        }
        crate::billing::price(c, &key, Some(v))
    });
    let account = crate::billing::account_rule(c, &format!("{p}.account"), r.account);
    let strip = c.ranged(&format!("{p}.strip"), r.strip, 0, 0, 64);
    let prepend = r.prepend.unwrap_or_default();
    if !is_dial_string(&prepend) || prepend.len() > 64 {
        c.invalid(
            &format!("{p}.prepend"),
            &prepend,
            "up to 64 of digits, +, # and *",
        );
    }
    match (pattern, to, c.errors.len() == before) {
        (Some(pattern), Some(to), true) => Some(RouteConfig {
            pattern,
            to,
            strip: usize::try_from(strip).unwrap_or(0),
            prepend,
            parameters,
            fork,
            price_per_minute,
            account,
        }),
        _ => None,
    }
}
