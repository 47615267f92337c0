//! Whole-crate tests: the example file, every error kind, env precedence, dial plan.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../switchboard.example.toml");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(toml: &str) -> Config {
    load_from_str(toml, &[]).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errs(toml: &str) -> ConfigErrors {
    load_from_str(toml, &[]).expect_err("expected errors")
}

fn example_env() -> Vec<(String, String)> {
    env(&[
        ("SWITCHBOARD_TRUNK_CARRIER_A_USERNAME", "alice"),
        ("SWITCHBOARD_TRUNK_CARRIER_A_PASSWORD", "s3cret"),
    ])
}

#[test]
fn example_loads_cleanly() {
    let c = load_from_str(EXAMPLE, &example_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip, SipConfig::default());
    assert_eq!(c.media, MediaConfig::default());
    assert_eq!(c.admin, AdminConfig::default());
    assert_eq!(c.storage, StorageConfig::default());
    assert_eq!(c.log, LogConfig::default());
    assert_eq!(c.mqtt, MqttConfig::default());
    assert_eq!(c.devices, DevicesConfig::default());
    assert_eq!(c.fax, FaxConfig::default());
    assert_eq!(c.trunks.len(), 2);
    let a = c.trunk("carrier-a").unwrap();
    assert_eq!(a.address, "192.0.2.10:5060".parse::<SocketAddr>().unwrap());
    assert_eq!(a.host, "192.0.2.10");
    assert!(a.register);
    assert_eq!(a.username.as_deref(), Some("alice"));
    assert_eq!(a.password.as_ref().map(Secret::expose), Some("s3cret"));
    assert_eq!(a.allow.len(), 2);
    assert_eq!(a.allow[1].to_string(), "198.51.100.7/32");
    let pbx = c.trunk("pbx").unwrap();
    assert_eq!(pbx.transport, Transport::Tcp);
    assert_eq!(pbx.keepalive, Duration::ZERO);
    assert_eq!(pbx.address.port(), 5060);
    assert_eq!(a.t38, T38Policy::Prefer);
    assert_eq!(c.media_ws, MediaWsConfig::default());
    assert_eq!(c.routes.len(), 7);
    // Apps, routes to an app and a device, and a forked trunk route.
    assert_eq!(c.apps.len(), 2);
    let bot = c.app("voicebot").unwrap();
    assert_eq!(
        (bot.mode, bot.sample_rate, bot.on_failure),
        (StreamDialect::Twilio, 8000, AppFailure::Hangup)
    );
    assert!(bot.bidirectional && bot.auth_header.is_none());
    assert_eq!(bot.parameters["tenant"], "acme");
    let rec = c.app("recorder").unwrap();
    assert_eq!(
        (rec.mode, rec.sample_rate, rec.on_failure),
        (StreamDialect::Exotel, 16_000, AppFailure::Continue)
    );
    assert!(!rec.bidirectional);
    let app = c.route("08001234").unwrap();
    assert_eq!(app.to, RouteTarget::App("voicebot".into()));
    assert_eq!(bot.parameters_with(&app.parameters).len(), 3);
    assert_eq!(
        c.route("100").unwrap().to.to_string(),
        "device:esp32-kitchen"
    );
    assert_eq!(
        c.dial("0012125550100")
            .map(|(r, n)| (r.to.to_string(), r.fork.clone(), n)),
        Some((
            "trunk:carrier-a".into(),
            Some("recorder".into()),
            "+12125550100".into()
        ))
    );
    // Every route's target round-trips through Display.
    for r in &c.routes {
        assert_eq!(
            route::RouteTarget::parse(&r.to.to_string()).as_ref(),
            Ok(&r.to)
        );
    }
    let fax = c.route("+4930555000").unwrap();
    assert_eq!(fax.to, RouteTarget::Fax);
    assert_eq!(fax.to.to_string(), "fax");
    assert_eq!(
        c.dial("00442071234567").map(|(r, n)| (r.to.to_string(), n)),
        Some(("trunk:carrier-a".into(), "+442071234567".into()))
    );
}

#[test]
fn example_without_credentials_says_what_is_missing() {
    let e = load_from_str(EXAMPLE, &[]).unwrap_err();
    // Positions are checked in the check-config tests below.
    let without_position: Vec<ConfigError> =
        e.0.iter()
            .map(|x| ConfigError::new(x.key.clone(), x.kind.clone()))
            .collect();
    assert_eq!(
        without_position,
        vec![
            ConfigError::new(
                "trunk[0].register",
                ConfigErrorKind::Requires { needs: "username" }
            ),
            ConfigError::new(
                "trunk[0].register",
                ConfigErrorKind::Requires { needs: "password" }
            ),
        ]
    );
}

#[test]
fn empty_file_is_default() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(load_from_str("", &[]).unwrap().trunks, vec![]);
}

#[test]
fn every_error_kind_at_its_key() {
    let e = errs(
        r#"
        [sip]
        listen = "nowhere"
        advertise = "0.0.0.0"
        t1_ms = 0
        user_agent = "evil\r\nX: y"
        extra = 1

        [media]
        rtp_ports = "20001-20999"

        [[trunk]]
        name = "a"
        address = "host.invalid:5060"

        [[trunk]]
        name = "a"
        address = "192.0.2.1:70000"
        transport = "sctp"
        register = true
        register_expires = 10
        allow = ["10.0.0.0/33"]

        [[trunk]]
        address = "192.0.2.2"

        [[route]]
        match = "00x"
        to = "trunk:nope"

        [[route]]
        match = "1*"
        to = "queue"

        [[route]]
        to = "sip:x"
        prepend = "abc"
        "#,
    );
    use ConfigErrorKind as K;
    let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
    assert!(matches!(at("sip.listen"), K::Invalid { value, .. } if value == "nowhere"));
    assert!(matches!(at("sip.advertise"), K::Invalid { .. }));
    assert_eq!(
        at("sip.t1_ms"),
        &K::OutOfRange {
            value: 0,
            min: 1,
            max: 60_000
        }
    );
    assert!(matches!(at("sip.user_agent"), K::Invalid { .. }));
    assert!(matches!(at("sip.extra"), K::UnknownKey { .. }));
    assert!(matches!(at("media.rtp_ports"), K::Invalid { .. }));
    assert_eq!(
        at("trunk[0].address"),
        &K::Unresolvable {
            host: "host.invalid".into()
        }
    );
    assert_eq!(
        at("trunk[1].name"),
        &K::Duplicate {
            name: "a".into(),
            first: "trunk[0].name".into()
        }
    );
    assert!(matches!(at("trunk[1].address"), K::Invalid { .. }));
    assert!(matches!(at("trunk[1].transport"), K::Invalid { value, .. } if value == "sctp"));
    assert_eq!(at("trunk[1].register"), &K::Requires { needs: "username" });
    assert_eq!(
        at("trunk[1].register_expires"),
        &K::OutOfRange {
            value: 10,
            min: 60,
            max: 86_400
        }
    );
    assert!(matches!(at("trunk[1].allow[0]"), K::Invalid { .. }));
    assert_eq!(at("trunk[2].name"), &K::Missing);
    assert!(matches!(at("route[0].match"), K::Invalid { .. }));
    assert_eq!(
        at("route[0].to"),
        &K::UnknownTrunk {
            name: "nope".into()
        }
    );
    assert_eq!(
        at("route[1].to"),
        &K::UnsupportedTarget {
            target: "queue".into()
        }
    );
    assert_eq!(at("route[2].match"), &K::Missing);
    assert!(matches!(at("route[2].to"), K::Invalid { .. }));
    assert!(matches!(at("route[2].prepend"), K::Invalid { .. }));
    // Every line is "key: message".
    for line in e.to_string().lines() {
        assert!(line.split_once(": ").is_some(), "{line}");
    }
}

#[test]
fn io_and_syntax_errors() {
    let missing = std::path::Path::new("/nonexistent/switchboard.toml");
    let e = load(Some(missing)).unwrap_err();
    assert!(matches!(
        &e.0[0].kind,
        ConfigErrorKind::Io {
            kind: std::io::ErrorKind::NotFound,
            ..
        }
    ));
    let e = errs("[sip\n");
    assert!(matches!(
        &e.0[0].kind,
        ConfigErrorKind::Syntax { line: 1, .. }
    ));
    assert_eq!(e.0[0].key, "file");
}

#[test]
fn rtp_port_rules() {
    for bad in [
        "0-10",
        "20001-20999",
        "20000-20002",
        "20010-20000",
        "20000",
        "a-b",
        "20000-70000",
    ] {
        let e = errs(&format!("[media]\nrtp_ports = \"{bad}\""));
        assert!(e.at("media.rtp_ports").is_some(), "{bad} accepted");
    }
    assert_eq!(
        ok("[media]\nrtp_ports = \"10000-10003\"").media.rtp_ports,
        10000..=10003
    );
}

#[test]
fn typed_values() {
    let c = ok(r#"
        [sip]
        listen = "0.0.0.0:5080"
        advertise = "203.0.113.1"
        t1_ms = 250
        t2_ms = 2000
        t4_ms = 3000
        max_calls = 5
        no_answer_timeout_secs = 30
        [admin]
        test_hooks = true
        [log]
        json = true
        level = "info,switchboard_sip=debug"
        [[trunk]]
        name = "v6"
        address = "[2001:db8::1]"
        transport = "tls"
        [[trunk]]
        name = "local"
        address = "localhost:5070"
        "#);
    assert_eq!(c.sip.listen.port(), 5080);
    assert_eq!(
        c.sip.advertised_ip(),
        "203.0.113.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.sip.t1, Duration::from_millis(250));
    assert_eq!(c.sip.no_answer_timeout, Duration::from_secs(30));
    assert_eq!(c.sip.max_calls, 5);
    assert!(c.admin.test_hooks && c.log.json);
    let v6 = c.trunk("v6").unwrap();
    assert_eq!(
        v6.address,
        "[2001:db8::1]:5061".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(v6.host, "[2001:db8::1]");
    let local = c.trunk("local").unwrap();
    assert_eq!(local.host, "localhost");
    assert_eq!(local.address.port(), 5070);
    assert!(local.address.ip().is_loopback());
    assert!(errs("[sip]\nt1_ms = 900\nt2_ms = 800")
        .at("sip.t2_ms")
        .is_some());
}

#[test]
fn env_overrides_file_and_defaults() {
    let file = "[sip]\nlisten = \"127.0.0.1:5070\"\nt1_ms = 700\n[log]\nlevel = \"warn\"\n";
    let c = load_from_str(
        file,
        &env(&[
            ("SWITCHBOARD_SIP_LISTEN", "0.0.0.0:5090"),
            ("SWITCHBOARD_SIP_ADVERTISE", "198.51.100.9"),
            ("SWITCHBOARD_MEDIA_RTP_PORTS", "30000-30099"),
            ("SWITCHBOARD_ADMIN_LISTEN", "0.0.0.0:9000"),
            ("SWITCHBOARD_ADMIN_TEST_HOOKS", "true"),
            ("SWITCHBOARD_STORAGE_PATH", "/var/lib/sb"),
            ("SWITCHBOARD_LOG_JSON", "1"),
            ("SWITCHBOARD_LOG_LEVEL", ""),
        ]),
    )
    .unwrap();
    assert_eq!(c.sip.listen, "0.0.0.0:5090".parse::<SocketAddr>().unwrap());
    assert_eq!(c.sip.t1, Duration::from_millis(700), "file beats default");
    assert_eq!(
        c.sip.advertised_ip(),
        "198.51.100.9".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.media.rtp_ports, 30000..=30099);
    assert_eq!(c.admin.listen.port(), 9000);
    assert!(c.admin.test_hooks && c.log.json);
    assert_eq!(c.storage.path, std::path::PathBuf::from("/var/lib/sb"));
    assert_eq!(c.log.level, "info", "empty env clears the file value");
    // Later duplicates in the env list win, like a shell's last assignment.
    let c = load_from_str(
        "",
        &env(&[
            ("SWITCHBOARD_SIP_T1_MS", "100"),
            ("SWITCHBOARD_SIP_T1_MS", "200"),
        ]),
    )
    .unwrap();
    assert_eq!(c.sip.t1, Duration::from_millis(200));
}

#[test]
fn bad_env_values_name_the_variable() {
    let e = load_from_str(
        "[sip]\nlisten = \"127.0.0.1:5060\"",
        &env(&[
            ("SWITCHBOARD_SIP_LISTEN", "garbage"),
            ("SWITCHBOARD_SIP_T1_MS", "-5"),
            ("SWITCHBOARD_MEDIA_RTP_PORTS", "1-2"),
            ("SWITCHBOARD_ADMIN_TEST_HOOKS", "perhaps"),
            ("SWITCHBOARD_SIP_MAX_CALLS", "0"),
        ]),
    )
    .unwrap_err();
    let mut keys: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "SWITCHBOARD_ADMIN_TEST_HOOKS",
            "SWITCHBOARD_MEDIA_RTP_PORTS",
            "SWITCHBOARD_SIP_LISTEN",
            "SWITCHBOARD_SIP_MAX_CALLS",
            "SWITCHBOARD_SIP_T1_MS",
        ]
    );
}

#[test]
fn trunk_credentials_from_env() {
    let file = r#"
        [[trunk]]
        name = "my-carrier"
        address = "192.0.2.5"
        username = "file-user"
        password = "file-pass"
        register = true
        "#;
    let c = load_from_str(
        file,
        &env(&[("SWITCHBOARD_TRUNK_MY_CARRIER_PASSWORD", "env-pass")]),
    )
    .unwrap();
    let t = c.trunk("my-carrier").unwrap();
    assert_eq!(t.username.as_deref(), Some("file-user"));
    assert_eq!(t.password.as_ref().unwrap().expose(), "env-pass");
    assert_eq!(
        format!("{t:?}").matches("env-pass").count(),
        0,
        "secret leaked"
    );
    let e = load_from_str(
        file,
        &env(&[("SWITCHBOARD_TRUNK_MY_CARRIER_USERNAME", "has space")]),
    )
    .unwrap_err();
    assert!(
        e.at("SWITCHBOARD_TRUNK_MY_CARRIER_USERNAME").is_some(),
        "{e}"
    );
}

#[test]
fn trunk_names_must_differ_as_env_names() {
    let e = errs(
        "[[trunk]]\nname = \"a-b\"\naddress = \"192.0.2.1\"\n\
         [[trunk]]\nname = \"A_B\"\naddress = \"192.0.2.2\"\n",
    );
    assert!(matches!(
        e.at("trunk[1].name"),
        Some(ConfigErrorKind::Duplicate { .. })
    ));
    let long = "x".repeat(65);
    let e = errs(&format!(
        "[[trunk]]\nname = \"{long}\"\naddress = \"192.0.2.1\"\n"
    ));
    assert!(matches!(
        e.at("trunk[0].name"),
        Some(ConfigErrorKind::Invalid { .. })
    ));
}

#[test]
fn route_selection_and_dial() {
    let c = ok(r#"
        [[trunk]]
        name = "a"
        address = "192.0.2.1"
        [[trunk]]
        name = "b"
        address = "192.0.2.2"
        [[route]]
        match = "*"
        to = "trunk:b"
        [[route]]
        match = "00*"
        to = "trunk:b"
        strip = 2
        prepend = "+"
        [[route]]
        match = "0044*"
        to = "trunk:a"
        strip = 4
        prepend = "+44"
        [[route]]
        match = "0044123"
        to = "trunk:b"
        "#);
    let target = |d: &str| c.route(d).map(|r| r.to.to_string());
    assert_eq!(target("0044123").as_deref(), Some("trunk:b"), "exact first");
    assert_eq!(
        target("00441234").as_deref(),
        Some("trunk:a"),
        "longest prefix"
    );
    assert_eq!(target("0033").as_deref(), Some("trunk:b"));
    assert_eq!(c.dial("004420").unwrap().1, "+4420");
    assert_eq!(c.dial("0033").unwrap().1, "+33");
    assert_eq!(c.dial("911").unwrap().1, "911");
    assert!(RoutePattern::Prefix("00".into()).matches("0033"));
    let none = ok("");
    assert_eq!(none.dial("1"), None);
}

#[test]
fn trunk_for_source_prefers_address() {
    let c = ok(r#"
        [[trunk]]
        name = "wide"
        address = "192.0.2.50"
        allow = ["192.0.2.0/24"]
        [[trunk]]
        name = "exact"
        address = "192.0.2.7"
        "#);
    let name = |ip: &str| {
        c.trunk_for_source(ip.parse().unwrap())
            .map(|t| t.name.as_str())
    };
    assert_eq!(name("192.0.2.7"), Some("exact"));
    assert_eq!(name("192.0.2.8"), Some("wide"));
    assert_eq!(name("::ffff:192.0.2.7"), Some("exact"));
    assert_eq!(name("198.51.100.1"), None);
    assert!(c.trunk("nope").is_none());
}

#[test]
fn sip_tls_listener_needs_its_certificate_pair() {
    let c = ok(r#"
        [sip]
        tls_listen = "0.0.0.0:5061"
        tls_cert = "/etc/switchboard/sip.crt"
        tls_key = "/etc/switchboard/sip.key"
        "#);
    assert_eq!(c.sip.tls_listen, Some("0.0.0.0:5061".parse().unwrap()));
    assert_eq!(
        c.sip.tls_cert.as_deref(),
        Some(std::path::Path::new("/etc/switchboard/sip.crt"))
    );
    assert_eq!(SipConfig::default().tls_listen, None, "off by default");
    let e = errs("[sip]\ntls_listen = \"0.0.0.0:5061\"\ntls_cert = \"c.pem\"");
    assert_eq!(
        e.at("sip.tls_listen"),
        Some(&ConfigErrorKind::Requires { needs: "tls_key" })
    );
    let e = errs("[sip]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
    assert_eq!(
        e.at("sip.tls_cert"),
        Some(&ConfigErrorKind::Requires {
            needs: "tls_listen"
        })
    );
    let e = errs("[sip]\ntls_listen = \"5061\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"");
    assert!(
        matches!(
            e.at("sip.tls_listen"),
            Some(ConfigErrorKind::Invalid { .. })
        ),
        "{e}"
    );
    // From the environment, errors name the variable.
    let c = load_from_str(
        "",
        &env(&[
            ("SWITCHBOARD_SIP_TLS_LISTEN", "127.0.0.1:5061"),
            ("SWITCHBOARD_SIP_TLS_CERT", "c.pem"),
            ("SWITCHBOARD_SIP_TLS_KEY", "k.pem"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sip.tls_listen, Some("127.0.0.1:5061".parse().unwrap()));
    let e = load_from_str(
        "",
        &env(&[("SWITCHBOARD_SIP_TLS_LISTEN", "127.0.0.1:5061")]),
    )
    .expect_err("a listener without certificates");
    assert!(e.at("SWITCHBOARD_SIP_TLS_LISTEN").is_some(), "{e}");
}

#[test]
fn tls_trunk_keys() {
    let c = ok(r#"
        [[trunk]]
        name = "secure"
        address = "localhost"
        transport = "tls"
        tls_ca = "/etc/switchboard/carrier-ca.pem"
        [[trunk]]
        name = "by-ip"
        address = "192.0.2.9"
        transport = "tls"
        tls_server_name = "sbc.example.net"
        [[trunk]]
        name = "v6"
        address = "[2001:db8::1]:5071"
        transport = "tls"
        "#);
    let secure = c.trunk("secure").unwrap();
    assert_eq!(secure.address.port(), 5061);
    assert_eq!(secure.tls_name(), "localhost");
    assert!(secure.tls_ca.is_some());
    assert_eq!(c.trunk("by-ip").unwrap().tls_name(), "sbc.example.net");
    assert_eq!(c.trunk("v6").unwrap().tls_name(), "2001:db8::1");
    let e = errs(
        "[[trunk]]\nname = \"t\"\naddress = \"192.0.2.1\"\ntls_ca = \"ca.pem\"\ntls_server_name = \"x.example\"",
    );
    for key in ["trunk[0].tls_ca", "trunk[0].tls_server_name"] {
        assert_eq!(
            e.at(key),
            Some(&ConfigErrorKind::Requires {
                needs: "transport = \"tls\""
            }),
            "{e}"
        );
    }
    let e = errs(
        "[[trunk]]\nname = \"t\"\naddress = \"192.0.2.1\"\ntransport = \"tls\"\ntls_server_name = \"bad name\"",
    );
    assert!(
        matches!(
            e.at("trunk[0].tls_server_name"),
            Some(ConfigErrorKind::Invalid { .. })
        ),
        "{e}"
    );
}

#[test]
fn media_hardening_keys() {
    let d = ok("");
    assert!(!d.media.allow_loopback);
    assert_eq!(d.media.rtp_timeout, Some(Duration::from_secs(60)));
    assert_eq!(d.sip.max_call, Duration::from_secs(4 * 3600));
    let c = ok("[sip]\nmax_call_secs = 30\n[media]\nallow_loopback = true\nrtp_timeout_secs = 0");
    assert!(c.media.allow_loopback);
    assert_eq!(c.media.rtp_timeout, None);
    assert_eq!(c.sip.max_call, Duration::from_secs(30));
    let e = errs("[sip]\nmax_call_secs = 0\n[media]\nrtp_timeout_secs = 86401");
    assert!(e.at("sip.max_call_secs").is_some(), "{e}");
    assert!(e.at("media.rtp_timeout_secs").is_some(), "{e}");
    let c = load_from_str(
        "",
        &env(&[
            ("SWITCHBOARD_MEDIA_ALLOW_LOOPBACK", "true"),
            ("SWITCHBOARD_MEDIA_RTP_TIMEOUT_SECS", "5"),
            ("SWITCHBOARD_SIP_MAX_CALL_SECS", "7"),
        ]),
    )
    .unwrap();
    assert!(c.media.allow_loopback);
    assert_eq!(c.media.rtp_timeout, Some(Duration::from_secs(5)));
    assert_eq!(c.sip.max_call, Duration::from_secs(7));
}

// ---- check-config messages (issue 12) ----

fn position(e: &ConfigErrors, key: &str) -> Option<(usize, usize)> {
    e.0.iter()
        .find(|x| x.key == key)
        .and_then(|x| x.position)
        .map(|p| (p.line, p.column))
}

#[test]
fn every_error_has_the_line_of_its_key_or_of_its_table() {
    let e = errs(
        "[sip]\nt1_ms = 500\nlisten = \"nowhere\"\n\n[[trunk]]\nname = \"a\"\naddress = \"1.2.3.4:5060\"\n\n[[route]]\nmatch = \"0044*\"\nto = \"trunk:nope\"\n\n[[route]]\nto = \"fax\"\n",
    );
    // A bad value: its key's line and column.
    assert_eq!(position(&e, "sip.listen"), Some((3, 1)), "{e:?}");
    // A reference to nothing: the key naming it.
    assert_eq!(position(&e, "route[0].to"), Some((11, 1)), "{e:?}");
    // A missing key: the table it is missing from.
    let (line, _) = position(&e, "route[1].match").expect("a position for a missing key");
    assert!((13..=14).contains(&line), "{e:?}");
    // Rendered like a compiler's message.
    assert!(
        e.render("sb.toml")
            .lines()
            .any(|l| l.starts_with("sb.toml:3:1: sip.listen:")),
        "{}",
        e.render("sb.toml")
    );
    // Values from the environment have no line.
    let e = load_from_str("", &env(&[("SWITCHBOARD_SIP_T1_MS", "fast")])).unwrap_err();
    assert_eq!(e.0[0].position, None);
}

#[test]
fn misspelled_keys_get_a_did_you_mean_in_every_section() {
    let e = errs(
        "[sip]\nlistn = \"127.0.0.1:5060\"\n[tunk]\n[[trunk]]\nname = \"a\"\naddress = \"1.2.3.4:5060\"\ntrasport = \"udp\"\n[media]\nrtp_prots = \"20000-20999\"\n[admin]\nzzzz = 1\n",
    );
    let hint = |key: &str| match e.at(key) {
        Some(ConfigErrorKind::UnknownKey { did_you_mean }) => did_you_mean.clone(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(hint("sip.listn").as_deref(), Some("listen"));
    assert_eq!(hint("tunk").as_deref(), Some("trunk"));
    assert_eq!(hint("trunk[0].trasport").as_deref(), Some("transport"));
    assert_eq!(hint("media.rtp_prots").as_deref(), Some("rtp_ports"));
    assert_eq!(hint("admin.zzzz"), None, "nothing close: no guess");
    assert!(e
        .to_string()
        .contains("sip.listn: unknown key; did you mean `listen`?"));
    assert_eq!(position(&e, "trunk[0].trasport"), Some((7, 1)));
}

#[test]
fn type_errors_say_what_is_expected_without_rust_type_names() {
    let e = errs(
        "[sip]\nt1_ms = \"fast\"\ntrusted = \"10.0.0.0/8\"\n[media]\nallow_loopback = \"yes\"\nrtp_ports = 5\n[sip_user]\nx = 1\n",
    );
    let text = e.to_string();
    for rust in [
        "u64", "u16", "u32", "usize", "i64", "struct ", "sequence", "a map", "Raw",
    ] {
        assert!(!text.contains(rust), "`{rust}` in:\n{text}");
    }
    assert!(
        matches!(
            e.at("sip.t1_ms"),
            Some(ConfigErrorKind::Invalid { expected, .. }) if expected.contains("whole number")
        ),
        "{text}"
    );
    assert!(
        matches!(
            e.at("media.allow_loopback"),
            Some(ConfigErrorKind::Invalid { expected, .. }) if expected == "true or false"
        ),
        "{text}"
    );
    assert!(
        matches!(
            e.at("sip.trusted"),
            Some(ConfigErrorKind::Invalid { expected, .. }) if expected.contains("list")
        ),
        "{text}"
    );
}

#[test]
fn a_route_matching_what_an_earlier_route_matches_is_flagged() {
    let e = errs(
        "[[route]]\nmatch = \"0044*\"\nto = \"fax\"\n\n[[route]]\nmatch = \"0044\"\nto = \"fax\"\n\n[[route]]\nmatch = \"0044*\"\nto = \"fax\"\n",
    );
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        e.at("route[2].match"),
        Some(&ConfigErrorKind::DuplicateRoute {
            pattern: "0044*".into(),
            first: "route[0]".into()
        })
    );
    assert_eq!(position(&e, "route[2].match"), Some((10, 1)));
}

#[test]
fn a_missing_file_is_named_once() {
    let path = std::path::Path::new("/nonexistent/sb-check.toml");
    let e = load(Some(path)).unwrap_err();
    let text = e.render(&path.display().to_string());
    assert_eq!(text.matches("sb-check.toml").count(), 1, "{text}");
    assert!(text.contains("no such file"), "{text}");
}

#[test]
fn journal_checkpoint_key() {
    assert_eq!(ok("").sip.journal_checkpoint, Duration::from_secs(10));
    let c = ok("[sip]\njournal_checkpoint_secs = 1");
    assert_eq!(c.sip.journal_checkpoint, Duration::from_secs(1));
    let e = errs("[sip]\njournal_checkpoint_secs = 0");
    assert!(e.at("sip.journal_checkpoint_secs").is_some(), "{e}");
    let c = load_from_str(
        "",
        &env(&[("SWITCHBOARD_SIP_JOURNAL_CHECKPOINT_SECS", "3")]),
    )
    .unwrap();
    assert_eq!(c.sip.journal_checkpoint, Duration::from_secs(3));
}

#[test]
fn trunk_qualify_is_opt_in() {
    let trunk =
        |keys: &str| format!("[[trunk]]\nname = \"t\"\naddress = \"127.0.0.1:5080\"\n{keys}");
    let keepalive = |keys: &str| ok(&trunk(keys)).trunks[0].keepalive;
    // Off unless asked for: no OPTIONS, never marked down.
    assert_eq!(keepalive(""), Duration::ZERO);
    assert!(!ok(&trunk("")).trunks[0].monitored());
    assert_eq!(
        keepalive("qualify = false\nkeepalive_secs = 10\n"),
        Duration::ZERO
    );
    // On: every keepalive_secs (default 30).
    assert_eq!(keepalive("qualify = true\n"), Duration::from_secs(30));
    assert_eq!(
        keepalive("qualify = true\nkeepalive_secs = 5\n"),
        Duration::from_secs(5)
    );
    assert!(ok(&trunk("qualify = true\n")).trunks[0].monitored());
    // Files from before `qualify`: an explicit interval keeps probing, 0 stays off.
    assert_eq!(keepalive("keepalive_secs = 10\n"), Duration::from_secs(10));
    assert_eq!(keepalive("keepalive_secs = 0\n"), Duration::ZERO);
    // A contradiction is an error at its key.
    let e = errs(&trunk("qualify = true\nkeepalive_secs = 0\n"));
    assert!(e.to_string().contains("trunk[0].keepalive_secs"), "{e}");
}

#[test]
fn drain_secs_default_file_env_and_range() {
    assert_eq!(ok("").sip.drain, Duration::from_secs(30));
    assert_eq!(ok("[sip]\ndrain_secs = 0").sip.drain, Duration::ZERO);
    assert_eq!(
        ok("[sip]\ndrain_secs = 5").sip.drain,
        Duration::from_secs(5)
    );
    let e = errs("[sip]\ndrain_secs = 86401");
    assert!(e.at("sip.drain_secs").is_some(), "{e}");
    let c = load_from_str(
        "[sip]\ndrain_secs = 5",
        &env(&[("SWITCHBOARD_SIP_DRAIN_SECS", "3")]),
    )
    .unwrap();
    assert_eq!(c.sip.drain, Duration::from_secs(3));
}
