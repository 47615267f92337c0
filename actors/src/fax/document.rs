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

/// Write and fsync, so the document survives a crash once the job is acknowledged.
fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
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
    let tiff = std::fs::read(&output)?;
    let _ = std::fs::remove_file(&output);
    Ok(tiff)
}

/// Pages of a classic TIFF (IFDs in the chain), bounded and never panicking.
pub fn count_pages(data: &[u8]) -> Result<u32, String> {
    let le = match data.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        _ => return Err("not a classic TIFF".into()),
    };
    let u16_at = |off: usize| -> Option<u16> {
        let b = data.get(off..off + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |off: usize| -> Option<u32> {
        let b = data.get(off..off + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let mut off = u32_at(4).ok_or("truncated header")? as usize;
    let mut pages = 0u32;
    let mut seen = std::collections::HashSet::new();
    while off != 0 {
        if !seen.insert(off) || pages >= 10_000 {
            return Err("IFD chain loops".into());
        }
        let n = usize::from(u16_at(off).ok_or("IFD offset past the end")?);
        if n == 0 {
            return Err("empty IFD".into());
        }
        let next_at = off + 2 + n * 12;
        off = u32_at(next_at).ok_or("truncated IFD")? as usize;
        pages += 1;
    }
    if pages == 0 {
        return Err("no pages".into());
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff_with_pages(n: usize) -> Vec<u8> {
        // Little-endian header, then n IFDs with one entry each, chained.
        let mut d = b"II*\0".to_vec();
        d.extend_from_slice(&8u32.to_le_bytes());
        for i in 0..n {
            let here = d.len();
            d.extend_from_slice(&1u16.to_le_bytes());
            d.extend_from_slice(&[0u8; 12]);
            let next = if i + 1 == n { 0 } else { here + 2 + 12 + 4 };
            d.extend_from_slice(&(next as u32).to_le_bytes());
        }
        d
    }

    #[test]
    fn pages_are_counted_and_garbage_refused() {
        assert_eq!(count_pages(&tiff_with_pages(1)), Ok(1));
        assert_eq!(count_pages(&tiff_with_pages(3)), Ok(3));
        assert!(count_pages(b"II*\0\xff\xff\xff\x00").is_err());
        assert!(count_pages(b"GIF89a").is_err());
        let mut looped = tiff_with_pages(1);
        let len = looped.len();
        looped[len - 4..].copy_from_slice(&8u32.to_le_bytes());
        assert!(count_pages(&looped).is_err());
        // Truncations of a valid file never panic.
        let good = tiff_with_pages(2);
        for cut in 0..good.len() {
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
        let doc = accept(&tiff_with_pages(2), "ok", &dir, "gs", 1 << 20, 10).unwrap();
        assert_eq!(doc.pages, 2);
        assert!(doc.path.exists());
        let e = accept(&tiff_with_pages(3), "many", &dir, "gs", 1 << 20, 2).unwrap_err();
        assert_eq!(e.code(), "too_many_pages");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
