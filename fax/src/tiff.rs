//! TIFF 6.0 for fax pages, sans-IO: read bilevel multipage TIFFs and write TIFF Class F
//! (TIFF 6.0 Section 11 "CCITT Bilevel Encodings", the TIFF Class F profile).
//!
//! Reading accepts classic TIFF (`II`/`MM`, not BigTIFF) with, per page (IFD):
//! ImageWidth, ImageLength, BitsPerSample = 1, SamplesPerPixel = 1, Compression 1 (none),
//! 2 (CCITT modified Huffman RLE: MH rows without EOLs, each starting on an octet),
//! 3 (T.4; `T4Options` bit 0 = 2-D, bit 2 = fill bits), 4 (T.6) or 32773 (PackBits),
//! PhotometricInterpretation 0/1 (normalised to 1 = black), FillOrder 1/2, any number of
//! strips (StripOffsets, StripByteCounts, RowsPerStrip), and XResolution/YResolution with
//! ResolutionUnit 2 (inch) or 3 (cm). Reduced-resolution images (thumbnails) and masks
//! are skipped. Every offset and count is bounds-checked against the buffer and the
//! [`ReadLimits`]; malformed input is an error, never a panic. Damaged coded rows are
//! repaired as in [`super::t4`] and counted in [`Page::bad_rows`]; missing rows at the end
//! of a strip are filled the same way.
//!
//! Writing produces TIFF Class F ([`write_tiff`]): one strip per page, compression 3
//! (T.4 MH or MR, EOL per row, optional fill bits, no RTC) or 4 (T.6 with EOFB),
//! FillOrder 1, PhotometricInterpretation 0, resolution in dpi, NewSubfileType 2,
//! PageNumber, Software "switchboard", and BadFaxLines/CleanFaxData.
//!
//! [`fit_to_fax`] normalises any page to 1728 pixels at 204 dpi and 98 or 196 lines per
//! inch for sending.

mod fit;
mod read;
#[cfg(test)]
mod tests;
mod write;

pub use fit::{fit_to_fax, fit_to_fax_as, VerticalResolution};
pub use read::{read_tiff, read_tiff_with};
pub use write::{write_tiff, TiffCompression};

use super::t4::{self, Bitmap};

/// One fax page image.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The image, 1 = black.
    pub bitmap: Bitmap,
    /// Horizontal resolution in dots per inch; 0 when the file does not say.
    pub x_res_dpi: f32,
    /// Vertical resolution in lines per inch; 0 when the file does not say.
    pub y_res_dpi: f32,
    /// Rows that were damaged or missing and were replaced by a copy of the row above.
    pub bad_rows: usize,
}

impl Page {
    /// A page with no bad rows.
    pub fn new(bitmap: Bitmap, x_res_dpi: f32, y_res_dpi: f32) -> Self {
        Self {
            bitmap,
            x_res_dpi,
            y_res_dpi,
            bad_rows: 0,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.bitmap.width()
    }

    /// Height in rows.
    pub fn height(&self) -> usize {
        self.bitmap.height()
    }

    /// Packed rows, MSB first, 1 = black.
    pub fn rows(&self) -> &[Vec<u8>] {
        self.bitmap.rows()
    }
}

/// Bounds applied while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most pages accepted (default 200).
    pub max_pages: usize,
    /// Widest page in pixels (default and ceiling for CCITT data: [`t4::MAX_WIDTH`]).
    pub max_width: usize,
    /// Tallest page in rows (default [`t4::DEFAULT_MAX_ROWS`]).
    pub max_height: usize,
    /// Most decoded image bytes over all pages (default 256 MiB).
    pub max_total_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_pages: 200,
            max_width: t4::MAX_WIDTH,
            max_height: t4::DEFAULT_MAX_ROWS,
            max_total_bytes: 256 << 20,
        }
    }
}

/// Why a TIFF could not be read or written. `page` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TiffError {
    /// No TIFF header.
    #[error("not a TIFF file")]
    NotTiff,
    /// BigTIFF (version 43).
    #[error("BigTIFF is not supported: save the document as classic TIFF")]
    BigTiff,
    /// The file has no pages.
    #[error("the TIFF file has no pages")]
    NoPages,
    /// More pages than [`ReadLimits::max_pages`].
    #[error("too many pages: at most {max} are accepted")]
    TooManyPages {
        /// The limit.
        max: usize,
    },
    /// Colour or greyscale.
    #[error(
        "page {page}: {bits_per_sample} bit(s) per sample, {samples_per_pixel} sample(s) per \
         pixel: only black-and-white (1-bit) images can be faxed; convert it to bilevel first"
    )]
    NotBilevel {
        /// Page number.
        page: usize,
        /// First BitsPerSample value.
        bits_per_sample: u32,
        /// SamplesPerPixel.
        samples_per_pixel: u32,
    },
    /// PhotometricInterpretation other than WhiteIsZero/BlackIsZero (e.g. palette).
    #[error(
        "page {page}: photometric interpretation {photometric} is not supported: convert the \
         image to black and white"
    )]
    UnsupportedPhotometric {
        /// Page number.
        page: usize,
        /// The PhotometricInterpretation value.
        photometric: u32,
    },
    /// A compression scheme we do not decode.
    #[error(
        "page {page}: {name} compression ({code}) is not supported; use uncompressed, PackBits \
         or CCITT G3/G4"
    )]
    UnsupportedCompression {
        /// Page number.
        page: usize,
        /// The Compression value.
        code: u32,
        /// Its usual name.
        name: &'static str,
    },
    /// Tiled images.
    #[error("page {page}: tiled TIFF images are not supported")]
    Tiled {
        /// Page number.
        page: usize,
    },
    /// Image dimensions over the limits.
    #[error("page {page}: {width}x{height} pixels exceeds the limit of {max_width}x{max_height}")]
    TooLarge {
        /// Page number.
        page: usize,
        /// ImageWidth.
        width: u64,
        /// ImageLength.
        height: u64,
        /// Width limit.
        max_width: usize,
        /// Height limit.
        max_height: usize,
    },
    /// All pages together would decode to more than [`ReadLimits::max_total_bytes`].
    #[error("the decoded document would exceed {max} bytes")]
    MemoryLimit {
        /// The limit.
        max: usize,
    },
    /// Something points outside the file.
    #[error(
        "page {page}: {what} at offset {offset} (+{len} bytes) lies past the end of the \
         {file_len}-byte file"
    )]
    Truncated {
        /// Page number.
        page: usize,
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How long it is.
        len: u64,
        /// File size.
        file_len: usize,
    },
    /// A required tag is absent.
    #[error("page {page}: required tag {tag} is missing")]
    MissingTag {
        /// Page number.
        page: usize,
        /// Tag name.
        tag: &'static str,
    },
    /// A tag has an unusable value.
    #[error("page {page}: invalid {tag} value {value}")]
    InvalidValue {
        /// Page number.
        page: usize,
        /// Tag name.
        tag: &'static str,
        /// The value (or count) found.
        value: u64,
    },
    /// A tag has an unexpected field type.
    #[error("page {page}: tag {tag} has unexpected field type {field_type}")]
    BadFieldType {
        /// Page number.
        page: usize,
        /// Tag name.
        tag: &'static str,
        /// The TIFF field type.
        field_type: u16,
    },
    /// The IFD chain revisits an IFD.
    #[error("the IFD chain loops back to offset {offset}")]
    IfdLoop {
        /// The repeated offset.
        offset: u32,
    },
    /// Not a single row of a page could be decoded.
    #[error("page {page}: no image data could be decoded")]
    Undecodable {
        /// Page number.
        page: usize,
    },
    /// Writing: a page the fax codecs cannot encode.
    #[error(
        "page {page}: cannot write a {width}x{height} page (width 1..={max_width}, height 1 or \
         more)"
    )]
    InvalidPage {
        /// Page number.
        page: usize,
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
        /// Widest encodable row.
        max_width: usize,
    },
    /// Writing: the file would not fit 32-bit offsets.
    #[error("the TIFF file would exceed 4 GiB")]
    OutputTooLarge,
}
