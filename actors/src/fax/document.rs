//! Fax documents accepted from the API: a TIFF (fax class F, G3/G4, or any
//! bilevel TIFF the image reader takes) or a PDF rendered to a G3 TIFF with
//! Ghostscript (`gs -sDEVICE=tiffg3`) when it is installed. The document is
//! checked and written to the spool directory before the job is accepted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    BadTiff(String),
    /// More pages than `[fax] max_pages`.
    #[error("{pages} pages; the limit is {max}")]
    TooManyPages {
        /// Pages in the document.
        pages: u32,
        /// The limit.
        max: u32,
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
            DocumentError::TooManyPages { .. } => "too_many_pages",
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
/// `spool/{id}.tif`.
pub fn accept(
    bytes: &[u8],
    id: &str,
    spool: &Path,
    gs: &str,
    max_bytes: u64,
    max_pages: u32,
) -> Result<Document, DocumentError> {
    if bytes.len() as u64 > max_bytes {
        return Err(DocumentError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    std::fs::create_dir_all(spool)?;
    let path = spool.join(format!("{id}.tif"));
    let tiff = if bytes.starts_with(b"%PDF-") {
        render_pdf(bytes, id, spool, gs)?
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        bytes.to_vec()
    } else {
        return Err(DocumentError::UnknownFormat);
    };
    let pages = count_pages(&tiff).map_err(DocumentError::BadTiff)?;
    if pages > max_pages {
        return Err(DocumentError::TooManyPages {
            pages,
            max: max_pages,
        });
    }
    write_durably(&path, &tiff)?;
    Ok(Document { path, pages })
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

fn render_pdf(bytes: &[u8], id: &str, spool: &Path, gs: &str) -> Result<Vec<u8>, DocumentError> {
    let input = spool.join(format!("{id}.pdf"));
    let output = spool.join(format!("{id}.render.tif"));
    std::fs::write(&input, bytes)?;
    let run = Command::new(gs)
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
        ])
        .arg(format!("-sOutputFile={}", output.display()))
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let _ = std::fs::remove_file(&input);
    let out = match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DocumentError::NoGhostscript { gs: gs.to_string() })
        }
        Err(e) => return Err(DocumentError::Render(e.to_string())),
        Ok(o) => o,
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&output);
        let msg = String::from_utf8_lossy(&out.stderr);
        let first = msg.lines().next().unwrap_or("ghostscript failed").trim();
        return Err(DocumentError::Render(first.chars().take(200).collect()));
    }
    // Ghostscript may "succeed" on a PDF it could not make sense of, with
    // no page written.
    let tiff = match std::fs::read(&output) {
        Ok(t) if !t.is_empty() => t,
        _ => return Err(DocumentError::Render("no page could be rendered".into())),
    };
    let _ = std::fs::remove_file(&output);
    Ok(tiff)
}

/// Pages of a TIFF, each decoded and checked (bilevel, a supported
/// compression, sane sizes): a document that cannot be sent is refused here.
pub fn count_pages(data: &[u8]) -> Result<u32, String> {
    let pages = switchboard_sip::fax::tiff::read_tiff(data).map_err(|e| e.to_string())?;
    u32::try_from(pages.len()).map_err(|_| "too many pages".to_string())
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

    #[test]
    fn unknown_formats_and_sizes_are_refused_before_writing() {
        let dir = std::env::temp_dir().join(format!("sb-doc-{}", std::process::id()));
        let e = accept(b"hello", "x", &dir, "gs", 1024, 10).unwrap_err();
        assert_eq!(e.code(), "unknown_format");
        let e = accept(&[0u8; 2048], "x", &dir, "gs", 1024, 10).unwrap_err();
        assert_eq!(e.code(), "too_large");
        let e = accept(b"%PDF-1.4\n", "x", &dir, "/nonexistent/gs", 1024, 10).unwrap_err();
        assert_eq!(e.code(), "pdf_unsupported");
        let doc = accept(&fixture("two-pages.tif"), "ok", &dir, "gs", 1 << 20, 10).unwrap();
        assert_eq!(doc.pages, 2);
        assert!(doc.path.exists());
        let e = accept(&fixture("two-pages.tif"), "many", &dir, "gs", 1 << 20, 1).unwrap_err();
        assert_eq!(e.code(), "too_many_pages");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
