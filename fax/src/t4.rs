//! Bilevel fax row codecs: ITU-T T.4 (Group 3) one-dimensional Modified Huffman (MH) and
//! two-dimensional Modified READ (MR), and ITU-T T.6 (Group 4) Modified Modified READ
//! (MMR), sans-IO: whole pages in, bytes out, and back.
//!
//! # Images
//!
//! A [`Bitmap`] holds rows of packed pixels, most significant bit first (pixel 0 is bit 7
//! of byte 0), **1 = black** as in fax; the unused low bits of the last byte of each row
//! are always zero.
//!
//! # Bit order
//!
//! Coded data handed to and returned by this module is a bit stream packed **MSB first**:
//! the first bit of the stream (the first bit of the first EOL) is the most significant
//! bit of the first octet. That is TIFF `FillOrder=1` and what [`super::tiff`] stores.
//! T.38 image data (non-ECM and ECM) uses the same order: the first bit of the stream is
//! the most significant bit of each octet, so [`encode()`] output goes on the wire as is and
//! received octets go to [`decode()`] as is. This was settled against spandsp 0.0.6: with
//! reversed octets it counts a hundred bad rows per page and answers RTN
//! (`tests/fax_interop.rs`). [`reverse_bits`] / [`reversed_bits`] convert to and from
//! `FillOrder=2` ("LSB first") streams such as some TIFFs and raw `fax2tiff` input.
//!
//! # Streams
//!
//! - MH/MR ([`Coding::Mh`], [`Coding::Mr`]) with `eol`: every row starts with EOL
//!   (`000000000001`, MR adds the 1-D/2-D tag bit); optional fill bits make each EOL end
//!   on an octet boundary (T.4 §4.1.3, TIFF `T4Options` bit 2); optional padding per row
//!   (minimum transmission time of a total coded scan line); RTC (6 EOLs) ends a page
//!   (T.4 §4.1.4; T.38 non-ECM wants it, TIFF storage does not).
//! - MH without EOLs, each row starting on an octet boundary: TIFF compression 2.
//! - MMR ([`Coding::Mmr`], T.6): 2-D rows back to back, the first coded against an
//!   imaginary white row, optionally ended by EOFB (two EOLs).
//!
//! The decoders never panic. T.4 rows with EOLs are decoded one EOL-delimited segment at a
//! time; a row that does not decode to exactly the page width is counted in
//! [`Decoded::bad_rows`] and replaced by a copy of the previous row, as fax machines do.
//! Streams without EOLs (MMR, TIFF compression 2) cannot resynchronise: decoding stops at
//! the first bad row ([`PageEnd::Lost`]).

mod decode;
mod encode;
mod tables;
#[cfg(test)]
pub(crate) mod tests;

pub use decode::decode;
pub use encode::{encode, Encoder};

/// Widest row the codecs accept: A3 at 400 dpi is 4864 pixels (T.4 §2.2).
pub const MAX_WIDTH: usize = 4864;

/// Default bound on decoded rows per page ([`DecodeOptions::max_rows`]).
pub const DEFAULT_MAX_ROWS: usize = 10_000;

/// Standard fax page width: 1728 pixels, 215 mm at 204 dpi (T.4 §2.2).
pub const A4_WIDTH: usize = 1728;

/// Errors of the codec entry points (bad parameters; bad data is never an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum T4Error {
    /// The row width is zero or larger than [`MAX_WIDTH`].
    #[error("invalid fax row width {width}: must be 1..={max}")]
    InvalidWidth {
        /// Requested width in pixels.
        width: usize,
        /// Largest supported width.
        max: usize,
    },
}

/// Coding scheme of a fax image stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// T.4 one-dimensional Modified Huffman.
    Mh,
    /// T.4 two-dimensional Modified READ. When encoding, every `k`-th row is 1-D and the
    /// `k - 1` rows after it are 2-D (T.4 §4.2.1: k = 2 at standard, 4 at fine
    /// resolution; `k = 0` is taken as 1). Decoding follows each row's tag bit and
    /// ignores `k`.
    Mr {
        /// The K parameter.
        k: u32,
    },
    /// T.6 Modified Modified READ (Group 4, also T.4 Annex "MMR" in ECM).
    Mmr,
}

/// Options for [`encode()`] and [`Encoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Coding scheme.
    pub coding: Coding,
    /// MH/MR: start every row with EOL (T.4, TIFF compression 3). Without EOLs, MH is
    /// TIFF compression 2. Ignored for MMR.
    pub eol: bool,
    /// MH/MR: insert zero fill bits so that every EOL ends on an octet boundary; without
    /// EOLs, so that every row starts on one. Ignored for MMR.
    pub align: bool,
    /// MH/MR: pad each coded row (from the start of its EOL to the next EOL) with fill
    /// bits to at least this many bits: the minimum scan-line time negotiated by T.30
    /// times the bit rate (e.g. 20 ms at 9600 bit/s = 192). 0 = none. Ignored for MMR.
    pub min_bits_per_row: usize,
    /// End the page with RTC (6 EOLs, T.4 §4.1.4) for MH/MR, or with EOFB (2 EOLs,
    /// T.6 §2.4) for MMR.
    pub rtc: bool,
}

impl EncodeOptions {
    /// T.38 non-ECM page: EOL per row, no fill, RTC at the end.
    pub fn t38(coding: Coding, min_bits_per_row: usize) -> Self {
        Self {
            coding,
            eol: true,
            align: false,
            min_bits_per_row,
            rtc: true,
        }
    }

    /// TIFF compression 3 strip: EOL per row, optional fill bits, no RTC.
    pub fn tiff_g3(coding: Coding, fill_bits: bool) -> Self {
        Self {
            coding,
            eol: true,
            align: fill_bits,
            min_bits_per_row: 0,
            rtc: false,
        }
    }

    /// TIFF compression 4 strip (T.6 with EOFB, as libtiff writes it).
    pub fn tiff_g4() -> Self {
        Self {
            coding: Coding::Mmr,
            eol: false,
            align: false,
            min_bits_per_row: 0,
            rtc: true,
        }
    }
}

/// Options for [`decode()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Row width in pixels, `1..=MAX_WIDTH`.
    pub width: usize,
    /// Coding scheme (for MR, `k` is ignored: the tag bits say which rows are 2-D).
    pub coding: Coding,
    /// MH/MR: rows are delimited by EOLs (T.4, TIFF compression 3). Without EOLs, every
    /// row starts on an octet boundary (TIFF compression 2). Ignored for MMR.
    pub eol: bool,
    /// Stop after this many rows.
    pub max_rows: usize,
}

impl DecodeOptions {
    /// EOL-delimited rows (or MMR), at most [`DEFAULT_MAX_ROWS`] rows.
    pub fn new(width: usize, coding: Coding) -> Self {
        Self {
            width,
            coding,
            eol: true,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnd {
    /// RTC (T.4; recognised after three consecutive EOLs) or EOFB (T.6).
    Rtc,
    /// The data ran out.
    EndOfData,
    /// [`DecodeOptions::max_rows`] rows were decoded.
    RowLimit,
    /// A row failed in a stream without EOLs, so the rest could not be located.
    Lost,
}

/// A decoded page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The rows, bad ones replaced by copies of their predecessor (white if first).
    pub bitmap: Bitmap,
    /// How many rows failed to decode.
    pub bad_rows: usize,
    /// Why decoding stopped.
    pub end: PageEnd,
}

/// A bilevel image: rows of `ceil(width / 8)` bytes, MSB first, 1 = black, unused bits 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitmap {
    width: usize,
    rows: Vec<Vec<u8>>,
}

impl Bitmap {
    /// An image `width` pixels wide with no rows.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            rows: Vec::new(),
        }
    }

    /// An all-white image.
    pub fn white(width: usize, height: usize) -> Self {
        Self {
            width,
            rows: vec![vec![0; Self::row_bytes(width)]; height],
        }
    }

    /// An image from packed rows; each row is truncated or white-padded to the width.
    pub fn from_rows(width: usize, rows: Vec<Vec<u8>>) -> Self {
        let mut bitmap = Self { width, rows };
        for row in &mut bitmap.rows {
            normalise_row(row, width);
        }
        bitmap
    }

    /// Bytes per packed row of `width` pixels.
    pub fn row_bytes(width: usize) -> usize {
        width.div_ceil(8)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.rows.len()
    }

    /// All rows.
    pub fn rows(&self) -> &[Vec<u8>] {
        &self.rows
    }

    /// Row `y`, if present.
    pub fn row(&self, y: usize) -> Option<&[u8]> {
        self.rows.get(y).map(Vec::as_slice)
    }

    /// The rows, consuming the image.
    pub fn into_rows(self) -> Vec<Vec<u8>> {
        self.rows
    }

    /// Appends a row (truncated or white-padded to the width).
    pub fn push_row(&mut self, row: &[u8]) {
        let mut row = row.to_vec();
        normalise_row(&mut row, self.width);
        self.rows.push(row);
    }

    /// Whether pixel (`x`, `y`) is black; outside the image is white.
    pub fn pixel(&self, x: usize, y: usize) -> bool {
        x < self.width && self.rows.get(y).is_some_and(|row| get_bit(row, x))
    }

    /// Sets pixel (`x`, `y`); outside the image does nothing.
    pub fn set_pixel(&mut self, x: usize, y: usize, black: bool) {
        if x >= self.width {
            return;
        }
        if let Some(byte) = self.rows.get_mut(y).and_then(|row| row.get_mut(x / 8)) {
            let mask = 0x80u8 >> (x % 8);
            if black {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

/// Reverses the bit order of every octet in place (MSB-first ⇄ LSB-first, TIFF
/// `FillOrder` 1 ⇄ 2, T.4 bit stream ⇄ T.38 non-ECM octets).
pub fn reverse_bits(data: &mut [u8]) {
    for byte in data {
        *byte = byte.reverse_bits();
    }
}

/// A copy of `data` with the bit order of every octet reversed (see [`reverse_bits`]).
pub fn reversed_bits(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b.reverse_bits()).collect()
}

/// Truncates or pads `row` to `width` pixels and clears the unused low bits.
fn normalise_row(row: &mut Vec<u8>, width: usize) {
    row.resize(Bitmap::row_bytes(width), 0);
    if !width.is_multiple_of(8) {
        if let Some(last) = row.last_mut() {
            *last &= 0xFFu8 << (8 - width % 8);
        }
    }
}

fn get_bit(row: &[u8], x: usize) -> bool {
    row.get(x / 8).is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
}

/// Positions where the colour changes along a row (the "changing elements" of T.4
/// §4.2.1.3.1), starting from an imaginary white pixel before the row: pixels from
/// `out[2i]` to `out[2i + 1]` are black. Bits past the end of `row` are white.
fn row_changes(row: &[u8], width: usize, out: &mut Vec<usize>) {
    out.clear();
    let mut black = false;
    let mut x = 0;
    while x < width {
        let byte = row.get(x / 8).copied().unwrap_or(0);
        if x % 8 == 0 && x + 8 <= width && byte == if black { 0xFF } else { 0 } {
            x += 8;
            continue;
        }
        if (byte & (0x80 >> (x % 8)) != 0) != black {
            out.push(x);
            black = !black;
        }
        x += 1;
    }
}

/// Fills `row` (`ceil(width / 8)` bytes) from changing elements (see [`row_changes`]).
fn changes_to_row(changes: &[usize], width: usize, row: &mut Vec<u8>) {
    row.clear();
    row.resize(Bitmap::row_bytes(width), 0);
    for span in changes.chunks(2) {
        let start = span.first().copied().unwrap_or(width).min(width);
        let end = span.get(1).copied().unwrap_or(width).min(width);
        fill_span(row, start, end);
    }
}

/// Sets bits `start..end` of a packed row.
fn fill_span(row: &mut [u8], start: usize, end: usize) {
    let mut x = start;
    while x < end {
        let Some(byte) = row.get_mut(x / 8) else {
            return;
        };
        if x.is_multiple_of(8) && x + 8 <= end {
            *byte = 0xFF;
            x += 8;
        } else {
            *byte |= 0x80 >> (x % 8);
            x += 1;
        }
    }
}
