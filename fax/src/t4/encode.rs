//! Encoders for ITU-T T.4 MH/MR (§4.1, §4.2) and T.6 MMR (§2.2) rows.

use super::tables::{self, Code};
use super::{row_changes, Bitmap, Coding, EncodeOptions, T4Error, MAX_WIDTH};

/// Accumulates bits MSB first.
#[derive(Debug, Default)]
pub(super) struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    pending: u32,
}

impl BitWriter {
    /// Appends the `len` (≤ 24) low bits of `bits`.
    pub(super) fn put(&mut self, bits: u32, len: u32) {
        debug_assert!(len <= 24);
        let mask = (1u32 << len) - 1;
        self.acc = (self.acc << len) | (bits & mask);
        self.pending += len;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u32 << self.pending) - 1;
    }

    pub(super) fn code(&mut self, c: Code) {
        self.put(u32::from(c.bits), u32::from(c.len));
    }

    pub(super) fn zeros(&mut self, mut n: usize) {
        while n > 0 {
            let chunk = n.min(24);
            self.put(0, chunk as u32);
            n -= chunk;
        }
    }

    pub(super) fn bit_len(&self) -> usize {
        self.out.len() * 8 + self.pending as usize
    }

    /// Zero bits up to the next octet boundary, and the bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.pending % 8) % 8;
        self.put(0, pad);
        self.out
    }
}

/// Streaming page encoder: push rows, then [`Encoder::finish`].
#[derive(Debug)]
pub struct Encoder {
    opts: EncodeOptions,
    width: usize,
    w: BitWriter,
    reference: Vec<usize>,
    current: Vec<usize>,
    rows: usize,
    /// Bit position where the previous MH/MR row (its EOL) started.
    row_start: Option<usize>,
}

impl Encoder {
    /// A new page `width` pixels wide.
    pub fn new(width: usize, opts: EncodeOptions) -> Result<Self, T4Error> {
        if width == 0 || width > MAX_WIDTH {
            return Err(T4Error::InvalidWidth {
                width,
                max: MAX_WIDTH,
            });
        }
        Ok(Self {
            opts,
            width,
            w: BitWriter::default(),
            reference: Vec::new(),
            current: Vec::new(),
            rows: 0,
            row_start: None,
        })
    }

    /// Number of rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Encodes one packed row (MSB first, 1 = black); missing bytes are white and bits
    /// past the width are ignored.
    pub fn push_row(&mut self, row: &[u8]) {
        row_changes(row, self.width, &mut self.current);
        match self.opts.coding {
            Coding::Mmr => {
                encode_2d(&mut self.w, &self.current, &self.reference, self.width);
            }
            Coding::Mh | Coding::Mr { .. } => {
                self.end_row();
                self.row_start = Some(self.w.bit_len());
                if self.opts.eol {
                    self.w.code(tables::EOL);
                }
                let one_d = match self.opts.coding {
                    Coding::Mr { k } => {
                        let one_d = self.rows.is_multiple_of(k.max(1) as usize);
                        self.w.put(u32::from(one_d), 1);
                        one_d
                    }
                    _ => true,
                };
                if one_d {
                    encode_1d(&mut self.w, &self.current, self.width);
                } else {
                    encode_2d(&mut self.w, &self.current, &self.reference, self.width);
                }
            }
        }
        std::mem::swap(&mut self.reference, &mut self.current);
        self.rows += 1;
    }

    /// Ends the page (RTC or EOFB if configured) and returns the coded bytes, MSB first,
    /// the last octet padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        match self.opts.coding {
            Coding::Mmr => {
                if self.opts.rtc {
                    self.w.code(tables::EOL);
                    self.w.code(tables::EOL);
                }
            }
            Coding::Mh | Coding::Mr { .. } => {
                if self.opts.rtc {
                    self.end_row();
                    for _ in 0..6 {
                        self.w.code(tables::EOL);
                        if matches!(self.opts.coding, Coding::Mr { .. }) {
                            self.w.put(1, 1);
                        }
                    }
                } else if self.row_start.is_some() {
                    let pad = self.min_time_padding();
                    self.w.zeros(pad);
                }
            }
        }
        self.w.finish()
    }

    /// Fill after the previous row: minimum scan-line time, then alignment of what follows
    /// (the next EOL's end, or the next row's start when there are no EOLs).
    fn end_row(&mut self) {
        let pad = self.min_time_padding();
        self.w.zeros(pad);
        if self.opts.align {
            let tail = if self.opts.eol { 12 } else { 0 };
            let pad = (8 - (self.w.bit_len() + tail) % 8) % 8;
            self.w.zeros(pad);
        }
    }

    fn min_time_padding(&self) -> usize {
        match self.row_start {
            Some(start) => (start + self.opts.min_bits_per_row).saturating_sub(self.w.bit_len()),
            None => 0,
        }
    }
}

/// Encodes a whole page: every row of `bitmap`, then [`Encoder::finish`]. The bytes are
/// MSB first (TIFF `FillOrder=1`); see the module docs for the T.38 order.
pub fn encode(bitmap: &Bitmap, opts: &EncodeOptions) -> Result<Vec<u8>, T4Error> {
    let mut encoder = Encoder::new(bitmap.width(), *opts)?;
    for row in bitmap.rows() {
        encoder.push_row(row);
    }
    Ok(encoder.finish())
}

/// One run length: make-up codes (2560 repeated for long runs) then a terminating code.
pub(super) fn put_run(w: &mut BitWriter, black: bool, mut run: usize) {
    while run >= 64 {
        let m = run.min(tables::MAX_MAKEUP) / 64 * 64;
        w.code(tables::makeup(black, m));
        run -= m;
    }
    w.code(tables::terminating(black, run));
}

/// T.4 §4.1: alternating white and black runs, starting with a (possibly empty) white run.
fn encode_1d(w: &mut BitWriter, changes: &[usize], width: usize) {
    let mut black = false;
    let mut prev = 0;
    for &c in changes.iter().chain(std::iter::once(&width)) {
        put_run(w, black, c.saturating_sub(prev));
        prev = c;
        black = !black;
    }
}

/// `b1` and `b2` (T.4 §4.2.1.3.1): the first changing element on the reference line right
/// of `a0` whose colour is opposite to the current colour, and the next one. `a0 = None`
/// is the imaginary start position before the row. Missing elements are `width`.
pub(super) fn find_b1_b2(
    reference: &[usize],
    a0: Option<usize>,
    black: bool,
    width: usize,
) -> (usize, usize) {
    let mut j = match a0 {
        None => 0,
        Some(a0) => reference.partition_point(|&x| x <= a0),
    };
    // Changing element j turns the line black if j is even: it must become !current.
    if j % 2 != usize::from(black) {
        j += 1;
    }
    let b1 = reference.get(j).copied().unwrap_or(width);
    let b2 = reference.get(j + 1).copied().unwrap_or(width);
    (b1, b2)
}

/// T.4 §4.2.1.3 / T.6 §2.2: code a line against its reference line.
fn encode_2d(w: &mut BitWriter, current: &[usize], reference: &[usize], width: usize) {
    let mut a0: Option<usize> = None;
    let mut black = false;
    loop {
        let (b1, b2) = find_b1_b2(reference, a0, black, width);
        let i = match a0 {
            None => 0,
            Some(a0) => current.partition_point(|&x| x <= a0),
        };
        let a1 = current.get(i).copied().unwrap_or(width);
        let next = if b2 < a1 {
            w.code(tables::PASS);
            b2
        } else if a1.abs_diff(b1) <= 3 {
            let index = (a1 + 3 - b1).min(6);
            w.code(tables::VERTICAL[index]);
            black = !black;
            a1
        } else {
            let a2 = current.get(i + 1).copied().unwrap_or(width);
            let start = a0.unwrap_or(0);
            w.code(tables::HORIZONTAL);
            put_run(w, black, a1 - start);
            put_run(w, !black, a2 - a1);
            a2
        };
        a0 = Some(next);
        if next >= width {
            break;
        }
    }
}
