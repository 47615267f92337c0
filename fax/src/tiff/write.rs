//! TIFF Class F writer (TIFF 6.0 §11 and the Class F profile): little-endian, one strip
//! per page, CCITT T.4 or T.6 data.

use super::super::t4::{self, Coding, EncodeOptions};
use super::{Page, TiffError};

/// Coding of the strips written by [`write_tiff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiffCompression {
    /// Compression 3, T.4 1-D MH: EOL per row, no RTC. `fill_bits` aligns every EOL to
    /// end on an octet (`T4Options` = 4, else 0).
    G3 {
        /// Byte-align EOLs.
        fill_bits: bool,
    },
    /// Compression 3, T.4 2-D MR with the given K (`T4Options` bit 0 set).
    G3TwoD {
        /// Byte-align EOLs.
        fill_bits: bool,
        /// Every K-th row is 1-D.
        k: u32,
    },
    /// Compression 4, T.6 MMR, ended by EOFB.
    G4,
}

/// Resolution written when a page does not know its own: fax fine resolution.
const DEFAULT_X_DPI: f32 = 204.0;
const DEFAULT_Y_DPI: f32 = 196.0;

/// A TIFF field value.
enum Value {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Rational(u32, u32),
    Ascii(&'static str),
}

impl Value {
    /// Field type and count.
    fn kind(&self) -> (u16, u32) {
        match self {
            Value::Short(v) => (3, v.len() as u32),
            Value::Long(v) => (4, v.len() as u32),
            Value::Rational(..) => (5, 1),
            Value::Ascii(s) => (2, s.len() as u32 + 1),
        }
    }

    /// Little-endian bytes.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Short(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Value::Long(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Value::Rational(n, d) => [n.to_le_bytes(), d.to_le_bytes()].concat(),
            Value::Ascii(s) => s.bytes().chain(std::iter::once(0)).collect(),
        }
    }
}

/// A resolution as a RATIONAL: whole numbers exactly, others to 1/100.
fn rational(dpi: f32, default: f32) -> Value {
    let dpi = if dpi.is_finite() && dpi > 0.0 && dpi < 100_000.0 {
        dpi
    } else {
        default
    };
    if (dpi - dpi.round()).abs() < 0.001 {
        Value::Rational(dpi.round() as u32, 1)
    } else {
        Value::Rational((dpi * 100.0).round() as u32, 100)
    }
}

/// Writes `pages` as a multipage TIFF Class F file.
///
/// Pages are written as they are: run them through [`super::fit_to_fax`] first for a
/// strict Class F file (1728 pixels, 204 dpi, 98 or 196 lpi). A resolution of 0 (unknown)
/// is written as 204 × 196 dpi. Pages with bad rows get BadFaxLines and
/// CleanFaxData = 1 (regenerated); others CleanFaxData = 0.
pub fn write_tiff(pages: &[Page], compression: TiffCompression) -> Result<Vec<u8>, TiffError> {
    if pages.is_empty() {
        return Err(TiffError::NoPages);
    }
    let total = u16::try_from(pages.len()).map_err(|_| TiffError::OutputTooLarge)?;
    let (code, options_tag, options, opts) = match compression {
        TiffCompression::G3 { fill_bits } => (
            3,
            292,
            if fill_bits { 4 } else { 0 },
            EncodeOptions::tiff_g3(Coding::Mh, fill_bits),
        ),
        TiffCompression::G3TwoD { fill_bits, k } => {
            let opts = EncodeOptions::tiff_g3(Coding::Mr { k }, fill_bits);
            (3, 292, if fill_bits { 5 } else { 1 }, opts)
        }
        TiffCompression::G4 => (4, 293, 0, EncodeOptions::tiff_g4()),
    };
    // Header: little-endian, version 42, first IFD offset patched below.
    let mut out = b"II\x2a\x00\0\0\0\0".to_vec();
    let mut next_pointer = 4usize;
    for (index, page) in pages.iter().enumerate() {
        let (width, height) = (page.width(), page.height());
        if width == 0 || width > t4::MAX_WIDTH || height == 0 {
            return Err(TiffError::InvalidPage {
                page: index + 1,
                width,
                height,
                max_width: t4::MAX_WIDTH,
            });
        }
        let strip = t4::encode(&page.bitmap, &opts).map_err(|_| TiffError::InvalidPage {
            page: index + 1,
            width,
            height,
            max_width: t4::MAX_WIDTH,
        })?;
        let strip_offset = offset32(out.len())?;
        out.extend_from_slice(&strip);
        pad_even(&mut out);
        let bad = u32::try_from(page.bad_rows).unwrap_or(u32::MAX);
        let mut fields = vec![
            (254, Value::Long(vec![2])),
            (256, Value::Long(vec![width as u32])),
            (257, Value::Long(vec![offset32(height)?])),
            (258, Value::Short(vec![1])),
            (259, Value::Short(vec![code])),
            (262, Value::Short(vec![0])),
            (266, Value::Short(vec![1])),
            (273, Value::Long(vec![strip_offset])),
            (277, Value::Short(vec![1])),
            (278, Value::Long(vec![offset32(height)?])),
            (279, Value::Long(vec![offset32(strip.len())?])),
            (282, rational(page.x_res_dpi, DEFAULT_X_DPI)),
            (283, rational(page.y_res_dpi, DEFAULT_Y_DPI)),
            (284, Value::Short(vec![1])),
            (options_tag, Value::Long(vec![options])),
            (296, Value::Short(vec![2])),
            (297, Value::Short(vec![index as u16, total])),
            (305, Value::Ascii("switchboard")),
        ];
        if bad > 0 {
            fields.push((326, Value::Long(vec![bad])));
        }
        fields.push((327, Value::Short(vec![u16::from(bad > 0)])));

        let ifd_offset = out.len();
        out[next_pointer..next_pointer + 4].copy_from_slice(&offset32(ifd_offset)?.to_le_bytes());
        let mut extra_offset = ifd_offset + 2 + 12 * fields.len() + 4;
        let mut extra = Vec::new();
        out.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        for (tag, value) in &fields {
            let (field_type, count) = value.kind();
            out.extend_from_slice(&u16::to_le_bytes(*tag));
            out.extend_from_slice(&field_type.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            let mut bytes = value.bytes();
            if bytes.len() <= 4 {
                bytes.resize(4, 0);
                out.extend_from_slice(&bytes);
            } else {
                out.extend_from_slice(&offset32(extra_offset)?.to_le_bytes());
                pad_even(&mut bytes);
                extra_offset += bytes.len();
                extra.extend_from_slice(&bytes);
            }
        }
        next_pointer = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&extra);
    }
    offset32(out.len())?;
    Ok(out)
}

fn offset32(n: usize) -> Result<u32, TiffError> {
    u32::try_from(n).map_err(|_| TiffError::OutputTooLarge)
}

/// TIFF wants IFDs and values on word boundaries.
fn pad_even(buf: &mut Vec<u8>) {
    if buf.len() % 2 == 1 {
        buf.push(0);
    }
}
