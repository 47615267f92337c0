//! The admin API's limits (issue 11, items 16-18) against the real binary over raw HTTP and
//! curl: every error is the JSON shape (wrong method, oversized body, bad query string,
//! unknown route, bad JSON); small bodies everywhere but the uploads, the open claim route
//! included; fax PDFs bounded in pages and time, uploads with a time to live and a spool quota.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, TEST_KEY};
use serde_json::Value;

/// A raw request as the bootstrap admin: status, head, JSON body (or the text as a string).
fn raw(gw: &Gateway, method: &str, path: &str, body: &[u8]) -> (u16, String, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", gw.admin_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before reading it all.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code, head.to_string(), v)
}

/// The documented error shape: `{"error":{"code":..,"message":..}}` as application/json.
fn assert_json_error(what: &str, code: u16, want: u16, head: &str, v: &Value) {
    assert_eq!(code, want, "{what}: {head}\n{v}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{what}: {head}"
    );
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{what}: {v}"
    );
}

#[test]
fn every_admin_api_error_is_json() {
    let gw = Gateway::start("");
    let (c, h, v) = raw(&gw, "PUT", "/api/v1/calls", b"");
    assert_json_error("wrong method", c, 405, &h, &v);
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert!(h.to_ascii_lowercase().contains("allow: "), "{h}");
    let big = vec![b' '; 200 * 1024];
    let (c, h, v) = raw(&gw, "POST", "/api/v1/accounts", &big);
    assert_json_error("oversized body", c, 413, &h, &v);
    assert_eq!(v["error"]["code"], "too_large");
    let (c, h, v) = raw(&gw, "GET", "/api/v1/cdrs?limit=lots", b"");
    assert_json_error("bad query string", c, 400, &h, &v);
    assert_eq!(v["error"]["code"], "bad_query");
    let (c, h, v) = raw(&gw, "GET", "/api/v1/faxes?limit=-1", b"");
    assert_json_error("bad query string (faxes)", c, 400, &h, &v);
    let (c, h, v) = raw(&gw, "GET", "/api/v1/no-such-thing", b"");
    assert_json_error("unknown route", c, 404, &h, &v);
    let (c, h, v) = raw(&gw, "POST", "/api/v1/accounts", b"{\"id\": ");
    assert_json_error("bad JSON", c, 400, &h, &v);
    let (c, h, v) = raw(&gw, "POST", "/api/v1/admin/api-keys", b"[1,");
    assert_json_error("bad JSON (keys)", c, 400, &h, &v);
}

#[test]
fn json_routes_and_the_open_claim_route_take_small_bodies_uploads_large_ones() {
    let gw = Gateway::start_with("", "[fax]\nmax_file_bytes = 2097152\n");
    // The claim route is open to anyone: it must not buffer megabytes.
    let big = vec![b'a'; 1024 * 1024];
    let (c, h, v) = raw(&gw, "POST", "/api/v1/devices/claim", &big);
    assert_json_error("claim", c, 413, &h, &v);
    let (c, h, v) = raw(&gw, "POST", "/api/v1/transfers", &big[..100 * 1024]);
    assert_json_error("transfer", c, 413, &h, &v);
    // A small claim still reaches the claim check.
    let (c, _, v) = raw(&gw, "POST", "/api/v1/devices/claim", b"{}");
    assert_eq!(c, 400, "{v}");
    // Uploads take files up to [fax] max_file_bytes, and answer 413 as JSON past it.
    let (c, _, v) = raw(&gw, "POST", "/api/v1/files", &big);
    assert_eq!(c, 201, "{v}");
    let huge = vec![b'a'; 2 * 1024 * 1024 + 1];
    let (c, h, v) = raw(&gw, "POST", "/api/v1/files", &huge);
    assert_json_error("upload", c, 413, &h, &v);
}

/// A PDF of `pages` blank pages with one line each, written by hand (with its xref table).
fn many_page_pdf(pages: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let mut obj = |out: &mut Vec<u8>, body: &str| {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", offsets.len()).as_bytes());
    };
    obj(&mut out, "<</Type/Catalog/Pages 2 0 R>>");
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 4)).collect();
    obj(
        &mut out,
        &format!("<</Type/Pages/Kids[{}]/Count {pages}>>", kids.join(" ")),
    );
    let content = "0 0 m 100 100 l S";
    obj(
        &mut out,
        &format!(
            "<</Length {}>>\nstream\n{content}\nendstream",
            content.len()
        ),
    );
    for _ in 0..pages {
        obj(
            &mut out,
            "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 3 0 R>>",
        );
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// `POST /api/v1/faxes` as multipart (curl): status and JSON body, and how long it took.
fn send_fax(gw: &Gateway, file: &std::path::Path) -> (u16, Value, Duration) {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {TEST_KEY}")])
        .args(["-F", "to=5551234"])
        .arg("-F")
        .arg(format!("file=@{};type=application/pdf", file.display()))
        .arg(format!("http://127.0.0.1:{}/api/v1/faxes", gw.admin_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code.trim().parse().unwrap_or(0), v, start.elapsed())
}

/// Files left in the spool by renders (PDF inputs, partial TIFFs, Ghostscript logs).
fn render_leftovers(gw: &Gateway) -> Vec<String> {
    std::fs::read_dir(gw.dir.join("data/fax"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".pdf") || n.contains(".render.") || n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_pdf_of_100000_pages_is_refused_after_rendering_one_page_past_the_limit() {
    let gw = Gateway::start_with("", "[fax]\nmax_pages = 5\n");
    let pdf = gw.dir.join("many.pdf");
    std::fs::write(&pdf, many_page_pdf(100_000)).unwrap();
    let (code, v, took) = send_fax(&gw, &pdf);
    assert_eq!(code, 422, "{v} after {took:?}");
    assert_eq!(v["error"]["code"], "too_many_pages", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 5"),
        "{v}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(render_leftovers(&gw), Vec::<String>::new());
}

#[test]
fn ghostscript_is_killed_past_its_timeout() {
    let gw = Gateway::start_with("", "[fax]\nmax_pages = 1000\ngs_timeout_secs = 1\n");
    let pdf = gw.dir.join("many.pdf");
    std::fs::write(&pdf, many_page_pdf(100_000)).unwrap();
    let (code, v, took) = send_fax(&gw, &pdf);
    assert_eq!(code, 422, "{v} after {took:?}");
    assert_eq!(v["error"]["code"], "pdf_timeout", "{v}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // No Ghostscript left running for it, no file left behind.
    let ps = Command::new("pgrep")
        .args(["-f", &format!("OutputFile={}", gw.dir.display())])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&ps.stdout)
    );
    assert_eq!(render_leftovers(&gw), Vec::<String>::new());
}

#[test]
fn uploads_expire_and_the_spool_has_a_quota() {
    let gw = Gateway::start_with(
        "",
        "[fax]\nupload_ttl_secs = 2\nspool_max_bytes = 1048576\n",
    );
    let file = vec![b'x'; 600 * 1024];
    let (c, _, first) = raw(&gw, "POST", "/api/v1/files", &file);
    assert_eq!(c, 201, "{first}");
    // The spool holds 1 MiB at most: a second 600 KiB upload does not fit.
    let (c, h, v) = raw(&gw, "POST", "/api/v1/files", &file);
    assert_json_error("spool full", c, 507, &h, &v);
    assert_eq!(v["error"]["code"], "spool_full");
    // Past its time to live the first upload is gone for jobs, and its room is free again.
    let id = first["id"].as_str().unwrap().to_string();
    let job = format!("{{\"to\": \"5551234\", \"file_id\": \"{id}\"}}");
    common::wait_until(
        "the upload to expire (404 for a job)",
        Duration::from_secs(10),
        || {
            let (c, _, v) = raw(&gw, "POST", "/api/v1/faxes", job.as_bytes());
            (c, v)
        },
        |(c, _)| *c == 404,
    );
    let upload = gw.dir.join(format!("data/fax/upload-{id}.bin"));
    assert!(!upload.exists());
    let (c, _, v) = raw(&gw, "POST", "/api/v1/files", &file);
    assert_eq!(c, 201, "{v}");
}
