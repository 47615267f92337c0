//! Decoders for ITU-T T.4 MH/MR and T.6 MMR streams. Never panic; bad rows are counted.

use super::encode::find_b1_b2;
use super::tables::{self, BLACK_LOOKUP, EOL_RUN, LOOKUP_BITS, WHITE_LOOKUP};
use super::{changes_to_row, Bitmap, Coding, DecodeOptions, Decoded, PageEnd, T4Error, MAX_WIDTH};

/// Reads bits MSB first from `data`, bit positions `pos..end`; bits past `end` read as 0.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], start: usize, end: usize) -> Self {
        Self {
            data,
            pos: start,
            end: end.min(data.len().saturating_mul(8)),
        }
    }

    /// The next `n` (1..=24) bits, right-aligned.
    fn peek(&self, n: u32) -> u32 {
        if n == 0 || n > 24 {
            return 0;
        }
        let byte = self.pos / 8;
        let mut word = 0u32;
        for i in 0..4 {
            let b = self.data.get(byte + i).copied().unwrap_or(0);
            word = (word << 8) | u32::from(b);
        }
        let v = (word << (self.pos % 8)) >> (32 - n);
        let avail = self.end.saturating_sub(self.pos);
        if avail >= n as usize {
            v
        } else {
            let gone = n - avail as u32;
            (v >> gone) << gone
        }
    }

    fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    /// Whether more bits were consumed than there were.
    fn overrun(&self) -> bool {
        self.pos > self.end
    }

    /// Whether every remaining bit is zero (fill).
    fn rest_is_zero(&self) -> bool {
        let mut probe = self.clone();
        while probe.pos < probe.end {
            let n = (probe.end - probe.pos).min(24) as u32;
            if probe.peek(n) != 0 {
                return false;
            }
            probe.skip(n as usize);
        }
        true
    }

    fn align(&mut self) {
        self.pos = self.pos.div_ceil(8).saturating_mul(8);
    }
}

/// Marker for a row that does not decode.
#[derive(Debug)]
struct BadRow;

/// Appends a changing element; two changes at the same position cancel out.
fn push_change(out: &mut Vec<usize>, x: usize, width: usize) -> Result<(), BadRow> {
    if x >= width {
        return Ok(());
    }
    match out.last() {
        Some(&last) if last == x => {
            out.pop();
        }
        Some(&last) if last > x => return Err(BadRow),
        _ => out.push(x),
    }
    Ok(())
}

/// One run length (make-up codes then a terminating code), at most `remaining`.
fn read_run(r: &mut BitReader, black: bool, remaining: usize) -> Result<usize, BadRow> {
    let table = if black { &BLACK_LOOKUP } else { &WHITE_LOOKUP };
    let mut total = 0usize;
    loop {
        let entry = table
            .get(r.peek(LOOKUP_BITS) as usize)
            .copied()
            .unwrap_or(0);
        let len = (entry >> 16) as usize;
        let run = entry & 0xFFFF;
        if len == 0 || run == EOL_RUN {
            return Err(BadRow);
        }
        r.skip(len);
        if r.overrun() {
            return Err(BadRow);
        }
        total += run as usize;
        if total > remaining {
            return Err(BadRow);
        }
        if run < 64 {
            return Ok(total);
        }
    }
}

/// T.4 §4.1: one MH row into changing elements.
fn decode_1d(r: &mut BitReader, width: usize, out: &mut Vec<usize>) -> Result<(), BadRow> {
    out.clear();
    let mut x = 0;
    let mut black = false;
    while x < width {
        x += read_run(r, black, width - x)?;
        push_change(out, x, width)?;
        black = !black;
    }
    Ok(())
}

/// 2-D coding modes (T.4 Table 4).
enum Mode {
    Pass,
    Horizontal,
    /// `a1 - b1`
    Vertical(isize),
}

fn read_mode(r: &mut BitReader) -> Result<Mode, BadRow> {
    let v = r.peek(7);
    let (mode, len) = if v & 0x40 != 0 {
        (Mode::Vertical(0), 1)
    } else if v >> 4 == 0b011 {
        (Mode::Vertical(1), 3)
    } else if v >> 4 == 0b010 {
        (Mode::Vertical(-1), 3)
    } else if v >> 4 == 0b001 {
        (Mode::Horizontal, 3)
    } else if v >> 3 == 0b0001 {
        (Mode::Pass, 4)
    } else if v >> 1 == 0b000011 {
        (Mode::Vertical(2), 6)
    } else if v >> 1 == 0b000010 {
        (Mode::Vertical(-2), 6)
    } else if v == 0b0000011 {
        (Mode::Vertical(3), 7)
    } else if v == 0b0000010 {
        (Mode::Vertical(-3), 7)
    } else {
        // 0000001xxx: extension (uncompressed mode), unsupported; 0000000: EOL or garbage.
        return Err(BadRow);
    };
    r.skip(len);
    if r.overrun() {
        return Err(BadRow);
    }
    Ok(mode)
}

/// T.4 §4.2.1.3 / T.6 §2.2: one 2-D row against `reference`.
fn decode_2d(
    r: &mut BitReader,
    width: usize,
    reference: &[usize],
    out: &mut Vec<usize>,
) -> Result<(), BadRow> {
    out.clear();
    let mut a0: Option<usize> = None;
    let mut black = false;
    loop {
        let (b1, b2) = find_b1_b2(reference, a0, black, width);
        let start = a0.unwrap_or(0);
        let next = match read_mode(r)? {
            Mode::Pass => b2,
            Mode::Horizontal => {
                let a1 = start + read_run(r, black, width - start)?;
                let a2 = a1 + read_run(r, !black, width - a1)?;
                push_change(out, a1, width)?;
                push_change(out, a2, width)?;
                a2
            }
            Mode::Vertical(d) => {
                let a1 = b1.checked_add_signed(d).ok_or(BadRow)?;
                if a1 < start || a1 > width {
                    return Err(BadRow);
                }
                push_change(out, a1, width)?;
                black = !black;
                a1
            }
        };
        a0 = Some(next);
        if next >= width {
            return Ok(());
        }
    }
}

/// Per-page decoder state.
struct Rows {
    width: usize,
    coding: Coding,
    bitmap: Bitmap,
    bad_rows: usize,
    /// Changing elements of the last row (the reference line for 2-D rows).
    reference: Vec<usize>,
    current: Vec<usize>,
    scratch: Vec<u8>,
}

impl Rows {
    /// Decodes one row starting at the reader's position. MR reads the tag bit first.
    fn decode_row(&mut self, r: &mut BitReader) -> Result<(), BadRow> {
        let two_d = match self.coding {
            Coding::Mh => false,
            Coding::Mmr => true,
            Coding::Mr { .. } => {
                let tag = r.peek(1);
                r.skip(1);
                if r.overrun() {
                    return Err(BadRow);
                }
                tag == 0
            }
        };
        if two_d {
            decode_2d(r, self.width, &self.reference, &mut self.current)
        } else {
            decode_1d(r, self.width, &mut self.current)
        }
    }

    fn accept(&mut self) {
        changes_to_row(&self.current, self.width, &mut self.scratch);
        self.bitmap.push_row(&self.scratch);
        std::mem::swap(&mut self.reference, &mut self.current);
    }

    /// A bad row: repeat the previous one (white if none); it stays the reference.
    fn substitute(&mut self) {
        self.bad_rows += 1;
        let previous = self.bitmap.rows().last().cloned();
        match previous {
            Some(row) => self.bitmap.push_row(&row),
            None => {
                self.reference.clear();
                self.bitmap.push_row(&[]);
            }
        }
    }

    fn finish(self, end: PageEnd) -> Decoded {
        Decoded {
            bitmap: self.bitmap,
            bad_rows: self.bad_rows,
            end,
        }
    }
}

/// Decodes a page of coded data (MSB first, see the module docs on bit order).
///
/// Errors only on invalid options; corrupt data yields [`Decoded::bad_rows`].
pub fn decode(data: &[u8], opts: &DecodeOptions) -> Result<Decoded, T4Error> {
    if opts.width == 0 || opts.width > MAX_WIDTH {
        return Err(T4Error::InvalidWidth {
            width: opts.width,
            max: MAX_WIDTH,
        });
    }
    let rows = Rows {
        width: opts.width,
        coding: opts.coding,
        bitmap: Bitmap::new(opts.width),
        bad_rows: 0,
        reference: Vec::new(),
        current: Vec::new(),
        scratch: Vec::new(),
    };
    Ok(match opts.coding {
        Coding::Mh | Coding::Mr { .. } if opts.eol => decode_eol_rows(data, rows, opts.max_rows),
        _ => decode_sequential(data, rows, opts.max_rows),
    })
}

/// Rows back to back: MMR (EOFB ends the page), or MH/MR rows starting on octet boundaries.
fn decode_sequential(data: &[u8], mut rows: Rows, max_rows: usize) -> Decoded {
    let mmr = rows.coding == Coding::Mmr;
    let mut r = BitReader::new(data, 0, data.len().saturating_mul(8));
    loop {
        if rows.bitmap.height() >= max_rows {
            return rows.finish(PageEnd::RowLimit);
        }
        if mmr && r.peek(12) == u32::from(tables::EOL.bits) {
            return rows.finish(PageEnd::Rtc);
        }
        if r.rest_is_zero() {
            return rows.finish(PageEnd::EndOfData);
        }
        if rows.decode_row(&mut r).is_err() {
            rows.substitute();
            return rows.finish(PageEnd::Lost);
        }
        rows.accept();
        if !mmr {
            r.align();
        }
    }
}

/// Finds EOLs: yields `(start, after)` bit positions of each EOL, where `start` is the
/// position of its eleventh-last zero (earlier zeros are fill and stay with the row).
struct EolScanner<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: usize,
}

impl Iterator for EolScanner<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        loop {
            let byte = *self.data.get(self.pos / 8)?;
            if self.pos.is_multiple_of(8) && byte == 0 {
                self.zeros += 8;
                self.pos += 8;
                continue;
            }
            let bit = byte & (0x80 >> (self.pos % 8)) != 0;
            self.pos += 1;
            if !bit {
                self.zeros += 1;
            } else if std::mem::take(&mut self.zeros) >= 11 {
                return Some((self.pos - 12, self.pos));
            }
        }
    }
}

/// T.4 rows delimited by EOLs: each segment between EOLs is decoded on its own.
fn decode_eol_rows(data: &[u8], mut rows: Rows, max_rows: usize) -> Decoded {
    let mr = matches!(rows.coding, Coding::Mr { .. });
    let total = data.len().saturating_mul(8);
    let mut eols = EolScanner {
        data,
        pos: 0,
        zeros: 0,
    };
    let mut seg_start = 0;
    let mut leading = true;
    let mut empty_segments = 0;
    loop {
        if rows.bitmap.height() >= max_rows {
            return rows.finish(PageEnd::RowLimit);
        }
        let (seg_end, next) = match eols.next() {
            Some(eol) => eol,
            None => (total, total),
        };
        let mut r = BitReader::new(data, seg_start, seg_end);
        let mut body = r.clone();
        if mr {
            body.skip(1);
        }
        if body.rest_is_zero() {
            // Nothing but fill (or an MR tag bit): part of RTC, or a stray EOL.
            if !leading {
                empty_segments += 1;
            }
            if empty_segments >= 2 && rows.bitmap.height() > 0 {
                return rows.finish(PageEnd::Rtc);
            }
        } else {
            empty_segments = 0;
            let ok = rows.decode_row(&mut r).is_ok() && !r.overrun() && r.rest_is_zero();
            if ok {
                rows.accept();
            } else if !leading {
                rows.substitute();
            }
        }
        if next >= total {
            return rows.finish(PageEnd::EndOfData);
        }
        leading = false;
        seg_start = next;
    }
}

/// Bit positions just after each EOL (tests).
#[cfg(test)]
pub(super) fn eol_positions(data: &[u8]) -> Vec<usize> {
    EolScanner {
        data,
        pos: 0,
        zeros: 0,
    }
    .map(|(_, after)| after)
    .collect()
}
