//! A sans-IO T.30 fax terminal that talks T.38 IFP packets: the "T.38
//! terminal" of ITU-T T.38 (what spandsp calls `t38_terminal`), with the
//! T.30 procedure of ITU-T T.30 §5 (phases A–E) and error correction mode of
//! T.30 Annex A / T.4 Annex A.
//!
//! No sockets, no clock, no threads: the driver feeds received [`Ifp`]
//! packets and the current time in ([`T38Terminal::handle_ifp`],
//! [`T38Terminal::handle_timeout`]), sends whatever
//! [`T38Terminal::poll_transmit`] returns (wrapped in UDPTL), arms a timer for
//! [`T38Terminal::poll_timeout`] and reads [`FaxEvent`]s. Transmission is
//! paced at modem speed on the injected time, so a peer gateway can play the
//! signals out in real time.
//!
//! Page images are opaque: on send, [`PageOut::data`] is the page's T.4
//! (MH/MR/MMR) bit stream in T.38 wire order, including its EOLs and RTC;
//! it goes out verbatim, as `t4-non-ecm-data` or inside ECM frames. On
//! receive, [`FaxEvent::PageReceived`] carries the octets exactly as
//! received. T.38 wire order puts the first bit of the T.4 stream in the
//! **most** significant bit of the first octet (TIFF `FillOrder=1`), for
//! non-ECM data and ECM frames alike: spandsp's `t38_terminal` bit-reverses
//! its LSB-first T.4 buffers on the way to IFP, and pages encoded MSB-first
//! come out of a spandsp receiver pixel-identical (checked against the
//! spandsp 0.0.6 peer in `tests/fax`).
//!
//! What it does:
//! * phase A: CNG (calling, every 3.5 s until the far end answers) or CED
//!   (called);
//! * phase B: CSI/DIS, TSI/DCS, TCF, CFR/FTT with rate fallback
//!   14 400 → 12 000 → 9600 → 7200 → 4800 → 2400 (V.17, V.29, V.27 ter);
//! * phase C: non-ECM pages paced in `t4-non-ecm-data` chunks, or ECM
//!   blocks of 256-octet FCD frames + 3 RCP at the image rate;
//! * phase D: MPS/EOM/EOP (PRI-Q treated as Q) answered MCF/RTP/RTN, ECM
//!   PPS-Q answered MCF/PPR, CTC/CTR after 4 PPRs, EOR/ERR, RR/RNR; EOM
//!   goes back to phase B (the called side sends DIS again);
//! * phase E: DCN.
//! * timers T1 (35 s), T2 (6 s), T4 (3 s, three repeats), T5 (60 s), all
//!   on the injected time; T2/T4 restart on far-end activity.
//! * both roles on either side of the call: the calling side sends (normal
//!   case) or receives by polling (DIS bit 9 → CIG/DTC); the called side
//!   receives, or sends after the caller's DTC.
//! * loss tolerance: repeated commands get their response again without
//!   counting a page twice; frames glued by a lost or abandoned FCS are
//!   split or dropped; [`T38Terminal::handle_missing`] takes the UDPTL
//!   layer's gap reports; each burst ends with repeated no-signal so UDPTL
//!   redundancy carries its last packets; [`transmit_copies`] gives
//!   spandsp's repeat counts for drivers.
//!
//! Left out: V.34/V.8, NSF/NSS vendor features, passwords/subaddresses,
//! selective polling, operator interrupts (PRI-Q is handled as Q, PIP/PIN
//! as MCF/RTN), T.4 fill bits for a receiver's minimum scan line time (the
//! page data is opaque: DCS declares the receiver's requirement, the T.4
//! encoder or a gateway must pad; we advertise 0 ms ourselves), and judging
//! non-ECM copy quality (see [`T38Terminal::set_page_quality`]). Duplicated
//! IFP packets must be dropped by the UDPTL layer (sequence numbers): a
//! repeated `hdlc-data` or `t4-non-ecm-data` cannot be told from new data.

pub mod caps;
mod ecm;
pub mod frames;
#[cfg(test)]
mod fuzz;
mod link;
mod recv;
mod send;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_proc;

use std::time::{Duration, Instant};

use crate::t38::types::Ifp;
use thiserror::Error;

pub use caps::Rate;
pub use frames::{Fcf, FrameError};

/// Most pages sent or received in one call.
pub const MAX_PAGES: usize = 200;
/// Default upper bound on one page's T.4 data.
pub const DEFAULT_MAX_PAGE_OCTETS: usize = 8 * 1024 * 1024;

/// T.4 coding of a page (T.30 Table 2 bits 16 and 31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Coding {
    /// Modified Huffman (one-dimensional, T.4).
    #[default]
    Mh,
    /// Modified READ (two-dimensional, T.4).
    Mr,
    /// Modified modified READ (T.6); ECM only.
    Mmr,
}

/// One page to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOut {
    /// The page's T.4 octets in T.38 wire order, RTC included.
    pub data: Vec<u8>,
    /// 7.7 lines/mm (else 3.85).
    pub fine: bool,
    /// The coding `data` uses.
    pub coding: Coding,
    /// Pels per line: 1728 (A4), 2048 (B4) or 2432 (A3).
    pub width_px: u32,
}

/// Which way the document goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Send these pages.
    Send {
        /// The document, in order (1 to [`MAX_PAGES`] pages).
        pages: Vec<PageOut>,
    },
    /// Receive a document.
    Receive,
}

/// Knobs with sensible defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Octets per `t4-non-ecm-data` packet (TCF and non-ECM pages), 16–4096.
    pub chunk_octets: usize,
    /// Pace packets at modem speed (UDPTL); false sends each signal at once.
    pub paced: bool,
    /// V.21 flag preamble before the first frame of each transmission
    /// (T.30 §5.3: 1 s ± 15 %).
    pub v21_preamble: Duration,
    /// Largest page accepted or sent.
    pub max_page_octets: usize,
    /// Advertise MR (2-D) reception in DIS.
    pub rx_mr: bool,
    /// Advertise MMR (T.6) reception in DIS (with ECM).
    pub rx_mmr: bool,
    /// How often one page is sent again after RTN before giving up.
    pub max_rtn: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_octets: 256,
            paced: true,
            v21_preamble: Duration::from_secs(1),
            max_page_octets: DEFAULT_MAX_PAGE_OCTETS,
            rx_mr: false,
            rx_mmr: false,
            max_rtn: 3,
        }
    }
}

/// Terminal configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalConfig {
    /// We placed the call (send CNG, wait for DIS) rather than answered it.
    pub calling: bool,
    /// Our identity for CSI/TSI/CIG (at most 20 characters, T.30 Table 3:
    /// digits, `+` and space; other printable ASCII is sent as is).
    pub ident: String,
    /// Offer/use error correction mode.
    pub ecm: bool,
    /// Highest data signalling rate to offer or use (14400, 12000, 9600,
    /// 7200, 4800, 2400).
    pub max_rate: u32,
    /// Negotiated T.38 version (0–3); this terminal only uses version-0
    /// packet types, so it is informational.
    pub t38_version: u8,
    /// Send or receive.
    pub role: Role,
    /// Tuning.
    pub options: Options,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            calling: false,
            ident: String::new(),
            ecm: true,
            max_rate: 14_400,
            t38_version: 0,
            role: Role::Receive,
            options: Options::default(),
        }
    }
}

/// T.30 phases (T.30 §2.2 / §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Call set-up (CNG/CED).
    A,
    /// Pre-message procedure (DIS/DCS/TCF/CFR).
    B,
    /// Message transmission.
    C,
    /// Post-message procedure.
    D,
    /// Call release.
    E,
}

/// Something the application may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaxEvent {
    /// Entered a phase.
    Phase(Phase),
    /// Training succeeded (CFR) and these parameters are in force.
    Negotiated {
        /// Data signalling rate, bit/s.
        rate: u32,
        /// Error correction mode.
        ecm: bool,
        /// 7.7 lines/mm.
        fine: bool,
        /// T.4 coding.
        coding: Coding,
        /// The far end's CSI/TSI/CIG, if it sent one.
        remote_ident: Option<String>,
    },
    /// Receiving, non-ECM: a page's image signal ended. Until the
    /// post-message command arrives, [`T38Terminal::rx_page_data`] shows the
    /// octets and [`T38Terminal::set_page_quality`] can make us answer RTN.
    ImageEnded {
        /// Page number (1-based).
        n: u32,
        /// Octets received.
        octets: usize,
    },
    /// The far end confirmed page `n` (1-based).
    PageSent {
        /// Page number.
        n: u32,
    },
    /// A page was received and confirmed.
    PageReceived {
        /// Page number (1-based).
        n: u32,
        /// The T.4 octets as received (T.38 wire order).
        data: Vec<u8>,
        /// 7.7 lines/mm.
        fine: bool,
        /// T.4 coding per DCS.
        coding: Coding,
        /// Pels per line per DCS.
        width_px: u32,
        /// How incomplete the data may be: ECM, frames that never arrived
        /// (the sender gave up with EOR); non-ECM, transport gaps reported
        /// with [`T38Terminal::handle_missing`] while the image arrived. 0
        /// means complete as far as T.30/T.38 can tell (non-ECM row errors
        /// can only be judged by a T.4 decoder).
        missing: u32,
    },
    /// The call is over (the last event).
    Completed(FaxOutcome),
}

/// How the call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxOutcome {
    /// Every page was transferred and confirmed (EOP/MCF), none with ECM
    /// frames missing.
    pub ok: bool,
    /// Why not, if not.
    pub error: Option<FaxError>,
    /// Pages confirmed.
    pub pages: u32,
    /// Last data signalling rate in force (0 if training never succeeded).
    pub bit_rate: u32,
    /// ECM was used.
    pub ecm: bool,
    /// The far end's identity.
    pub remote_ident: Option<String>,
}

/// Why the far end would not play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// DIS/DTC bit 10 clear: it cannot receive.
    CannotReceive,
    /// DIS bit 9 clear: nothing to poll.
    NothingToSend,
    /// It sent DCS, asking us to receive, but we are sending.
    WantsToSend,
}

/// A capability mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incompatibility {
    /// The page is fine but the far end only takes standard resolution.
    Resolution,
    /// The far end does not take the page's coding (MR/MMR).
    Coding(Coding),
    /// The far end does not take the page width.
    Width(u32),
    /// MMR needs ECM, which one side lacks.
    MmrWithoutEcm,
    /// DCS asked for a modem we do not implement.
    Modem(u8),
}

/// Failures, after Asterisk's FAXERROR and spandsp's `T30_ERR_*`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaxError {
    /// T1 expired: the far end never identified itself.
    #[error("no answer: T1 expired after {:?} without DIS/DCS", waited)]
    NoAnswer {
        /// T1.
        waited: Duration,
    },
    /// The far end cannot do what we want.
    #[error("far end refused: {reason:?}")]
    RemoteRefused {
        /// Which way.
        reason: Refusal,
    },
    /// No common capabilities for this document.
    #[error("incompatible: {what:?}")]
    Incompatible {
        /// The mismatch.
        what: Incompatibility,
    },
    /// FTT at the lowest rate.
    #[error("training failed (FTT at {rate} bit/s)")]
    TrainingFailed {
        /// The last rate tried.
        rate: u32,
    },
    /// RTN for the same page too often.
    #[error("page {page} rejected (RTN) {tries} times")]
    PageRejected {
        /// Page number (1-based).
        page: u32,
        /// RTNs received.
        tries: u32,
    },
    /// A command got no (usable) response after three repeats (T4).
    #[error("no response to {command} after {tries} tries")]
    NoResponse {
        /// The command.
        command: Fcf,
        /// Times sent.
        tries: u32,
    },
    /// T2 expired waiting for a command or the image.
    #[error("T2 expired in phase {phase:?} waiting for the far end")]
    CommandTimeout {
        /// Where.
        phase: Phase,
    },
    /// The far end sent DCN before the end of the procedure.
    #[error("far end disconnected in phase {phase:?}")]
    RemoteDisconnected {
        /// Where.
        phase: Phase,
    },
    /// ECM: a block could not be completed (CTC/EOR exhausted).
    #[error("ECM retransmissions exhausted on page {page}")]
    EcmRetriesExhausted {
        /// Page number (1-based).
        page: u32,
    },
    /// ECM: the receiver stayed not-ready for T5.
    #[error("receiver not ready for T5")]
    ReceiverNotReady,
    /// The document to send is unusable.
    #[error("invalid document: {reason}")]
    InvalidDocument {
        /// What is wrong.
        reason: &'static str,
    },
    /// A received page exceeded [`Options::max_page_octets`].
    #[error("received page {page} exceeds {max} octets")]
    PageTooLarge {
        /// Page number (1-based).
        page: u32,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_PAGES`] pages arrived.
    #[error("more than {max} pages")]
    TooManyPages {
        /// The limit.
        max: usize,
    },
    /// [`T38Terminal::abort`] was called.
    #[error("aborted locally")]
    Aborted,
}

/// How many identical copies (same UDPTL sequence number) a UDP driver
/// should send of `ifp`, as spandsp's T.38 terminal does for paced UDP:
/// indicators and end-of-signal packets 3, everything else 1. Receivers
/// drop the duplicates by sequence number; the copies only guard the
/// packets whose loss hurts most against single losses when redundancy
/// cannot (nothing follows them to carry it).
pub fn transmit_copies(ifp: &Ifp) -> usize {
    use crate::t38::types::FieldType;
    match ifp {
        Ifp::Indicator(_) => 3,
        Ifp::Data { fields, .. } => {
            let end = fields.iter().any(|f| {
                matches!(
                    f.kind,
                    FieldType::HdlcFcsOkSigEnd
                        | FieldType::HdlcFcsBadSigEnd
                        | FieldType::HdlcSigEnd
                        | FieldType::T4NonEcmSigEnd
                )
            });
            if end {
                3
            } else {
                1
            }
        }
    }
}

/// The terminal. See the module docs for the driving loop.
#[derive(Debug)]
pub struct T38Terminal {
    core: state::Core,
}

impl T38Terminal {
    /// Starts phase A at `now`.
    pub fn new(now: Instant, cfg: TerminalConfig) -> Self {
        T38Terminal {
            core: state::Core::new(now, cfg),
        }
    }

    /// Feeds one received IFP packet (after UDPTL de-duplication).
    pub fn handle_ifp(&mut self, now: Instant, ifp: Ifp) {
        self.core.handle_ifp(now, ifp);
    }

    /// The transport (UDPTL) saw a sequence gap it could not repair with
    /// redundancy or FEC: call before feeding the packet after the gap.
    /// The HDLC frame in progress is then discarded (ECM asks for it again)
    /// and a non-ECM page records the gap (as spandsp's `rx_data_missing`
    /// does with its UDPTL layer's reports).
    pub fn handle_missing(&mut self, now: Instant) {
        self.core.handle_missing(now);
    }

    /// Advances time; call at (or after) [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// The next packet to send, if one is due.
    pub fn poll_transmit(&mut self) -> Option<Ifp> {
        self.core.poll_transmit()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<FaxEvent> {
        self.core.poll_event()
    }

    /// When to call [`Self::handle_timeout`] next; `None` once the call is
    /// over and everything has been sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Receiving, non-ECM: the verdict on the page whose image just ended
    /// (after [`FaxEvent::ImageEnded`]); `bad` makes us answer RTN instead
    /// of MCF, so the sender retrains and sends it again. Without a call
    /// every non-empty page is accepted: the data is opaque here, so row
    /// errors can only be judged by the caller's T.4 decoder.
    pub fn set_page_quality(&mut self, bad: bool) {
        self.core.set_page_quality(bad);
    }

    /// Receiving, non-ECM: the octets of the page being received so far.
    pub fn rx_page_data(&self) -> Option<&[u8]> {
        self.core.rx_page_data()
    }

    /// Ends the call now: DCN, then [`FaxEvent::Completed`] with
    /// [`FaxError::Aborted`].
    pub fn abort(&mut self, now: Instant) {
        self.core.abort(now);
    }

    /// The call is over (the outcome has been queued).
    pub fn is_done(&self) -> bool {
        self.core.is_done()
    }
}
