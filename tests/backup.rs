//! Backup and restore through the real binary (docs/operations.md, "Backup and restore"): with
//! calls running through SIPp and data present (API keys, ledger accounts and transfers, CDRs,
//! a device credential, a fax job and its document), `switchboard backup --to DIR` takes a
//! backup from the running gateway, `switchboard restore` writes it into a new directory, and
//! a gateway started on that directory answers with the same data.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{uac, uac_in_background, Gateway, Sipp, TEST_KEY};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret};

const FLEET: &str = "backup-fleet-secret-0123456789";

fn post(gw: &Gateway, path: &str, body: Value) -> Value {
    let (code, v) = gw.request_body("POST", path, &body.to_string()).unwrap();
    assert!((200..300).contains(&code), "{path}: {code} {v}");
    v
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Run the CLI with the admin URL of `gw` and `key`.
fn cli(gw: &Gateway, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", key)
        .output()
        .unwrap()
}

/// Run the CLI with no gateway.
fn offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_API_KEY")
        .output()
        .unwrap()
}

/// `GET path` with `key`: status and body.
fn get_as(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let (code, _, v) = gw
        .request_with(
            "GET",
            path,
            "",
            &[("Authorization", &format!("Bearer {key}"))],
        )
        .unwrap();
    (code, v)
}

/// A binary body with the bootstrap key.
fn get_bytes(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(resp.starts_with(b"HTTP/1.0 200") || resp.starts_with(b"HTTP/1.1 200"));
    resp.split_off(at + 4)
}

/// Queue a fax job (multipart upload); its JSON.
fn submit_fax(gw: &Gateway, to: &str, file: &[u8]) -> Value {
    let boundary = "sbbackupboundary";
    let mut body = Vec::new();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{to}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.tif\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(file);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(
        s,
        "POST /api/v1/faxes HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, json) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 202 "), "{resp}");
    serde_json::from_str(json).unwrap()
}

/// Poll `f` until it holds (or the deadline passes); its last value.
fn wait<T>(timeout: Duration, get: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    common::poll_until(timeout, get, ok).unwrap_or_else(|last| last)
}

fn cdr_ids(cdrs: &[Value]) -> BTreeSet<String> {
    cdrs.iter()
        .map(|c| c["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Whether a device can log in to the broker of `gw` with `password`.
fn mqtt_login(gw: &Gateway, id: &str, password: &str) -> bool {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &gw.mqtt_port.to_string()])
        .args(["-i", id, "-u", id, "-P", password, "-q", "1"])
        .args(["-t", &format!("devices/{id}/telemetry"), "-m", "{\"t\":1}"])
        .output()
        .expect("mosquitto_pub");
    out.status.success()
}

#[test]
fn a_backup_taken_while_calls_run_restores_into_a_new_directory_intact() {
    // Calls go to a SIPp UAS that answers; faxes to one that is busy (a job that fails fast,
    // its state and document then fixed).
    let uas = Sipp::uas("uas", &[]);
    let busy = Sipp::uas("uas_busy.xml", &[]);
    let config = format!(
        "[[trunk]]\nname = \"carrier\"\naddress = \"{}\"\nkeepalive_secs = 0\n\n\
         [[trunk]]\nname = \"faxline\"\naddress = \"{}\"\nkeepalive_secs = 0\n\n\
         [[route]]\nmatch = \"+4930*\"\nto = \"trunk:faxline\"\n\n\
         [[route]]\nmatch = \"*\"\nto = \"trunk:carrier\"\n",
        uas.addr(),
        busy.addr()
    );
    let sections = format!(
        "[devices]\nfleet_secret = \"{FLEET}\"\n\n[fax]\nmax_attempts = 1\nretry_delay_secs = 1\n"
    );
    let gw = Gateway::start_with(&config, &sections);

    // Data: a scoped API key, two accounts and transfers between them, a claimed device,
    // a fax job with its document, CDRs of finished calls.
    let made = post(
        &gw,
        "/api/v1/admin/api-keys",
        json!({"name": "reader", "scopes": ["calls:read", "credits:read"]}),
    );
    let reader = made["key"].as_str().unwrap().to_string();
    let operator = post(
        &gw,
        "/api/v1/admin/api-keys",
        json!({"name": "operator", "scopes": ["admin"]}),
    )["key"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, amount) in [("acme", 1000u64), ("globex", 250)] {
        post(&gw, "/api/v1/accounts", json!({ "id": id }));
        post(
            &gw,
            &format!("/api/v1/accounts/{id}/topup"),
            json!({"amount": amount, "idempotency_key": format!("fund-{id}")}),
        );
    }
    post(
        &gw,
        "/api/v1/transfers",
        json!({"id": "t-1", "debit_account": "acme", "credit_account": "globex", "amount": 120}),
    );
    post(
        &gw,
        "/api/v1/transfers",
        json!({"id": "t-2", "debit_account": "globex", "credit_account": "acme", "amount": 30,
               "pending": true}),
    );
    let secret = device_secret(FLEET.as_bytes(), "esp-7");
    let ts = now();
    let claimed = post(
        &gw,
        "/api/v1/devices/claim",
        json!({"device_id": "esp-7", "nonce": "backup-nonce-0001", "ts": ts,
               "hmac": claim_mac(&secret, "esp-7", "backup-nonce-0001", ts)}),
    );
    let password = claimed["password"].as_str().unwrap().to_string();
    assert!(
        mqtt_login(&gw, "esp-7", &password),
        "device login before backup"
    );
    let doc = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fax/fixtures/one-page.tif"),
    )
    .unwrap();
    let job = submit_fax(&gw, "+4930123456", &doc);
    let job_id = job["id"].as_str().unwrap().to_string();
    let job = wait(
        Duration::from_secs(30),
        || gw.get(&format!("/api/v1/faxes/{job_id}")).1,
        |j| j["status"] == "failed",
    );
    assert_eq!(job["status"], "failed", "{job}");
    let run = uac(
        "uac",
        &gw.sip(),
        &["-m", "3", "-d", "200"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "{}", run.output);
    gw.wait_cdrs(3);

    // Calls running while the backup is taken.
    let callers = uac_in_background(
        "uac",
        &gw.sip(),
        &["-m", "3", "-l", "3", "-d", "8000"],
        Duration::from_secs(60),
    );
    let up = gw.wait_answered(3);
    assert_eq!(
        up.iter().filter(|c| c["state"] == "answered").count(),
        3,
        "{up:?}"
    );
    let cdrs_before = cdr_ids(&gw.cdrs());
    let accounts_before: Vec<Value> = ["acme", "globex"]
        .iter()
        .map(|a| gw.get(&format!("/api/v1/accounts/{a}")).1)
        .collect();
    let transfers_before = gw.get("/api/v1/accounts/acme/transfers").1;

    let work = std::env::temp_dir().join(format!("sbbackup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let backup_dir = work.join("backup");
    let bdir = backup_dir.to_str().unwrap();
    // A key without the admin scope may not take a backup; the error names the key's variable.
    let denied = cli(&gw, &reader, &["backup", "--to", bdir]);
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("403") && err.contains("SWITCHBOARD_API_KEY"),
        "{err}"
    );
    assert!(!backup_dir.join("switchboard.backup").exists());
    let out = cli(&gw, &operator, &["backup", "--to", bdir]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("backed up"), "{printed}");
    assert_eq!(
        gw.calls()
            .iter()
            .filter(|c| c["state"] == "answered")
            .count(),
        3,
        "the backup disturbed the calls"
    );
    // Never overwritten.
    let again = cli(&gw, &operator, &["backup", "--to", bdir]);
    assert!(!again.status.success(), "{again:?}");

    let run = callers.join().unwrap();
    assert_eq!(run.code, 0, "calls cut: {}", run.output);
    let cdrs_after = cdr_ids(&gw.wait_cdrs(6));

    // Restore into a new directory; a second restore there is refused.
    let restored = work.join("restored");
    let rdir = restored.to_str().unwrap();
    let out = offline(&["restore", "--from", bdir, "--store", rdir]);
    assert!(out.status.success(), "{out:?}");
    let again = offline(&["restore", "--from", bdir, "--store", rdir]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{again:?}"
    );

    let gw2 = Gateway::start_with_env(&config, &sections, &[("SWITCHBOARD_STORAGE_PATH", rdir)]);
    // Balances and transfers as they were.
    for (i, a) in ["acme", "globex"].iter().enumerate() {
        let (code, v) = get_as(&gw2, &reader, &format!("/api/v1/accounts/{a}"));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v, accounts_before[i], "account {a}");
    }
    assert_eq!(
        gw2.get("/api/v1/accounts/acme/transfers").1,
        transfers_before
    );
    // CDRs: every one stored before the backup, none that did not exist by its end.
    let (code, v) = get_as(&gw2, &reader, "/api/v1/cdrs?limit=1000");
    assert_eq!(code, 200, "{v}");
    let restored_cdrs = cdr_ids(v["cdrs"].as_array().unwrap());
    assert!(restored_cdrs.len() >= 3, "{restored_cdrs:?}");
    assert!(
        cdrs_before.is_subset(&restored_cdrs),
        "lost CDRs: {:?}",
        cdrs_before.difference(&restored_cdrs).collect::<Vec<_>>()
    );
    assert!(restored_cdrs.is_subset(&cdrs_after));
    // Keys: both authenticate with their scopes; an unknown one does not.
    assert_eq!(get_as(&gw2, &reader, "/api/v1/calls").0, 200);
    assert_eq!(get_as(&gw2, &reader, "/api/v1/admin/api-keys").0, 403);
    assert_eq!(get_as(&gw2, &operator, "/api/v1/admin/api-keys").0, 200);
    // Change the last character to a different one (a fixed replacement would
    // be the same key whenever the key already ends in it).
    let last = if reader.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &reader[..reader.len() - 1]);
    assert_ne!(forged, reader);
    assert_eq!(get_as(&gw2, &forged, "/api/v1/calls").0, 401);
    // The device logs in with its credential, and only with it.
    assert!(
        mqtt_login(&gw2, "esp-7", &password),
        "device credential lost"
    );
    assert!(!mqtt_login(&gw2, "esp-7", "not-the-password"));
    // The fax job, its outcome and its document.
    let j = gw2.get(&format!("/api/v1/faxes/{job_id}")).1;
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error"], job["error"]);
    assert_eq!(j["to"], "+4930123456");
    assert_eq!(
        get_bytes(&gw2, &format!("/api/v1/faxes/{job_id}/file")),
        doc
    );

    drop(gw2);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn an_offline_backup_of_a_stopped_store_and_a_damaged_archive() {
    let mut gw = Gateway::start("");
    post(&gw, "/api/v1/accounts", json!({ "id": "acme" }));
    post(
        &gw,
        "/api/v1/accounts/acme/topup",
        json!({"amount": 77, "idempotency_key": "fund-acme"}),
    );
    let store = gw.dir.join("data");
    let work = std::env::temp_dir().join(format!("sbbackup-off-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let bdir = work.join("b");
    // While the gateway holds the store, an offline backup says so.
    let busy = offline(&[
        "backup",
        "--store",
        store.to_str().unwrap(),
        "--to",
        bdir.to_str().unwrap(),
    ]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{busy:?}"
    );
    gw.kill9();
    let out = offline(&[
        "backup",
        "--store",
        store.to_str().unwrap(),
        "--to",
        bdir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    // One flipped byte: the restore refuses and writes nothing.
    let archive = bdir.join("switchboard.backup");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = work.join("bad.backup");
    std::fs::write(&bad, &bytes).unwrap();
    let target = work.join("r-bad");
    let out = offline(&[
        "restore",
        "--from",
        bad.to_str().unwrap(),
        "--store",
        target.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!target.exists(), "a refused restore wrote its target");
    // The good one restores.
    let target = work.join("r");
    let out = offline(&[
        "restore",
        "--from",
        archive.to_str().unwrap(),
        "--store",
        target.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let gw2 = Gateway::start_with_env(
        "",
        "",
        &[("SWITCHBOARD_STORAGE_PATH", target.to_str().unwrap())],
    );
    let (code, v) = gw2.get("/api/v1/accounts/acme");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["credits_posted"], 77, "{v}");
    drop(gw2);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_store_of_an_older_schema_version_is_refused_at_start_untouched() {
    use switchboard_storage::{SledStore, Store, Tree, SCHEMA_VERSION_KEY};
    let dir = std::env::temp_dir().join(format!("sbschema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("data");
    {
        let s = SledStore::open(&store).unwrap();
        s.put(Tree::Meta, SCHEMA_VERSION_KEY, &0u32.to_be_bytes())
            .unwrap();
        s.put(Tree::Cdrs, b"old-layout", b"???").unwrap();
        s.flush().unwrap();
    }
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\n\n[admin]\nlisten = \"127.0.0.1:{}\"\n\n\
             [mqtt]\nmode = \"off\"\n\n[storage]\npath = \"{}\"\n",
            common::free_port(),
            common::free_port(),
            store.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::poll_until(
        Duration::from_secs(20),
        || child.try_wait().unwrap(),
        Option::is_some,
    )
    .unwrap_or_else(|_| {
        let _ = child.kill();
        None
    });
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = status.unwrap_or_else(|| panic!("the gateway started on an older store: {err}"));
    assert!(!status.success());
    assert!(
        err.contains("schema version 0 is older than the supported"),
        "{err}"
    );
    // Nothing was rewritten: the version on disk is still the old one.
    let s = SledStore::open(&store);
    assert!(s.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
