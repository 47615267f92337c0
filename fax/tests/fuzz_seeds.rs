//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`, written by
//! `fuzz/seeds/make-media-seeds.py`) still reach past the entry checks: a seed the codecs reject
//! teaches the fuzzer nothing, so a codec change that breaks them fails here, in `cargo test`,
//! without nightly. These are the fax targets' seeds (`udptl_ifp`, `fax_tiff`); the media
//! targets' are checked in `media/tests/fuzz_seeds.rs`.

use switchboard_fax::t38::ifp;
use switchboard_fax::t38::udptl::UdptlPacket;
use switchboard_fax::tiff;

#[path = "../../fuzz/seeds/corpus.rs"]
mod corpus;
use corpus::seeds;

#[test]
fn udptl_seeds_decode_and_reencode_to_the_same_bytes() {
    for (name, data) in seeds("udptl_ifp", "", ".udptl") {
        let packet = UdptlPacket::decode(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        packet.encode(&mut out).expect("re-encodes");
        assert_eq!(out, data, "{name}");
    }
}

#[test]
fn ifp_seeds_decode_in_their_version() {
    for (prefix, version) in [("ifp-indicator-", 0), ("ifp-indicator-", 3), ("ifp-v0-", 0)] {
        for (name, data) in seeds("udptl_ifp", prefix, ".ifp") {
            ifp::decode(&data, version).unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
        }
    }
    for (name, data) in seeds("udptl_ifp", "ifp-v2-", ".ifp") {
        ifp::decode(&data, 2).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The captured datagrams' primaries: every one is an IFP of its run's version.
    for (prefix, version) in [
        ("spandsp-v0-", 0),
        ("spandsp-v3ecm-", 3),
        ("spandsp-v2r0-", 2),
    ] {
        for (name, data) in seeds("udptl_ifp", prefix, ".udptl") {
            let packet = UdptlPacket::decode(&data).expect("decodes");
            ifp::decode(&packet.primary, version).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn tiff_seeds_read() {
    for (name, data) in seeds("fax_tiff", "", ".tif") {
        if ["colour.tif", "grey.tif", "odd-lzw.tif"].contains(&name.as_str()) {
            continue; // rejected on purpose (colour, grey, LZW): the error paths
        }
        let pages = tiff::read_tiff(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!pages.is_empty(), "{name}");
    }
}
