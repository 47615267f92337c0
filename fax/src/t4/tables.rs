//! Code tables of ITU-T T.4 §4.1.1–4.1.2 (Table 1: terminating codes, Table 2: make-up
//! codes including the extended make-up codes shared by both colours, EOL) and the 2-D mode
//! codes of T.4 §4.2.1.3.2 / T.6 §2.2.4 (Table 4), with compile-time lookup tables for
//! decoding run-length codes.

/// One code word: the `len` low bits of `bits`, transmitted most significant bit first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Code {
    pub bits: u16,
    pub len: u8,
}

/// Parses a code written as a string of `0`/`1` (evaluated at compile time).
const fn code(s: &str) -> Code {
    let b = s.as_bytes();
    let mut bits = 0u16;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i] == b'0' || b[i] == b'1');
        bits = (bits << 1) | (b[i] - b'0') as u16;
        i += 1;
    }
    Code {
        bits,
        len: b.len() as u8,
    }
}

/// EOL: eleven zeros and a one.
pub(super) const EOL: Code = code("000000000001");

/// White terminating codes, run lengths 0..=63 (T.4 Table 1).
#[rustfmt::skip]
pub(super) const WHITE_TERM: [Code; 64] = [
    /*  0 */ code("00110101"), code("000111"), code("0111"), code("1000"),
    /*  4 */ code("1011"), code("1100"), code("1110"), code("1111"),
    /*  8 */ code("10011"), code("10100"), code("00111"), code("01000"),
    /* 12 */ code("001000"), code("000011"), code("110100"), code("110101"),
    /* 16 */ code("101010"), code("101011"), code("0100111"), code("0001100"),
    /* 20 */ code("0001000"), code("0010111"), code("0000011"), code("0000100"),
    /* 24 */ code("0101000"), code("0101011"), code("0010011"), code("0100100"),
    /* 28 */ code("0011000"), code("00000010"), code("00000011"), code("00011010"),
    /* 32 */ code("00011011"), code("00010010"), code("00010011"), code("00010100"),
    /* 36 */ code("00010101"), code("00010110"), code("00010111"), code("00101000"),
    /* 40 */ code("00101001"), code("00101010"), code("00101011"), code("00101100"),
    /* 44 */ code("00101101"), code("00000100"), code("00000101"), code("00001010"),
    /* 48 */ code("00001011"), code("01010010"), code("01010011"), code("01010100"),
    /* 52 */ code("01010101"), code("00100100"), code("00100101"), code("01011000"),
    /* 56 */ code("01011001"), code("01011010"), code("01011011"), code("01001010"),
    /* 60 */ code("01001011"), code("00110010"), code("00110011"), code("00110100"),
];

/// Black terminating codes, run lengths 0..=63 (T.4 Table 1).
#[rustfmt::skip]
pub(super) const BLACK_TERM: [Code; 64] = [
    /*  0 */ code("0000110111"), code("010"), code("11"), code("10"),
    /*  4 */ code("011"), code("0011"), code("0010"), code("00011"),
    /*  8 */ code("000101"), code("000100"), code("0000100"), code("0000101"),
    /* 12 */ code("0000111"), code("00000100"), code("00000111"), code("000011000"),
    /* 16 */ code("0000010111"), code("0000011000"), code("0000001000"), code("00001100111"),
    /* 20 */ code("00001101000"), code("00001101100"), code("00000110111"), code("00000101000"),
    /* 24 */ code("00000010111"), code("00000011000"), code("000011001010"), code("000011001011"),
    /* 28 */ code("000011001100"), code("000011001101"), code("000001101000"), code("000001101001"),
    /* 32 */ code("000001101010"), code("000001101011"), code("000011010010"), code("000011010011"),
    /* 36 */ code("000011010100"), code("000011010101"), code("000011010110"), code("000011010111"),
    /* 40 */ code("000001101100"), code("000001101101"), code("000011011010"), code("000011011011"),
    /* 44 */ code("000001010100"), code("000001010101"), code("000001010110"), code("000001010111"),
    /* 48 */ code("000001100100"), code("000001100101"), code("000001010010"), code("000001010011"),
    /* 52 */ code("000000100100"), code("000000110111"), code("000000111000"), code("000000100111"),
    /* 56 */ code("000000101000"), code("000001011000"), code("000001011001"), code("000000101011"),
    /* 60 */ code("000000101100"), code("000001011010"), code("000001100110"), code("000001100111"),
];

/// White make-up codes, run lengths 64, 128, ..., 1728 (T.4 Table 2).
#[rustfmt::skip]
pub(super) const WHITE_MAKEUP: [Code; 27] = [
    /*   64 */ code("11011"), code("10010"), code("010111"), code("0110111"),
    /*  320 */ code("00110110"), code("00110111"), code("01100100"), code("01100101"),
    /*  576 */ code("01101000"), code("01100111"), code("011001100"), code("011001101"),
    /*  832 */ code("011010010"), code("011010011"), code("011010100"), code("011010101"),
    /* 1088 */ code("011010110"), code("011010111"), code("011011000"), code("011011001"),
    /* 1344 */ code("011011010"), code("011011011"), code("010011000"), code("010011001"),
    /* 1600 */ code("010011010"), code("011000"), code("010011011"),
];

/// Black make-up codes, run lengths 64, 128, ..., 1728 (T.4 Table 2).
#[rustfmt::skip]
pub(super) const BLACK_MAKEUP: [Code; 27] = [
    /*   64 */ code("0000001111"), code("000011001000"), code("000011001001"),
    /*  256 */ code("000001011011"), code("000000110011"), code("000000110100"),
    /*  448 */ code("000000110101"), code("0000001101100"), code("0000001101101"),
    /*  640 */ code("0000001001010"), code("0000001001011"), code("0000001001100"),
    /*  832 */ code("0000001001101"), code("0000001110010"), code("0000001110011"),
    /* 1024 */ code("0000001110100"), code("0000001110101"), code("0000001110110"),
    /* 1216 */ code("0000001110111"), code("0000001010010"), code("0000001010011"),
    /* 1408 */ code("0000001010100"), code("0000001010101"), code("0000001011010"),
    /* 1600 */ code("0000001011011"), code("0000001100100"), code("0000001100101"),
];

/// Extended make-up codes (both colours), run lengths 1792, 1856, ..., 2560 (T.4 Table 2).
#[rustfmt::skip]
pub(super) const EXT_MAKEUP: [Code; 13] = [
    /* 1792 */ code("00000001000"), code("00000001100"), code("00000001101"),
    /* 1984 */ code("000000010010"), code("000000010011"), code("000000010100"),
    /* 2176 */ code("000000010101"), code("000000010110"), code("000000010111"),
    /* 2368 */ code("000000011100"), code("000000011101"), code("000000011110"),
    /* 2560 */ code("000000011111"),
];

/// Longest make-up code value.
pub(super) const MAX_MAKEUP: usize = 2560;

/// The make-up code for `run`, a multiple of 64 in `64..=2560`.
pub(super) fn makeup(black: bool, run: usize) -> Code {
    let i = run / 64;
    if run > 1728 {
        EXT_MAKEUP[(i - 28).min(EXT_MAKEUP.len() - 1)]
    } else if black {
        BLACK_MAKEUP[i.clamp(1, 27) - 1]
    } else {
        WHITE_MAKEUP[i.clamp(1, 27) - 1]
    }
}

/// The terminating code for `run` in `0..=63`.
pub(super) fn terminating(black: bool, run: usize) -> Code {
    if black {
        BLACK_TERM[run.min(63)]
    } else {
        WHITE_TERM[run.min(63)]
    }
}

/// 2-D mode codes (T.4 Table 4 / T.6 Table 1).
pub(super) const PASS: Code = code("0001");
/// Horizontal mode prefix; two run-length codes follow.
pub(super) const HORIZONTAL: Code = code("001");
/// Vertical mode codes indexed by `a1 - b1 + 3` (VL3, VL2, VL1, V0, VR1, VR2, VR3).
pub(super) const VERTICAL: [Code; 7] = [
    code("0000010"),
    code("000010"),
    code("010"),
    code("1"),
    code("011"),
    code("000011"),
    code("0000011"),
];

/// Lookup index width: the longest run-length code (black make-up) has 13 bits.
pub(super) const LOOKUP_BITS: u32 = 13;

/// Run value stored for EOL in the lookup tables.
pub(super) const EOL_RUN: u32 = 0xFFF;

/// Lookup entry: `len << 16 | run`; 0 = no code has this prefix.
const fn insert(table: &mut [u32; 1 << LOOKUP_BITS], c: Code, run: u32) {
    let shift = LOOKUP_BITS - c.len as u32;
    let start = (c.bits as usize) << shift;
    let mut i = 0;
    while i < (1 << shift) {
        // A clash would mean the table is not a prefix code: fail the build.
        assert!(table[start + i] == 0);
        table[start + i] = ((c.len as u32) << 16) | run;
        i += 1;
    }
}

const fn build(term: &[Code; 64], makeup: &[Code; 27]) -> [u32; 1 << LOOKUP_BITS] {
    let mut t = [0u32; 1 << LOOKUP_BITS];
    let mut i = 0;
    while i < 64 {
        insert(&mut t, term[i], i as u32);
        i += 1;
    }
    i = 0;
    while i < 27 {
        insert(&mut t, makeup[i], 64 * (i as u32 + 1));
        i += 1;
    }
    i = 0;
    while i < 13 {
        insert(&mut t, EXT_MAKEUP[i], 1792 + 64 * i as u32);
        i += 1;
    }
    insert(&mut t, EOL, EOL_RUN);
    t
}

/// White run-length lookup, indexed by the next 13 bits of the stream.
pub(super) static WHITE_LOOKUP: [u32; 1 << LOOKUP_BITS] = build(&WHITE_TERM, &WHITE_MAKEUP);
/// Black run-length lookup, indexed by the next 13 bits of the stream.
pub(super) static BLACK_LOOKUP: [u32; 1 << LOOKUP_BITS] = build(&BLACK_TERM, &BLACK_MAKEUP);
