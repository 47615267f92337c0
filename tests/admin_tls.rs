//! The admin API over HTTPS, against curl: a self-signed certificate made by openssl for the
//! test, HSTS on every answer, keys checked as over HTTP, and plain HTTP refused on the TLS
//! port without disturbing it.

mod common;

use std::process::Command;

use common::{self_signed, Gateway, TEST_KEY};

/// curl against the gateway; returns (status code, headers + body).
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text.lines().last().unwrap_or("").to_string();
    (code, text)
}

#[test]
fn the_admin_api_speaks_https_with_hsts_and_refuses_plain_http() {
    let dir = std::env::temp_dir().join(format!("sb-admin-tls-{}", std::process::id()));
    let (cert, key) = self_signed(&dir);
    let gw = Gateway::start_with_env(
        "",
        "",
        &[
            ("SWITCHBOARD_ADMIN_TLS_CERT", cert.to_str().unwrap()),
            ("SWITCHBOARD_ADMIN_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let base = format!("https://127.0.0.1:{}", gw.admin_port);
    let ca = cert.to_str().unwrap();
    // Verified against the test's certificate.
    let (code, text) = curl(&["--cacert", ca, &format!("{base}/health")]);
    assert_eq!(code, "200", "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    // Keys work as over HTTP.
    let (code, _) = curl(&["--cacert", ca, &format!("{base}/api/v1/calls")]);
    assert_eq!(code, "401");
    let auth = format!("Authorization: Bearer {TEST_KEY}");
    let (code, text) = curl(&["--cacert", ca, "-H", &auth, &format!("{base}/api/v1/calls")]);
    assert_eq!(code, "200", "{text}");
    assert!(text.contains("\"calls\":[]"), "{text}");
    // Plain HTTP on the TLS port gets no HTTP answer, and the port keeps working.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{}/health", gw.admin_port)]);
    assert_ne!(code, "200");
    let (code, text) = curl(&["--cacert", ca, "-H", &auth, &format!("{base}/metrics")]);
    assert_eq!(code, "200");
    assert!(
        text.contains("switchboard_admin_tls_failures_total{reason=\"handshake\"}"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
