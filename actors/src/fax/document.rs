//! Fax documents accepted from the API: a TIFF (fax class F, G3/G4, or any
//! bilevel TIFF the image reader takes) or a PDF rendered to a G3 TIFF with
//! Ghostscript (`gs -sDEVICE=tiffg3`) when it is installed. The document is
//! checked and written to the spool directory before the job is accepted.
//!
//! Ghostscript renders at most `max_pages + 1` pages (`-dLastPage`): one page more than
//! allowed proves the document too long without rendering the rest. It is killed past
//! `[fax] gs_timeout_secs`, or as soon as its output outgrows the room left in the spool
//! (`[fax] spool_max_bytes`). Uploads kept for later jobs expire after `[fax] upload_ttl_secs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one document may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest input file (`[fax] max_file_bytes`).
    pub max_bytes: u64,
    /// Most pages (`[fax] max_pages`).
    pub max_pages: u32,
    /// Longest Ghostscript run (`[fax] gs_timeout_secs`).
    pub gs_timeout: Duration,
    /// Most bytes the spool directory may hold (`[fax] spool_max_bytes`).
    pub spool_max_bytes: u64,
}

impl Limits {
    /// The limits of `[fax]`.
    pub fn of(fax: &switchboard_config::FaxConfig) -> Self {
        Self {
            max_bytes: fax.max_file_bytes,
            max_pages: fax.max_pages,
            gs_timeout: Duration::from_secs(u64::from(fax.gs_timeout_secs)),
            spool_max_bytes: fax.spool_max_bytes,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Neither a TIFF nor a PDF.
    #[error("the file is neither a TIFF nor a PDF")]
    UnknownFormat,
    /// Larger than `[fax] max_file_bytes`.
    #[error("the file is {size} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// A PDF, but Ghostscript is not installed.
    #[error(
        "PDF needs Ghostscript ({gs}), which is not installed; send a TIFF or install ghostscript"
    )]
    NoGhostscript {
        /// The binary looked for.
        gs: String,
    },
    /// Ghostscript failed on the PDF.
    #[error("the PDF could not be rendered: {0}")]
    Render(String),
    /// The TIFF is not usable for fax.
    #[error("the TIFF is not usable for fax: {0}")]
    BadTiff(#[from] switchboard_fax::tiff::TiffError),
    /// More pages than `[fax] max_pages`.
    #[error("{pages} pages; the limit is {max}")]
    TooManyPages {
        /// Pages in the document.
        pages: u32,
        /// The limit.
        max: u32,
    },
    /// A PDF with more pages than `[fax] max_pages` (rendering stopped one page past it).
    #[error("more than {max} pages; the limit is {max}")]
    PagesOver {
        /// The limit.
        max: u32,
    },
    /// Ghostscript took longer than `[fax] gs_timeout_secs` and was killed.
    #[error("the PDF took longer than {secs} s to render")]
    RenderTimeout {
        /// The limit.
        secs: u64,
    },
    /// The spool directory has no room left for this document (`[fax] spool_max_bytes`).
    #[error("the fax spool is full: {free} bytes free, {need} needed; try again later")]
    SpoolFull {
        /// Bytes this document needed (at least).
        need: u64,
        /// Bytes left under the cap.
        free: u64,
    },
    /// The spool directory could not be written.
    #[error("cannot write the spool file: {0}")]
    Io(#[from] std::io::Error),
}

impl DocumentError {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::UnknownFormat => "unknown_format",
            DocumentError::TooLarge { .. } => "too_large",
            DocumentError::NoGhostscript { .. } => "pdf_unsupported",
            DocumentError::Render(_) => "pdf_render_failed",
            DocumentError::BadTiff(_) => "bad_tiff",
            DocumentError::TooManyPages { .. } | DocumentError::PagesOver { .. } => {
                "too_many_pages"
            }
            DocumentError::RenderTimeout { .. } => "pdf_timeout",
            DocumentError::SpoolFull { .. } => "spool_full",
            DocumentError::Io(_) => "spool_error",
        }
    }
}

/// A document ready to send.
#[derive(Debug, Clone)]
pub struct Document {
    /// The TIFF in the spool directory.
    pub path: PathBuf,
    /// Pages.
    pub pages: u32,
}

/// Check `bytes` (TIFF or PDF), render a PDF, and write the TIFF to
/// `spool/{id}.tif`, within `limits`.
pub fn accept(
    bytes: &[u8],
    id: &str,
    spool: &Path,
    gs: &str,
    limits: &Limits,
) -> Result<Document, DocumentError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let is_pdf = bytes.starts_with(b"%PDF-");
    if !is_pdf && !bytes.starts_with(b"II*\0") && !bytes.starts_with(b"MM\0*") {
        return Err(DocumentError::UnknownFormat);
    }
    std::fs::create_dir_all(spool)?;
    let free = limits.spool_max_bytes.saturating_sub(spool_usage(spool));
    // A PDF is written once as input, a TIFF once as the document.
    if bytes.len() as u64 > free {
        return Err(DocumentError::SpoolFull {
            need: bytes.len() as u64,
            free,
        });
    }
    let path = spool.join(format!("{id}.tif"));
    let tiff = if is_pdf {
        render_pdf(bytes, id, spool, gs, limits, free - bytes.len() as u64)?
    } else {
        bytes.to_vec()
    };
    if tiff.len() as u64 > free {
        return Err(DocumentError::SpoolFull {
            need: tiff.len() as u64,
            free,
        });
    }
    let pages = count_pages(&tiff)?;
    if pages > limits.max_pages {
        return Err(if is_pdf {
            DocumentError::PagesOver {
                max: limits.max_pages,
            }
        } else {
            DocumentError::TooManyPages {
                pages,
                max: limits.max_pages,
            }
        });
    }
    write_durably(&path, &tiff)?;
    Ok(Document { path, pages })
}

/// Bytes held by the files of `dir` and its sub-directories (two levels down at most).
pub fn spool_usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u8) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() && depth > 0 => walk(&e.path(), depth - 1),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    }
    walk(dir, 2)
}

/// Where upload `id` is kept.
pub fn upload_path(spool: &Path, id: &str) -> PathBuf {
    spool.join(format!("upload-{id}.bin"))
}

/// Keep an upload for a later job, if the spool has room for it under `spool_max_bytes`.
/// Expired uploads (older than `ttl`) are swept first. Blocking: call it off the async workers.
pub fn store_upload(
    spool: &Path,
    id: &str,
    bytes: &[u8],
    spool_max_bytes: u64,
    ttl: Duration,
) -> Result<PathBuf, DocumentError> {
    std::fs::create_dir_all(spool)?;
    sweep_uploads(spool, ttl);
    let free = spool_max_bytes.saturating_sub(spool_usage(spool));
    if bytes.len() as u64 > free {
        return Err(DocumentError::SpoolFull {
            need: bytes.len() as u64,
            free,
        });
    }
    let path = upload_path(spool, id);
    write_durably(&path, bytes)?;
    Ok(path)
}

/// The bytes of upload `id`, or `None` when there is none or it is older than `ttl` (then it
/// is deleted).
pub fn load_upload(spool: &Path, id: &str, ttl: Duration) -> std::io::Result<Option<Vec<u8>>> {
    let path = upload_path(spool, id);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if expired(&meta, ttl) {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    std::fs::read(&path).map(Some)
}

fn expired(meta: &std::fs::Metadata, ttl: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > ttl)
}

/// Delete uploads older than `ttl`, and leftovers of renders that never finished (a crash
/// mid-render); the number of files removed.
pub fn sweep_uploads(spool: &Path, ttl: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = (name.starts_with("upload-") && name.ends_with(".bin"))
            || name.ends_with(".render.tif")
            || name.ends_with(".gs.log")
            || name.ends_with(".pdf");
        if ours
            && e.metadata().is_ok_and(|m| m.is_file() && expired(&m, ttl))
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Write and fsync (file, then directory), so a document survives a crash
/// once it is acknowledged. Blocking: call it off the async workers.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Render `bytes` with Ghostscript: at most `max_pages + 1` pages, killed past the timeout
/// or when its output passes `room` bytes. Every temporary file goes, whatever happens.
fn render_pdf(
    bytes: &[u8],
    id: &str,
    spool: &Path,
    gs: &str,
    limits: &Limits,
    room: u64,
) -> Result<Vec<u8>, DocumentError> {
    let input = spool.join(format!("{id}.pdf"));
    let output = spool.join(format!("{id}.render.tif"));
    let log = spool.join(format!("{id}.gs.log"));
    let result = run_gs(bytes, &input, &output, &log, gs, limits, room);
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&output);
    result
}

fn run_gs(
    bytes: &[u8],
    input: &Path,
    output: &Path,
    log: &Path,
    gs: &str,
    limits: &Limits,
    room: u64,
) -> Result<Vec<u8>, DocumentError> {
    std::fs::write(input, bytes)?;
    let stderr = std::fs::File::create(log)?;
    let spawned = Command::new(gs)
        .args([
            "-q",
            "-dNOPAUSE",
            "-dBATCH",
            "-dSAFER",
            "-sDEVICE=tiffg3",
            "-r204x196",
            "-sPAPERSIZE=a4",
            "-dFIXEDMEDIA",
            "-dPDFFitPage",
            "-dFirstPage=1",
        ])
        // One page past the limit is enough to know the document is too long.
        .arg(format!("-dLastPage={}", limits.max_pages.saturating_add(1)))
        .arg(format!("-sOutputFile={}", output.display()))
        .arg(input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    let mut child = match spawned {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DocumentError::NoGhostscript { gs: gs.to_string() })
        }
        Err(e) => return Err(DocumentError::Render(e.to_string())),
        Ok(c) => c,
    };
    let deadline = Instant::now() + limits.gs_timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DocumentError::Render(e.to_string()));
            }
        }
        let written = std::fs::metadata(output).map_or(0, |m| m.len());
        let over = if written > room {
            Some(DocumentError::SpoolFull {
                need: written,
                free: room,
            })
        } else if Instant::now() >= deadline {
            Some(DocumentError::RenderTimeout {
                secs: limits.gs_timeout.as_secs(),
            })
        } else {
            None
        };
        if let Some(e) = over {
            let _ = child.kill();
            let _ = child.wait();
            metrics::counter!("switchboard_fax_render_killed_total", "reason" => e.code())
                .increment(1);
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let msg = std::fs::read(log).unwrap_or_default();
        let msg = String::from_utf8_lossy(&msg[..msg.len().min(4096)]);
        let first = msg.lines().next().unwrap_or("ghostscript failed").trim();
        return Err(DocumentError::Render(first.chars().take(200).collect()));
    }
    // Ghostscript may "succeed" on a PDF it could not make sense of, with
    // no page written.
    match std::fs::read(output) {
        Ok(t) if !t.is_empty() => Ok(t),
        _ => Err(DocumentError::Render("no page could be rendered".into())),
    }
}

/// Pages of a TIFF, each decoded and checked (bilevel, a supported
/// compression, sane sizes): a document that cannot be sent is refused here.
pub fn count_pages(data: &[u8]) -> Result<u32, switchboard_fax::tiff::TiffError> {
    let pages = switchboard_fax::tiff::read_tiff(data)?;
    // More than u32::MAX pages cannot be read within the reader's limits; saturate so the
    // page limit refuses it anyway.
    Ok(u32::try_from(pages.len()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fax/fixtures")
            .join(name);
        std::fs::read(p).unwrap()
    }

    #[test]
    fn pages_are_counted_and_garbage_refused() {
        assert_eq!(count_pages(&fixture("one-page.tif")), Ok(1));
        assert_eq!(count_pages(&fixture("two-pages.tif")), Ok(2));
        assert!(count_pages(b"II*\0\xff\xff\xff\x00").is_err());
        assert!(count_pages(b"GIF89a").is_err());
        // Truncations of a valid file never panic.
        let good = fixture("one-page.tif");
        for cut in (0..good.len()).step_by(97) {
            let _ = count_pages(&good[..cut]);
        }
    }

    fn limits(max_bytes: u64, max_pages: u32) -> Limits {
        Limits {
            max_bytes,
            max_pages,
            gs_timeout: Duration::from_secs(30),
            spool_max_bytes: 1 << 30,
        }
    }

    #[test]
    fn unknown_formats_and_sizes_are_refused_before_writing() {
        let dir = std::env::temp_dir().join(format!("sb-doc-{}", std::process::id()));
        let e = accept(b"hello", "x", &dir, "gs", &limits(1024, 10)).unwrap_err();
        assert_eq!(e.code(), "unknown_format");
        let e = accept(&[0u8; 2048], "x", &dir, "gs", &limits(1024, 10)).unwrap_err();
        assert_eq!(e.code(), "too_large");
        let e = accept(
            b"%PDF-1.4\n",
            "x",
            &dir,
            "/nonexistent/gs",
            &limits(1024, 10),
        )
        .unwrap_err();
        assert_eq!(e.code(), "pdf_unsupported");
        let doc = accept(
            &fixture("two-pages.tif"),
            "ok",
            &dir,
            "gs",
            &limits(1 << 20, 10),
        )
        .unwrap();
        assert_eq!(doc.pages, 2);
        assert!(doc.path.exists());
        let e = accept(
            &fixture("two-pages.tif"),
            "many",
            &dir,
            "gs",
            &limits(1 << 20, 1),
        )
        .unwrap_err();
        assert_eq!(e.code(), "too_many_pages");
        // A full spool refuses the document before writing anything.
        let full = Limits {
            spool_max_bytes: spool_usage(&dir) + 10,
            ..limits(1 << 20, 10)
        };
        let e = accept(&fixture("two-pages.tif"), "full", &dir, "gs", &full).unwrap_err();
        assert_eq!(e.code(), "spool_full");
        assert!(!dir.join("full.tif").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uploads_expire_and_count_against_the_spool_cap() {
        let dir = std::env::temp_dir().join(format!("sb-upl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ttl = Duration::from_secs(3600);
        store_upload(&dir, "aa", &[1u8; 600], 1000, ttl).unwrap();
        let e = store_upload(&dir, "bb", &[1u8; 600], 1000, ttl).unwrap_err();
        assert_eq!(e.code(), "spool_full");
        assert_eq!(load_upload(&dir, "aa", ttl).unwrap().unwrap().len(), 600);
        assert_eq!(load_upload(&dir, "bb", ttl).unwrap(), None);
        // Past its time to live an upload is gone, and its bytes are free again.
        assert_eq!(load_upload(&dir, "aa", Duration::ZERO).unwrap(), None);
        assert!(!upload_path(&dir, "aa").exists());
        store_upload(&dir, "bb", &[1u8; 600], 1000, ttl).unwrap();
        assert_eq!(sweep_uploads(&dir, Duration::ZERO), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
