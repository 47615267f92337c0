//! Capabilities and choices: the DIS/DTC and DCS facsimile information
//! fields of T.30 Table 2 (bits 1–32: rates, resolution, coding, width,
//! length, minimum scan line time, ECM, frame size), and the data
//! signalling rates with their modems and fallback order.
//!
//! Bit numbering and octet order are those of [`super::frames`]: FIF bit *n*
//! (1 = first transmitted) is octet `(n-1)/8`, mask `0x80 >> ((n-1)%8)`, in
//! T.38 wire order.

use crate::t38::types::{DataType, Indicator};

use super::frames::{fif_bit, set_fif_bit, Fcf, FrameError};
use super::Coding;

/// A data signalling rate with its modem (T.30 Table 2, DCS bits 11–14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// V.17 14 400 bit/s.
    V17_14400,
    /// V.17 12 000 bit/s.
    V17_12000,
    /// V.17 9600 bit/s.
    V17_9600,
    /// V.17 7200 bit/s.
    V17_7200,
    /// V.29 9600 bit/s.
    V29_9600,
    /// V.29 7200 bit/s.
    V29_7200,
    /// V.27 ter 4800 bit/s.
    V27_4800,
    /// V.27 ter 2400 bit/s.
    V27_2400,
}

/// DCS bits 11, 12, 13, 14 for each rate (bit 11 first).
const RATE_CODES: [(Rate, [bool; 4]); 8] = [
    (Rate::V27_2400, [false, false, false, false]),
    (Rate::V27_4800, [false, true, false, false]),
    (Rate::V29_9600, [true, false, false, false]),
    (Rate::V29_7200, [true, true, false, false]),
    (Rate::V17_14400, [false, false, false, true]),
    (Rate::V17_12000, [false, true, false, true]),
    (Rate::V17_9600, [true, false, false, true]),
    (Rate::V17_7200, [true, true, false, true]),
];

impl Rate {
    /// Bits per second.
    pub fn bps(self) -> u32 {
        match self {
            Rate::V17_14400 => 14_400,
            Rate::V17_12000 => 12_000,
            Rate::V17_9600 | Rate::V29_9600 => 9_600,
            Rate::V17_7200 | Rate::V29_7200 => 7_200,
            Rate::V27_4800 => 4_800,
            Rate::V27_2400 => 2_400,
        }
    }

    /// The IFP `t30-data` type for data sent with this modem.
    pub fn data_type(self) -> DataType {
        match self {
            Rate::V17_14400 => DataType::V17_14400,
            Rate::V17_12000 => DataType::V17_12000,
            Rate::V17_9600 => DataType::V17_9600,
            Rate::V17_7200 => DataType::V17_7200,
            Rate::V29_9600 => DataType::V29_9600,
            Rate::V29_7200 => DataType::V29_7200,
            Rate::V27_4800 => DataType::V27_4800,
            Rate::V27_2400 => DataType::V27_2400,
        }
    }

    /// The training indicator; `long` selects V.17 long training (TCF, or
    /// the first image after a rate change), ignored by V.27 ter/V.29.
    pub fn training(self, long: bool) -> Indicator {
        match (self, long) {
            (Rate::V17_14400, true) => Indicator::V17_14400LongTraining,
            (Rate::V17_14400, false) => Indicator::V17_14400ShortTraining,
            (Rate::V17_12000, true) => Indicator::V17_12000LongTraining,
            (Rate::V17_12000, false) => Indicator::V17_12000ShortTraining,
            (Rate::V17_9600, true) => Indicator::V17_9600LongTraining,
            (Rate::V17_9600, false) => Indicator::V17_9600ShortTraining,
            (Rate::V17_7200, true) => Indicator::V17_7200LongTraining,
            (Rate::V17_7200, false) => Indicator::V17_7200ShortTraining,
            (Rate::V29_9600, _) => Indicator::V29_9600Training,
            (Rate::V29_7200, _) => Indicator::V29_7200Training,
            (Rate::V27_4800, _) => Indicator::V27_4800Training,
            (Rate::V27_2400, _) => Indicator::V27_2400Training,
        }
    }

    /// Approximate duration of the modem training sequence, in milliseconds.
    pub fn training_ms(self, long: bool) -> u64 {
        match (self, long) {
            (Rate::V17_14400 | Rate::V17_12000 | Rate::V17_9600 | Rate::V17_7200, true) => 1_393,
            (Rate::V17_14400 | Rate::V17_12000 | Rate::V17_9600 | Rate::V17_7200, false) => 142,
            (Rate::V29_9600 | Rate::V29_7200, _) => 254,
            (Rate::V27_4800, _) => 708,
            (Rate::V27_2400, _) => 943,
        }
    }

    fn code(self) -> [bool; 4] {
        RATE_CODES
            .iter()
            .find(|(r, _)| *r == self)
            .map_or([false; 4], |(_, c)| *c)
    }

    /// Writes DCS/CTC bits 11–14.
    pub fn encode_bits(self, fif: &mut Vec<u8>) {
        for (i, on) in self.code().into_iter().enumerate() {
            if on {
                set_fif_bit(fif, 11 + i);
            }
        }
    }

    /// Reads DCS/CTC bits 11–14.
    pub fn decode_bits(fif: &[u8]) -> Result<Rate, FrameError> {
        let bits = [
            fif_bit(fif, 11),
            fif_bit(fif, 12),
            fif_bit(fif, 13),
            fif_bit(fif, 14),
        ];
        RATE_CODES
            .iter()
            .find(|(_, c)| *c == bits)
            .map(|(r, _)| *r)
            .ok_or(FrameError::UnsupportedRate {
                code: bits.iter().fold(0, |acc, b| (acc << 1) | u8::from(*b)),
            })
    }

    /// The transmitter's fallback sequence (T.30 leaves the order
    /// to the implementation): 14 400 → 12 000 → 9600 → 7200 → 4800 → 2400,
    /// V.17 above 9600, V.29 at 9600/7200 when offered (else V.17), V.27 ter
    /// below. Only rates both ends support and at most `max_bps`.
    pub fn fallback(remote: Modems, local: Modems, max_bps: u32) -> Vec<Rate> {
        let m = Modems {
            v17: remote.v17 && local.v17,
            v29: remote.v29 && local.v29,
            v27_4800: remote.v27_4800 && local.v27_4800,
        };
        let mut out = Vec::new();
        let mut push = |r: Rate, ok: bool| {
            if ok && r.bps() <= max_bps {
                out.push(r);
            }
        };
        push(Rate::V17_14400, m.v17);
        push(Rate::V17_12000, m.v17);
        push(Rate::V29_9600, m.v29);
        push(Rate::V17_9600, m.v17 && !m.v29);
        push(Rate::V29_7200, m.v29);
        push(Rate::V17_7200, m.v17 && !m.v29);
        push(Rate::V27_4800, m.v27_4800);
        // V.27 ter fall-back mode (2400) is always there (T.30 Table 2).
        push(Rate::V27_2400, true);
        out
    }
}

/// Modems offered in DIS/DTC bits 11–14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modems {
    /// V.17 (7200–14 400).
    pub v17: bool,
    /// V.29 (7200, 9600).
    pub v29: bool,
    /// V.27 ter at 4800 (2400 is always available).
    pub v27_4800: bool,
}

impl Modems {
    /// What a terminal limited to `max_bps` offers.
    pub fn up_to(max_bps: u32) -> Modems {
        Modems {
            v17: max_bps >= 12_000,
            v29: max_bps >= 7_200,
            v27_4800: max_bps >= 4_800,
        }
    }

    fn encode_bits(self, fif: &mut Vec<u8>) {
        // 0000 fall-back only, 0100 V.27 ter, 1000 V.29, 1100 V.27 ter + V.29,
        // 1101 V.27 ter + V.29 + V.17 (bits 11, 12, 13, 14).
        let (b11, b12, b14) = if self.v17 {
            (true, true, true)
        } else {
            (self.v29, self.v27_4800, false)
        };
        for (bit, on) in [(11, b11), (12, b12), (14, b14)] {
            if on {
                set_fif_bit(fif, bit);
            }
        }
    }

    fn decode_bits(fif: &[u8]) -> Modems {
        let (b11, b12, b13, b14) = (
            fif_bit(fif, 11),
            fif_bit(fif, 12),
            fif_bit(fif, 13),
            fif_bit(fif, 14),
        );
        Modems {
            v17: b11 && b12 && b14 && !b13,
            v29: b11,
            v27_4800: b12,
        }
    }
}

/// Minimum scan line time (T.30 Table 2, bits 21–23), milliseconds for
/// standard and fine resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanTime {
    /// At 3.85 lines/mm.
    pub standard_ms: u8,
    /// At 7.7 lines/mm.
    pub fine_ms: u8,
}

/// DIS bits 21, 22, 23 → (standard, fine) milliseconds.
const DIS_SCAN: [([bool; 3], u8, u8); 8] = [
    ([false, false, false], 20, 20),
    ([true, false, false], 5, 5),
    ([false, true, false], 10, 10),
    ([false, false, true], 40, 40),
    ([true, true, true], 0, 0),
    ([true, true, false], 20, 10),
    ([true, false, true], 40, 20),
    ([false, true, true], 10, 5),
];

/// DCS bits 21, 22, 23 for each scan time.
const DCS_SCAN: [([bool; 3], u8); 5] = [
    ([false, false, false], 20),
    ([true, false, false], 5),
    ([false, true, false], 10),
    ([false, false, true], 40),
    ([true, true, true], 0),
];

fn scan_bits(fif: &[u8]) -> [bool; 3] {
    [fif_bit(fif, 21), fif_bit(fif, 22), fif_bit(fif, 23)]
}

fn set_bits(fif: &mut Vec<u8>, first: usize, bits: &[bool]) {
    for (i, on) in bits.iter().enumerate() {
        if *on {
            set_fif_bit(fif, first + i);
        }
    }
}

/// DIS/DTC contents (T.30 Table 2) used by this terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dis {
    /// Bit 3: real-time Internet fax (T.38).
    pub t38: bool,
    /// Bit 9: a document is ready to be polled (sent to the calling side).
    pub ready_to_transmit: bool,
    /// Bit 10: can receive.
    pub can_receive: bool,
    /// Bits 11–14.
    pub modems: Modems,
    /// Bit 15: 7.7 lines/mm (fine).
    pub fine: bool,
    /// Bit 16: two-dimensional coding (MR).
    pub mr: bool,
    /// Bits 17–18: widest scan line accepted, in pels at R8 (1728, 2048, 2432).
    pub max_width_px: u32,
    /// Bit 19: A4 and B4 length.
    pub b4_length: bool,
    /// Bit 20: unlimited length.
    pub unlimited_length: bool,
    /// Bits 21–23.
    pub scan: ScanTime,
    /// Bit 27: error correction mode.
    pub ecm: bool,
    /// Bit 31: T.6 coding (MMR), only with ECM.
    pub mmr: bool,
}

impl Dis {
    /// Encodes bits 1–32 (four octets, bit 24 "extend" set, bit 32 clear).
    pub fn encode(&self) -> Vec<u8> {
        let mut fif = vec![0u8; 4];
        set_bits(&mut fif, 3, &[self.t38]);
        set_bits(&mut fif, 9, &[self.ready_to_transmit, self.can_receive]);
        self.modems.encode_bits(&mut fif);
        set_bits(&mut fif, 15, &[self.fine, self.mr]);
        match self.max_width_px {
            w if w >= 2432 => set_fif_bit(&mut fif, 18),
            w if w >= 2048 => set_fif_bit(&mut fif, 17),
            _ => {}
        }
        set_bits(&mut fif, 19, &[self.b4_length, self.unlimited_length]);
        let code = DIS_SCAN
            .iter()
            .find(|(_, s, f)| *s == self.scan.standard_ms && *f == self.scan.fine_ms)
            .map_or([true, true, true], |(c, _, _)| *c);
        set_bits(&mut fif, 21, &code);
        set_fif_bit(&mut fif, 24);
        set_bits(&mut fif, 27, &[self.ecm]);
        set_bits(&mut fif, 31, &[self.mmr]);
        fif
    }

    /// Decodes a DIS or DTC FIF. Needs bits 1–24 (three octets); bits past an
    /// extend bit (24, 32) that is clear read as 0.
    pub fn decode(fif: &[u8]) -> Result<Dis, FrameError> {
        if fif.len() < 3 {
            return Err(FrameError::ShortFif {
                fcf: Fcf::Dis,
                len: fif.len(),
                need: 3,
            });
        }
        let ext = fif_bit(fif, 24);
        let code = scan_bits(fif);
        let (standard_ms, fine_ms) = DIS_SCAN
            .iter()
            .find(|(c, _, _)| *c == code)
            .map_or((20, 20), |(_, s, f)| (*s, *f));
        Ok(Dis {
            t38: fif_bit(fif, 3),
            ready_to_transmit: fif_bit(fif, 9),
            can_receive: fif_bit(fif, 10),
            modems: Modems::decode_bits(fif),
            fine: fif_bit(fif, 15),
            mr: fif_bit(fif, 16),
            max_width_px: match (fif_bit(fif, 17), fif_bit(fif, 18)) {
                (_, true) => 2432,
                (true, false) => 2048,
                (false, false) => 1728,
            },
            b4_length: fif_bit(fif, 19),
            unlimited_length: fif_bit(fif, 20),
            scan: ScanTime {
                standard_ms,
                fine_ms,
            },
            ecm: ext && fif_bit(fif, 27),
            mmr: ext && fif_bit(fif, 31),
        })
    }
}

/// DCS contents (T.30 Table 2): the transmitter's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dcs {
    /// Bits 11–14.
    pub rate: Rate,
    /// Bit 15: fine resolution.
    pub fine: bool,
    /// Bit 16 (MR) / bit 31 (MMR).
    pub coding: Coding,
    /// Bits 17–18: scan line width in pels (1728, 2048, 2432).
    pub width_px: u32,
    /// Bit 19: B4 length.
    pub b4_length: bool,
    /// Bit 20: unlimited length.
    pub unlimited_length: bool,
    /// Bits 21–23: minimum scan line time in ms (0, 5, 10, 20, 40).
    pub min_scan_ms: u8,
    /// Bit 27: error correction mode.
    pub ecm: bool,
    /// Bit 28: 64-octet ECM frames (else 256).
    pub frame_64: bool,
}

impl Dcs {
    /// Encodes bits 1–32 (bit 10 "receive" set, bit 24 extend set).
    pub fn encode(&self) -> Vec<u8> {
        let mut fif = vec![0u8; 4];
        set_fif_bit(&mut fif, 10);
        self.rate.encode_bits(&mut fif);
        set_bits(
            &mut fif,
            15,
            &[self.fine, self.coding == Coding::Mr, self.width_px == 2048],
        );
        set_bits(
            &mut fif,
            18,
            &[self.width_px == 2432, self.b4_length, self.unlimited_length],
        );
        let code = DCS_SCAN
            .iter()
            .find(|(_, ms)| *ms == self.min_scan_ms)
            .map_or([true, true, true], |(c, _)| *c);
        set_bits(&mut fif, 21, &code);
        set_fif_bit(&mut fif, 24);
        set_bits(&mut fif, 27, &[self.ecm, self.ecm && self.frame_64]);
        set_bits(&mut fif, 31, &[self.coding == Coding::Mmr]);
        fif
    }

    /// Decodes a DCS FIF (at least bits 1–24).
    pub fn decode(fif: &[u8]) -> Result<Dcs, FrameError> {
        if fif.len() < 3 {
            return Err(FrameError::ShortFif {
                fcf: Fcf::Dcs,
                len: fif.len(),
                need: 3,
            });
        }
        let ext = fif_bit(fif, 24);
        let ecm = ext && fif_bit(fif, 27);
        let coding = if ext && fif_bit(fif, 31) {
            Coding::Mmr
        } else if fif_bit(fif, 16) {
            Coding::Mr
        } else {
            Coding::Mh
        };
        let code = scan_bits(fif);
        Ok(Dcs {
            rate: Rate::decode_bits(fif)?,
            fine: fif_bit(fif, 15),
            coding,
            width_px: match (fif_bit(fif, 17), fif_bit(fif, 18)) {
                (_, true) => 2432,
                (true, false) => 2048,
                (false, false) => 1728,
            },
            b4_length: fif_bit(fif, 19),
            unlimited_length: fif_bit(fif, 20),
            min_scan_ms: DCS_SCAN
                .iter()
                .find(|(c, _)| *c == code)
                .map_or(20, |(_, ms)| *ms),
            ecm,
            frame_64: ecm && fif_bit(fif, 28),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t30::frames::Frame;

    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|o| format!("{o:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn receiver_dis() -> Dis {
        Dis {
            t38: false,
            ready_to_transmit: false,
            can_receive: true,
            modems: Modems::up_to(14_400),
            fine: true,
            mr: false,
            max_width_px: 1728,
            b4_length: false,
            unlimited_length: true,
            scan: ScanTime {
                standard_ms: 0,
                fine_ms: 0,
            },
            ecm: true,
            mmr: false,
        }
    }

    #[test]
    fn golden_dis_frame() {
        // Receiver: bit 10, V.27ter+V.29+V.17 (bits 11,12,14), fine (15),
        // unlimited length (20), 0 ms scan time (21-23), extend (24), ECM (27).
        let f = Frame::new(Fcf::Dis, receiver_dis().encode());
        assert_eq!(hex(&f.encode()), "FF C8 01 00 76 1F 20");
        let back = Frame::decode(&f.encode()).expect("decodes");
        assert_eq!(Dis::decode(&back.fif).expect("dis"), receiver_dis());
    }

    #[test]
    fn golden_dcs_frame() {
        let dcs = Dcs {
            rate: Rate::V17_14400,
            fine: true,
            coding: Coding::Mh,
            width_px: 1728,
            b4_length: false,
            unlimited_length: false,
            min_scan_ms: 0,
            ecm: false,
            frame_64: false,
        };
        let mut f = Frame::new(Fcf::Dcs, dcs.encode());
        f.x = true;
        // bit 10, bit 14 (V.17 14400 = 0001), bit 15, bits 21-23, bit 24.
        assert_eq!(hex(&f.encode()), "FF C8 C1 00 46 0F 00");
        assert_eq!(Dcs::decode(&f.fif).expect("dcs"), dcs);

        let ecm = Dcs {
            rate: Rate::V29_9600,
            fine: false,
            coding: Coding::Mmr,
            ecm: true,
            min_scan_ms: 20,
            unlimited_length: true,
            ..dcs
        };
        // bit 10, bit 11 (V.29 9600 = 1000), bit 20, bit 24, bit 27, bit 31.
        assert_eq!(hex(&ecm.encode()), "00 60 11 22");
        assert_eq!(Dcs::decode(&ecm.encode()).expect("dcs"), ecm);
    }

    #[test]
    fn dcs_rates_and_scan_times_round_trip() {
        for (rate, _) in RATE_CODES {
            for ms in [0, 5, 10, 20, 40] {
                let d = Dcs {
                    rate,
                    fine: false,
                    coding: Coding::Mr,
                    width_px: 2048,
                    b4_length: true,
                    unlimited_length: false,
                    min_scan_ms: ms,
                    ecm: false,
                    frame_64: false,
                };
                assert_eq!(Dcs::decode(&d.encode()).expect("dcs"), d);
            }
        }
        // V.33 14400 (0010) is not implemented.
        assert_eq!(
            Rate::decode_bits(&[0, 0x08]),
            Err(FrameError::UnsupportedRate { code: 0b0010 })
        );
    }

    #[test]
    fn spandsp_style_dis_decodes() {
        // A DIS as spandsp logs it (HDLC order): 00 EE F8 80 80 ...; reversed
        // per octet for the wire. V.17, fine, MR, 0 ms, ECM (bit 27 is in
        // octet 4: spandsp 0x04 = bit 27 → wire 0x20).
        let wire: Vec<u8> = [0x00u8, 0xEE, 0xF8, 0x84, 0x01]
            .iter()
            .map(|o| o.reverse_bits())
            .collect();
        let d = Dis::decode(&wire).expect("dis");
        assert!(d.can_receive && d.modems.v17 && d.modems.v29 && d.fine && d.mr);
        assert!(d.ecm && !d.mmr);
        assert_eq!(
            d.scan,
            ScanTime {
                standard_ms: 0,
                fine_ms: 0
            }
        );
        assert_eq!(d.max_width_px, 1728);
    }

    #[test]
    fn dis_without_extension_ignores_later_bits() {
        let mut fif = receiver_dis().encode();
        fif[2] &= !0x01; // clear bit 24
        let d = Dis::decode(&fif).expect("dis");
        assert!(!d.ecm);
        assert!(Dis::decode(&[0x00, 0x40]).is_err());
    }

    #[test]
    fn fallback_sequences() {
        let all = Modems::up_to(14_400);
        assert_eq!(
            Rate::fallback(all, all, 14_400),
            vec![
                Rate::V17_14400,
                Rate::V17_12000,
                Rate::V29_9600,
                Rate::V29_7200,
                Rate::V27_4800,
                Rate::V27_2400
            ]
        );
        assert_eq!(
            Rate::fallback(all, all, 9_600),
            vec![
                Rate::V29_9600,
                Rate::V29_7200,
                Rate::V27_4800,
                Rate::V27_2400
            ]
        );
        let v27 = Modems {
            v27_4800: true,
            ..Modems::default()
        };
        assert_eq!(
            Rate::fallback(v27, all, 14_400),
            vec![Rate::V27_4800, Rate::V27_2400]
        );
        let v17_only = Modems {
            v17: true,
            ..Modems::default()
        };
        assert_eq!(Rate::fallback(v17_only, all, 14_400)[2], Rate::V17_9600);
    }
}
