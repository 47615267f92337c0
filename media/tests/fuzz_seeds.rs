//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`, written by
//! `fuzz/seeds/make-media-seeds.py`) still reach past the entry checks: a seed the codecs reject
//! teaches the fuzzer nothing, so a codec change that breaks them fails here, in `cargo test`,
//! without nightly. These are the media targets' seeds (`media_streams`, `ingest_stream`,
//! `rtp_stats`); the fax targets' are checked in `fax/tests/fuzz_seeds.rs`.

use switchboard_media::resample::SampleRate;
use switchboard_media::rtp::RtpStats;
use switchboard_media::streams::ingest::{IngestEvent, IngestLimits, IngestReader};
use switchboard_media::streams::{AppMessage, Dialect, Limits, MediaFormat, StreamReader};

const SID: &str = "MZ00000000000000000000000000000001";

#[path = "../../fuzz/seeds/corpus.rs"]
mod corpus;
use corpus::seeds;

#[test]
fn media_stream_seeds_are_accepted_by_the_app_reader() {
    let cases = [
        ("twilio-", Dialect::Twilio, MediaFormat::Mulaw8k),
        (
            "exotel-",
            Dialect::Exotel,
            MediaFormat::Pcm16(SampleRate::Hz8000),
        ),
    ];
    for (prefix, dialect, format) in cases {
        for (name, data) in seeds("media_streams", prefix, "") {
            let mut reader = StreamReader::new(dialect, format, SID, Limits::default());
            for line in String::from_utf8(data).expect("utf-8").split('\n') {
                let msg = reader
                    .read_text(line)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
                if let AppMessage::Media { payload } = msg {
                    assert!(!payload.is_empty(), "{name}");
                }
            }
        }
    }
}

#[test]
fn ingest_seeds_are_accepted_as_a_session() {
    for (prefix, dialect) in [("twilio-", Dialect::Twilio), ("exotel-", Dialect::Exotel)] {
        for (name, data) in seeds("ingest_stream", prefix, "-session.jsonl") {
            let mut reader = IngestReader::new(dialect, IngestLimits::default());
            let mut media = 0;
            for line in String::from_utf8(data).expect("utf-8").split('\n') {
                match reader.read_text(line) {
                    Ok(IngestEvent::Media { .. }) => media += 1,
                    Ok(_) => {}
                    Err(e) => panic!("{name}: {e}: {line}"),
                }
            }
            assert!(media > 0, "{name}: no media accepted");
        }
    }
}

#[test]
fn rtp_seeds_are_rtp_in_40_octet_datagrams() {
    for (name, data) in seeds("rtp_stats", "", ".rtp") {
        if name == "rtcp-and-junk.rtp" {
            continue;
        }
        let mut stats = RtpStats::new();
        for packet in data.chunks(40) {
            stats
                .observe(packet)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(stats.packets() > 0);
    }
}
