//! Fax imaging, sans-IO: bilevel page images as sent over T.38.
//!
//! - [`t4`]: ITU-T T.4 (Modified Huffman, Modified READ) and T.6 (MMR) row codecs and
//!   the [`t4::Bitmap`] page image (packed rows, MSB first, 1 = black).
//! - [`tiff`]: TIFF 6.0 reading (bilevel, uncompressed/PackBits/CCITT) and TIFF Class F
//!   writing, plus [`tiff::fit_to_fax`] to normalise a page for sending.

pub mod t30;
pub mod t4;
pub mod tiff;
