//! TIFF 6.0 reader: header, IFD chain, tags, strips (TIFF 6.0 §2, §3, §8, §9, §11).

use super::super::t4::{self, Bitmap, Coding, DecodeOptions};
use super::{Page, ReadLimits, TiffError};

// Tags (TIFF 6.0 §8, §11; Class F).
const NEW_SUBFILE_TYPE: u16 = 254;
const SUBFILE_TYPE: u16 = 255;
const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const FILL_ORDER: u16 = 266;
const STRIP_OFFSETS: u16 = 273;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const X_RESOLUTION: u16 = 282;
const Y_RESOLUTION: u16 = 283;
const T4_OPTIONS: u16 = 292;
const RESOLUTION_UNIT: u16 = 296;
const TILE_WIDTH: u16 = 322;
const TILE_OFFSETS: u16 = 324;

/// Reads every page with the default [`ReadLimits`].
pub fn read_tiff(data: &[u8]) -> Result<Vec<Page>, TiffError> {
    read_tiff_with(data, &ReadLimits::default())
}

/// Reads every page of a classic TIFF file.
pub fn read_tiff_with(data: &[u8], limits: &ReadLimits) -> Result<Vec<Page>, TiffError> {
    let file = File::new(data)?;
    let mut offset = file.u32_at(4).ok_or(TiffError::NotTiff)?;
    let mut visited = std::collections::HashSet::new();
    let mut pages = Vec::new();
    let mut total_bytes = 0usize;
    while offset != 0 {
        if !visited.insert(offset) {
            return Err(TiffError::IfdLoop { offset });
        }
        // Skipped IFDs (thumbnails, masks) count too, so the chain length stays bounded.
        if visited.len() > limits.max_pages.saturating_mul(2).saturating_add(8) {
            return Err(TiffError::TooManyPages {
                max: limits.max_pages,
            });
        }
        let page_no = pages.len() + 1;
        let (ifd, next) = file.ifd(offset, page_no)?;
        if let Some(layout) = ifd.layout(limits)? {
            if pages.len() >= limits.max_pages {
                return Err(TiffError::TooManyPages {
                    max: limits.max_pages,
                });
            }
            let bytes = Bitmap::row_bytes(layout.width).saturating_mul(layout.height);
            total_bytes = total_bytes.saturating_add(bytes);
            if total_bytes > limits.max_total_bytes {
                return Err(TiffError::MemoryLimit {
                    max: limits.max_total_bytes,
                });
            }
            pages.push(file.decode_page(&layout, page_no)?);
        }
        offset = next;
    }
    if pages.is_empty() {
        return Err(TiffError::NoPages);
    }
    Ok(pages)
}

/// The input buffer and its byte order.
pub(super) struct File<'a> {
    pub(super) data: &'a [u8],
    big_endian: bool,
}

/// One IFD entry: tag, field type, count, and the file offset of its 4-byte value field.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) tag: u16,
    field_type: u16,
    count: u32,
    field: u64,
}

pub(super) struct Ifd<'f, 'a> {
    file: &'f File<'a>,
    page: usize,
    pub(super) entries: Vec<Entry>,
}

/// Everything needed to decode one page.
#[derive(Debug)]
struct Layout {
    width: usize,
    height: usize,
    compression: u32,
    two_d: bool,
    invert: bool,
    reverse_fill: bool,
    rows_per_strip: usize,
    strips: Vec<(usize, usize)>,
    x_res: f32,
    y_res: f32,
}

impl<'a> File<'a> {
    pub(super) fn new(data: &'a [u8]) -> Result<Self, TiffError> {
        let big_endian = match data.get(..2) {
            Some(b"II") => false,
            Some(b"MM") => true,
            _ => return Err(TiffError::NotTiff),
        };
        let file = Self { data, big_endian };
        match file.u16_at(2) {
            Some(42) => Ok(file),
            Some(43) => Err(TiffError::BigTiff),
            _ => Err(TiffError::NotTiff),
        }
    }

    fn bytes<const N: usize>(&self, offset: u64) -> Option<[u8; N]> {
        let start = usize::try_from(offset).ok()?;
        let slice = self.data.get(start..start.checked_add(N)?)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        if !self.big_endian {
            out.reverse();
        }
        Some(out)
    }

    pub(super) fn u16_at(&self, offset: u64) -> Option<u16> {
        self.bytes::<2>(offset).map(u16::from_be_bytes)
    }

    pub(super) fn u32_at(&self, offset: u64) -> Option<u32> {
        self.bytes::<4>(offset).map(u32::from_be_bytes)
    }

    fn truncated(&self, page: usize, what: &'static str, offset: u64, len: u64) -> TiffError {
        TiffError::Truncated {
            page,
            what,
            offset,
            len,
            file_len: self.data.len(),
        }
    }

    /// The IFD at `offset` and the offset of the next one (0 if none or unreadable).
    pub(super) fn ifd(&self, offset: u32, page: usize) -> Result<(Ifd<'_, 'a>, u32), TiffError> {
        let offset = u64::from(offset);
        let n = self
            .u16_at(offset)
            .ok_or_else(|| self.truncated(page, "IFD", offset, 2))?;
        let size = 2 + 12 * u64::from(n);
        if offset + size > self.data.len() as u64 {
            return Err(self.truncated(page, "IFD", offset, size));
        }
        let entries = (0..u64::from(n))
            .filter_map(|i| {
                let at = offset + 2 + 12 * i;
                Some(Entry {
                    tag: self.u16_at(at)?,
                    field_type: self.u16_at(at + 2)?,
                    count: self.u32_at(at + 4)?,
                    field: at + 8,
                })
            })
            .collect();
        let next = self.u32_at(offset + size).unwrap_or(0);
        Ok((
            Ifd {
                file: self,
                page,
                entries,
            },
            next,
        ))
    }

    fn decode_page(&self, layout: &Layout, page: usize) -> Result<Page, TiffError> {
        let mut bitmap = Bitmap::new(layout.width);
        let mut bad_rows = 0;
        let row_bytes = Bitmap::row_bytes(layout.width);
        for (index, &(offset, len)) in layout.strips.iter().enumerate() {
            let first_row = index.saturating_mul(layout.rows_per_strip);
            let rows = layout
                .rows_per_strip
                .min(layout.height.saturating_sub(first_row));
            if rows == 0 {
                break;
            }
            let raw = offset
                .checked_add(len)
                .and_then(|end| self.data.get(offset..end))
                .ok_or_else(|| self.truncated(page, "strip data", offset as u64, len as u64))?;
            let reversed;
            let raw = if layout.reverse_fill {
                reversed = t4::reversed_bits(raw);
                &reversed
            } else {
                raw
            };
            let start = bitmap.height();
            match layout.compression {
                1 | 32773 => {
                    let unpacked;
                    let plain = if layout.compression == 1 {
                        raw
                    } else {
                        unpacked = unpack_bits(raw, rows * row_bytes);
                        &unpacked
                    };
                    for row in plain.chunks_exact(row_bytes).take(rows) {
                        bitmap.push_row(row);
                    }
                }
                compression => {
                    let coding = match compression {
                        4 => Coding::Mmr,
                        3 if layout.two_d => Coding::Mr { k: 0 },
                        _ => Coding::Mh,
                    };
                    let opts = DecodeOptions {
                        width: layout.width,
                        coding,
                        eol: compression != 2,
                        max_rows: rows,
                    };
                    let decoded = t4::decode(raw, &opts).map_err(|_| TiffError::TooLarge {
                        page,
                        width: layout.width as u64,
                        height: layout.height as u64,
                        max_width: t4::MAX_WIDTH,
                        max_height: t4::DEFAULT_MAX_ROWS,
                    })?;
                    bad_rows += decoded.bad_rows;
                    for row in decoded.bitmap.rows() {
                        bitmap.push_row(row);
                    }
                }
            }
            // Rows the strip did not deliver: repeat the last row, as for damaged rows.
            while bitmap.height() < start + rows {
                let last = bitmap.rows().last().cloned().unwrap_or_default();
                bitmap.push_row(&last);
                bad_rows += 1;
            }
        }
        if bad_rows >= layout.height {
            return Err(TiffError::Undecodable { page });
        }
        let mut rows = bitmap.into_rows();
        if layout.invert {
            for row in &mut rows {
                row.iter_mut().for_each(|b| *b = !*b);
            }
        }
        let bitmap = Bitmap::from_rows(layout.width, rows);
        Ok(Page {
            bitmap,
            x_res_dpi: layout.x_res,
            y_res_dpi: layout.y_res,
            bad_rows,
        })
    }
}

impl Ifd<'_, '_> {
    fn entry(&self, tag: u16) -> Option<Entry> {
        self.entries.iter().find(|e| e.tag == tag).copied()
    }

    /// Up to `max` unsigned integer values of `tag` (BYTE, SHORT or LONG).
    pub(super) fn uints(
        &self,
        tag: u16,
        name: &'static str,
        max: usize,
    ) -> Result<Option<Vec<u64>>, TiffError> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        let size: u64 = match e.field_type {
            1 => 1,
            3 => 2,
            4 => 4,
            field_type => {
                return Err(TiffError::BadFieldType {
                    page: self.page,
                    tag: name,
                    field_type,
                })
            }
        };
        let count = u64::from(e.count).min(max as u64);
        let start = if size * u64::from(e.count) <= 4 {
            e.field
        } else {
            u64::from(self.file.u32_at(e.field).unwrap_or(u32::MAX))
        };
        if start + size * count > self.file.data.len() as u64 {
            return Err(self.file.truncated(self.page, name, start, size * count));
        }
        let values = (0..count)
            .map(|i| {
                let at = start + i * size;
                match size {
                    1 => self.file.data.get(at as usize).map(|&b| u64::from(b)),
                    2 => self.file.u16_at(at).map(u64::from),
                    _ => self.file.u32_at(at).map(u64::from),
                }
                .unwrap_or(0)
            })
            .collect();
        Ok(Some(values))
    }

    fn uint(&self, tag: u16, name: &'static str) -> Result<Option<u64>, TiffError> {
        Ok(self.uints(tag, name, 1)?.and_then(|v| v.first().copied()))
    }

    /// A resolution value (RATIONAL, or an integer type); `None` if absent or unusable.
    fn resolution(&self, tag: u16) -> Option<f64> {
        let e = self.entry(tag)?;
        let value = if e.field_type == 5 && e.count >= 1 {
            let at = u64::from(self.file.u32_at(e.field)?);
            let num = self.file.u32_at(at)?;
            let den = self.file.u32_at(at + 4)?;
            f64::from(num) / f64::from(den)
        } else {
            self.uint(tag, "resolution").ok()?? as f64
        };
        (value.is_finite() && value > 0.0 && value < 100_000.0).then_some(value)
    }

    /// The page layout, or `None` for an IFD that is not a page (thumbnail, mask).
    fn layout(&self, limits: &ReadLimits) -> Result<Option<Layout>, TiffError> {
        let page = self.page;
        let new_subfile = self.uint(NEW_SUBFILE_TYPE, "NewSubfileType")?.unwrap_or(0);
        let old_subfile = self.uint(SUBFILE_TYPE, "SubfileType")?.unwrap_or(1);
        if new_subfile & 0b101 != 0 || old_subfile == 2 {
            return Ok(None);
        }
        let width = self.uint(IMAGE_WIDTH, "ImageWidth")?;
        let width = width.ok_or(TiffError::MissingTag {
            page,
            tag: "ImageWidth",
        })?;
        let height = self.uint(IMAGE_LENGTH, "ImageLength")?;
        let height = height.ok_or(TiffError::MissingTag {
            page,
            tag: "ImageLength",
        })?;
        if width == 0 {
            return Err(TiffError::InvalidValue {
                page,
                tag: "ImageWidth",
                value: 0,
            });
        }
        if height == 0 {
            return Err(TiffError::InvalidValue {
                page,
                tag: "ImageLength",
                value: 0,
            });
        }
        let samples = self
            .uint(SAMPLES_PER_PIXEL, "SamplesPerPixel")?
            .unwrap_or(1);
        let bits = self
            .uints(BITS_PER_SAMPLE, "BitsPerSample", 16)?
            .unwrap_or_else(|| vec![1]);
        if samples != 1 || bits.iter().any(|&b| b != 1) {
            return Err(TiffError::NotBilevel {
                page,
                bits_per_sample: bits.first().copied().unwrap_or(1).min(u64::from(u32::MAX)) as u32,
                samples_per_pixel: samples.min(u64::from(u32::MAX)) as u32,
            });
        }
        let invert = match self
            .uint(PHOTOMETRIC, "PhotometricInterpretation")?
            .unwrap_or(0)
        {
            0 => false,
            1 => true,
            4 => return Ok(None),
            other => {
                return Err(TiffError::UnsupportedPhotometric {
                    page,
                    photometric: other as u32,
                })
            }
        };
        if self.entry(TILE_WIDTH).is_some() || self.entry(TILE_OFFSETS).is_some() {
            return Err(TiffError::Tiled { page });
        }
        let compression = self.uint(COMPRESSION, "Compression")?.unwrap_or(1) as u32;
        if !matches!(compression, 1..=4 | 32773) {
            let name = compression_name(compression);
            return Err(TiffError::UnsupportedCompression {
                page,
                code: compression,
                name,
            });
        }
        let ccitt = matches!(compression, 2..=4);
        let max_width = if ccitt {
            limits.max_width.min(t4::MAX_WIDTH)
        } else {
            limits.max_width
        };
        if width > max_width as u64 || height > limits.max_height as u64 {
            return Err(TiffError::TooLarge {
                page,
                width,
                height,
                max_width,
                max_height: limits.max_height,
            });
        }
        let (width, height) = (width as usize, height as usize);
        let reverse_fill = match self.uint(FILL_ORDER, "FillOrder")?.unwrap_or(1) {
            1 => false,
            2 => true,
            value => {
                return Err(TiffError::InvalidValue {
                    page,
                    tag: "FillOrder",
                    value,
                })
            }
        };
        let t4_options = self.uint(T4_OPTIONS, "T4Options")?.unwrap_or(0);
        let rows_per_strip = self
            .uint(ROWS_PER_STRIP, "RowsPerStrip")?
            .unwrap_or(u64::MAX);
        if rows_per_strip == 0 {
            return Err(TiffError::InvalidValue {
                page,
                tag: "RowsPerStrip",
                value: 0,
            });
        }
        let rows_per_strip = rows_per_strip.min(height as u64) as usize;
        let strip_count = height.div_ceil(rows_per_strip);
        let offsets = self.uints(STRIP_OFFSETS, "StripOffsets", strip_count)?;
        let offsets = offsets.ok_or(TiffError::MissingTag {
            page,
            tag: "StripOffsets",
        })?;
        if offsets.len() < strip_count {
            let value = offsets.len() as u64;
            return Err(TiffError::InvalidValue {
                page,
                tag: "StripOffsets count",
                value,
            });
        }
        let counts = self.uints(STRIP_BYTE_COUNTS, "StripByteCounts", strip_count)?;
        if let Some(counts) = &counts {
            if counts.len() < strip_count {
                let value = counts.len() as u64;
                return Err(TiffError::InvalidValue {
                    page,
                    tag: "StripByteCounts count",
                    value,
                });
            }
        }
        let file_len = self.file.data.len() as u64;
        let mut strips = Vec::with_capacity(strip_count);
        for (i, &offset) in offsets.iter().enumerate() {
            let len = match &counts {
                Some(counts) => counts.get(i).copied().unwrap_or(0),
                // Without byte counts: uncompressed strips have a known size; coded data
                // runs to the end of the file at most.
                None if compression == 1 => (Bitmap::row_bytes(width) * rows_per_strip) as u64,
                None => file_len.saturating_sub(offset),
            };
            if offset.saturating_add(len) > file_len {
                return Err(self.file.truncated(page, "strip data", offset, len));
            }
            strips.push((offset as usize, len as usize));
        }
        let unit = self.uint(RESOLUTION_UNIT, "ResolutionUnit")?.unwrap_or(2);
        let per_inch = match unit {
            2 => Some(1.0),
            3 => Some(2.54),
            _ => None,
        };
        let res = |tag| per_inch.and_then(|f| self.resolution(tag).map(|r| (r * f) as f32));
        Ok(Some(Layout {
            width,
            height,
            compression,
            two_d: t4_options & 1 != 0,
            invert,
            reverse_fill,
            rows_per_strip,
            strips,
            x_res: res(X_RESOLUTION).unwrap_or(0.0),
            y_res: res(Y_RESOLUTION).unwrap_or(0.0),
        }))
    }
}

/// Usual names of TIFF compression schemes, for error messages.
fn compression_name(code: u32) -> &'static str {
    match code {
        5 => "LZW",
        6 => "old-style JPEG",
        7 => "JPEG",
        8 | 32946 => "Deflate (ZIP)",
        9 => "JBIG (T.85)",
        10 => "JBIG2/MRC (T.43)",
        32771 => "CCITT RLE word-aligned",
        34661 => "JBIG",
        34676 | 34677 => "SGI LogLuv",
        34712 => "JPEG 2000",
        34887 => "LERC",
        34925 => "LZMA",
        50000 => "Zstandard",
        50001 => "WebP",
        _ => "unknown",
    }
}

/// PackBits (TIFF 6.0 §9) into at most `limit` bytes; stops early on short input.
fn unpack_bits(src: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit.min(src.len().saturating_mul(128)));
    let mut i = 0;
    while out.len() < limit {
        let Some(&n) = src.get(i) else { break };
        i += 1;
        let n = n as i8;
        if n >= 0 {
            let end = (i + n as usize + 1).min(src.len());
            out.extend_from_slice(src.get(i..end).unwrap_or_default());
            i = end;
        } else if n != -128 {
            let Some(&b) = src.get(i) else { break };
            i += 1;
            out.extend(std::iter::repeat_n(b, 1 + n.unsigned_abs() as usize));
        }
    }
    out.truncate(limit);
    out
}
