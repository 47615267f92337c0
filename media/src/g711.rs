//! ITU-T G.711 pulse code modulation: µ-law and A-law companding of 16-bit linear PCM.
//!
//! G.711 defines µ-law on 14-bit and A-law on 13-bit linear samples; this module takes and
//! returns left-justified 16-bit samples (the low 2 or 3 bits are dropped on encode, and the
//! decoded value is the middle of the quantisation interval, scaled to 16 bits), which is how
//! RTP stacks and the ITU-T G.191 software tools present the codec. Decoding is a 256-entry
//! table built at compile time; encoding finds the segment from the highest set bit.
//!
//! Known points (G.711 Tables 2a/2b, scaled to 16 bits): µ-law `0xFF` ↔ 0, `0x80` ↔ +32124,
//! `0x00` ↔ −32124 (and `0x7F`, "negative zero", decodes to 0); A-law `0xD5` ↔ +8, `0x55` ↔ −8,
//! `0xAA` ↔ +32256, `0x2A` ↔ −32256.
//!
//! Also here: little-endian PCM16 byte helpers (the Exotel and ESP32 wire format).

/// µ-law: bias added to the 14-bit magnitude before segmenting (G.711 §3.2 uses 33).
const ULAW_BIAS: u16 = 33;
/// µ-law: largest biased 14-bit magnitude (clipping point).
const ULAW_MAX: u16 = 0x1FFF;
/// A-law: the even bits are inverted on the wire (G.711 Table 1a note).
const ALAW_XOR: u8 = 0x55;

/// A G.711 companding law, for code that picks µ-law (PCMU) or A-law (PCMA) at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (North America, Japan; RTP PCMU, payload type 0).
    Mu,
    /// A-law (Europe and most of the world; RTP PCMA, payload type 8).
    A,
}

impl Law {
    /// Encodes `pcm` and appends one code per sample to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Mu => ulaw_encode(pcm, out),
            Law::A => alaw_encode(pcm, out),
        }
    }

    /// Decodes `codes` and appends one sample per code to `out`.
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        match self {
            Law::Mu => ulaw_decode(codes, out),
            Law::A => alaw_decode(codes, out),
        }
    }

    /// Encodes one sample.
    pub fn encode_sample(self, pcm: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode_sample(pcm),
            Law::A => alaw_encode_sample(pcm),
        }
    }

    /// Decodes one code.
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode_sample(code),
            Law::A => alaw_decode_sample(code),
        }
    }

    /// The code for a zero sample (µ-law `0xFF`, A-law `0xD5`), for silence fill.
    pub fn silence(self) -> u8 {
        match self {
            Law::Mu => 0xFF,
            Law::A => 0xD5,
        }
    }
}

const fn ulaw_expand(code: u8) -> i16 {
    let m = !code;
    let exponent = ((m >> 4) & 0x07) as i32;
    let mantissa = (m & 0x0F) as i32;
    // Interval start, plus half a step, minus the bias, all on the 16-bit scale.
    let step = 8 << exponent;
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * ULAW_BIAS as i32;
    if code & 0x80 == 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_expand(code: u8) -> i16 {
    let v = (code ^ ALAW_XOR) & 0x7F;
    let exponent = (v >> 4) as i32;
    let mut mantissa = (v & 0x0F) as i32;
    if exponent > 0 {
        mantissa += 16;
    }
    let mut magnitude = (mantissa << 4) + 8;
    if exponent > 1 {
        magnitude <<= exponent - 1;
    }
    if code & 0x80 == 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_expand(i as u8)
        } else {
            ulaw_expand(i as u8)
        };
        i += 1;
    }
    table
}

/// µ-law decode table: code → 16-bit sample.
static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law decode table: code → 16-bit sample.
static ALAW_TABLE: [i16; 256] = build_table(true);

/// Encodes one 16-bit sample to µ-law.
pub fn ulaw_encode_sample(pcm: i16) -> u8 {
    // The 14-bit value G.711 works on; negative values use the one's complement magnitude
    // so that −1..−4 quantise like 0..3 (symmetry around zero, as in G.191).
    let x = pcm >> 2;
    let (sign, magnitude) = if x < 0 {
        (0x00u8, !x as u16)
    } else {
        (0x80u8, x as u16)
    };
    let biased = (magnitude + ULAW_BIAS).min(ULAW_MAX);
    // biased >= 33, so its highest set bit is 5..=12: segment 0..=7.
    let segment = (15 - biased.leading_zeros() as u16) - 5;
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    sign | (0x7F ^ ((segment << 4) | mantissa) as u8)
}

/// Decodes one µ-law code to a 16-bit sample.
pub fn ulaw_decode_sample(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Encodes one 16-bit sample to A-law.
pub fn alaw_encode_sample(pcm: i16) -> u8 {
    let (sign, magnitude) = if pcm < 0 {
        (0x00u8, (!pcm as u16) >> 4)
    } else {
        (0x80u8, (pcm as u16) >> 4)
    };
    // magnitude is 0..=2047 (12 bits); segment 0 is linear with 16 steps.
    let (segment, mantissa) = if magnitude < 16 {
        (0u16, magnitude)
    } else {
        let bits = 16 - magnitude.leading_zeros() as u16; // 5..=11
        let segment = bits - 4;
        (segment, (magnitude >> (segment - 1)) & 0x0F)
    };
    (sign | ((segment << 4) | mantissa) as u8) ^ ALAW_XOR
}

/// Decodes one A-law code to a 16-bit sample.
pub fn alaw_decode_sample(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Encodes `pcm` to µ-law, appending one code per sample to `out`.
pub fn ulaw_encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| ulaw_encode_sample(s)));
}

/// Decodes µ-law `codes`, appending one sample per code to `out`.
pub fn ulaw_decode(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ULAW_TABLE[usize::from(c)]));
}

/// Encodes `pcm` to A-law, appending one code per sample to `out`.
pub fn alaw_encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| alaw_encode_sample(s)));
}

/// Decodes A-law `codes`, appending one sample per code to `out`.
pub fn alaw_decode(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ALAW_TABLE[usize::from(c)]));
}

/// Reads little-endian PCM16 `bytes` into samples appended to `out`; a trailing odd byte is
/// ignored (callers that need whole samples check the length first).
pub fn pcm16le_decode(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]])),
    );
}

/// Writes `pcm` as little-endian PCM16 bytes appended to `out`.
pub fn pcm16le_encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len() * 2);
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_decode_sample(0xFF), 0);
        assert_eq!(ulaw_decode_sample(0x7F), 0);
        assert_eq!(ulaw_decode_sample(0x80), 32124);
        assert_eq!(ulaw_decode_sample(0x00), -32124);
        assert_eq!(ulaw_decode_sample(0xFE), 8);
        assert_eq!(ulaw_decode_sample(0x7E), -8);
        // First value of segment 1: 33 in 14-bit units.
        assert_eq!(ulaw_decode_sample(0xEF), 132);
        assert_eq!(ulaw_encode_sample(0), 0xFF);
        assert_eq!(ulaw_encode_sample(-1), 0x7F);
        assert_eq!(ulaw_encode_sample(32124), 0x80);
        assert_eq!(ulaw_encode_sample(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_sample(-32124), 0x00);
        assert_eq!(ulaw_encode_sample(i16::MIN), 0x00);
    }

    #[test]
    fn ulaw_segment_boundaries_match_g711_table() {
        // G.711 Table 2a: decoded values in segment 1 step by 4 in 14-bit units (16 here).
        let seg1: Vec<i16> = (0..16u8).map(|m| ulaw_decode_sample(0xEF - m)).collect();
        for pair in seg1.windows(2) {
            assert_eq!(pair[1] - pair[0], 16);
        }
        // Segment 0 ends below 31 (14-bit units, 124 here) where segment 1 starts.
        assert_eq!(ulaw_encode_sample(30 * 4), 0xF0);
        assert_eq!(ulaw_encode_sample(31 * 4), 0xEF);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_decode_sample(0xD5), 8);
        assert_eq!(alaw_decode_sample(0x55), -8);
        assert_eq!(alaw_decode_sample(0xAA), 32256);
        assert_eq!(alaw_decode_sample(0x2A), -32256);
        assert_eq!(alaw_encode_sample(0), 0xD5);
        assert_eq!(alaw_encode_sample(-1), 0x55);
        assert_eq!(alaw_encode_sample(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_sample(i16::MIN), 0x2A);
    }

    #[test]
    fn all_codes_round_trip() {
        for code in 0..=255u8 {
            let a = alaw_decode_sample(code);
            assert_eq!(alaw_encode_sample(a), code, "A-law code {code:#04x}");
            let u = ulaw_decode_sample(code);
            // µ-law negative zero (0x7F) decodes to 0, which encodes as positive zero.
            let expect = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode_sample(u), expect, "µ-law code {code:#04x}");
        }
    }

    #[test]
    fn decode_is_odd_symmetric() {
        for code in 0..=0x7Fu8 {
            assert_eq!(ulaw_decode_sample(code), -ulaw_decode_sample(code | 0x80));
            assert_eq!(alaw_decode_sample(code), -alaw_decode_sample(code | 0x80));
        }
    }

    #[test]
    fn encoders_are_monotonic_with_bounded_error() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_decode_sample(ulaw_encode_sample(x));
            let a = alaw_decode_sample(alaw_encode_sample(x));
            assert!(u >= prev_u, "µ-law not monotonic at {x}");
            assert!(a >= prev_a, "A-law not monotonic at {x}");
            prev_u = u;
            prev_a = a;
            // Error is at most half the largest step (µ-law 1024/2, A-law 1024/2), plus
            // clipping beyond the top interval.
            let clip_u = (i32::from(x).abs() - (32124 + 512)).max(0);
            let clip_a = (i32::from(x).abs() - (32256 + 512)).max(0);
            assert!(
                (i32::from(u) - i32::from(x)).abs() <= 512 + clip_u,
                "µ-law at {x}"
            );
            assert!(
                (i32::from(a) - i32::from(x)).abs() <= 512 + clip_a,
                "A-law at {x}"
            );
        }
    }

    #[test]
    fn small_signals_have_small_error() {
        for x in -256i16..=256 {
            let u = ulaw_decode_sample(ulaw_encode_sample(x));
            assert!(
                (i32::from(u) - i32::from(x)).abs() <= 8,
                "µ-law at {x}: {u}"
            );
            let a = alaw_decode_sample(alaw_encode_sample(x));
            assert!(
                (i32::from(a) - i32::from(x)).abs() <= 16,
                "A-law at {x}: {a}"
            );
        }
    }

    #[test]
    fn slice_api_and_law_enum() {
        let pcm = [0i16, 1000, -1000, 32767, -32768];
        let mut u = Vec::new();
        ulaw_encode(&pcm, &mut u);
        let mut via_law = Vec::new();
        Law::Mu.encode(&pcm, &mut via_law);
        assert_eq!(u, via_law);
        let mut back = Vec::new();
        Law::Mu.decode(&u, &mut back);
        assert_eq!(back.len(), pcm.len());
        let mut a = Vec::new();
        Law::A.encode(&pcm, &mut a);
        let mut back_a = Vec::new();
        alaw_decode(&a, &mut back_a);
        assert_eq!(back_a[0], 8);
        assert_eq!(Law::Mu.silence(), Law::Mu.encode_sample(0));
        assert_eq!(Law::A.silence(), Law::A.encode_sample(0));
        assert_eq!(Law::A.decode_sample(0xD5), 8);
    }

    #[test]
    fn pcm16le_round_trip() {
        let pcm = [0i16, 1, -1, 0x1234, i16::MIN, i16::MAX];
        let mut bytes = Vec::new();
        pcm16le_encode(&pcm, &mut bytes);
        assert_eq!(&bytes[..8], &[0, 0, 1, 0, 0xFF, 0xFF, 0x34, 0x12]);
        let mut back = Vec::new();
        pcm16le_decode(&bytes, &mut back);
        assert_eq!(back, pcm);
        back.clear();
        pcm16le_decode(&[1, 0, 7], &mut back);
        assert_eq!(back, [1]);
    }
}
