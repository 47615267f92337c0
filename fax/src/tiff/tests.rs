use super::super::t4::tests::Rng;
use super::super::t4::A4_WIDTH;
use super::read::File;
use super::*;

/// Fixtures made with netpbm and libtiff (see tests/fixtures/fax/make-fixtures.sh).
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/fixtures/fax/", $name)).as_slice()
    };
}

/// Parses a binary PBM (P4): 1 = black, MSB first, rows padded to a byte, as [`Bitmap`].
fn pbm(data: &[u8]) -> Bitmap {
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 3 {
        while data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(std::str::from_utf8(&data[start..pos]).unwrap().to_string());
    }
    assert_eq!(fields[0], "P4");
    let width: usize = fields[1].parse().unwrap();
    let height: usize = fields[2].parse().unwrap();
    let row_bytes = Bitmap::row_bytes(width);
    let pixels = &data[pos + 1..];
    assert_eq!(pixels.len(), row_bytes * height);
    Bitmap::from_rows(
        width,
        pixels.chunks(row_bytes).map(<[u8]>::to_vec).collect(),
    )
}

fn page1() -> Bitmap {
    pbm(fixture!("page1.pbm"))
}
fn page2() -> Bitmap {
    pbm(fixture!("page2.pbm"))
}
fn odd() -> Bitmap {
    pbm(fixture!("odd.pbm"))
}

fn assert_pages(name: &str, data: &[u8], expected: &[Bitmap]) -> Vec<Page> {
    let pages = read_tiff(data).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(pages.len(), expected.len(), "{name}");
    for (i, (page, bitmap)) in pages.iter().zip(expected).enumerate() {
        assert_eq!(
            (page.width(), page.height()),
            (bitmap.width(), bitmap.height()),
            "{name} page {i}"
        );
        assert_eq!(page.bad_rows, 0, "{name} page {i}");
        let differing = (0..bitmap.height())
            .filter(|&y| page.bitmap.row(y) != bitmap.row(y))
            .count();
        assert_eq!(differing, 0, "{name} page {i}: rows differ");
    }
    pages
}

#[test]
fn libtiff_fixtures_decode_to_their_source_images() {
    let cases: [(&str, &[u8], Vec<Bitmap>); 15] = [
        ("g3-1d", fixture!("g3-1d.tif"), vec![page1()]),
        ("g3-1d-fill", fixture!("g3-1d-fill.tif"), vec![page1()]),
        ("g3-2d-fill", fixture!("g3-2d-fill.tif"), vec![page1()]),
        ("g3-2d-strips", fixture!("g3-2d-strips.tif"), vec![page1()]),
        ("g4", fixture!("g4.tif"), vec![page1()]),
        (
            "g4-bigendian-lsb",
            fixture!("g4-bigendian-lsb.tif"),
            vec![page2()],
        ),
        (
            "wide-g3",
            fixture!("wide-g3.tif"),
            vec![pbm(fixture!("wide.pbm"))],
        ),
        (
            "wide-g4",
            fixture!("wide-g4.tif"),
            vec![pbm(fixture!("wide.pbm"))],
        ),
        (
            "multipage",
            fixture!("multipage.tif"),
            vec![page1(), page2(), odd()],
        ),
        ("odd-packbits", fixture!("odd-packbits.tif"), vec![odd()]),
        (
            "odd-none-minisblack",
            fixture!("odd-none-minisblack.tif"),
            vec![odd()],
        ),
        (
            "odd-g4-minisblack",
            fixture!("odd-g4-minisblack.tif"),
            vec![odd()],
        ),
        (
            "odd-none-strips-lsb",
            fixture!("odd-none-strips-lsb.tif"),
            vec![odd()],
        ),
        ("odd-rle", fixture!("odd-rle.tif"), vec![odd()]),
        ("odd-g3-cm", fixture!("odd-g3-cm.tif"), vec![odd()]),
    ];
    for (name, data, expected) in &cases {
        assert_pages(name, data, expected);
    }
    let rle = read_tiff(fixture!("odd-rle.tif")).unwrap();
    assert_eq!((rle[0].x_res_dpi, rle[0].y_res_dpi), (204.0, 98.0));
    let cm = read_tiff(fixture!("odd-g3-cm.tif")).unwrap();
    assert!((cm[0].x_res_dpi - 203.2).abs() < 0.01 && (cm[0].y_res_dpi - 101.6).abs() < 0.01);
    let none = read_tiff(fixture!("g4.tif")).unwrap();
    assert_eq!(
        (none[0].x_res_dpi, none[0].y_res_dpi),
        (0.0, 0.0),
        "no resolution tags"
    );
}

#[test]
fn colour_greyscale_and_lzw_are_refused_by_name() {
    let err = read_tiff(fixture!("grey.tif")).unwrap_err();
    assert_eq!(
        err,
        TiffError::NotBilevel {
            page: 1,
            bits_per_sample: 8,
            samples_per_pixel: 1
        }
    );
    assert!(err.to_string().contains("convert"));
    let err = read_tiff(fixture!("colour.tif")).unwrap_err();
    assert_eq!(
        err,
        TiffError::NotBilevel {
            page: 1,
            bits_per_sample: 8,
            samples_per_pixel: 3
        }
    );
    let err = read_tiff(fixture!("odd-lzw.tif")).unwrap_err();
    assert_eq!(
        err,
        TiffError::UnsupportedCompression {
            page: 1,
            code: 5,
            name: "LZW"
        }
    );
    assert!(err.to_string().contains("LZW"));
}

/// IFD entries of `data` by tag (test inspection of written files).
fn tags(data: &[u8], page: usize) -> Vec<(u16, Vec<u64>)> {
    let file = File::new(data).unwrap();
    let mut offset = file.u32_at(4).unwrap();
    for _ in 0..page {
        offset = file.ifd(offset, 1).unwrap().1;
    }
    let (ifd, _) = file.ifd(offset, 1).unwrap();
    ifd.entries
        .iter()
        .map(|e| {
            (
                e.tag,
                ifd.uints(e.tag, "test", 4)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn tag(tags: &[(u16, Vec<u64>)], tag: u16) -> Option<Vec<u64>> {
    tags.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.clone())
}

#[test]
fn written_class_f_round_trips_with_the_right_tags() {
    let pages = vec![
        Page::new(page1(), 204.0, 196.0),
        Page::new(page2(), 204.0, 196.0),
        Page::new(odd(), 204.0, 98.0),
    ];
    let expected = [page1(), page2(), odd()];
    for compression in [
        TiffCompression::G3 { fill_bits: false },
        TiffCompression::G3 { fill_bits: true },
        TiffCompression::G3TwoD {
            fill_bits: true,
            k: 4,
        },
        TiffCompression::G4,
    ] {
        let data = write_tiff(&pages, compression).unwrap();
        let read = assert_pages(&format!("{compression:?}"), &data, &expected);
        assert_eq!((read[2].x_res_dpi, read[2].y_res_dpi), (204.0, 98.0));
        let t = tags(&data, 1);
        let entries: Vec<u16> = t.iter().map(|(tag, _)| *tag).collect();
        assert!(entries.windows(2).all(|w| w[0] < w[1]), "tags sorted");
        assert_eq!(tag(&t, 254), Some(vec![2]));
        assert_eq!(tag(&t, 256), Some(vec![1728]));
        assert_eq!(tag(&t, 257), Some(vec![120]));
        assert_eq!(tag(&t, 262), Some(vec![0]));
        assert_eq!(tag(&t, 266), Some(vec![1]));
        assert_eq!(tag(&t, 296), Some(vec![2]));
        assert_eq!(tag(&t, 297), Some(vec![1, 3]));
        assert_eq!(tag(&t, 327), Some(vec![0]));
        let (code, options) = match compression {
            TiffCompression::G3 { fill_bits } => (3, Some(vec![if fill_bits { 4 } else { 0 }])),
            TiffCompression::G3TwoD { .. } => (3, Some(vec![5])),
            TiffCompression::G4 => (4, None),
        };
        assert_eq!(tag(&t, 259), Some(vec![code]));
        assert_eq!(tag(&t, 292), options);
        assert!(data.windows(12).any(|w| w == b"switchboard\0"));
    }
}

#[test]
fn writer_records_bad_rows_and_refuses_bad_pages() {
    let mut page = Page::new(odd(), 0.0, 0.0);
    page.bad_rows = 3;
    let data = write_tiff(&[page], TiffCompression::G4).unwrap();
    let t = tags(&data, 0);
    assert_eq!(tag(&t, 326), Some(vec![3]));
    assert_eq!(tag(&t, 327), Some(vec![1]));
    let read = read_tiff(&data).unwrap();
    assert_eq!(
        (read[0].x_res_dpi, read[0].y_res_dpi),
        (204.0, 196.0),
        "unknown → fine"
    );
    assert_eq!(
        write_tiff(&[], TiffCompression::G4).unwrap_err(),
        TiffError::NoPages
    );
    let empty = Page::new(Bitmap::new(1728), 204.0, 98.0);
    assert!(matches!(
        write_tiff(&[empty], TiffCompression::G4),
        Err(TiffError::InvalidPage {
            page: 1,
            width: 1728,
            height: 0,
            ..
        })
    ));
    let too_wide = Page::new(Bitmap::white(t4::MAX_WIDTH + 1, 1), 204.0, 98.0);
    assert!(matches!(
        write_tiff(&[too_wide], TiffCompression::G3 { fill_bits: true }),
        Err(TiffError::InvalidPage { .. })
    ));
}

/// A little-endian TIFF with one IFD at offset 8 holding `entries` (tag, type, count,
/// inline value), followed by `data` at [`data_offset`].
fn build(entries: &[(u16, u16, u32, u32)], data: &[u8]) -> Vec<u8> {
    let mut out = b"II\x2a\x00\x08\0\0\0".to_vec();
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for &(tag, field_type, count, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&field_type.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
    out
}

fn data_offset(entries: usize) -> u32 {
    (8 + 2 + 12 * entries + 4) as u32
}

/// 16×2 uncompressed: black left half on row 0.
fn minimal(extra: &[(u16, u16, u32, u32)], overrides: &[(u16, u32)]) -> Vec<u8> {
    let mut entries = vec![
        (256, 3, 1, 16),
        (257, 3, 1, 2),
        (258, 3, 1, 1),
        (259, 3, 1, 1),
        (262, 3, 1, 0),
    ];
    entries.extend_from_slice(extra);
    let n = entries.len() + 2;
    entries.push((273, 4, 1, data_offset(n)));
    entries.push((279, 4, 1, 4));
    for &(tag, value) in overrides {
        if let Some(e) = entries.iter_mut().find(|e| e.0 == tag) {
            e.3 = value;
        }
    }
    entries.sort_by_key(|e| e.0);
    build(&entries, &[0xFF, 0x00, 0x00, 0x00])
}

#[test]
fn minimal_file_reads() {
    let pages = read_tiff(&minimal(&[], &[])).unwrap();
    assert_eq!(pages[0].rows(), &[vec![0xFF, 0x00], vec![0x00, 0x00]]);
    let inverted = read_tiff(&minimal(&[], &[(262, 1)])).unwrap();
    assert_eq!(inverted[0].rows(), &[vec![0x00, 0xFF], vec![0xFF, 0xFF]]);
}

#[test]
fn malformed_files_give_the_right_error() {
    assert_eq!(read_tiff(b"").unwrap_err(), TiffError::NotTiff);
    assert_eq!(
        read_tiff(b"%PDF-1.4 hello").unwrap_err(),
        TiffError::NotTiff
    );
    assert_eq!(read_tiff(b"II\x2a\x00").unwrap_err(), TiffError::NotTiff);
    assert_eq!(
        read_tiff(b"II\x2b\x00\x08\x00\x00\x00").unwrap_err(),
        TiffError::BigTiff
    );
    assert_eq!(
        read_tiff(b"MM\x00\x2b\x00\x08\x00\x00").unwrap_err(),
        TiffError::BigTiff
    );
    assert_eq!(
        read_tiff(b"II\x2a\x00\0\0\0\0").unwrap_err(),
        TiffError::NoPages
    );
    let err = read_tiff(b"II\x2a\x00\x00\x10\x00\x00").unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::Truncated {
                what: "IFD",
                offset: 4096,
                ..
            }
        ),
        "{err:?}"
    );
    // IFD claiming 65535 entries.
    let err = read_tiff(b"II\x2a\x00\x08\0\0\0\xff\xff\0\0").unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::Truncated {
                what: "IFD",
                len: 786_422,
                ..
            }
        ),
        "{err:?}"
    );
    // Strip past the end, huge byte count, huge value count.
    let err = read_tiff(&minimal(&[], &[(273, 1_000_000)])).unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::Truncated {
                what: "strip data",
                ..
            }
        ),
        "{err:?}"
    );
    let err = read_tiff(&minimal(&[], &[(279, u32::MAX)])).unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::Truncated {
                what: "strip data",
                ..
            }
        ),
        "{err:?}"
    );
    let mut huge = minimal(&[], &[]);
    let at = huge.windows(2).position(|w| w == [0x11, 0x01]).unwrap(); // StripOffsets entry
    huge[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[at + 8..at + 12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let err = read_tiff(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::Truncated {
                what: "StripOffsets",
                ..
            }
        ),
        "{err:?}"
    );
    // Bad values.
    let zero = |tag| TiffError::InvalidValue {
        page: 1,
        tag,
        value: 0,
    };
    assert_eq!(
        read_tiff(&minimal(&[], &[(256, 0)])).unwrap_err(),
        zero("ImageWidth")
    );
    assert_eq!(
        read_tiff(&minimal(&[], &[(257, 0)])).unwrap_err(),
        zero("ImageLength")
    );
    assert_eq!(
        read_tiff(&minimal(&[(278, 3, 1, 0)], &[])).unwrap_err(),
        zero("RowsPerStrip")
    );
    let err = read_tiff(&minimal(&[(266, 3, 1, 3)], &[])).unwrap_err();
    assert_eq!(
        err,
        TiffError::InvalidValue {
            page: 1,
            tag: "FillOrder",
            value: 3
        }
    );
    let err = read_tiff(&minimal(&[], &[(256, 100_000)])).unwrap_err();
    assert!(
        matches!(err, TiffError::TooLarge { width: 34_464, .. }),
        "SHORT keeps 16 bits: {err:?}"
    );
    let err = read_tiff(&minimal(&[], &[(262, 3)])).unwrap_err();
    assert_eq!(
        err,
        TiffError::UnsupportedPhotometric {
            page: 1,
            photometric: 3
        }
    );
    let err = read_tiff(&minimal(&[(322, 3, 1, 16)], &[])).unwrap_err();
    assert_eq!(err, TiffError::Tiled { page: 1 });
    let err = read_tiff(&minimal(&[], &[(259, 7)])).unwrap_err();
    assert_eq!(
        err,
        TiffError::UnsupportedCompression {
            page: 1,
            code: 7,
            name: "JPEG"
        }
    );
    let err = read_tiff(&minimal(&[(277, 3, 1, 3)], &[])).unwrap_err();
    assert!(
        matches!(
            err,
            TiffError::NotBilevel {
                samples_per_pixel: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let err = read_tiff(&minimal(&[], &[(258, 0x0004_0005)])).unwrap_err();
    assert!(matches!(
        err,
        TiffError::BadFieldType {
            tag: "BitsPerSample",
            ..
        } | TiffError::NotBilevel { .. }
    ));
    let no_strips = build(&[(256, 3, 1, 16), (257, 3, 1, 2)], &[]);
    assert_eq!(
        read_tiff(&no_strips).unwrap_err(),
        TiffError::MissingTag {
            page: 1,
            tag: "StripOffsets"
        }
    );
    let err = read_tiff(&build(&[(257, 3, 1, 2)], &[])).unwrap_err();
    assert_eq!(
        err,
        TiffError::MissingTag {
            page: 1,
            tag: "ImageWidth"
        }
    );
}

#[test]
fn ifd_loops_thumbnails_and_page_limits() {
    // Next-IFD pointer of the only IFD points back to itself.
    let mut looped = minimal(&[], &[]);
    let next = data_offset(7) as usize - 4;
    looped[next..next + 4].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(
        read_tiff(&looped).unwrap_err(),
        TiffError::IfdLoop { offset: 8 }
    );
    // A reduced-resolution image is skipped; a file of only that has no pages.
    let thumbnail = minimal(&[(254, 4, 1, 1)], &[]);
    assert_eq!(read_tiff(&thumbnail).unwrap_err(), TiffError::NoPages);
    // Page limit.
    let tiny = Page::new(Bitmap::white(8, 1), 204.0, 98.0);
    let data = write_tiff(&vec![tiny; 201], TiffCompression::G4).unwrap();
    assert_eq!(
        read_tiff(&data).unwrap_err(),
        TiffError::TooManyPages { max: 200 }
    );
    let limits = ReadLimits {
        max_pages: 201,
        ..ReadLimits::default()
    };
    assert_eq!(read_tiff_with(&data, &limits).unwrap().len(), 201);
    let limits = ReadLimits {
        max_total_bytes: 100,
        ..ReadLimits::default()
    };
    assert_eq!(
        read_tiff_with(&data, &limits).unwrap_err(),
        TiffError::MemoryLimit { max: 100 }
    );
}

#[test]
fn damaged_coded_data_counts_bad_rows() {
    let page = Page::new(page1(), 204.0, 196.0);
    let mut data = write_tiff(
        std::slice::from_ref(&page),
        TiffCompression::G3 { fill_bits: false },
    )
    .unwrap();
    for i in (2_000..6_000).step_by(211) {
        data[i] ^= 0x24;
    }
    let read = read_tiff(&data).unwrap();
    assert_eq!(read[0].height(), 240);
    assert!(read[0].bad_rows > 0);
    assert_eq!(read[0].rows()[..10], page.rows()[..10]);
    // G4 data cut short: the rest of the page is filled and counted.
    let mut data = write_tiff(&[page], TiffCompression::G4).unwrap();
    let t = tags(&data, 0);
    let (offset, len) = (
        tag(&t, 273).unwrap()[0] as usize,
        tag(&t, 279).unwrap()[0] as usize,
    );
    data[offset + len / 2..offset + len]
        .iter_mut()
        .for_each(|b| *b = 0);
    let read = read_tiff(&data).unwrap();
    assert_eq!(read[0].height(), 240);
    assert!(read[0].bad_rows > 50);
    // Nothing decodable at all.
    data[offset..offset + len].iter_mut().for_each(|b| *b = 0);
    assert_eq!(
        read_tiff(&data).unwrap_err(),
        TiffError::Undecodable { page: 1 }
    );
}

#[test]
fn every_truncation_is_handled() {
    let data = write_tiff(&[Page::new(odd(), 204.0, 98.0)], TiffCompression::G4).unwrap();
    let file = File::new(&data).unwrap();
    let ifd = file.u32_at(4).unwrap() as usize;
    let entries = file.u16_at(ifd as u64).unwrap() as usize;
    for len in 0..data.len() {
        let result = read_tiff(&data[..len]);
        if len < ifd + 2 + 12 * entries {
            assert!(result.is_err(), "prefix {len}");
        }
    }
}

#[test]
fn mutated_files_never_panic() {
    let mut rng = Rng::new(0x7155);
    let seeds: Vec<Vec<u8>> = vec![
        write_tiff(&[Page::new(odd(), 204.0, 98.0)], TiffCompression::G4).unwrap(),
        write_tiff(
            &[Page::new(odd(), 204.0, 98.0)],
            TiffCompression::G3TwoD {
                fill_bits: true,
                k: 2,
            },
        )
        .unwrap(),
        fixture!("odd-rle.tif").to_vec(),
        fixture!("odd-packbits.tif").to_vec(),
        fixture!("odd-none-strips-lsb.tif").to_vec(),
        minimal(&[], &[]),
    ];
    let limits = ReadLimits {
        max_pages: 4,
        max_height: 2_000,
        ..ReadLimits::default()
    };
    for i in 0..20_000 {
        let mut data = seeds[i % seeds.len()].clone();
        // Half the mutations aim at the header and IFD (the end of written files).
        let ifd_start = File::new(&data).ok().and_then(|f| f.u32_at(4)).unwrap_or(0) as usize;
        for _ in 0..1 + rng.below(6) {
            let len = data.len();
            let at = if rng.below(2) == 0 && ifd_start < len {
                ifd_start + rng.below(len - ifd_start)
            } else {
                rng.below(len.max(1))
            };
            match rng.below(5) {
                0 if at < len => data[at] ^= 1 << rng.below(8),
                1 if at < len => data[at] = rng.next() as u8,
                2 if at + 4 <= len => {
                    let v =
                        [0, 1, 7, 0xFFFF, 0xFFFF_FFFF, len as u32, rng.next() as u32][rng.below(7)];
                    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                3 => data.truncate(at),
                _ => data.insert(at.min(len), rng.next() as u8),
            }
        }
        if let Ok(pages) = read_tiff_with(&data, &limits) {
            for page in pages {
                assert!(page.width() > 0 && page.height() > 0);
                assert!(page
                    .rows()
                    .iter()
                    .all(|r| r.len() == Bitmap::row_bytes(page.width())));
            }
        }
    }
}

#[test]
fn fit_keeps_fax_pages_and_converts_resolution() {
    let fine = Page::new(page1(), 204.0, 196.0);
    let fitted = fit_to_fax(&fine);
    assert_eq!(fitted, fine, "already a fine fax page");
    let standard = fit_to_fax_as(&fine, VerticalResolution::Standard);
    assert_eq!((standard.height(), standard.y_res_dpi), (120, 98.0));
    assert_eq!(
        standard.bitmap.row(5),
        fine.bitmap.row(11),
        "every other row kept"
    );
    let back = fit_to_fax_as(&standard, VerticalResolution::Fine);
    assert_eq!(back.height(), 240);
    assert_eq!(back.bitmap.row(10), back.bitmap.row(11), "rows duplicated");
    assert_eq!(
        fit_to_fax(&standard).y_res_dpi,
        98.0,
        "standard stays standard"
    );
}

#[test]
fn fit_scales_other_sizes_to_1728() {
    // A4 at 300 dpi: 8.27 in is narrower than the fax line: 1687 columns, centred.
    let mut a4 = Bitmap::white(2480, 300);
    for y in 0..300 {
        a4.set_pixel(0, y, true);
        a4.set_pixel(2479, y, true);
    }
    let fitted = fit_to_fax(&Page::new(a4, 300.0, 300.0));
    assert_eq!(
        (fitted.width(), fitted.x_res_dpi, fitted.y_res_dpi),
        (A4_WIDTH, 204.0, 196.0)
    );
    assert_eq!(fitted.height(), 196);
    let left = (0..A4_WIDTH).find(|&x| fitted.bitmap.pixel(x, 10)).unwrap();
    let right = (0..A4_WIDTH)
        .rev()
        .find(|&x| fitted.bitmap.pixel(x, 10))
        .unwrap();
    assert!(
        (19..=22).contains(&left) && (1705..=1708).contains(&right),
        "{left} {right}"
    );
    // B4 fax page (2048 at 204 dpi) is shrunk to fit, standard resolution kept roughly.
    let b4 = Page::new(Bitmap::white(2048, 100), 204.0, 98.0);
    let fitted = fit_to_fax(&b4);
    assert_eq!(
        (fitted.width(), fitted.height(), fitted.y_res_dpi),
        (A4_WIDTH, 84, 98.0)
    );
    // Half-width image of unknown resolution fills the line, square pixels.
    let mut small = Bitmap::white(864, 10);
    small.set_pixel(863, 0, true);
    let fitted = fit_to_fax(&Page::new(small, 0.0, 0.0));
    assert_eq!(
        (fitted.width(), fitted.height(), fitted.y_res_dpi),
        (A4_WIDTH, 10, 98.0)
    );
    assert!(fitted.bitmap.pixel(1726, 0) && fitted.bitmap.pixel(1727, 0));
    // Slightly too wide (1734 at 204 dpi) is cropped, not scaled.
    let mut wide = Bitmap::white(1734, 1);
    wide.set_pixel(3, 0, true);
    let fitted = fit_to_fax(&Page::new(wide, 204.0, 196.0));
    assert!(fitted.bitmap.pixel(0, 0) && !fitted.bitmap.pixel(1, 0));
    // Empty page stays empty.
    assert_eq!(
        fit_to_fax(&Page::new(Bitmap::new(100), 0.0, 0.0)).height(),
        0
    );
}

/// Writes sample files for tests/fixtures/fax/check-writer.sh into `$FAX_SAMPLES_DIR`.
#[test]
#[ignore = "writes files for the libtiff interoperability check"]
fn write_samples_for_libtiff() {
    let Some(dir) = std::env::var_os("FAX_SAMPLES_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let pages = vec![
        Page::new(page1(), 204.0, 196.0),
        Page::new(page2(), 204.0, 196.0),
        Page::new(odd(), 204.0, 98.0),
    ];
    let files = [
        ("g3.tif", TiffCompression::G3 { fill_bits: false }),
        ("g3-fill.tif", TiffCompression::G3 { fill_bits: true }),
        (
            "g3-2d.tif",
            TiffCompression::G3TwoD {
                fill_bits: false,
                k: 4,
            },
        ),
        (
            "g3-2d-fill.tif",
            TiffCompression::G3TwoD {
                fill_bits: true,
                k: 2,
            },
        ),
        ("g4.tif", TiffCompression::G4),
    ];
    for (name, compression) in files {
        std::fs::write(dir.join(name), write_tiff(&pages, compression).unwrap()).unwrap();
    }
    // Raw T.4/T.6 streams of page 1 for fax2tiff, which does not know RTC/EOFB (it would
    // count the EOLs as empty rows): EOL per row, no RTC; MSB first, and LSB first as on
    // the T.38 wire.
    let raw = [
        ("page1.mh", t4::Coding::Mh),
        ("page1.mr", t4::Coding::Mr { k: 4 }),
        ("page1.mmr", t4::Coding::Mmr),
    ];
    for (name, coding) in raw {
        let opts = t4::EncodeOptions {
            rtc: false,
            ..t4::EncodeOptions::t38(coding, 0)
        };
        let data = t4::encode(&page1(), &opts).unwrap();
        std::fs::write(dir.join(name), &data).unwrap();
        std::fs::write(dir.join(format!("{name}.lsb")), t4::reversed_bits(&data)).unwrap();
    }
    // A fitted A4 300-dpi scan, as sent.
    let fitted = fit_to_fax(&Page::new(pbm(fixture!("wide.pbm")), 300.0, 300.0));
    std::fs::write(
        dir.join("fitted.tif"),
        write_tiff(&[fitted], TiffCompression::G4).unwrap(),
    )
    .unwrap();
}
