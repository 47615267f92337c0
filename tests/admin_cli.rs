//! A newcomer's first hour with the admin API and the CLI (issue 12), through the real binary:
//! the admin key printed once at the first start, the offline `keys create --store` for a lost
//! key, a bootstrap key ignored loudly, 401/403 answers that say what to do, `https://` admin
//! URLs with `--ca-file`, and `check-config` messages with lines, hints and plain words.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{self_signed_leaf, Gateway, TEST_KEY};

/// The `switchboard` binary with a clean environment plus `env`.
fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run switchboard")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every `sbk_…` key in `log`.
fn keys_in(log: &str) -> Vec<String> {
    log.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sbk_") && w.len() == 85)
        .map(str::to_string)
        .collect()
}

/// A gateway started without a bootstrap key (the harness sets one by default).
fn start_without_bootstrap() -> Gateway {
    Gateway::start_with_env("", "", &[("SWITCHBOARD_ADMIN_BOOTSTRAP_KEY", "")])
}

fn get_with(gw: &Gateway, key: &str, path: &str) -> u16 {
    let auth = format!("Bearer {key}");
    gw.request_with("GET", path, "", &[("Authorization", &auth)])
        .expect("admin request")
        .0
}

#[test]
fn the_first_start_prints_an_admin_key_once_and_never_again() {
    let mut gw = start_without_bootstrap();
    let log = gw.log();
    let keys = keys_in(&log);
    assert_eq!(keys.len(), 1, "one key, printed once:\n{log}");
    let key = &keys[0];
    assert!(log.contains("NOT shown again"), "{log}");
    assert!(log.contains("keys create --store"), "{log}");
    assert_eq!(get_with(&gw, key, "/api/v1/admin/api-keys"), 200);
    // Later starts print nothing new and the key still works.
    gw.restart();
    let log = gw.log();
    assert_eq!(
        keys_in(&log),
        keys,
        "the key is never printed again:\n{log}"
    );
    assert_eq!(log.matches("NOT shown again").count(), 1, "{log}");
    assert!(
        !log.contains("IGNORED"),
        "no bootstrap key, nothing ignored:\n{log}"
    );
    assert_eq!(get_with(&gw, key, "/api/v1/calls"), 200);
}

#[test]
fn a_bootstrap_key_on_a_store_with_keys_is_ignored_loudly() {
    let mut gw = start_without_bootstrap();
    // Now configure the bootstrap key: the store already has the generated one.
    gw.env
        .retain(|(k, v)| !(k == "SWITCHBOARD_ADMIN_BOOTSTRAP_KEY" && v.is_empty()));
    gw.restart();
    let log = gw.log();
    let warn = log
        .lines()
        .find(|l| l.contains("IGNORED"))
        .unwrap_or_else(|| panic!("no line about the ignored bootstrap key:\n{log}"));
    assert!(
        warn.contains("WARN") && warn.contains("bootstrap key"),
        "{warn}"
    );
    assert_eq!(get_with(&gw, TEST_KEY, "/api/v1/calls"), 401);
    // The CLI's 401 says why a bootstrap key may not work.
    let admin = format!("http://127.0.0.1:{}", gw.admin_port);
    let out = switchboard(
        &["calls", "--admin", &admin],
        &[("SWITCHBOARD_API_KEY", TEST_KEY)],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("401") && err.contains("bootstrap"), "{err}");
}

#[test]
fn keys_create_offline_refuses_a_running_gateways_store_and_works_when_stopped() {
    let mut gw = Gateway::start("");
    let data = gw.dir.join("data");
    let data = data.to_str().unwrap();
    let args = [
        "keys", "create", "--store", data, "--name", "rescue", "--scope", "admin",
    ];
    let out = switchboard(&args, &[]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("in use") && err.contains("Stop the gateway"),
        "{err}"
    );
    gw.kill9();
    let out = switchboard(&args, &[]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let keys = keys_in(&stdout);
    assert_eq!(keys.len(), 1, "{stdout}");
    assert!(stdout.contains("not shown again"), "{stdout}");
    gw.restart();
    assert_eq!(get_with(&gw, &keys[0], "/api/v1/admin/api-keys"), 200);
    // A directory that holds no store is not silently turned into one.
    let out = switchboard(
        &[
            "keys",
            "create",
            "--store",
            "/nonexistent/sb-data",
            "--name",
            "x",
            "--scope",
            "admin",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no store at"), "{:?}", text(&out));
    assert!(!Path::new("/nonexistent/sb-data").exists());
}

#[test]
fn cli_401_names_the_key_variable_and_flag_and_403_the_scope() {
    let gw = Gateway::start("");
    let admin = format!("http://127.0.0.1:{}", gw.admin_port);
    let out = switchboard(&["calls", "--admin", &admin], &[]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("401") && err.contains("SWITCHBOARD_API_KEY") && err.contains("--api-key"),
        "{err}"
    );
    let wrong = format!("sbk_{}_{}", "1".repeat(16), "2".repeat(64));
    let out = switchboard(&["calls", "--admin", &admin, "--api-key", &wrong], &[]);
    let (_, err) = text(&out);
    assert!(
        err.contains("SWITCHBOARD_API_KEY") && err.contains("refused"),
        "{err}"
    );
    // A key without the scope: the scope is named.
    let (code, v) = gw
        .request_body(
            "POST",
            "/api/v1/admin/api-keys",
            r#"{"name":"ro","scopes":["calls:read"]}"#,
        )
        .unwrap();
    assert_eq!(code, 201, "{v}");
    let ro = v["key"].as_str().unwrap();
    let out = switchboard(&["devices", "--admin", &admin, "--api-key", ro], &[]);
    let (_, err) = text(&out);
    assert!(err.contains("403") && err.contains("devices:read"), "{err}");
}

#[test]
fn cli_reads_an_https_admin_api_with_a_ca_file() {
    let dir = std::env::temp_dir().join(format!("sb-cli-tls-{}", std::process::id()));
    let (cert, key) = self_signed_leaf(&dir);
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_ADMIN_TLS_CERT", cert.to_str().unwrap()),
            ("SWITCHBOARD_ADMIN_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let admin = format!("https://127.0.0.1:{}", gw.admin_port);
    let ca = cert.to_str().unwrap();
    let out = switchboard(
        &["calls", "--admin", &admin, "--ca-file", ca],
        &[("SWITCHBOARD_API_KEY", TEST_KEY)],
    );
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("0 active calls"), "{stdout}");
    // The same through the environment.
    let out = switchboard(
        &["trunks", "--admin", &admin],
        &[
            ("SWITCHBOARD_API_KEY", TEST_KEY),
            ("SWITCHBOARD_CA_FILE", ca),
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    // Without the CA: refused, and told how to trust it.
    let out = switchboard(
        &["calls", "--admin", &admin],
        &[("SWITCHBOARD_API_KEY", TEST_KEY)],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("--ca-file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_points_at_lines_suggests_keys_and_names_a_missing_file_once() {
    let dir = std::env::temp_dir().join(format!("sb-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sb.toml");
    std::fs::write(
        &file,
        "[sip]\nlistn = \"127.0.0.1:5060\"\nt1_ms = \"fast\"\n\n[[route]]\nmatch = \"00*\"\nto = \"fax\"\n\n[[route]]\nmatch = \"00*\"\nto = \"fax\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = switchboard(&["check-config", f], &[]);
    let (stdout, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains(&format!(
            "{f}:2:1: sip.listn: unknown key; did you mean `listen`?"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{f}:3:1: sip.t1_ms:")), "{stdout}");
    assert!(
        stdout.contains("whole number") && !stdout.contains("u64"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{f}:10:1: route[1].match:")),
        "{stdout}"
    );
    assert!(err.contains("3 error(s)"), "{err}");
    let missing = dir.join("missing.toml");
    let out = switchboard(&["check-config", missing.to_str().unwrap()], &[]);
    let (stdout, err) = text(&out);
    assert!(!out.status.success());
    let all = format!("{stdout}{err}");
    assert_eq!(all.matches("missing.toml").count(), 1, "{all}");
    assert!(all.contains("no such file"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
