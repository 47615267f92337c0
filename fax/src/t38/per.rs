//! The few ASN.1 PER building blocks (ITU-T X.691, ALIGNED variant) that T.38 needs: a bit
//! cursor over a received buffer, a bit writer appending to a `Vec<u8>`, unconstrained length
//! determinants (X.691 §11.9, including the 16K fragmentation form) and the "normally small
//! non-negative whole number" used for enumeration extensions (X.691 §11.6).
//!
//! Nothing here allocates more than the input it was given, and nothing panics on any input.

/// Octets in one PER fragment unit (X.691 §11.9.3.8): lengths of 16K and more are sent in
/// fragments of 1 to 4 such units.
pub(crate) const FRAGMENT_UNIT: usize = 16 * 1024;

/// A low-level decoding failure, mapped to the caller's own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PerError {
    /// The buffer ended before the value did.
    Truncated,
    /// A length determinant is not of any valid form.
    BadLength,
    /// A length (or an accumulated fragmented length) is above the caller's bound.
    TooLong {
        /// The length seen so far.
        len: usize,
    },
}

/// A decoded unconstrained length determinant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// The final (or only) part: this many items follow, and nothing more.
    Complete(usize),
    /// A fragment: this many items (a multiple of 16K) follow, then another determinant.
    Fragment(usize),
}

/// Reads bits, most significant first, from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Position in bits from the start of `buf`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Reads one bit.
    pub(crate) fn bit(&mut self) -> Result<bool, PerError> {
        let byte = self.buf.get(self.pos / 8).ok_or(PerError::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, PerError> {
        let mut value = 0u32;
        for _ in 0..n.min(32) {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// Skips to the next octet boundary (padding bits are not checked).
    pub(crate) fn align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    /// Aligns, then reads one octet.
    pub(crate) fn octet(&mut self) -> Result<u8, PerError> {
        self.align();
        let byte = *self.buf.get(self.pos / 8).ok_or(PerError::Truncated)?;
        self.pos += 8;
        Ok(byte)
    }

    /// Aligns, then takes `n` octets.
    pub(crate) fn octets(&mut self, n: usize) -> Result<&'a [u8], PerError> {
        self.align();
        let start = self.pos / 8;
        let end = start.checked_add(n).ok_or(PerError::Truncated)?;
        let slice = self.buf.get(start..end).ok_or(PerError::Truncated)?;
        self.pos = end * 8;
        Ok(slice)
    }

    /// Octets consumed so far, counting a partly used octet as used.
    pub(crate) fn consumed(&self) -> usize {
        self.pos.div_ceil(8)
    }

    /// Octets not yet touched.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.consumed())
    }

    /// Aligns, then reads an unconstrained length determinant (X.691 §11.9.3.6 to §11.9.3.8).
    pub(crate) fn length(&mut self) -> Result<Length, PerError> {
        let first = self.octet()?;
        if first & 0x80 == 0 {
            return Ok(Length::Complete(usize::from(first)));
        }
        if first & 0x40 == 0 {
            let second = self.octet()?;
            return Ok(Length::Complete(
                (usize::from(first & 0x3F) << 8) | usize::from(second),
            ));
        }
        match first & 0x3F {
            m @ 1..=4 => Ok(Length::Fragment(usize::from(m) * FRAGMENT_UNIT)),
            _ => Err(PerError::BadLength),
        }
    }

    /// Reads a length-prefixed octet string (an unconstrained OCTET STRING or the contents of an
    /// open type), following fragments, refusing anything longer than `max` octets.
    pub(crate) fn octet_string(&mut self, max: usize) -> Result<Vec<u8>, PerError> {
        let mut out = Vec::new();
        loop {
            let (n, last) = match self.length()? {
                Length::Complete(n) => (n, true),
                Length::Fragment(n) => (n, false),
            };
            let len = out.len().saturating_add(n);
            if len > max {
                return Err(PerError::TooLong { len });
            }
            out.extend_from_slice(self.octets(n)?);
            if last {
                return Ok(out);
            }
        }
    }

    /// Reads a count (the length determinant of a SEQUENCE OF) that must be complete (not
    /// fragmented) and at most `max`.
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, PerError> {
        match self.length()? {
            Length::Complete(n) if n <= max => Ok(n),
            Length::Complete(n) | Length::Fragment(n) => Err(PerError::TooLong { len: n }),
        }
    }

    /// Reads a normally small non-negative whole number (X.691 §11.6). Values of 64 and more
    /// are returned as they are; values that do not fit in `u32` are a length error.
    pub(crate) fn small_number(&mut self) -> Result<u32, PerError> {
        if !self.bit()? {
            return self.bits(6);
        }
        // Semi-constrained whole number: an octet count, then the octets.
        let n = match self.length()? {
            Length::Complete(n @ 1..=4) => n,
            _ => return Err(PerError::BadLength),
        };
        let mut value = 0u32;
        for &b in self.octets(n)? {
            value = (value << 8) | u32::from(b);
        }
        Ok(value)
    }
}

/// Appends bits, most significant first, to a `Vec<u8>`.
#[derive(Debug)]
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bits already used in the last octet of `out` (0 when aligned).
    used: u8,
}

impl<'a> BitWriter<'a> {
    /// A writer appending to `out` (which is treated as octet-aligned).
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, used: 0 }
    }

    /// Appends one bit.
    pub(crate) fn bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.out.push(0);
        }
        if bit {
            if let Some(last) = self.out.last_mut() {
                *last |= 0x80 >> self.used;
            }
        }
        self.used = (self.used + 1) % 8;
    }

    /// Appends the low `n` bits of `value`, most significant first.
    pub(crate) fn bits(&mut self, value: u32, n: u32) {
        for i in (0..n.min(32)).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    /// Pads with zero bits to the next octet boundary.
    pub(crate) fn align(&mut self) {
        self.used = 0;
    }

    /// Aligns, then appends octets.
    pub(crate) fn octets(&mut self, data: &[u8]) {
        self.align();
        self.out.extend_from_slice(data);
    }

    /// Aligns, then appends a complete length determinant for `n` < 16384.
    pub(crate) fn length(&mut self, n: usize) {
        self.align();
        if n < 0x80 {
            self.out.push(n as u8);
        } else {
            let n = n.min(0x3FFF);
            self.out.push(0x80 | (n >> 8) as u8);
            self.out.push((n & 0xFF) as u8);
        }
    }

    /// Appends a length-prefixed octet string, fragmenting at 16K as X.691 §11.9.3.8 requires.
    pub(crate) fn octet_string(&mut self, data: &[u8]) {
        self.align();
        let mut rest = data;
        loop {
            if rest.len() < 0x4000 {
                self.length(rest.len());
                self.out.extend_from_slice(rest);
                return;
            }
            let units = (rest.len() / FRAGMENT_UNIT).min(4);
            self.out.push(0xC0 | units as u8);
            let (head, tail) = rest.split_at(units * FRAGMENT_UNIT);
            self.out.extend_from_slice(head);
            rest = tail;
        }
    }

    /// Appends a normally small non-negative whole number (X.691 §11.6).
    pub(crate) fn small_number(&mut self, value: u32) {
        if value < 64 {
            self.bit(false);
            self.bits(value, 6);
        } else {
            self.bit(true);
            let bytes = value.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
            let digits = bytes.get(skip..).unwrap_or(&bytes);
            self.length(digits.len());
            self.out.extend_from_slice(digits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_alignment() {
        let mut out = vec![0xAA];
        let mut w = BitWriter::new(&mut out);
        w.bit(true);
        w.bits(0b0101, 4);
        w.octets(&[0x11]);
        w.bits(3, 2);
        w.align();
        assert_eq!(out, [0xAA, 0b1010_1000, 0x11, 0b1100_0000]);

        let mut r = BitReader::new(&out[1..]);
        assert!(r.bit().unwrap());
        assert_eq!(r.bits(4).unwrap(), 0b0101);
        assert_eq!(r.octets(1).unwrap(), [0x11]);
        assert_eq!(r.bits(2).unwrap(), 3);
        assert_eq!(r.consumed(), 3);
        assert_eq!(r.remaining(), 0);
        r.align();
        assert_eq!(r.bit(), Err(PerError::Truncated));
    }

    #[test]
    fn length_forms() {
        for n in [0usize, 1, 127, 128, 300, 0x3FFF] {
            let mut out = Vec::new();
            BitWriter::new(&mut out).length(n);
            assert_eq!(out.len(), if n < 128 { 1 } else { 2 });
            assert_eq!(BitReader::new(&out).length(), Ok(Length::Complete(n)));
        }
        assert_eq!(
            BitReader::new(&[0xC1]).length(),
            Ok(Length::Fragment(FRAGMENT_UNIT))
        );
        assert_eq!(BitReader::new(&[0xC0]).length(), Err(PerError::BadLength));
        assert_eq!(BitReader::new(&[0xC5]).length(), Err(PerError::BadLength));
        assert_eq!(BitReader::new(&[0x81]).length(), Err(PerError::Truncated));
    }

    #[test]
    fn fragmented_octet_strings() {
        for n in [0usize, 5, 200, 16383, 16384, 16385, 65535, 65536, 70000] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = Vec::new();
            BitWriter::new(&mut out).octet_string(&data);
            let mut r = BitReader::new(&out);
            assert_eq!(r.octet_string(usize::MAX).unwrap(), data, "n={n}");
            assert_eq!(r.remaining(), 0);
            if n > 0 {
                let mut r = BitReader::new(&out);
                assert!(matches!(
                    r.octet_string(n - 1),
                    Err(PerError::TooLong { .. })
                ));
            }
        }
        // 16384 exactly is one full fragment then an empty final part.
        let mut out = Vec::new();
        BitWriter::new(&mut out).octet_string(&[0u8; 16384]);
        assert_eq!(out.first(), Some(&0xC1));
        assert_eq!(out.last(), Some(&0x00));
        assert_eq!(out.len(), 16384 + 2);
    }

    #[test]
    fn small_numbers() {
        for v in [0u32, 1, 6, 63, 64, 255, 256, 70000] {
            let mut out = Vec::new();
            let mut w = BitWriter::new(&mut out);
            w.bit(true);
            w.small_number(v);
            let mut r = BitReader::new(&out);
            assert!(r.bit().unwrap());
            assert_eq!(r.small_number(), Ok(v));
        }
        // A semi-constrained value with five octets is refused.
        let mut r = BitReader::new(&[0x80, 0x05, 1, 2, 3, 4, 5]);
        assert_eq!(r.small_number(), Err(PerError::BadLength));
    }
}
