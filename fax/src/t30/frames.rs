//! T.30 HDLC control frames (ITU-T T.30 §5.3) and the facsimile information
//! fields (FIF) the terminal needs: DIS/DTC/DCS (T.30 Table 2), the 20-digit
//! identities CSI/TSI/CIG, and the ECM fields of T.30 Annex A
//! (PPS, PPR, CTC, EOR) and T.4 Annex A (FCD frame numbers).
//!
//! # Octet and bit order
//!
//! Everything here is in **T.38 wire order**: the order of the octets of an
//! IFP `hdlc-data` field (T.38, ASN.1 of Annex A). HDLC sends each octet least
//! significant bit first; a T.38 endpoint puts the *first transmitted bit* of
//! each octet in the most significant position (spandsp's `t38_terminal.c`
//! bit-reverses between its in-memory HDLC buffers and the IFP fields for the
//! same reason). The practical consequences:
//!
//! * an FCF reads exactly as printed in T.30 Table 1/Table 2, first bit on the
//!   left: DIS `0000 0001` = `0x01`, MCF `X011 0001` = `0x31` (`0xB1` with X=1);
//! * the control field is `0xC0` (non-final, `1100 0000`) or `0xC8` (final,
//!   `1100 1000`), the address `0xFF`;
//! * FIF bit *n* of T.30 Table 2 (numbered from 1 = first transmitted) is octet
//!   `(n-1)/8`, mask `0x80 >> ((n-1)%8)`;
//! * binary numbers and characters, which T.30 sends least significant bit
//!   first (identity characters, ECM frame numbers, PPS counters), are
//!   bit-reversed octets (`u8::reverse_bits`).

use std::fmt;

use thiserror::Error;

pub use super::caps::{Dcs, Dis, Modems, Rate, ScanTime};

/// HDLC address field (T.30 §5.3): all ones.
pub const ADDRESS: u8 = 0xFF;
/// HDLC control field of a non-final frame, `1100 0000` (T.30 §5.3).
pub const CONTROL_NON_FINAL: u8 = 0xC0;
/// HDLC control field of the final frame of a command or response, `1100 1000`.
pub const CONTROL_FINAL: u8 = 0xC8;
/// Largest frame accepted: address, control, FCF, ECM frame number and 256
/// octets of facsimile data (T.4 Annex A), plus a little slack.
pub const MAX_FRAME_OCTETS: usize = 4 + 256 + 4;
/// Identity strings carry at most 20 characters (T.30 §5.3, CSI/TSI/CIG).
pub const IDENT_LEN: usize = 20;

/// Why an octet string is not a usable T.30 frame or field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Fewer than the three header octets (address, control, FCF).
    #[error("frame too short: {len} octets")]
    TooShort {
        /// Octets received.
        len: usize,
    },
    /// Longer than [`MAX_FRAME_OCTETS`].
    #[error("frame too long: {len} octets (max {max})")]
    TooLong {
        /// Octets received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The address octet is not `0xFF`.
    #[error("bad HDLC address octet {octet:#04x}")]
    BadAddress {
        /// The octet received.
        octet: u8,
    },
    /// The control octet is neither `0xC0` nor `0xC8`.
    #[error("bad HDLC control octet {octet:#04x}")]
    BadControl {
        /// The octet received.
        octet: u8,
    },
    /// A FIF is shorter than its definition requires.
    #[error("{fcf} FIF too short: {len} octets, need {need}")]
    ShortFif {
        /// The frame.
        fcf: Fcf,
        /// Octets present.
        len: usize,
        /// Octets required.
        need: usize,
    },
    /// DCS/CTC bits 11–14 name a modem this terminal does not implement.
    #[error("unsupported data signalling rate code {code:#06b} (DCS bits 11-14)")]
    UnsupportedRate {
        /// Bits 11, 12, 13, 14 as a number, bit 11 most significant.
        code: u8,
    },
}

/// Facsimile control field (T.30 §5.3, Table 1; T.4 Annex A for FCD/RCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fcf {
    /// Digital identification signal.
    Dis,
    /// Called subscriber identification.
    Csi,
    /// Non-standard facilities.
    Nsf,
    /// Digital transmit command (polling).
    Dtc,
    /// Calling subscriber identification.
    Cig,
    /// Non-standard facilities command.
    Nsc,
    /// Password.
    Pwd,
    /// Selective polling.
    Sep,
    /// Polled subaddress.
    Psa,
    /// Calling subscriber internet address.
    Cia,
    /// Internet selective polling address.
    Isp,
    /// Digital command signal.
    Dcs,
    /// Transmitting subscriber identification.
    Tsi,
    /// Non-standard facilities set-up.
    Nss,
    /// Subaddress.
    Sub,
    /// Sender identification.
    Sid,
    /// Continue to correct (ECM).
    Ctc,
    /// Transmitting subscriber internet address.
    Tsa,
    /// Internet routing address.
    Ira,
    /// Confirmation to receive.
    Cfr,
    /// Failure to train.
    Ftt,
    /// Response for continue to correct (ECM).
    Ctr,
    /// Called subscriber internet address.
    Csa,
    /// End of message.
    Eom,
    /// Multipage signal.
    Mps,
    /// End of procedure.
    Eop,
    /// End of selection.
    Eos,
    /// Procedure interrupt – end of message.
    PriEom,
    /// Procedure interrupt – multipage signal.
    PriMps,
    /// Procedure interrupt – end of procedure.
    PriEop,
    /// Partial page signal (ECM).
    Pps,
    /// End of retransmission (ECM).
    Eor,
    /// Receive ready (ECM).
    Rr,
    /// Message confirmation.
    Mcf,
    /// Retrain positive.
    Rtp,
    /// Retrain negative.
    Rtn,
    /// Procedure interrupt positive.
    Pip,
    /// Procedure interrupt negative.
    Pin,
    /// Partial page request (ECM).
    Ppr,
    /// Receive not ready (ECM).
    Rnr,
    /// Response for end of retransmission (ECM).
    Err,
    /// File diagnostics message.
    Fdm,
    /// Disconnect.
    Dcn,
    /// Command repeat.
    Crp,
    /// Field not valid.
    Fnv,
    /// Transmitter not ready.
    Tnr,
    /// Transmitter ready.
    Tr,
    /// Procedure interrupt disconnect.
    Pid,
    /// Facsimile coded data (T.4 Annex A ECM frame).
    Fcd,
    /// Return to control for partial page (T.4 Annex A).
    Rcp,
    /// Any other octet (kept as received, X bit included).
    Unknown(u8),
}

/// FCFs whose first bit is fixed (no X bit): initial identification and
/// commands to send (T.30 Table 1). Wire-order octets.
const FIXED: [(Fcf, u8, &str); 11] = [
    (Fcf::Dis, 0x01, "DIS"),
    (Fcf::Csi, 0x02, "CSI"),
    (Fcf::Nsf, 0x04, "NSF"),
    (Fcf::Dtc, 0x81, "DTC"),
    (Fcf::Cig, 0x82, "CIG"),
    (Fcf::Pwd, 0x83, "PWD"),
    (Fcf::Nsc, 0x84, "NSC"),
    (Fcf::Sep, 0x85, "SEP"),
    (Fcf::Psa, 0x86, "PSA"),
    (Fcf::Cia, 0x87, "CIA"),
    (Fcf::Isp, 0x88, "ISP"),
];

/// FCFs whose first bit is the X bit; the octets here have X = 0.
const WITH_X: [(Fcf, u8, &str); 39] = [
    (Fcf::Dcs, 0x41, "DCS"),
    (Fcf::Tsi, 0x42, "TSI"),
    (Fcf::Sub, 0x43, "SUB"),
    (Fcf::Nss, 0x44, "NSS"),
    (Fcf::Sid, 0x45, "SID"),
    (Fcf::Tsa, 0x46, "TSA"),
    (Fcf::Ira, 0x47, "IRA"),
    (Fcf::Ctc, 0x48, "CTC"),
    (Fcf::Cfr, 0x21, "CFR"),
    (Fcf::Ftt, 0x22, "FTT"),
    (Fcf::Ctr, 0x23, "CTR"),
    (Fcf::Csa, 0x24, "CSA"),
    (Fcf::Eom, 0x71, "EOM"),
    (Fcf::Mps, 0x72, "MPS"),
    (Fcf::Eor, 0x73, "EOR"),
    (Fcf::Eop, 0x74, "EOP"),
    (Fcf::Rr, 0x76, "RR"),
    (Fcf::Eos, 0x78, "EOS"),
    (Fcf::PriEom, 0x79, "PRI-EOM"),
    (Fcf::PriMps, 0x7A, "PRI-MPS"),
    (Fcf::PriEop, 0x7C, "PRI-EOP"),
    (Fcf::Pps, 0x7D, "PPS"),
    (Fcf::Mcf, 0x31, "MCF"),
    (Fcf::Rtn, 0x32, "RTN"),
    (Fcf::Rtp, 0x33, "RTP"),
    (Fcf::Pin, 0x34, "PIN"),
    (Fcf::Pip, 0x35, "PIP"),
    (Fcf::Pid, 0x36, "PID"),
    (Fcf::Rnr, 0x37, "RNR"),
    (Fcf::Err, 0x38, "ERR"),
    (Fcf::Ppr, 0x3D, "PPR"),
    (Fcf::Fdm, 0x3F, "FDM"),
    (Fcf::Fnv, 0x53, "FNV"),
    (Fcf::Tr, 0x56, "TR"),
    (Fcf::Tnr, 0x57, "TNR"),
    (Fcf::Crp, 0x58, "CRP"),
    (Fcf::Dcn, 0x5F, "DCN"),
    (Fcf::Fcd, 0x60, "FCD"),
    (Fcf::Rcp, 0x61, "RCP"),
];

/// The X bit: first transmitted bit of the FCF (T.30 §5.3), set by the
/// station that received a valid DIS.
const X_BIT: u8 = 0x80;

impl Fcf {
    /// Decodes a wire-order FCF octet into the signal and its X bit.
    pub fn from_octet(octet: u8) -> (Fcf, bool) {
        if let Some((f, _, _)) = FIXED.iter().find(|(_, o, _)| *o == octet) {
            return (*f, false);
        }
        let base = octet & !X_BIT;
        match WITH_X.iter().find(|(_, o, _)| *o == base) {
            Some((f, _, _)) => (*f, octet & X_BIT != 0),
            None => (Fcf::Unknown(octet), false),
        }
    }

    /// The wire-order octet for this signal, with the X bit where it applies.
    pub fn octet(self, x: bool) -> u8 {
        if let Fcf::Unknown(o) = self {
            return o;
        }
        if let Some((_, o, _)) = FIXED.iter().find(|(f, _, _)| *f == self) {
            return *o;
        }
        let base = WITH_X
            .iter()
            .find(|(f, _, _)| *f == self)
            .map_or(0, |(_, o, _)| *o);
        if x {
            base | X_BIT
        } else {
            base
        }
    }

    /// The T.30 mnemonic ("DIS", "MCF", ...).
    pub fn name(self) -> &'static str {
        if let Fcf::Unknown(_) = self {
            return "unknown";
        }
        FIXED
            .iter()
            .chain(WITH_X.iter())
            .find(|(f, _, _)| *f == self)
            .map_or("unknown", |(_, _, n)| *n)
    }

    /// A post-message command (T.30 §5.3): MPS, EOP, EOM or a PRI-Q.
    pub fn is_post_message(self) -> bool {
        matches!(
            self,
            Fcf::Mps | Fcf::Eop | Fcf::Eom | Fcf::PriMps | Fcf::PriEop | Fcf::PriEom
        )
    }

    /// PRI-Q without the procedure interrupt (no operator here): PRI-MPS → MPS.
    pub fn without_pri(self) -> Fcf {
        match self {
            Fcf::PriMps => Fcf::Mps,
            Fcf::PriEop => Fcf::Eop,
            Fcf::PriEom => Fcf::Eom,
            f => f,
        }
    }
}

impl fmt::Display for Fcf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fcf::Unknown(o) => write!(f, "FCF {o:#04x}"),
            other => f.write_str(other.name()),
        }
    }
}

/// One T.30 HDLC frame without flags and FCS: `FF`, control, FCF, FIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The signal.
    pub fcf: Fcf,
    /// The X bit of the FCF (meaningless for FCFs without one).
    pub x: bool,
    /// Final frame of the command/response (control `0xC8`).
    pub last: bool,
    /// Facsimile information field.
    pub fif: Vec<u8>,
}

impl Frame {
    /// A frame with the given FCF and FIF, X = 0, final.
    pub fn new(fcf: Fcf, fif: Vec<u8>) -> Frame {
        Frame {
            fcf,
            x: false,
            last: true,
            fif,
        }
    }

    /// The octets of the `hdlc-data` field.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.fif.len());
        out.push(ADDRESS);
        out.push(if self.last {
            CONTROL_FINAL
        } else {
            CONTROL_NON_FINAL
        });
        out.push(self.fcf.octet(self.x));
        out.extend_from_slice(&self.fif);
        out
    }

    /// Parses the octets of one received HDLC frame.
    pub fn decode(octets: &[u8]) -> Result<Frame, FrameError> {
        if octets.len() > MAX_FRAME_OCTETS {
            return Err(FrameError::TooLong {
                len: octets.len(),
                max: MAX_FRAME_OCTETS,
            });
        }
        let [address, control, fcf, fif @ ..] = octets else {
            return Err(FrameError::TooShort { len: octets.len() });
        };
        if *address != ADDRESS {
            return Err(FrameError::BadAddress { octet: *address });
        }
        let last = match *control {
            CONTROL_FINAL => true,
            CONTROL_NON_FINAL => false,
            octet => return Err(FrameError::BadControl { octet }),
        };
        let (fcf, x) = Fcf::from_octet(*fcf);
        Ok(Frame {
            fcf,
            x,
            last,
            fif: fif.to_vec(),
        })
    }
}

/// FIF bit `n` (1-based, T.30 Table 2 numbering); absent octets read as 0.
pub fn fif_bit(fif: &[u8], n: usize) -> bool {
    match n.checked_sub(1) {
        Some(i) => fif.get(i / 8).is_some_and(|o| o & (0x80 >> (i % 8)) != 0),
        None => false,
    }
}

/// Sets FIF bit `n` (1-based), growing the FIF as needed.
pub fn set_fif_bit(fif: &mut Vec<u8>, n: usize) {
    let Some(i) = n.checked_sub(1) else { return };
    if fif.len() <= i / 8 {
        fif.resize(i / 8 + 1, 0);
    }
    if let Some(o) = fif.get_mut(i / 8) {
        *o |= 0x80 >> (i % 8);
    }
}

/// Encodes a CSI/TSI/CIG FIF: up to 20 printable characters, sent last
/// character first and space-padded at the end (T.30 §5.3), each
/// character least significant bit first (so bit-reversed on the wire).
/// Characters outside printable ASCII become spaces.
pub fn encode_ident(ident: &str) -> Vec<u8> {
    let chars: Vec<u8> = ident
        .chars()
        .take(IDENT_LEN)
        .map(|c| match u8::try_from(c) {
            Ok(b) if (0x20..0x7F).contains(&b) => b,
            _ => b' ',
        })
        .collect();
    let mut fif: Vec<u8> = chars.iter().rev().map(|b| b.reverse_bits()).collect();
    fif.resize(IDENT_LEN, b' '.reverse_bits());
    fif
}

/// Decodes a CSI/TSI/CIG FIF into the identity as printed (leading and
/// trailing spaces removed, non-printable characters as `?`).
pub fn decode_ident(fif: &[u8]) -> String {
    let s: String = fif
        .iter()
        .take(IDENT_LEN)
        .rev()
        .map(|o| match o.reverse_bits() {
            b @ 0x20..=0x7E => char::from(b),
            _ => '?',
        })
        .collect();
    s.trim().to_string()
}

/// Partial page signal FIF (T.30 Annex A, A.4): post-message command,
/// page counter, block counter, number of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    /// The post-message command; `None` is PPS-NULL (more blocks follow).
    pub q: Option<Fcf>,
    /// Page counter (modulo 256).
    pub page: u8,
    /// Partial page (block) counter within the page (modulo 256).
    pub block: u8,
    /// Frames in the block, 1–256.
    pub frames: u16,
}

impl Pps {
    /// Encodes the four FIF octets; `x` is the X bit for the Q octet.
    pub fn encode(&self, x: bool) -> Vec<u8> {
        let count = u8::try_from(self.frames.clamp(1, 256) - 1).unwrap_or(u8::MAX);
        vec![
            self.q.map_or(0, |f| f.octet(x)),
            self.page.reverse_bits(),
            self.block.reverse_bits(),
            count.reverse_bits(),
        ]
    }

    /// Decodes a PPS FIF.
    pub fn decode(fif: &[u8]) -> Result<Pps, FrameError> {
        let [q, page, block, count, ..] = fif else {
            return Err(FrameError::ShortFif {
                fcf: Fcf::Pps,
                len: fif.len(),
                need: 4,
            });
        };
        Ok(Pps {
            q: decode_q(*q),
            page: page.reverse_bits(),
            block: block.reverse_bits(),
            frames: u16::from(count.reverse_bits()) + 1,
        })
    }
}

fn decode_q(octet: u8) -> Option<Fcf> {
    match Fcf::from_octet(octet).0 {
        f if f.is_post_message() => Some(f),
        _ => None,
    }
}

/// EOR FIF: the post-message command (`None` = NULL).
pub fn encode_eor(q: Option<Fcf>, x: bool) -> Vec<u8> {
    vec![q.map_or(0, |f| f.octet(x))]
}

/// Decodes an EOR FIF.
pub fn decode_eor(fif: &[u8]) -> Option<Fcf> {
    fif.first().and_then(|o| decode_q(*o))
}

/// CTC FIF: two octets, the new rate in bits 11–14 as in DCS.
pub fn encode_ctc(rate: Rate) -> Vec<u8> {
    let mut fif = vec![0u8; 2];
    rate.encode_bits(&mut fif);
    fif
}

/// PPR FIF: 256-bit map, bit set = frame to be retransmitted; frame `n` is
/// FIF bit `n + 1`.
pub fn encode_ppr(missing: impl IntoIterator<Item = usize>) -> Vec<u8> {
    let mut fif = vec![0u8; 32];
    for n in missing.into_iter().filter(|n| *n < 256) {
        set_fif_bit(&mut fif, n + 1);
    }
    fif
}

/// Frames flagged in a PPR FIF (missing octets read as "not flagged").
pub fn decode_ppr(fif: &[u8]) -> Vec<usize> {
    (0..256).filter(|n| fif_bit(fif, n + 1)).collect()
}

/// An FCD frame (T.4 Annex A): frame number then up to 256 data octets.
pub fn fcd_frame(number: u8, data: &[u8], x: bool) -> Frame {
    let mut fif = Vec::with_capacity(1 + data.len());
    fif.push(number.reverse_bits());
    fif.extend_from_slice(data);
    Frame {
        fcf: Fcf::Fcd,
        x,
        last: false,
        fif,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|o| format!("{o:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn fcf_octets_match_t30_table_1() {
        // T.30 Table 1 written first bit left, read as a binary number.
        let cases = [
            (Fcf::Dis, false, 0x01), // 0000 0001
            (Fcf::Csi, false, 0x02), // 0000 0010
            (Fcf::Nsf, false, 0x04), // 0000 0100
            (Fcf::Dtc, false, 0x81), // 1000 0001
            (Fcf::Cig, false, 0x82), // 1000 0010
            (Fcf::Dcs, true, 0xC1),  // X100 0001
            (Fcf::Tsi, false, 0x42), // X100 0010
            (Fcf::Cfr, false, 0x21), // X010 0001
            (Fcf::Ftt, true, 0xA2),  // X010 0010
            (Fcf::Mps, true, 0xF2),  // X111 0010
            (Fcf::Eop, false, 0x74), // X111 0100
            (Fcf::Eom, false, 0x71), // X111 0001
            (Fcf::Pps, true, 0xFD),  // X111 1101
            (Fcf::Mcf, false, 0x31), // X011 0001
            (Fcf::Rtn, false, 0x32), // X011 0010
            (Fcf::Rtp, false, 0x33), // X011 0011
            (Fcf::Ppr, false, 0x3D), // X011 1101
            (Fcf::Dcn, true, 0xDF),  // X101 1111
            (Fcf::Crp, false, 0x58), // X101 1000
            (Fcf::Ctc, false, 0x48), // X100 1000
            (Fcf::Ctr, false, 0x23), // X010 0011
            (Fcf::Fcd, false, 0x60), // 0110 0000
            (Fcf::Rcp, false, 0x61), // 0110 0001
        ];
        for (fcf, x, octet) in cases {
            assert_eq!(fcf.octet(x), octet, "{fcf}");
            assert_eq!(Fcf::from_octet(octet), (fcf, x), "{octet:#04x}");
            // spandsp keeps frames in HDLC (LSB-first) order: same octet, reversed.
        }
        assert_eq!(Fcf::Dcs.octet(true).reverse_bits(), 0x83); // spandsp T30_DCS|1
        assert_eq!(Fcf::Mcf.octet(false).reverse_bits(), 0x8C); // spandsp T30_MCF
        assert_eq!(Fcf::from_octet(0x00), (Fcf::Unknown(0x00), false));
        assert_eq!(Fcf::from_octet(0xFF), (Fcf::Unknown(0xFF), false));
    }

    #[test]
    fn golden_ident_frames() {
        let mut tsi = Frame::new(Fcf::Tsi, encode_ident("+1 555 0100"));
        tsi.last = false;
        tsi.x = true;
        let enc = tsi.encode();
        // '0' = 0x30 → 0x0C, '1' = 0x31 → 0x8C, ' ' = 0x20 → 0x04, '+' = 0x2B → 0xD4
        assert_eq!(
            hex(&enc),
            "FF C0 C2 0C 0C 8C 0C 04 AC AC AC 04 8C D4 04 04 04 04 04 04 04 04 04"
        );
        assert_eq!(decode_ident(&enc[3..]), "+1 555 0100");
        let csi = Frame::new(Fcf::Csi, encode_ident("123"));
        assert_eq!(&csi.encode()[..6], &[0xFF, 0xC8, 0x02, 0xCC, 0x4C, 0x8C]);
        assert_eq!(encode_ident("12345678901234567890XYZ").len(), 20);
        assert_eq!(decode_ident(&encode_ident("é1")), "1");
        assert_eq!(decode_ident(&[]), "");
    }

    #[test]
    fn golden_simple_frames() {
        assert_eq!(hex(&Frame::new(Fcf::Mcf, vec![]).encode()), "FF C8 31");
        let mut cfr = Frame::new(Fcf::Cfr, vec![]);
        cfr.x = true;
        assert_eq!(hex(&cfr.encode()), "FF C8 A1");
        assert_eq!(hex(&Frame::new(Fcf::Dcn, vec![]).encode()), "FF C8 5F");
        assert_eq!(hex(&Frame::new(Fcf::Rtn, vec![]).encode()), "FF C8 32");
        assert_eq!(hex(&Frame::new(Fcf::Eop, vec![]).encode()), "FF C8 74");
        let mut rcp = Frame::new(Fcf::Rcp, vec![]);
        rcp.last = false;
        assert_eq!(hex(&rcp.encode()), "FF C0 61");
    }

    #[test]
    fn golden_ecm_fields() {
        let pps = Pps {
            q: Some(Fcf::Mps),
            page: 1,
            block: 2,
            frames: 256,
        };
        // Q = MPS with X=1 (F2), page 1 → 0x80, block 2 → 0x40, 255 → 0xFF.
        assert_eq!(hex(&pps.encode(true)), "F2 80 40 FF");
        assert_eq!(Pps::decode(&pps.encode(true)).expect("pps"), pps);
        let null = Pps {
            q: None,
            page: 0,
            block: 0,
            frames: 3,
        };
        assert_eq!(hex(&null.encode(false)), "00 00 00 40");
        assert_eq!(Pps::decode(&null.encode(false)).expect("pps"), null);
        assert!(Pps::decode(&[0, 0]).is_err());

        let ppr = encode_ppr([0, 9, 255, 300]);
        assert_eq!(ppr.len(), 32);
        assert_eq!((ppr[0], ppr[1], ppr[31]), (0x80, 0x40, 0x01));
        assert_eq!(decode_ppr(&ppr), vec![0, 9, 255]);

        let fcd = fcd_frame(1, &[0xAA, 0x55], false);
        assert_eq!(hex(&fcd.encode()), "FF C0 60 80 AA 55");
        assert_eq!(hex(&encode_ctc(Rate::V29_9600)), "00 20");
        assert_eq!(
            Rate::decode_bits(&encode_ctc(Rate::V27_4800)),
            Ok(Rate::V27_4800)
        );
        assert_eq!(
            decode_eor(&encode_eor(Some(Fcf::Eop), true)),
            Some(Fcf::Eop)
        );
        assert_eq!(decode_eor(&encode_eor(None, true)), None);
    }

    #[test]
    fn frame_decode_rejects_garbage() {
        assert_eq!(Frame::decode(&[0xFF]), Err(FrameError::TooShort { len: 1 }));
        assert_eq!(
            Frame::decode(&[0x7E, 0xC8, 0x01]),
            Err(FrameError::BadAddress { octet: 0x7E })
        );
        assert_eq!(
            Frame::decode(&[0xFF, 0x13, 0x01]),
            Err(FrameError::BadControl { octet: 0x13 })
        );
        assert!(Frame::decode(&[0xFF; 300]).is_err());
        let f = Frame::decode(&[0xFF, 0xC8, 0x99, 1, 2]).expect("unknown is fine");
        assert_eq!(f.fcf, Fcf::Unknown(0x99));
    }
}
