//! The operator commands that read a running gateway's admin API, printed as
//! tables (`core show channels` style) or JSON.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// Where the admin API is.
#[derive(clap::Args)]
pub struct ApiArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    admin: String,
    /// API key (`sbk_…`); best from the environment.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// GET a path of the admin API and parse the JSON body.
fn get(api: &ApiArgs, path: &str) -> anyhow::Result<Value> {
    request(api, "GET", path, None)
}

/// One request to the admin API (`body` = content type and bytes); the JSON answer.
fn request(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> anyhow::Result<Value> {
    let rest = api
        .admin
        .strip_prefix("http://")
        .context("only http:// admin URLs are supported")?;
    let host = rest.trim_end_matches('/');
    let mut stream = TcpStream::connect(host)
        .with_context(|| format!("connecting to the admin API at {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n")?;
    if let Some(key) = &api.api_key {
        write!(stream, "Authorization: Bearer {key}\r\n")?;
    }
    match body {
        Some((ctype, bytes)) => {
            write!(
                stream,
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            )?;
            stream.write_all(bytes)?;
        }
        None => write!(stream, "\r\n")?,
    }
    let mut raw = Vec::new();
    stream.take(16 * 1024 * 1024).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    let value: Value = serde_json::from_str(body).context("the admin API did not return JSON")?;
    if status >= 400 {
        let msg = value["error"]["message"].as_str().unwrap_or("error");
        bail!("admin API answered {status}: {msg}");
    }
    Ok(value)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// `switchboard calls`
pub fn calls(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/calls")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let calls = v["calls"].as_array().cloned().unwrap_or_default();
    let streams = get(api, "/api/v1/streams")?;
    let streams = streams["streams"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = calls
        .iter()
        .map(|c| {
            let n = streams.iter().filter(|s| s["call_id"] == c["id"]).count();
            vec![
                s(&c["id"]),
                s(&c["state"]),
                s(&c["src"]),
                s(&c["dst"]),
                format!("{}->{}", s(&c["trunk_in"]), s(&c["trunk_out"])),
                s(&c["codec"]),
                s(&c["start"]),
                s(&c["media"]["a_to_b"]["packets"]),
                s(&c["media"]["b_to_a"]["packets"]),
                n.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "Call", "State", "Src", "Dst", "Trunks", "Codec", "Start", "Pkts A>B", "Pkts B>A",
            "Streams",
        ],
        &rows,
    );
    println!(
        "{} active call{}",
        calls.len(),
        if calls.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `switchboard status`: the gateway at a glance.
pub fn status(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/overview")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let len = |k: &str| v[k].as_array().map_or(0, Vec::len);
    let trunks = v["trunks"].as_array().cloned().unwrap_or_default();
    let up = trunks.iter().filter(|t| t["state"] == "up").count();
    println!("switchboard {}", s(&v["version"]));
    println!("{:<26}{}", "calls active", len("calls"));
    println!("{:<26}{up} / {}", "trunks up", trunks.len());
    for t in &trunks {
        println!("  {:<24}{}", s(&t["name"]), s(&t["state"]));
    }
    println!("{:<26}{}", "devices online", s(&v["devices_online"]));
    println!("{:<26}{}", "faxes queued or sending", s(&v["faxes_open"]));
    println!("{:<26}{}", "media streams", s(&v["streams_active"]));
    println!("{:<26}{}", "banned SIP sources", s(&v["bans_active"]));
    if let Some(accounts) = v["accounts"].as_array() {
        println!("{:<26}{}", "accounts", accounts.len());
        for a in accounts {
            println!(
                "  {:<24}{} (available {}, reserved {})",
                s(&a["id"]),
                s(&a["balance"]),
                s(&a["available"]),
                s(&a["pending"])
            );
        }
    }
    Ok(())
}

/// `switchboard streams`
pub fn streams(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/streams")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let list = v["streams"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|st| {
            vec![
                s(&st["stream_sid"]),
                s(&st["kind"]),
                s(&st["target"]),
                s(&st["mode"]),
                s(&st["state"]),
                s(&st["call_id"]),
                s(&st["frames_out"]),
                s(&st["frames_in"]),
                s(&st["dropped"]),
                s(&st["started"]),
            ]
        })
        .collect();
    print_table(
        &[
            "Stream", "Kind", "Target", "Mode", "State", "Call", "Out", "In", "Dropped", "Started",
        ],
        &rows,
    );
    println!(
        "{} active stream{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `switchboard trunks`
pub fn trunks(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/trunks")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let trunks = v["trunks"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = trunks
        .iter()
        .map(|t| {
            vec![
                s(&t["name"]),
                s(&t["address"]),
                s(&t["transport"]),
                s(&t["state"]),
                s(&t["registered"]),
                s(&t["rtt_ms"]),
                s(&t["last_error"]),
            ]
        })
        .collect();
    print_table(
        &[
            "Name",
            "Address",
            "Transport",
            "State",
            "Registered",
            "RTT ms",
            "Last error",
        ],
        &rows,
    );
    Ok(())
}

/// `switchboard cdrs`
pub fn cdrs(api: &ApiArgs, limit: usize) -> anyhow::Result<()> {
    let v = get(api, &format!("/api/v1/cdrs?limit={limit}"))?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let cdrs = v["cdrs"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = cdrs
        .iter()
        .map(|c| {
            vec![
                s(&c["start"]),
                s(&c["src"]),
                s(&c["dst"]),
                s(&c["disposition"]),
                s(&c["duration"]),
                s(&c["billsec"]),
                s(&c["hangup_cause"]),
                format!("{}->{}", s(&c["trunk_in"]), s(&c["trunk_out"])),
                s(&c["id"]),
            ]
        })
        .collect();
    print_table(
        &[
            "Start",
            "Src",
            "Dst",
            "Disposition",
            "Duration",
            "Billsec",
            "Cause",
            "Trunks",
            "Id",
        ],
        &rows,
    );
    Ok(())
}

/// `switchboard devices`
pub fn devices(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/devices")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let devices = v["devices"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                s(&d["id"]),
                s(&d["account"]),
                if d["online"] == true {
                    "online".into()
                } else {
                    "offline".into()
                },
                s(&d["last_seen"]),
                s(&d["firmware"]),
                s(&d["counters"]["messages_in"]),
                s(&d["counters"]["messages_out"]),
                s(&d["commands_pending"]),
            ]
        })
        .collect();
    print_table(
        &[
            "Device",
            "Account",
            "State",
            "Last seen",
            "Firmware",
            "Msgs in",
            "Msgs out",
            "Cmds pending",
        ],
        &rows,
    );
    let online = devices.iter().filter(|d| d["online"] == true).count();
    println!(
        "{} device{}, {online} online",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `switchboard fax send TO FILE`: upload the document, queue the job.
pub fn fax_send(api: &ApiArgs, to: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let up = request(
        api,
        "POST",
        "/api/v1/files",
        Some(("application/octet-stream", &bytes)),
    )?;
    let file_id = up["id"].as_str().context("the upload returned no id")?;
    let body = serde_json::json!({"to": to, "file_id": file_id}).to_string();
    let job = request(
        api,
        "POST",
        "/api/v1/faxes",
        Some(("application/json", body.as_bytes())),
    )?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    } else {
        println!(
            "fax {} to {} queued: {} page(s)",
            s(&job["id"]),
            s(&job["to"]),
            s(&job["pages"])
        );
    }
    Ok(())
}

/// `switchboard keys create`
pub fn keys_create(
    api: &ApiArgs,
    name: &str,
    scopes: &[String],
    expires_in: Option<u64>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({"name": name, "scopes": scopes});
    if let Some(t) = expires_in {
        body["expires_in_secs"] = t.into();
    }
    let v = request(
        api,
        "POST",
        "/api/v1/admin/api-keys",
        Some(("application/json", body.to_string().as_bytes())),
    )?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "key {} ({}) created; store it now, it is not shown again:",
            s(&v["id"]),
            s(&v["name"])
        );
        println!("{}", s(&v["key"]));
    }
    Ok(())
}

/// `switchboard keys list`
pub fn keys_list(api: &ApiArgs) -> anyhow::Result<()> {
    let v = get(api, "/api/v1/admin/api-keys")?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let keys = v["keys"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let scopes: Vec<String> = k["scopes"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            vec![
                s(&k["id"]),
                s(&k["name"]),
                scopes.join(","),
                s(&k["state"]),
                s(&k["created_at"]),
                s(&k["expires_at"]),
            ]
        })
        .collect();
    print_table(
        &["Id", "Name", "Scopes", "State", "Created", "Expires"],
        &rows,
    );
    Ok(())
}

/// `switchboard device reset ID`: the operator's re-provisioning of a device.
pub fn device_reset(api: &ApiArgs, id: &str) -> anyhow::Result<()> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        anyhow::bail!("device ids are 1-64 characters of A-Z a-z 0-9 _ -");
    }
    request(api, "POST", &format!("/api/v1/devices/{id}/reset"), None)?;
    println!("device {id} reset: its credential is gone and it may be claimed again");
    Ok(())
}

/// `switchboard keys revoke ID`
pub fn keys_revoke(api: &ApiArgs, id: &str) -> anyhow::Result<()> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.is_empty() || id.len() > 16 {
        anyhow::bail!("a key id is up to 16 hex digits");
    }
    request(api, "DELETE", &format!("/api/v1/admin/api-keys/{id}"), None)?;
    println!("key {id} revoked");
    Ok(())
}

/// `switchboard faxes [--inbound]`: jobs (or received faxes), newest first,
/// with results like Asterisk's FAXSTATUS/FAXPAGES/FAXERROR.
pub fn faxes(api: &ApiArgs, inbound: bool) -> anyhow::Result<()> {
    let path = if inbound {
        "/api/v1/inbound-faxes"
    } else {
        "/api/v1/faxes"
    };
    let v = get(api, path)?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let faxes = v["faxes"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = faxes
        .iter()
        .map(|f| {
            let peer = if inbound { &f["from"] } else { &f["to"] };
            vec![
                s(&f["id"]),
                s(peer),
                s(&f["status"]),
                if inbound {
                    s(&f["pages"])
                } else {
                    format!("{}/{}", s(&f["pages_sent"]), s(&f["pages"]))
                },
                if inbound {
                    "-".into()
                } else {
                    format!("{}/{}", s(&f["attempts"]), s(&f["max_attempts"]))
                },
                s(&f["error"]),
                s(&f["bitrate"]),
                s(&f["remote_station"]),
                s(&f["updated_at"]),
            ]
        })
        .collect();
    let peer = if inbound { "From" } else { "To" };
    print_table(
        &[
            "Fax", peer, "Status", "Pages", "Attempts", "Error", "Rate", "Station", "Updated",
        ],
        &rows,
    );
    Ok(())
}

/// `switchboard drain`: start a drain of the gateway (as SIGTERM does) and show what is still
/// in progress. The gateway exits on its own once no call is left or `[sip] drain_secs` passes.
pub fn drain(api: &ApiArgs) -> anyhow::Result<()> {
    let v = request(api, "POST", "/api/v1/admin/drain", None)?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let first = v["started"].as_bool().unwrap_or(false);
    println!(
        "{}: {} call(s), {} stream(s) and {} MQTT client(s) in progress; calls left are hung up in {} s",
        if first {
            "draining"
        } else {
            "already draining"
        },
        s(&v["in_progress"]["calls"]),
        s(&v["in_progress"]["streams"]),
        s(&v["in_progress"]["mqtt_clients"]),
        s(&v["deadline_in_secs"]),
    );
    Ok(())
}
