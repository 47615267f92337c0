//! Backup and restore of the store and the fax spool (docs/operations.md, "Backup and
//! restore"; docs/decisions.md 14.6).
//!
//! - Online: `POST /api/v1/admin/backup` answers with an archive of a consistent snapshot
//!   ([`switchboard_storage::Store::snapshot`]: writes pause while the trees are copied to
//!   memory) and the spool files; `switchboard backup --to DIR` fetches it, verifies it and
//!   writes `DIR/switchboard.backup`.
//! - Offline: `switchboard backup --store PATH --to DIR` reads a stopped gateway's store.
//! - `switchboard restore --from DIR --store NEWDIR` verifies the archive, then writes it into a
//!   new, empty store directory (and spool), and checks the counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use switchboard_storage::backup::{self, Summary, ARCHIVE_NAME};
use switchboard_storage::{now_unix_ms, SledStore};

use crate::admin::{AdminState, ApiError, ApiResult};

/// Longest response head the CLI reads before the archive.
const MAX_HEAD: usize = 64 * 1024;

/// `POST /api/v1/admin/backup` (scope `admin`): the archive as `application/octet-stream`.
pub async fn handler(State(s): State<AdminState>) -> ApiResult {
    let store = std::sync::Arc::clone(&s.store);
    let spool = s.config.fax.spool_dir(&s.config.storage.path);
    let taken = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        backup::write_backup(store.as_ref(), Some(&spool), now_unix_ms(), &mut bytes)
            .map(|summary| (summary, bytes))
    })
    .await;
    match taken {
        Ok(Ok((summary, bytes))) => {
            metrics::counter!("switchboard_backups_total", "result" => "ok").increment(1);
            tracing::info!(
                records = summary.total_records(),
                files = summary.files,
                bytes = bytes.len(),
                "backup taken"
            );
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{ARCHIVE_NAME}\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                bytes,
            )
                .into_response())
        }
        Ok(Err(err)) => {
            metrics::counter!("switchboard_backups_total", "result" => "failed").increment(1);
            tracing::error!(%err, "backup failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                "the backup could not be taken; see the gateway's log",
            ))
        }
        Err(_) => Err(ApiError::unavailable()),
    }
}

/// `switchboard backup`: where from and where to.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// Directory to write `switchboard.backup` into (created; an existing archive there is
    /// never overwritten).
    #[arg(long)]
    to: PathBuf,
    /// Back up a stopped gateway's store directory instead of asking a running one.
    #[arg(long)]
    store: Option<PathBuf>,
    /// With --store: the fax spool directory (default: STORE/fax, as `[fax] spool` defaults).
    #[arg(long, requires = "store")]
    spool: Option<PathBuf>,
    /// The running gateway's admin API; the key needs the `admin` scope.
    #[command(flatten)]
    admin: crate::cli::AdminConn,
}

/// `switchboard restore`: the archive and the new store.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A backup directory (holding `switchboard.backup`) or the archive itself.
    #[arg(long)]
    from: PathBuf,
    /// New store directory (must not exist or be empty); point `[storage] path` at it.
    #[arg(long)]
    store: PathBuf,
    /// Fax spool directory to restore into (default: STORE/fax, as `[fax] spool` defaults).
    #[arg(long)]
    spool: Option<PathBuf>,
}

fn print_summary(verb: &str, s: &Summary, at: &Path) {
    println!(
        "{verb} {} records and {} spool files ({} bytes) {}",
        s.total_records(),
        s.files,
        s.file_bytes,
        at.display()
    );
    for (tree, n) in &s.records {
        if *n > 0 {
            println!("  {tree:<20} {n}");
        }
    }
}

/// `switchboard backup --to DIR [--store PATH]`.
pub fn backup_cmd(args: &BackupArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.to).with_context(|| format!("creating {}", args.to.display()))?;
    let target = args.to.join(ARCHIVE_NAME);
    if target.exists() {
        bail!(
            "{} exists; choose a new directory (a backup is never overwritten)",
            target.display()
        );
    }
    let partial = args.to.join(format!("{ARCHIVE_NAME}.partial"));
    let result = match &args.store {
        Some(store) => offline(store, args.spool.as_deref(), &partial),
        None => online(args, &partial),
    };
    let summary = match result.and_then(|()| {
        let f = std::fs::File::open(&partial)?;
        Ok(backup::verify(BufReader::new(f))?)
    }) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &target)?;
    std::fs::File::open(&args.to)?.sync_all()?;
    print_summary("backed up", &summary, &target);
    Ok(())
}

/// The archive of a store no gateway has open.
fn offline(store: &Path, spool: Option<&Path>, out: &Path) -> anyhow::Result<()> {
    let db = SledStore::open(store).with_context(|| {
        format!(
            "opening the store at {} (for a running gateway, leave out --store)",
            store.display()
        )
    })?;
    let spool = spool.map_or_else(|| store.join("fax"), Path::to_path_buf);
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(f);
    backup::write_backup(&db, Some(&spool), now_unix_ms(), &mut w)?;
    w.flush()?;
    Ok(())
}

/// Fetch the archive from a running gateway into `out`.
fn online(args: &BackupArgs, out: &Path) -> anyhow::Result<()> {
    let (mut stream, host) = crate::cli::open_admin(
        &args.admin.admin,
        args.admin.ca_file.as_deref(),
        Duration::from_secs(300),
    )?;
    let mut head = format!(
        "POST /api/v1/admin/backup HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(key) = &args.admin.api_key {
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    let mut r = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 || head.len() + n > MAX_HEAD {
            bail!("malformed HTTP response from the admin API");
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        head.push_str(&String::from_utf8_lossy(&line));
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    if status != 200 {
        let mut body = String::new();
        let _ = r.take(MAX_HEAD as u64).read_to_string(&mut body);
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| "error".into());
        if status == 401 || status == 403 {
            bail!(
                "admin API answered {status}: {msg} (a key with the `admin` scope is needed: \
                 set SWITCHBOARD_API_KEY or pass --api-key)"
            );
        }
        bail!("admin API answered {status}: {msg}");
    }
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(f);
    std::io::copy(&mut r, &mut w).context("receiving the backup")?;
    w.flush()?;
    Ok(())
}

/// `switchboard restore --from DIR --store NEWDIR [--spool DIR]`.
pub fn restore_cmd(args: &RestoreArgs) -> anyhow::Result<()> {
    let archive = if args.from.is_dir() {
        args.from.join(ARCHIVE_NAME)
    } else {
        args.from.clone()
    };
    let spool = args.spool.clone().unwrap_or_else(|| args.store.join("fax"));
    let summary = backup::restore(&archive, &args.store, &spool)
        .with_context(|| format!("restoring {}", archive.display()))?;
    print_summary("restored", &summary, &args.store);
    println!(
        "point `[storage] path` at {} (and `[fax] spool` at {} if you set it) and start the gateway",
        args.store.display(),
        spool.display()
    );
    Ok(())
}
