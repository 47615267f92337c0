use super::encode::BitWriter;
use super::tables::{self, Code};
use super::*;

/// xorshift64: deterministic, dependency-free randomness for tests.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn bits_of(data: &[u8], len: usize) -> String {
    (0..len)
        .map(|i| {
            if data.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0) {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

fn code_str(c: Code) -> String {
    (0..c.len)
        .rev()
        .map(|i| if c.bits >> i & 1 == 1 { '1' } else { '0' })
        .collect()
}

/// Run-length image with runs of geometric-ish lengths, like scanned text and lines.
fn random_bitmap(rng: &mut Rng, width: usize, height: usize) -> Bitmap {
    let mut bitmap = Bitmap::white(width, height);
    for y in 0..height {
        if y > 0 && rng.below(3) == 0 {
            // Similar to the previous row, as real pages are (exercises 2-D modes).
            for x in 0..width {
                let flip = rng.below(40) == 0;
                bitmap.set_pixel(x, y, bitmap.pixel(x, y - 1) != flip);
            }
            continue;
        }
        let mut x = 0;
        let mut black = rng.below(2) == 0;
        while x < width {
            let run = match rng.below(10) {
                0 => rng.below(width + 1),
                1..=3 => rng.below(200),
                _ => rng.below(12),
            };
            for xx in x..(x + run).min(width) {
                bitmap.set_pixel(xx, y, black);
            }
            x += run;
            black = !black;
        }
    }
    bitmap
}

fn pattern_rows(width: usize) -> Bitmap {
    let mut bitmap = Bitmap::new(width);
    let bytes = Bitmap::row_bytes(width);
    bitmap.push_row(&vec![0x00; bytes]);
    bitmap.push_row(&vec![0xFF; bytes]);
    bitmap.push_row(&vec![0xAA; bytes]);
    bitmap.push_row(&vec![0x55; bytes]);
    bitmap.push_row(&vec![0xFF; bytes]);
    bitmap.push_row(&vec![0xAA; bytes]);
    bitmap.push_row(&vec![0x00; bytes]);
    bitmap
}

fn all_codings() -> [Coding; 5] {
    [
        Coding::Mh,
        Coding::Mr { k: 1 },
        Coding::Mr { k: 2 },
        Coding::Mr { k: 4 },
        Coding::Mmr,
    ]
}

fn round_trip(bitmap: &Bitmap, opts: &EncodeOptions) -> Decoded {
    let data = encode(bitmap, opts).unwrap();
    let mut dopts = DecodeOptions::new(bitmap.width(), opts.coding);
    dopts.eol = opts.eol;
    let decoded = decode(&data, &dopts).unwrap();
    assert_eq!(decoded.bad_rows, 0, "{opts:?}");
    assert_eq!(decoded.bitmap.height(), bitmap.height(), "{opts:?}");
    assert!(decoded.bitmap == *bitmap, "{opts:?}: image differs");
    decoded
}

#[test]
fn golden_codes_from_t4_tables() {
    assert_eq!(code_str(tables::terminating(false, 0)), "00110101");
    assert_eq!(code_str(tables::terminating(true, 0)), "0000110111");
    assert_eq!(code_str(tables::terminating(false, 63)), "00110100");
    assert_eq!(code_str(tables::terminating(true, 63)), "000001100111");
    assert_eq!(code_str(tables::terminating(true, 2)), "11");
    assert_eq!(code_str(tables::makeup(false, 64)), "11011");
    assert_eq!(code_str(tables::makeup(true, 64)), "0000001111");
    assert_eq!(code_str(tables::makeup(false, 1728)), "010011011");
    assert_eq!(code_str(tables::makeup(true, 1728)), "0000001100101");
    assert_eq!(code_str(tables::makeup(false, 1792)), "00000001000");
    assert_eq!(code_str(tables::makeup(true, 2560)), "000000011111");
    assert_eq!(code_str(tables::EOL), "000000000001");
    assert_eq!(code_str(tables::PASS), "0001");
    assert_eq!(code_str(tables::HORIZONTAL), "001");
    assert_eq!(code_str(tables::VERTICAL[3]), "1");
    assert_eq!(code_str(tables::VERTICAL[0]), "0000010");
}

#[test]
fn every_run_code_decodes_through_the_lookup() {
    for black in [false, true] {
        let table = if black {
            &tables::BLACK_LOOKUP
        } else {
            &tables::WHITE_LOOKUP
        };
        let runs = (0..64).chain((64..=2560).step_by(64));
        for run in runs {
            let c = if run < 64 {
                tables::terminating(black, run)
            } else {
                tables::makeup(black, run)
            };
            let index = (c.bits as usize) << (tables::LOOKUP_BITS - u32::from(c.len));
            let entry = table[index];
            assert_eq!(entry >> 16, u32::from(c.len), "black={black} run={run}");
            assert_eq!(entry & 0xFFFF, run as u32, "black={black} run={run}");
        }
    }
}

#[test]
fn mh_row_bits_are_exact() {
    // 1728 white: EOL, make-up 1728, terminating 0.
    let page = Bitmap::white(1728, 1);
    let opts = EncodeOptions {
        rtc: false,
        ..EncodeOptions::t38(Coding::Mh, 0)
    };
    let data = encode(&page, &opts).unwrap();
    assert_eq!(
        bits_of(&data, 12 + 9 + 8),
        "000000000001010011011".to_string() + "00110101"
    );
    // 3 black, 61 white, 64 black, 1600 white on a 1728 row.
    let mut page = Bitmap::white(1728, 1);
    for x in (0..3).chain(64..128) {
        page.set_pixel(x, 0, true);
    }
    let data = encode(&page, &opts).unwrap();
    let expect = [
        "000000000001", // EOL
        "00110101",     // white 0
        "10",           // black 3
        "00110010",     // white 61
        "0000001111",   // black make-up 64
        "0000110111",   // black 0
        "010011010",    // white make-up 1600
        "00110101",     // white 0
    ]
    .concat();
    assert_eq!(bits_of(&data, expect.len()), expect);
    assert!(
        data.len() * 8 - expect.len() < 8,
        "only final padding follows"
    );
}

#[test]
fn long_runs_use_2560_makeup() {
    let mut page = Bitmap::white(4864, 2);
    for x in 100..4000 {
        page.set_pixel(x, 1, true);
    }
    let mut w = BitWriter::default();
    encode::put_run(&mut w, true, 3900);
    let n = w.bit_len();
    let bits = bits_of(&w.finish(), n);
    // 2560 + make-up 1280 + terminating 60.
    assert_eq!(
        bits,
        "000000011111".to_string() + "0000001010010" + "000000101100"
    );
    for coding in all_codings() {
        round_trip(&page, &EncodeOptions::t38(coding, 0));
    }
}

#[test]
fn random_pages_round_trip_all_codings() {
    let mut rng = Rng::new(0x5EED);
    let page = random_bitmap(&mut rng, A4_WIDTH, 200);
    for coding in all_codings() {
        for (align, min_bits, rtc) in [(false, 0, true), (true, 0, false), (true, 400, true)] {
            let opts = EncodeOptions {
                coding,
                eol: true,
                align,
                min_bits_per_row: min_bits,
                rtc,
            };
            let decoded = round_trip(&page, &opts);
            let expected_end = if rtc {
                PageEnd::Rtc
            } else {
                PageEnd::EndOfData
            };
            assert_eq!(decoded.end, expected_end, "{opts:?}");
        }
    }
    // TIFF compression 2 style: MH without EOLs, byte-aligned rows.
    let opts = EncodeOptions {
        coding: Coding::Mh,
        eol: false,
        align: true,
        min_bits_per_row: 0,
        rtc: false,
    };
    round_trip(&page, &opts);
}

#[test]
fn odd_widths_and_worst_case_rows() {
    let mut rng = Rng::new(7);
    for width in [1, 2, 7, 9, 63, 64, 65, 203, 1728, 2048, 2432, 4864] {
        let mut page = pattern_rows(width);
        let random = random_bitmap(&mut rng, width, 20);
        for row in random.rows() {
            page.push_row(row);
        }
        for coding in all_codings() {
            round_trip(&page, &EncodeOptions::t38(coding, 0));
            round_trip(&page, &EncodeOptions::tiff_g3(coding, true));
        }
    }
}

#[test]
fn fill_bits_put_every_eol_on_a_byte_boundary() {
    let mut rng = Rng::new(11);
    let page = random_bitmap(&mut rng, A4_WIDTH, 50);
    for coding in [Coding::Mh, Coding::Mr { k: 4 }] {
        let data = encode(&page, &EncodeOptions::tiff_g3(coding, true)).unwrap();
        let eols: Vec<_> = decode::eol_positions(&data);
        assert_eq!(eols.len(), 50);
        assert!(eols.iter().all(|&after| after % 8 == 0), "{coding:?}");
    }
}

#[test]
fn min_bits_per_row_pads_short_rows() {
    let page = Bitmap::white(A4_WIDTH, 10);
    let data = encode(&page, &EncodeOptions::t38(Coding::Mh, 192)).unwrap();
    let eols = decode::eol_positions(&data);
    assert_eq!(eols.len(), 16, "10 rows + RTC");
    for pair in eols.windows(2).take(10) {
        assert!(pair[1] - pair[0] >= 192, "{pair:?}");
    }
    let decoded = decode(&data, &DecodeOptions::new(A4_WIDTH, Coding::Mh)).unwrap();
    assert_eq!(decoded.bitmap, page);
    assert_eq!(decoded.end, PageEnd::Rtc);
}

#[test]
fn data_after_rtc_is_ignored() {
    let page = pattern_rows(A4_WIDTH);
    let mut data = encode(&page, &EncodeOptions::t38(Coding::Mh, 0)).unwrap();
    data.extend(
        encode(
            &Bitmap::white(A4_WIDTH, 5),
            &EncodeOptions::t38(Coding::Mh, 0),
        )
        .unwrap(),
    );
    let decoded = decode(&data, &DecodeOptions::new(A4_WIDTH, Coding::Mh)).unwrap();
    assert_eq!(decoded.bitmap, page);
    assert_eq!(decoded.end, PageEnd::Rtc);
}

#[test]
fn row_limit_is_enforced() {
    let page = Bitmap::white(100, 50);
    for coding in all_codings() {
        let data = encode(&page, &EncodeOptions::t38(coding, 0)).unwrap();
        let opts = DecodeOptions {
            max_rows: 20,
            ..DecodeOptions::new(100, coding)
        };
        let decoded = decode(&data, &opts).unwrap();
        assert_eq!(decoded.bitmap.height(), 20);
        assert_eq!(decoded.end, PageEnd::RowLimit);
    }
}

#[test]
fn invalid_widths_are_refused() {
    for width in [0, MAX_WIDTH + 1] {
        let err = decode(&[], &DecodeOptions::new(width, Coding::Mh)).unwrap_err();
        assert_eq!(
            err,
            T4Error::InvalidWidth {
                width,
                max: MAX_WIDTH
            }
        );
        assert!(Encoder::new(width, EncodeOptions::tiff_g4()).is_err());
    }
}

#[test]
fn corrupted_mh_rows_are_counted_and_replaced() {
    let mut rng = Rng::new(99);
    let page = random_bitmap(&mut rng, A4_WIDTH, 100);
    let mut data = encode(&page, &EncodeOptions::t38(Coding::Mh, 0)).unwrap();
    // Garble bytes in the middle of the page (avoid creating or killing EOLs reliably by
    // hitting many places).
    for i in (data.len() / 4..data.len() / 2).step_by(97) {
        data[i] ^= 0x5A;
    }
    let decoded = decode(&data, &DecodeOptions::new(A4_WIDTH, Coding::Mh)).unwrap();
    assert!(decoded.bad_rows > 0);
    assert!(decoded.bitmap.height().abs_diff(100) <= decoded.bad_rows);
    // Rows before the damage are intact.
    assert_eq!(decoded.bitmap.rows()[..10], page.rows()[..10]);
    // A bad row is a copy of its predecessor.
    let mut opts = EncodeOptions::t38(Coding::Mh, 0);
    opts.rtc = false;
    let mut data = encode(&pattern_rows(64), &opts).unwrap();
    // Row 3 (0x55...) starts at its EOL; clobber its first data byte.
    let eols = decode::eol_positions(&data);
    data[eols[3] / 8 + 1] ^= 0xFF;
    let decoded = decode(&data, &DecodeOptions::new(64, Coding::Mh)).unwrap();
    assert_eq!(decoded.bad_rows, 1);
    assert_eq!(decoded.bitmap.row(3), decoded.bitmap.row(2));
    assert_eq!(decoded.bitmap.height(), 7);
}

#[test]
fn truncated_mmr_stops_with_lost() {
    let mut rng = Rng::new(5);
    let page = random_bitmap(&mut rng, A4_WIDTH, 40);
    let data = encode(&page, &EncodeOptions::tiff_g4()).unwrap();
    let decoded = decode(
        &data[..data.len() / 2],
        &DecodeOptions::new(A4_WIDTH, Coding::Mmr),
    )
    .unwrap();
    assert!(decoded.bitmap.height() < 40);
    assert!(matches!(decoded.end, PageEnd::Lost | PageEnd::EndOfData));
    let good = decoded.bitmap.height() - decoded.bad_rows;
    assert_eq!(decoded.bitmap.rows()[..good], page.rows()[..good]);
}

#[test]
fn reverse_bits_helpers() {
    let mut data = [0x01, 0x80, 0xF0, 0x12];
    assert_eq!(reversed_bits(&data), vec![0x80, 0x01, 0x0F, 0x48]);
    reverse_bits(&mut data);
    assert_eq!(data, [0x80, 0x01, 0x0F, 0x48]);
}

#[test]
fn bitmap_normalises_rows() {
    let bitmap = Bitmap::from_rows(10, vec![vec![0xFF, 0xFF, 0xFF], vec![0xFF]]);
    assert_eq!(bitmap.rows(), &[vec![0xFF, 0xC0], vec![0xFF, 0x00]]);
    assert!(bitmap.pixel(9, 0) && !bitmap.pixel(10, 0) && !bitmap.pixel(0, 5));
}

#[test]
fn mutated_streams_never_panic() {
    let mut rng = Rng::new(0xFA11);
    let width = 256;
    let page = random_bitmap(&mut rng, width, 30);
    let streams: Vec<(Coding, bool, Vec<u8>)> = all_codings()
        .into_iter()
        .map(|c| (c, true, encode(&page, &EncodeOptions::t38(c, 0)).unwrap()))
        .chain(std::iter::once((
            Coding::Mh,
            false,
            encode(
                &page,
                &EncodeOptions {
                    eol: false,
                    align: true,
                    rtc: false,
                    ..EncodeOptions::t38(Coding::Mh, 0)
                },
            )
            .unwrap(),
        )))
        .collect();
    for i in 0..20_000 {
        let (coding, eol, original) = &streams[i % streams.len()];
        let mut data = original.clone();
        for _ in 0..1 + rng.below(8) {
            match rng.below(4) {
                0 if !data.is_empty() => {
                    let at = rng.below(data.len());
                    data[at] ^= 1 << rng.below(8);
                }
                1 if !data.is_empty() => {
                    let at = rng.below(data.len());
                    data[at] = rng.next() as u8;
                }
                2 => data.truncate(rng.below(data.len() + 1)),
                _ => {
                    let at = rng.below(data.len() + 1);
                    data.insert(at, rng.next() as u8);
                }
            }
        }
        let opts = DecodeOptions {
            width,
            coding: *coding,
            eol: *eol,
            max_rows: 100,
        };
        let decoded = decode(&data, &opts).unwrap();
        assert!(decoded.bitmap.height() <= 100);
        assert!(decoded.bad_rows <= decoded.bitmap.height());
        assert!(decoded
            .bitmap
            .rows()
            .iter()
            .all(|r| r.len() == Bitmap::row_bytes(width)));
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(42);
    for i in 0..2_000 {
        let data: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
        let coding = all_codings()[i % 5];
        let opts = DecodeOptions {
            width: 1 + rng.below(MAX_WIDTH),
            coding,
            eol: i % 3 != 0,
            max_rows: 500,
        };
        let decoded = decode(&data, &opts).unwrap();
        assert!(decoded.bitmap.height() <= 500);
    }
}
