//! The media-ingest server's test fixtures: RS256 tokens from the test keys in
//! `actors/tests/keys`, a gateway with `[media_ws]` on, and the Python CPaaS client.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::Gateway;

pub fn key(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("actors/tests/keys")
        .join(name)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RS256 token signed with `signer` (a private key file).
pub fn token(signer: &str, claims: Value) -> String {
    let pem = std::fs::read(key(signer)).unwrap();
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

pub fn good() -> String {
    token(
        "signing_private.pem",
        json!({"tenant": "acme", "exp": now() + 300, "targets": ["app:*", "device:*"]}),
    )
}

pub fn b64url(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A `[media_ws]` section: ingest on a free port, trusting the test signing key.
pub fn media_ws_section(extra: &str) -> String {
    format!(
        "[media_ws]\nenabled = true\nlisten = \"127.0.0.1:{}\"\njwt_public_key = \"{}\"\n{extra}\n",
        super::free_port(),
        key("signing_public.pem").display()
    )
}

/// A gateway with ingest on and one app, `bot`, at `app_port`.
pub fn ingest_gateway(app_port: u16, extra: &str) -> Gateway {
    Gateway::start_with(
        &format!("[[app]]\nname = \"bot\"\nurl = \"ws://127.0.0.1:{app_port}/media\"\n"),
        &media_ws_section(extra),
    )
}

/// The ingest URL of `target`: `wss://` when `[media_ws]` has a `tls_cert`, else `ws://`.
pub fn ingest_url(gw: &Gateway, target: &str, query: &str) -> String {
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "[media_ws]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .collect();
    let listen = section
        .iter()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let scheme = if section.iter().any(|l| l.starts_with("tls_cert")) {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{listen}/ingest/{target}{query}")
}

/// Run the Python CPaaS; returns its report.
pub fn cpaas(url: &str, args: &[&str]) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/cpaas_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(url)
        .args(args)
        .output()
        .expect("python3 with websockets (scripts/install-peers)");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "cpaas client output: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
