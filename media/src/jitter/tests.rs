//! Tests for [`super`]: playout framing, prebuffering, overflow, marks and clear; reordering,
//! wrap-around, concealment and resynchronisation.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ramp(start: i16, n: usize) -> Vec<i16> {
    (0..n).map(|i| start.wrapping_add(i as i16)).collect()
}

fn buffer(max_depth_ms: u32, prebuffer_ms: u32) -> PlayoutBuffer {
    PlayoutBuffer::new(PlayoutConfig {
        max_depth_ms,
        prebuffer_ms,
        ..PlayoutConfig::default()
    })
    .unwrap()
}

#[test]
fn config_is_checked() {
    let bad = |max_depth_ms, prebuffer_ms| {
        PlayoutBuffer::new(PlayoutConfig {
            max_depth_ms,
            prebuffer_ms,
            ..PlayoutConfig::default()
        })
        .err()
    };
    assert_eq!(bad(10, 0), Some(JitterError::BadDepth { max_depth_ms: 10 }));
    assert!(matches!(
        bad(700_000, 0),
        Some(JitterError::BadDepth { .. })
    ));
    assert!(matches!(
        bad(60, 80),
        Some(JitterError::BadPrebuffer { .. })
    ));
    assert_eq!(bad(60, 60), None);
}

#[test]
fn bursts_in_frames_out() {
    let t = Instant::now();
    let mut b = buffer(200, 40);
    // Prebuffering: 30 ms is not enough yet.
    b.push(t, &ramp(0, 240));
    let f = b.pull(t);
    assert_eq!((f.kind, f.samples.len()), (FrameKind::Silence, 160));
    assert!(f.samples.iter().all(|&s| s == 0));
    b.push(t, &ramp(240, 100));
    let f = b.pull(t + ms(20));
    assert_eq!(f.kind, FrameKind::Audio);
    assert!(f.talkspurt_start);
    assert_eq!(f.samples, ramp(0, 160));
    let f = b.pull(t + ms(40));
    assert!(!f.talkspurt_start);
    assert_eq!(f.samples, ramp(160, 160));
    // 20 samples left: a partial frame padded with silence, counted as an underrun.
    let f = b.pull(t + ms(60));
    assert_eq!(f.kind, FrameKind::Partial);
    assert_eq!(&f.samples[..20], &ramp(320, 20)[..]);
    assert!(f.samples[20..].iter().all(|&s| s == 0));
    let f = b.pull(t + ms(80));
    assert_eq!(f.kind, FrameKind::Silence);
    let st = b.stats();
    assert_eq!(
        (st.frames, st.talkspurts, st.underruns, st.padded_samples),
        (5, 1, 1, 140)
    );
}

#[test]
fn short_burst_starts_after_prebuffer_time() {
    let t = Instant::now();
    let mut b = buffer(200, 60);
    b.push(t, &ramp(1, 160));
    assert_eq!(b.pull(t + ms(20)).kind, FrameKind::Silence);
    assert_eq!(b.pull(t + ms(40)).kind, FrameKind::Silence);
    let f = b.pull(t + ms(60));
    assert_eq!(f.kind, FrameKind::Audio);
    assert!(f.talkspurt_start);
    assert!(!b.is_playing() || b.depth_samples() == 0);
}

#[test]
fn runs_dry_then_restarts_a_talkspurt() {
    let t = Instant::now();
    let mut b = buffer(200, 0);
    b.push(t, &ramp(0, 160));
    assert!(b.pull(t).talkspurt_start);
    assert_eq!(b.pull(t + ms(20)).kind, FrameKind::Silence);
    assert!(!b.is_playing());
    b.push(t + ms(30), &ramp(0, 160));
    let f = b.pull(t + ms(40));
    assert!(f.talkspurt_start && f.kind == FrameKind::Audio);
    assert_eq!(b.stats().talkspurts, 2);
    assert_eq!(b.stats().underruns, 1);
}

#[test]
fn overflow_drops_oldest() {
    let t = Instant::now();
    let mut b = buffer(60, 0);
    b.push(t, &ramp(0, 400));
    b.push(t, &ramp(400, 200)); // 600 samples, room for 480
    assert_eq!(b.depth_samples(), 480);
    assert_eq!(b.depth_ms(), 60);
    let st = b.stats();
    assert_eq!((st.overflows, st.dropped_samples), (1, 120));
    assert_eq!(b.pull(t).samples, ramp(120, 160));
    // A single push larger than the depth keeps its newest part.
    b.push(t, &ramp(1000, 1000));
    assert_eq!(b.pull(t).samples, ramp(1520, 160));
}

#[test]
fn marks_follow_their_audio() {
    let t = Instant::now();
    let mut b = buffer(200, 0);
    b.push_mark("before-anything".into()).unwrap();
    b.push(t, &ramp(0, 200));
    b.push_mark("a".into()).unwrap();
    b.push(t, &ramp(200, 160));
    b.push_mark("b".into()).unwrap();
    b.push_mark("c".into()).unwrap();
    assert_eq!(b.pending_marks(), 4);
    assert_eq!(b.pull(t).marks, ["before-anything"]);
    // "a" waits for sample 200, played by the second frame; "b" and "c" for 360.
    assert_eq!(b.pull(t).marks, ["a"]);
    let f = b.pull(t);
    assert_eq!(f.marks, ["b", "c"]);
    assert_eq!(f.kind, FrameKind::Partial);
    // A mark on an empty buffer is due at the next tick.
    b.push_mark("idle".into()).unwrap();
    assert_eq!(b.pull(t).marks, ["idle"]);
    assert_eq!(b.stats().marks_released, 5);
}

#[test]
fn clear_releases_marks_and_discards_audio() {
    let t = Instant::now();
    let mut b = buffer(1000, 0);
    b.push(t, &ramp(0, 800));
    b.push_mark("m1".into()).unwrap();
    b.push(t, &ramp(800, 800));
    b.push_mark("m2".into()).unwrap();
    assert_eq!(b.pull(t).kind, FrameKind::Audio);
    assert_eq!(b.clear(), ["m1", "m2"]);
    assert_eq!(b.depth_samples(), 0);
    let f = b.pull(t);
    assert_eq!(f.kind, FrameKind::Silence);
    assert!(f.marks.is_empty());
    // New audio after a clear plays normally and marks count from there.
    b.push(t, &ramp(5, 160));
    b.push_mark("m3".into()).unwrap();
    let f = b.pull(t);
    assert_eq!((f.kind, f.marks.len()), (FrameKind::Audio, 1));
    let st = b.stats();
    assert_eq!((st.clears, st.cleared_samples), (1, 1440));
}

#[test]
fn overflowed_audio_releases_its_marks() {
    let t = Instant::now();
    let mut b = buffer(20, 0);
    b.push(t, &ramp(0, 100));
    b.push_mark("dropped".into()).unwrap();
    b.push(t, &ramp(100, 400));
    assert_eq!(b.pull(t).marks, ["dropped"]);
}

#[test]
fn mark_limit() {
    let mut b = PlayoutBuffer::new(PlayoutConfig {
        max_marks: 2,
        ..PlayoutConfig::default()
    })
    .unwrap();
    b.push_mark("1".into()).unwrap();
    b.push_mark("2".into()).unwrap();
    assert_eq!(
        b.push_mark("3".into()),
        Err(JitterError::TooManyMarks { max: 2 })
    );
}

#[test]
fn wideband_frames() {
    let t = Instant::now();
    let mut b = PlayoutBuffer::new(PlayoutConfig {
        rate: SampleRate::Hz16000,
        prebuffer_ms: 0,
        ..PlayoutConfig::default()
    })
    .unwrap();
    b.push(t, &ramp(0, 640));
    assert_eq!(b.depth_ms(), 40);
    assert_eq!(b.pull(t).samples.len(), 320);
}

fn frame(tag: i16) -> Vec<i16> {
    vec![tag; 160]
}

fn drain(r: &mut ReorderBuffer, now: Instant) -> Vec<(u16, FrameSource, i16)> {
    let mut out = Vec::new();
    while let Some(f) = r.pop(now) {
        out.push((f.sequence, f.source, f.samples[0]));
    }
    out
}

#[test]
fn reorders_within_window() {
    use FrameSource::Received as R;
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig::default());
    assert_eq!(r.push(t, 10, 1600, frame(10)), PushOutcome::Queued);
    assert_eq!(r.push(t, 12, 1920, frame(12)), PushOutcome::Queued);
    assert_eq!(drain(&mut r, t), [(10, R, 10)]);
    assert_eq!(r.queued(), 1);
    assert_eq!(r.push(t, 11, 1760, frame(11)), PushOutcome::Queued);
    assert_eq!(r.push(t, 11, 1760, frame(11)), PushOutcome::Duplicate);
    assert_eq!(drain(&mut r, t), [(11, R, 11), (12, R, 12)]);
    assert_eq!(r.push(t, 9, 1440, frame(9)), PushOutcome::Late);
    assert_eq!(r.push(t, 12, 1920, frame(12)), PushOutcome::Late);
    let st = r.stats();
    assert_eq!((st.received, st.duplicates, st.late), (3, 1, 2));
}

#[test]
fn first_arrival_need_not_be_first_sent() {
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig::default());
    assert_eq!(r.push(t, 502, 320, frame(2)), PushOutcome::Queued);
    assert_eq!(r.push(t, 500, 0, frame(0)), PushOutcome::Queued);
    assert_eq!(r.push(t, 501, 160, frame(1)), PushOutcome::Queued);
    let got: Vec<u16> = drain(&mut r, t).iter().map(|x| x.0).collect();
    assert_eq!(got, [500, 501, 502]);
    // Once playing, earlier packets are late.
    assert_eq!(r.push(t, 499, 0, frame(9)), PushOutcome::Late);
}

#[test]
fn wraps_around() {
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig::default());
    let seqs = [65534u16, 0, 65535, 1];
    for s in seqs {
        r.push(t, s, u32::from(s) * 160, frame(s as i16));
    }
    let got: Vec<u16> = drain(&mut r, t).iter().map(|x| x.0).collect();
    assert_eq!(got, [65534, 65535, 0, 1]);
}

#[test]
fn conceals_after_depth_packets() {
    use FrameSource::{Concealed as C, Received as R};
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig::default());
    r.push(t, 100, 0, frame(1000));
    assert_eq!(drain(&mut r, t), [(100, R, 1000)]);
    // 101 and 102 lost; 103 and 104 arrive: not yet given up (depth 3).
    r.push(t, 103, 480, frame(3));
    r.push(t, 104, 640, frame(4));
    assert_eq!(drain(&mut r, t), []);
    r.push(t, 105, 800, frame(5));
    let got = drain(&mut r, t);
    assert_eq!(got[0], (101, C, 500));
    assert_eq!(got[1], (102, C, 250));
    assert_eq!(&got[2..], [(103, R, 3), (104, R, 4), (105, R, 5)]);
    assert_eq!(r.stats().concealed, 2);
}

#[test]
fn conceals_after_max_wait_and_fades_to_silence() {
    use FrameSource::Concealed as C;
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig {
        depth: 16,
        ..ReorderConfig::default()
    });
    r.push(t, 1, 0, frame(800));
    drain(&mut r, t);
    r.push(t, 5, 640, frame(5));
    assert_eq!(drain(&mut r, t + ms(59)), []);
    let got = drain(&mut r, t + ms(60));
    assert_eq!(
        got,
        [
            (2, C, 400),
            (3, C, 200),
            (4, C, 0),
            (5, FrameSource::Received, 5)
        ]
    );
    // Estimated timestamps continue the stream.
    let mut r2 = ReorderBuffer::new(ReorderConfig::default());
    r2.push(t, 1, 160, frame(1));
    r2.push(t, 3, 480, frame(3));
    r2.pop(t);
    let lost = r2.pop(t + ms(100)).unwrap();
    assert_eq!((lost.sequence, lost.timestamp), (2, 320));
}

#[test]
fn jump_needs_confirmation() {
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig::default());
    r.push(t, 10, 0, frame(10));
    r.push(t, 11, 160, frame(11));
    drain(&mut r, t);
    // A stray far-away packet is held, not trusted.
    assert_eq!(r.push(t, 30000, 0, frame(1)), PushOutcome::Probation);
    assert_eq!(r.push(t, 12, 320, frame(12)), PushOutcome::Queued);
    assert_eq!(drain(&mut r, t).len(), 1);
    // Two consecutive far packets: the stream restarted.
    r.push(t, 13, 480, frame(13));
    assert_eq!(r.push(t, 40000, 9000, frame(40)), PushOutcome::Probation);
    assert_eq!(r.push(t, 40001, 9160, frame(41)), PushOutcome::Resynced);
    let got: Vec<u16> = drain(&mut r, t).iter().map(|x| x.0).collect();
    assert_eq!(got, [40000, 40001]);
    let st = r.stats();
    assert_eq!((st.resyncs, st.discarded), (1, 1));
    r.reset();
    assert_eq!(r.queued(), 0);
    assert_eq!(r.stats().resyncs, 1);
}

#[test]
fn concealment_without_history_uses_frame_size() {
    let t = Instant::now();
    let mut r = ReorderBuffer::new(ReorderConfig {
        depth: 1,
        frame_samples: 80,
        ..ReorderConfig::default()
    });
    r.push(t, 7, 0, frame(7));
    r.push(t, 9, 320, frame(9));
    // Release 7 as normal; then lose 8.
    let a = r.pop(t).unwrap();
    assert_eq!(a.sequence, 7);
    let b = r.pop(t).unwrap();
    assert_eq!(
        (b.sequence, b.source, b.samples.len()),
        (8, FrameSource::Concealed, 160)
    );
    // With no samples to repeat, concealment uses the configured frame size.
    let mut fresh = ReorderBuffer::new(ReorderConfig {
        depth: 1,
        frame_samples: 80,
        ..ReorderConfig::default()
    });
    fresh.push(t, 1, 0, Vec::new());
    fresh.push(t, 3, 160, frame(3));
    assert!(fresh.pop(t).unwrap().samples.is_empty());
    assert_eq!(fresh.pop(t).unwrap().samples.len(), 80);
}
