//! Fax jobs and the T.38 switch against real SIPp peers: the job API,
//! retries per policy on busy, a clear `T38_REFUSED` when the far end
//! answers the T.38 re-INVITE with 488, a job that survives kill -9 in the
//! middle of an attempt, and an inbound call to a `fax` route that the
//! gateway switches to T.38 by re-INVITE.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{poll_until, quiet_for, trunk_route, uac, wait_until, Gateway, Sipp};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fax/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// POST a multipart form (`to`, `file`) to `/api/v1/faxes`.
fn submit(gw: &Gateway, to: &str, file: &[u8], name: &str) -> (u16, Value) {
    submit_for(gw, to, file, name, None)
}

/// POST a multipart form (`to`, `file` and, if given, `account`) to `/api/v1/faxes`.
fn submit_for(
    gw: &Gateway,
    to: &str,
    file: &[u8],
    name: &str,
    account: Option<&str>,
) -> (u16, Value) {
    let boundary = "sbtestboundary7d1f";
    let mut body = Vec::new();
    if let Some(account) = account {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"account\"\r\n\r\n{account}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{to}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(file);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(
        s,
        "POST /api/v1/faxes HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        common::TEST_KEY,
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = resp
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (code, json)
}

/// GET a binary body.
fn get_bytes(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        common::TEST_KEY
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    assert!(resp.starts_with(b"HTTP/1.0 200") || resp.starts_with(b"HTTP/1.1 200"));
    resp.split_off(head_end + 4)
}

fn job(gw: &Gateway, id: &str) -> Value {
    gw.get(&format!("/api/v1/faxes/{id}")).1
}

fn wait_job(gw: &Gateway, id: &str, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
    // The caller asserts on the value, with the logs.
    poll_until(timeout, || job(gw, id), |j| f(j)).unwrap_or_else(|last| last)
}

fn fax_gateway(trunk_addr: &str, fax: &str) -> Gateway {
    Gateway::start_with(
        &trunk_route("carrier", trunk_addr),
        &format!("[fax]\nretry_delay_secs = 1\nt38_switch_timeout_secs = 1\n{fax}\n"),
    )
}

const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

/// Accept one webhook POST on `listener`: (headers, body).
fn take_webhook(listener: &std::net::TcpListener) -> (String, Vec<u8>) {
    listener.set_nonblocking(false).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                return (head.to_string(), body.as_bytes().to_vec());
            }
        }
        assert!(n > 0, "webhook connection closed early");
    }
}

#[test]
fn busy_is_retried_per_policy_then_fails_with_the_reason() {
    use hmac::Mac;
    let uas = Sipp::uas("uas_busy.xml", &[]);
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = fax_gateway(
        &uas.addr(),
        &format!(
            "max_attempts = 2\nwebhook_url = \"http://{}/fax-events\"\nwebhook_secret = \"{WEBHOOK_SECRET}\"",
            hook.local_addr().unwrap()
        ),
    );
    let (code, j) = submit(&gw, "+4930123456", &fixture("two-pages.tif"), "doc.tif");
    assert_eq!(code, 202, "{j}");
    assert_eq!(j["status"], "queued");
    assert_eq!(j["pages"], 2);
    let id = j["id"].as_str().unwrap().to_string();
    let done = wait_job(&gw, &id, Duration::from_secs(20), |j| {
        j["status"] == "failed"
    });
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "BUSY", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert!(
        done["error_text"].as_str().unwrap().contains("486"),
        "{done}"
    );
    // Both attempts are calls with CDRs, and the list shows the job.
    let cdrs = gw.wait_cdrs(2);
    assert!(
        cdrs.iter().filter(|c| c["disposition"] == "BUSY").count() >= 2,
        "{cdrs:?}"
    );
    let list = gw.get("/api/v1/faxes").1;
    assert_eq!(list["faxes"][0]["id"], id.as_str());
    // The document as sent can be fetched back, byte for byte.
    assert_eq!(
        get_bytes(&gw, &format!("/api/v1/faxes/{id}/file")),
        fixture("two-pages.tif")
    );
    assert!(gw
        .metrics()
        .contains("switchboard_fax_jobs_total{status=\"failed\"} 1"));
    // The final state went to the webhook, signed.
    let (head, body) = take_webhook(&hook);
    assert!(head.starts_with("POST /fax-events "), "{head}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let ts = header("X-Switchboard-Timestamp:");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header("X-Switchboard-Signature:"), expected);
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "fax.job");
    assert_eq!(event["fax"]["id"], id.as_str());
    assert_eq!(event["fax"]["status"], "failed");
    assert_eq!(event["fax"]["error"], "BUSY");
    assert!(
        event["fax"].get("file").is_none(),
        "internal path leaked: {event}"
    );
}

#[test]
fn a_far_end_refusing_t38_fails_the_job_at_once_with_t38_refused() {
    let uas = Sipp::uas("uas_t38_refuse.xml", &["-m", "1"]);
    let gw = fax_gateway(&uas.addr(), "max_attempts = 3");
    let (code, j) = submit(&gw, "+4930123456", &fixture("one-page.tif"), "one.tif");
    assert_eq!(code, 202, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    let done = wait_job(&gw, &id, Duration::from_secs(20), |j| {
        j["status"] == "failed"
    });
    assert_eq!(done["error"], "T38_REFUSED", "{done}");
    assert_eq!(done["attempts"], 1, "a refused T.38 is not retried: {done}");
    // SIPp checked the re-INVITE offered T.38 and got our BYE after its 488.
    assert_eq!(uas.wait(Duration::from_secs(10)), 0, "SIPp uas failed");
    assert!(gw
        .metrics()
        .contains("switchboard_fax_t38_failures_total{reason=\"refused\"} 1"));
}

#[test]
fn a_job_interrupted_by_kill_9_is_resumed_and_never_lost() {
    let uas = Sipp::uas("uas_busy_slow.xml", &[]);
    let mut gw = fax_gateway(&uas.addr(), "max_attempts = 3");
    // Queued from the CLI this time (upload, then a JSON job with the file id).
    let doc =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fax/fixtures/one-page.tif");
    let out = cli(&gw, &["fax", "send", "--json", "+4930123456"], Some(&doc));
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(j["status"], "queued", "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    let running = wait_job(&gw, &id, Duration::from_secs(10), |j| {
        j["status"] == "in_progress"
    });
    assert_eq!(running["status"], "in_progress", "{running}");
    // Dead in the middle of the first attempt (the far end is still ringing).
    gw.kill9();
    gw.restart();
    let done = wait_job(&gw, &id, Duration::from_secs(30), |j| {
        j["status"] == "failed"
    });
    assert_eq!(done["status"], "failed", "{done}");
    // The interrupted attempt counts; the two after it met a busy line.
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["error"], "BUSY", "{done}");
    assert_eq!(done["pages"], 1);
    let table = cli(&gw, &["faxes"], None);
    assert!(
        table.contains(&id) && table.contains("BUSY") && table.contains("3/3"),
        "{table}"
    );
}

/// Run the CLI against `gw`; stdout.
fn cli(gw: &Gateway, args: &[&str], file: Option<&std::path::Path>) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args)
        .env(
            "SWITCHBOARD_ADMIN_URL",
            format!("http://127.0.0.1:{}", gw.admin_port),
        )
        .env("SWITCHBOARD_API_KEY", common::TEST_KEY);
    if let Some(f) = file {
        cmd.arg(f);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?}", out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn inbound_calls_to_a_fax_route_are_answered_and_switched_to_t38() {
    let gw = Gateway::start_with(
        "[[route]]\nmatch = \"4930555000\"\nto = \"fax\"\n",
        "[fax]\nt38_switch_timeout_secs = 1\n",
    );
    let run = uac(
        "uac_fax_t38.xml",
        &gw.sip(),
        &["-s", "4930555000", "-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 0, "SIPp uac failed: {run:?}\n{}", gw.log());
    // One record for the call; it carried no pages (the caller hung up).
    let list = wait_until(
        "the inbound fax record to be final",
        Duration::from_secs(10),
        || gw.get("/api/v1/inbound-faxes").1,
        |l| l["faxes"][0]["status"] != "receiving",
    );
    let faxes = list["faxes"].as_array().unwrap();
    assert_eq!(faxes.len(), 1, "{list}");
    assert_eq!(faxes[0]["from"], "4930111");
    assert_eq!(faxes[0]["to"], "4930555000");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["codec"], "t38", "{cdr}");
    assert!(gw.metric("switchboard_fax_t38_negotiated_total") >= 1.0);
}

#[test]
fn bad_documents_and_numbers_get_clear_errors() {
    let gw = Gateway::start("");
    let (code, e) = submit(&gw, "+4930123456", b"GIF89a not a fax", "x.gif");
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (422, Some("unknown_format")),
        "{e}"
    );
    let (code, e) = submit(&gw, "call me", &fixture("one-page.tif"), "one.tif");
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (400, Some("bad_number")),
        "{e}"
    );
    let mut broken = fixture("one-page.tif");
    broken.truncate(6);
    let (code, e) = submit(&gw, "+4930123456", &broken, "cut.tif");
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (422, Some("bad_tiff")),
        "{e}"
    );
    assert_eq!(gw.get("/api/v1/faxes/ffffffffffffffff").0, 404);
    assert_eq!(gw.get("/api/v1/faxes/../../etc").0, 404);
    assert_eq!(gw.get("/api/v1/faxes").1["faxes"], serde_json::json!([]));
}

/// The decoded pages of a TIFF (bitmap rows), for comparing documents.
fn pages(tiff: &[u8]) -> Vec<Vec<Vec<u8>>> {
    switchboard_fax::tiff::read_tiff(tiff)
        .expect("a readable TIFF")
        .iter()
        .map(|p| switchboard_fax::tiff::fit_to_fax(p).rows().to_vec())
        .collect()
}

#[test]
fn a_fax_sent_through_a_trunk_to_another_gateway_arrives_intact() {
    // B answers every number with its fax receiver.
    let b = Gateway::start_with(
        "[[route]]\nmatch = \"*\"\nto = \"fax\"\n",
        "[fax]\nt38_switch_timeout_secs = 2\n",
    );
    let a = fax_gateway(&format!("127.0.0.1:{}", b.sip_port), "max_attempts = 1");
    let doc = fixture("two-pages.tif");
    let (code, j) = submit(&a, "+4930555000", &doc, "two.tif");
    assert_eq!(code, 202, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    let done = wait_job(&a, &id, Duration::from_secs(120), |j| {
        j["status"] == "succeeded" || j["status"] == "failed"
    });
    assert_eq!(
        done["status"],
        "succeeded",
        "{done}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(done["pages_sent"], 2, "{done}");
    assert!(done["bitrate"].as_u64().unwrap_or(0) >= 2400, "{done}");
    // B stored what it received; the pages match the document sent.
    let rec = wait_until(
        "B to have received the fax",
        Duration::from_secs(10),
        || b.get("/api/v1/inbound-faxes").1["faxes"][0].clone(),
        |rec| rec["status"] == "received",
    );
    assert_eq!(rec["status"], "received", "{rec}");
    assert_eq!(rec["pages"], 2, "{rec}");
    let got = get_bytes(&b, rec["file_url"].as_str().unwrap());
    assert_eq!(
        pages(&got),
        pages(&doc),
        "received pages differ from the document sent"
    );
    // A succeeded job is never sent again, even after kill -9 and a restart.
    let mut a = a;
    a.kill9();
    a.restart();
    // No later event proves a job was *not* resumed: watch A's record and B's inbox for the
    // time a resumed attempt would take to reach B.
    quiet_for(
        "a succeeded job is not sent again after a restart",
        Duration::from_secs(4),
        || {
            let j = job(&a, &id);
            let inbox = b.get("/api/v1/inbound-faxes").1["faxes"].clone();
            (j["status"].clone(), j["attempts"].clone(), inbox)
        },
        |(status, attempts, inbox)| {
            status == "succeeded" && attempts == 1 && inbox.as_array().is_some_and(|f| f.len() == 1)
        },
    );
}

#[test]
fn fax_pages_are_reserved_on_submission_and_the_confirmed_ones_charged() {
    let b = Gateway::start_with(
        "[[route]]\nmatch = \"*\"\nto = \"fax\"\n",
        "[fax]\nt38_switch_timeout_secs = 2\n",
    );
    let a = fax_gateway(
        &format!("127.0.0.1:{}", b.sip_port),
        "max_attempts = 1\n\n[billing]\nprice_per_page = 3\n",
    );
    let post = |path: &str, body: Value| a.request_body("POST", path, &body.to_string()).unwrap();
    assert_eq!(
        post("/api/v1/accounts", serde_json::json!({"id": "faxco"})).0,
        201
    );
    let (code, v) = post(
        "/api/v1/accounts/faxco/topup",
        serde_json::json!({"amount": 10, "idempotency_key": "t1"}),
    );
    assert_eq!(code, 201, "{v}");
    let doc = fixture("two-pages.tif");
    // Priced pages need a payer; an unknown one is refused too. Nothing is queued.
    let (code, v) = submit(&a, "+4930555000", &doc, "two.tif");
    assert_eq!(code, 402, "{v}");
    assert_eq!(v["error"]["code"], "no_account", "{v}");
    let (code, v) = submit_for(&a, "+4930555000", &doc, "two.tif", Some("nobody"));
    assert_eq!(
        (code, v["error"]["code"].clone()),
        (402, "unknown_account".into()),
        "{v}"
    );
    // Two pages at 3: 6 reserved of 10.
    let (code, j) = submit_for(&a, "+4930555000", &doc, "two.tif", Some("faxco"));
    assert_eq!(code, 202, "{j}");
    assert_eq!(j["account"], "faxco");
    assert_eq!(j["reserved"], 6, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    // A second job would need 6 more: refused before anything is queued.
    let (code, v) = submit_for(&a, "+4930555000", &doc, "two.tif", Some("faxco"));
    assert_eq!(code, 402, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_credit", "{v}");
    assert_eq!(
        a.get("/api/v1/faxes").1["faxes"].as_array().map(Vec::len),
        Some(1)
    );
    let done = wait_job(&a, &id, Duration::from_secs(120), |j| j["cost"].is_u64());
    assert_eq!(done["status"], "succeeded", "{done}\n{}", a.log());
    assert_eq!(done["pages_sent"], 2, "{done}");
    assert_eq!(done["cost"], 6, "{done}");
    let acct = a.get("/api/v1/accounts/faxco").1;
    assert_eq!(acct["balance"], 4, "{acct}");
    assert_eq!(acct["debits_pending"], 0, "{acct}");
    let transfers = a.get("/api/v1/accounts/faxco/transfers").1["transfers"].clone();
    let posts: Vec<_> = transfers
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "post_pending")
        .collect();
    assert_eq!(posts.len(), 1, "{transfers}");
    assert_eq!(posts[0]["amount"], 6);
    assert_eq!(posts[0]["pending_id"], format!("fax:{id}"));
}

#[test]
fn a_trunk_with_t38_never_fails_the_job_with_t38_disabled() {
    let gw = Gateway::start_with(
        "[[trunk]]\nname = \"voice\"\naddress = \"127.0.0.1:9\"\nkeepalive_secs = 0\nt38 = \"never\"\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:voice\"\n",
        "[fax]\nmax_attempts = 3\n",
    );
    let (code, j) = submit(&gw, "+4930123456", &fixture("one-page.tif"), "one.tif");
    assert_eq!(code, 202, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    let done = wait_job(&gw, &id, Duration::from_secs(10), |j| {
        j["status"] == "failed"
    });
    assert_eq!(done["error"], "T38_DISABLED", "{done}");
    assert_eq!(done["attempts"], 1, "not retried: {done}");
}

/// A one-page PDF with a line of text (hand-written, valid xref offsets).
fn tiny_pdf() -> Vec<u8> {
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        "<< /Length 44 >>\nstream\nBT /F1 24 Tf 72 700 Td (switchboard fax) Tj ET\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        pdf.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[test]
fn a_pdf_is_rendered_to_a_fax_tiff_with_ghostscript() {
    let gw = Gateway::start("");
    let (code, j) = submit(&gw, "+4930123456", &tiny_pdf(), "letter.pdf");
    assert_eq!(
        code, 202,
        "{j} (ghostscript installed? scripts/install-peers)"
    );
    assert_eq!(j["pages"], 1, "{j}");
    assert_eq!(j["source_name"], "letter.pdf");
    // The spooled document is a fax TIFF with black pixels on it (the text).
    let tiff = get_bytes(&gw, j["file_url"].as_str().unwrap());
    let pages = switchboard_fax::tiff::read_tiff(&tiff).expect("a fax TIFF");
    let black: u32 = pages[0]
        .rows()
        .iter()
        .flatten()
        .map(|b| b.count_ones())
        .sum();
    assert!(black > 100, "the rendered page is blank");
    // A broken PDF is a clear 422, not a crash.
    let (code, e) = submit(&gw, "+4930123456", b"%PDF-1.4\ngarbage", "bad.pdf");
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (422, Some("pdf_render_failed")),
        "{e}"
    );
}
