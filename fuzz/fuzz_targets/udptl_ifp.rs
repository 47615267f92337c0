//! Fuzz target for the T.38 codecs (ITU-T T.38 Annex A IFP in ASN.1 PER, and UDPTL): decoding
//! arbitrary bytes never panics, whatever decodes re-encodes to the same value, and the UDPTL
//! receiver survives any sequence of datagrams and hands out exactly what it counts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fax::t38::ifp;
use switchboard_fax::t38::udptl::{UdptlPacket, UdptlRx};

fuzz_target!(|data: &[u8]| {
    // The whole input as one datagram.
    if let Ok(packet) = UdptlPacket::decode(data) {
        let mut out = Vec::new();
        packet
            .encode(&mut out)
            .expect("a decoded datagram re-encodes");
        assert_eq!(UdptlPacket::decode(&out).as_ref(), Ok(&packet));
        for version in [0, 3] {
            let _ = ifp::decode(&packet.primary, version);
        }
    }

    // The whole input as one IFP packet, in version 0 and in a later version.
    for version in [0, 3] {
        if let Ok(packet) = ifp::decode(data, version) {
            let bytes = ifp::to_bytes(&packet, version).expect("a decoded packet re-encodes");
            assert_eq!(ifp::decode(&bytes, version), Ok(packet));
        }
        let _ = ifp::decode_prefix(data, version);
    }

    // The input as a stream of datagrams, each prefixed by a one-octet length.
    let mut rx = UdptlRx::default();
    let mut popped = 0u64;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (datagram, tail) = tail.split_at(usize::from(len).min(tail.len()));
        let _ = rx.push(datagram);
        while rx.pop().is_some() {
            popped += 1;
        }
        rest = tail;
    }
    rx.flush();
    while rx.pop().is_some() {
        popped += 1;
    }
    let stats = rx.stats();
    assert_eq!(popped, stats.delivered);
    assert!(stats.recovered <= stats.delivered);
});
