//! Fuzz target for the MQTT 3.1.1 packet codec the broker's transport
//! driver uses (`rumqttc::mqttbytes::v4`, OASIS MQTT 3.1.1 §2–§3): raw bytes
//! are decoded packet by packet as the driver does (bounded by the broker's
//! `max_packet`); decoding never panics, and every packet that decodes
//! encodes again and decodes to the same packet (what the broker writes
//! from a packet it accepted is that packet).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::Error;

const MAX_PACKET: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut stream = BytesMut::from(data);
    for _ in 0..64 {
        let before = stream.len();
        let packet = match Packet::read(&mut stream, MAX_PACKET) {
            Ok(p) => p,
            Err(Error::InsufficientBytes(_)) | Err(_) => return,
        };
        assert!(stream.len() < before, "a decoded packet consumed nothing");
        let mut out = BytesMut::new();
        let written = packet
            .write(&mut out, MAX_PACKET)
            .expect("a decoded packet encodes");
        assert_eq!(written, out.len());
        let again = Packet::read(&mut out, MAX_PACKET).expect("an encoded packet decodes");
        assert_eq!(again, packet, "decode → encode → decode changed the packet");
        assert!(out.is_empty(), "encoding wrote trailing bytes");
    }
});
