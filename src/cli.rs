//! The operator commands that read a running gateway's admin API, printed as
//! tables (`core show channels` style) or JSON.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Where the admin API is and how to reach it (shared by every command that calls it).
#[derive(clap::Args)]
pub struct AdminConn {
    /// Admin API base URL (`http://` or `https://`).
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) admin: String,
    /// API key (`sbk_…`); best from the environment.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// For an `https://` admin URL: a PEM file of CA certificates (or the self-signed
    /// certificate itself) to trust besides the system's roots.
    #[arg(long, env = "SWITCHBOARD_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// The admin API and how to print its answers.
#[derive(clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    conn: AdminConn,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// GET a path of the admin API and parse the JSON body.
fn get(api: &ApiArgs, path: &str) -> anyhow::Result<Value> {
    request(api, "GET", path, None)
}

/// An admin URL taken apart: whether it is HTTPS, `host:port` to connect to, and the host
/// alone (the TLS server name).
struct Target {
    https: bool,
    authority: String,
    host: String,
}

fn target(url: &str) -> anyhow::Result<Target> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        bail!("the admin URL {url:?} must start with http:// or https://");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        bail!("the admin URL {url:?} has no host");
    }
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .with_context(|| format!("the admin URL {url:?} has an unclosed [ in its host"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port: u16 = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("the admin URL {url:?} has a bad port"))?,
        None if https => 443,
        None => 80,
    };
    let connect_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(Target {
        https,
        authority: format!("{connect_host}:{port}"),
        host: host.to_string(),
    })
}

/// The system's CA bundle, where the usual distributions keep it (`SSL_CERT_FILE` first).
fn system_roots() -> Vec<CertificateDer<'static>> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let known = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    env.into_iter()
        .chain(known.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .and_then(|p| CertificateDer::pem_file_iter(p).ok())
        .map(|certs| certs.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// A TLS client trusting the system's roots, Mozilla's (webpki-roots) and `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots.add_parsable_certificates(system_roots());
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| anyhow::anyhow!("the CA file {}: {e}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!(
                "the CA file {}: no usable certificate in it",
                path.display()
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a connection to the admin API reads from and writes to.
pub(crate) trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// A connection to the admin API at `url` (`http://` or `https://`, trusting `ca_file` besides
/// the usual roots) whose reads time out after `read_timeout`, and the `host:port` it went to:
/// for commands that stream a long answer (`backup`).
pub(crate) fn open_admin(
    url: &str,
    ca_file: Option<&Path>,
    read_timeout: Duration,
) -> anyhow::Result<(Box<dyn Conn>, String)> {
    let t = target(url.trim_end_matches('/'))?;
    let conn = connect(ca_file, &t, read_timeout)?;
    Ok((conn, t.authority))
}

fn connect(
    ca_file: Option<&Path>,
    t: &Target,
    read_timeout: Duration,
) -> anyhow::Result<Box<dyn Conn>> {
    let tcp = TcpStream::connect(&t.authority)
        .with_context(|| format!("connecting to the admin API at {}", t.authority))?;
    tcp.set_read_timeout(Some(read_timeout))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    if !t.https {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(t.host.clone())
        .map_err(|_| anyhow::anyhow!("`{}` is not a DNS name or an IP address", t.host))?;
    let conn = ClientConnection::new(tls_config(ca_file)?, name).context("TLS set-up")?;
    let mut tls = StreamOwned::new(conn, tcp);
    // Handshake now, so a certificate problem is reported as one.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| tls_failure(e, ca_file, &t.authority))?;
    }
    Ok(Box::new(tls))
}

/// A failed handshake in words, with what to do about an untrusted certificate.
fn tls_failure(e: std::io::Error, ca_file: Option<&Path>, at: &str) -> anyhow::Error {
    let untrusted = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if untrusted && ca_file.is_none() {
        anyhow::anyhow!(
            "TLS handshake with the admin API at {at}: {e}; for a self-signed or private CA \
             certificate, pass --ca-file PEM (or set SWITCHBOARD_CA_FILE)"
        )
    } else {
        anyhow::anyhow!("TLS handshake with the admin API at {at}: {e}")
    }
}

/// Read until the peer closes; a TLS peer that closes without `close_notify` after a whole
/// `Connection: close` answer is not an error here (the body is checked as JSON anyway).
fn read_all(conn: &mut dyn Conn, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > limit {
                    return Ok(raw);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {
                return Ok(raw)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What a 401 means to someone at a shell.
fn unauthorized_help(api: &ApiArgs) -> String {
    let what = if api.conn.api_key.is_some() {
        "the API key given was refused (unknown, revoked or expired)"
    } else {
        "no API key given"
    };
    format!(
        "{what}: set SWITCHBOARD_API_KEY=sbk_... in the environment or pass --api-key sbk_... \
         (the gateway prints an admin key once, at its first start on an empty store; a lost \
         key: stop the gateway and run `switchboard keys create --store DATA_DIR --name admin \
         --scope admin`). A bootstrap key ([admin] bootstrap_key / \
         SWITCHBOARD_ADMIN_BOOTSTRAP_KEY) only counts on a store without keys, otherwise it is \
         ignored (the gateway's log warns at start)"
    )
}

/// One request to the admin API (`body` = content type and bytes); the JSON answer.
fn request(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> anyhow::Result<Value> {
    let t = target(api.conn.admin.trim_end_matches('/'))?;
    let mut stream = connect(api.conn.ca_file.as_deref(), &t, Duration::from_secs(10))?;
    let host = &t.authority;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(key) = &api.conn.api_key {
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    match body {
        Some((ctype, bytes)) => {
            head.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            ));
            stream.write_all(head.as_bytes())?;
            stream.write_all(bytes)?;
        }
        None => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
        }
    }
    stream.flush()?;
    let raw = read_all(stream.as_mut(), 16 * 1024 * 1024)
        .with_context(|| format!("reading the admin API's answer from {host}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    if status == 401 {
        bail!("admin API answered 401: {}", unauthorized_help(api));
    }
    let value: Value = serde_json::from_str(body).context("the admin API did not return JSON")?;
    if status == 403 {
        let msg = value["error"]["message"].as_str().unwrap_or("forbidden");
        let scope = msg.strip_prefix("this key lacks the scope ");
        match scope {
            Some(scope) => bail!(
                "admin API answered 403: the API key lacks the scope `{scope}`; use a key \
                 with it (or `admin`), e.g. one made with `switchboard keys create --name NAME \
                 --scope {scope}`"
            ),
            None => bail!("admin API answered 403: {msg}"),
        }
    }
    if status >= 400 {
        let msg = value["error"]["message"].as_str().unwrap_or("error");
        bail!("admin API answered {status}: {msg}");
    }
    Ok(value)
}

/// Show the admin key generated at the first start, once, on the console (stderr, plain
/// text: never through the log, which may be JSON and shipped elsewhere).
pub fn show_first_key(key: &str, store: &Path) {
    let lines = [
        "switchboard: first start on an empty store, and no bootstrap key configured.".to_string(),
        "An admin API key was generated (scope: admin):".to_string(),
        String::new(),
        format!("    {key}"),
        String::new(),
        "Store it now: it is NOT shown again (only its hash is kept).".to_string(),
        "Use it:   export SWITCHBOARD_API_KEY=<the key above>".to_string(),
        "Lost it?  Stop the gateway, then:".to_string(),
        format!(
            "          switchboard keys create --store {} --name admin --scope admin",
            store.display()
        ),
    ];
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = format!("+{}+", "-".repeat(width + 2));
    let mut out = String::new();
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for l in &lines {
        out.push_str(&format!("| {l:<width$} |\n"));
    }
    out.push_str(&rule);
    out.push_str("\n\n");
    // One write, so log lines from other threads do not cut through the box.
    let stderr = std::io::stderr();
    let mut lock = stderr.lock();
    let _ = lock.write_all(out.as_bytes());
    let _ = lock.flush();
}

/// `switchboard keys create --store PATH`: a key written straight into a stopped gateway's
/// store (for a lost admin key), printed once.
pub fn keys_create_offline(
    api: &ApiArgs,
    path: &Path,
    name: &str,
    scopes: &[String],
    expires_in: Option<u64>,
) -> anyhow::Result<()> {
    use switchboard_storage::{SledStore, StoreError};
    crate::admin::auth::check_request(name, scopes, expires_in)?;
    // sled would create an empty store anywhere: a typo must not "succeed".
    if !path.join("db").is_file() && !path.join("conf").is_file() {
        bail!(
            "no store at {}: give the gateway's data directory (`[storage] path`, default ./data)",
            path.display()
        );
    }
    let store = match SledStore::open(path) {
        Ok(s) => s,
        Err(StoreError::Locked { .. }) => bail!(
            "the store at {} is in use: a running gateway holds its lock. Stop the gateway \
             and run this again, or create the key online through the admin API (with an \
             admin key): switchboard keys create --name {name} --scope ...",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("opening the store at {}", path.display()))
        }
    };
    let keys = crate::admin::auth::Keys::open(Arc::new(store))
        .with_context(|| format!("reading the keys in {}", path.display()))?;
    let made = keys
        .create(name, scopes.to_vec(), expires_in, Vec::new())
        .with_context(|| format!("writing the key into {}", path.display()))?;
    if api.json {
        let mut v = serde_json::json!({
            "id": made.record.id,
            "name": made.record.name,
            "scopes": made.record.scopes,
        });
        v["key"] = made.key.clone().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "key {} ({}) created in {}; store it now, it is not shown again:",
            made.record.id,
            made.record.name,
            path.display()
        );
        println!("{}", made.key);
    }
    Ok(())
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
    // Up among the trunks that are probed (`qualify`); the others are never up nor down.
    let monitored = trunks.iter().filter(|t| t["monitored"] == true).count();
    let up = trunks.iter().filter(|t| t["state"] == "up").count();
    println!("switchboard {}", s(&v["version"]));
    println!("{:<26}{}", "calls active", len("calls"));
    println!("{:<26}{up} / {monitored}", "trunks up (monitored)");
    println!("{:<26}{}", "trunks not monitored", trunks.len() - monitored);
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
