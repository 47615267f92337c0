//! Fuzz target for the fax image codecs: the TIFF reader (TIFF 6.0, Class F) and the
//! ITU-T T.4 (MH, MR) and T.6 (MMR) decoders must never panic, whatever the bytes; what
//! they decode must encode and decode again to the same image.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fax::t4::{self, Coding, DecodeOptions, EncodeOptions};
use switchboard_fax::tiff::{self, ReadLimits, TiffCompression};

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the bounds themselves are what is being tested.
    let limits = ReadLimits {
        max_pages: 8,
        max_height: 2_000,
        max_total_bytes: 4 << 20,
        ..ReadLimits::default()
    };
    if let Ok(pages) = tiff::read_tiff_with(data, &limits) {
        for page in &pages {
            assert!(page.width() > 0 && page.height() > 0);
            let _ = tiff::fit_to_fax(page);
        }
        let written =
            tiff::write_tiff(&pages, TiffCompression::G4).expect("read pages are writable");
        let again = tiff::read_tiff_with(&written, &limits).expect("written TIFF reads back");
        assert_eq!(again.len(), pages.len());
        for (a, b) in again.iter().zip(&pages) {
            assert!(a.bitmap == b.bitmap, "TIFF round trip changed a page");
        }
    }

    // Raw streams: the first two bytes choose the row width.
    let [hi, lo, stream @ ..] = data else { return };
    let width = 1 + (usize::from(*hi) << 8 | usize::from(*lo)) % t4::MAX_WIDTH;
    for (coding, eol) in [
        (Coding::Mh, true),
        (Coding::Mh, false),
        (Coding::Mr { k: 0 }, true),
        (Coding::Mmr, false),
    ] {
        let opts = DecodeOptions {
            width,
            coding,
            eol,
            max_rows: 300,
        };
        let decoded = t4::decode(stream, &opts).expect("width is valid");
        assert!(decoded.bitmap.height() <= 300 && decoded.bad_rows <= decoded.bitmap.height());
        let coding = if coding == Coding::Mmr {
            Coding::Mmr
        } else {
            Coding::Mr { k: 4 }
        };
        let encoded =
            t4::encode(&decoded.bitmap, &EncodeOptions::t38(coding, 0)).expect("valid width");
        let again = t4::decode(
            &encoded,
            &DecodeOptions {
                width,
                coding,
                eol: true,
                max_rows: 300,
            },
        )
        .expect("valid width");
        assert_eq!(again.bad_rows, 0);
        assert!(
            again.bitmap == decoded.bitmap,
            "T.4/T.6 round trip changed the image"
        );
    }
});
