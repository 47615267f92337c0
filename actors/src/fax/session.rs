//! The T.30 transfer over UDPTL of one fax call: a task that owns the call's
//! UDPTL socket, the UDPTL framing (with redundancy) and the sans-IO T.38
//! terminal, and reports progress to its fax job (send) or to the fax
//! supervisor (receive). Packets never pass through an actor mailbox.
//!
//! Sending: the TIFF is decoded, each page fitted to the fax line (1728
//! pels, standard or fine) and encoded as T.4 MH. Receiving: each confirmed
//! page is decoded from T.4 and the document is written as a class F TIFF
//! (G4) once the call is over.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use switchboard_config::Config;
use switchboard_fax::t30::{
    self, Coding as T30Coding, FaxEvent, PageOut, Role, T38Terminal, TerminalConfig,
};
use switchboard_fax::t38::ifp;
use switchboard_fax::t38::udptl::{TxErrorCorrection, UdptlRx, UdptlTx, UdptlTxConfig};
use switchboard_fax::t4::{self, Coding, DecodeOptions, EncodeOptions};
use switchboard_fax::tiff::{self, Page, TiffCompression};
use switchboard_media::latch::{Latch, Verdict};
use tokio::net::UdpSocket;

use crate::ua::sdp;
use crate::ua_event::T38Media;

/// Longest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// The end of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferResult {
    /// All pages confirmed.
    pub ok: bool,
    /// Pages confirmed (sent) or received.
    pub pages: u32,
    /// Signalling rate, bit/s.
    pub bit_rate: Option<u32>,
    /// Whether ECM was used.
    pub ecm: Option<bool>,
    /// The far end's station identity.
    pub remote_ident: Option<String>,
    /// FAXERROR-like code when not ok.
    pub error: Option<&'static str>,
    /// Detail.
    pub error_text: Option<String>,
    /// Received document (receive side), once written.
    pub file: Option<PathBuf>,
}

impl TransferResult {
    /// A transfer that failed before it started.
    pub fn failed(error: &'static str, text: String) -> Self {
        Self {
            ok: false,
            pages: 0,
            bit_rate: None,
            ecm: None,
            remote_ident: None,
            error: Some(error),
            error_text: Some(text),
            file: None,
        }
    }
}

/// Progress of a transfer.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// Pages confirmed so far.
    PageSent(u32),
    /// Finished.
    Done(TransferResult),
}

/// Why a transfer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The document could not be read.
    #[error("cannot read the document: {0}")]
    Io(#[from] std::io::Error),
    /// The document is not a usable TIFF.
    #[error("the document is not a usable fax TIFF: {0}")]
    Tiff(#[from] tiff::TiffError),
    /// A page could not be encoded.
    #[error("a page could not be encoded: {0}")]
    Encode(#[from] t4::T4Error),
}

/// A running transfer; dropping it stops the task.
#[derive(Debug)]
pub struct Handle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Receives session events.
pub type Notify = Arc<dyn Fn(SessionEvent) + Send + Sync>;

/// The terminal settings common to both directions.
fn terminal_config(media: &T38Media, config: &Config, calling: bool, role: Role) -> TerminalConfig {
    let theirs = sdp::theirs(&media.attributes);
    TerminalConfig {
        calling,
        ident: config.fax.ident.clone(),
        ecm: config.fax.ecm,
        max_rate: config.fax.max_rate.min(theirs.max_bitrate.max(2400)),
        t38_version: theirs.version.min(config.fax.t38_version),
        role,
        options: t30::Options::default(),
    }
}

/// Decode the TIFF at `file` into pages ready for T.38 (MH, 1728 pels).
pub fn load_pages(file: &Path) -> Result<Vec<PageOut>, SessionError> {
    let data = std::fs::read(file)?;
    let mut out = Vec::new();
    for page in tiff::read_tiff(&data)? {
        let page = tiff::fit_to_fax(&page);
        let fine = page.y_res_dpi >= 140.0;
        let data = t4::encode(&page.bitmap, &EncodeOptions::t38(Coding::Mh, 0))?;
        out.push(PageOut {
            data,
            fine,
            coding: T30Coding::Mh,
            width_px: u32::try_from(page.width()).unwrap_or(1728),
        });
    }
    Ok(out)
}

/// Start sending the TIFF at `file` over `media`.
pub fn start_send(
    media: T38Media,
    file: &str,
    config: &Config,
    notify: Notify,
) -> Result<Handle, SessionError> {
    let pages = load_pages(Path::new(file))?;
    let cfg = terminal_config(&media, config, true, Role::Send { pages });
    let task = tokio::spawn(run(media, cfg, notify, None));
    Ok(Handle { task })
}

/// Start receiving over `media`; the document is written to `out`.
pub fn start_receive(media: T38Media, config: &Config, out: PathBuf, notify: Notify) -> Handle {
    let cfg = terminal_config(&media, config, false, Role::Receive);
    let task = tokio::spawn(run(media, cfg, notify, Some(out)));
    Handle { task }
}

/// Received pages, decoded.
struct Received {
    pages: Vec<Page>,
    bad_rows: usize,
}

impl Received {
    fn add(&mut self, data: &[u8], fine: bool, coding: T30Coding, width: u32) {
        let coding = match coding {
            T30Coding::Mh => Coding::Mh,
            T30Coding::Mr => Coding::Mr { k: 4 },
            T30Coding::Mmr => Coding::Mmr,
        };
        let opts = DecodeOptions::new(width as usize, coding);
        match t4::decode(data, &opts) {
            Ok(d) => {
                self.bad_rows += d.bad_rows;
                let y = if fine { 196.0 } else { 98.0 };
                self.pages.push(Page::new(d.bitmap, 204.0, y));
            }
            Err(err) => tracing::warn!(%err, "received page could not be decoded"),
        }
    }

    /// Write the document to `out` (fsynced), off the async workers.
    async fn write(&self, out: &Path) -> std::io::Result<()> {
        let data = tiff::write_tiff(&self.pages, TiffCompression::G4)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            super::document::write_durably(&out, &data)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

async fn run(media: T38Media, cfg: TerminalConfig, notify: Notify, out: Option<PathBuf>) {
    let version = cfg.t38_version;
    let theirs = sdp::theirs(&media.attributes);
    let max_datagram = theirs
        .max_datagram
        .unwrap_or(sdp::MAX_DATAGRAM)
        .clamp(100, 1400) as usize;
    let tx_cfg = UdptlTxConfig {
        error_correction: TxErrorCorrection::Redundancy { depth: 3 },
        max_datagram,
        initial_seq: 0,
    };
    let (Ok(mut tx), mut rx) = (UdptlTx::new(tx_cfg), UdptlRx::default()) else {
        return notify(SessionEvent::Done(TransferResult::failed(
            "INTERNAL",
            "bad UDPTL settings".into(),
        )));
    };
    let socket: Arc<UdpSocket> = media.socket;
    // Strict symmetric UDPTL: latch to the SDP's or the signalling's IP, drop the rest.
    let mut latch = Latch::new(Some(media.remote), media.peer_ip);
    let mut remote: SocketAddr = media.remote;
    let mut term = T38Terminal::new(Instant::now(), cfg);
    let mut received = Received {
        pages: Vec::new(),
        bad_rows: 0,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ifp_buf = Vec::with_capacity(512);
    let mut dgram = Vec::with_capacity(MAX_DATAGRAM);
    loop {
        while let Some(p) = term.poll_transmit() {
            ifp_buf.clear();
            if ifp::encode(&p, version, &mut ifp_buf).is_err() {
                continue;
            }
            for _ in 0..t30::transmit_copies(&p).max(1) {
                dgram.clear();
                if tx.send(&ifp_buf, &mut dgram).is_ok() {
                    let _ = socket.send_to(&dgram, remote).await;
                }
            }
        }
        while let Some(ev) = term.poll_event() {
            match ev {
                FaxEvent::PageSent { n } => notify(SessionEvent::PageSent(n)),
                FaxEvent::PageReceived {
                    data,
                    fine,
                    coding,
                    width_px,
                    ..
                } => received.add(&data, fine, coding, width_px),
                FaxEvent::Completed(o) => {
                    let mut result = TransferResult {
                        ok: o.ok,
                        pages: o.pages,
                        bit_rate: (o.bit_rate > 0).then_some(o.bit_rate),
                        ecm: Some(o.ecm),
                        remote_ident: o.remote_ident.clone(),
                        error: o.error.as_ref().map(|_| "TRANSFER_FAILED"),
                        error_text: o.error.as_ref().map(|e| e.to_string()),
                        file: None,
                    };
                    if let (Some(path), false) = (&out, received.pages.is_empty()) {
                        result.pages = received.pages.len() as u32;
                        match received.write(path).await {
                            Ok(()) => result.file = Some(path.clone()),
                            Err(err) => tracing::error!(%err, "cannot store a received fax"),
                        }
                    }
                    if received.bad_rows > 0 {
                        tracing::info!(
                            bad_rows = received.bad_rows,
                            "received fax had damaged rows"
                        );
                    }
                    let stats = rx.stats();
                    tracing::info!(ok = result.ok, pages = result.pages, rate = ?result.bit_rate, recovered = stats.recovered, lost = stats.lost, "T.38 transfer finished");
                    return notify(SessionEvent::Done(result));
                }
                _ => {}
            }
        }
        let deadline = term.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if latch.check(from) == Verdict::Foreign {
                    crate::media::count_foreign();
                    continue;
                }
                let lost_before = rx.lost();
                if rx.push(&buf[..n]).is_err() {
                    metrics::counter!("switchboard_udptl_malformed_total").increment(1);
                    continue;
                }
                // Latch on well-formed datagrams only.
                latch.on_packet(from);
                media.activity.touch();
                remote = latch.destination().unwrap_or(remote);
                while let Some(p) = rx.pop() {
                    match ifp::decode_prefix(&p.ifp, version) {
                        Ok((packet, _)) => term.handle_ifp(Instant::now(), packet),
                        Err(_) => {
                            metrics::counter!("switchboard_udptl_malformed_total").increment(1);
                        }
                    }
                }
                // Gaps redundancy could not fill: the terminal judges the page.
                for _ in lost_before..rx.lost() {
                    term.handle_missing(Instant::now());
                }
            }
            _ = sleep => term.handle_timeout(Instant::now()),
        }
    }
}
