//! Fork mode: a bridged trunk-to-trunk call keeps its relay; a tap receives copies of both
//! sides' RTP and turns them into the two tracks of a stream (`inbound`: the caller, A;
//! `outbound`: what the caller hears, B), 20 ms of 8 kHz PCM per frame, in order.

use std::time::Instant;

use switchboard_media::jitter::{ReorderBuffer, ReorderConfig};
use switchboard_media::rtp_audio::{self, AudioDepacketizer, Depacketized};
use switchboard_media::streams::Track;
use tokio::sync::mpsc;

use super::leg::{Leg, LegEvent, FRAME, FRAME_SAMPLES};
use crate::media::Side;

/// Packets queued from the relay to the tap (1 s of both sides).
pub const TAP_QUEUE: usize = 100;

/// One side of the tapped call.
struct Track1 {
    track: Track,
    depacketizer: Option<AudioDepacketizer>,
    reorder: ReorderBuffer,
    pending: Vec<i16>,
    frames: u64,
}

impl Track1 {
    fn new(track: Track) -> Self {
        Track1 {
            track,
            depacketizer: None,
            reorder: ReorderBuffer::new(ReorderConfig::default()),
            pending: Vec::new(),
            frames: 0,
        }
    }

    fn push(&mut self, packet: &[u8], now: Instant) {
        let Ok(p) = rtp_audio::parse(packet) else {
            return;
        };
        // The first G.711 packet fixes the law of this side.
        let Some(law) = rtp_audio::law_for_payload_type(p.header.payload_type) else {
            return;
        };
        let d = *self
            .depacketizer
            .get_or_insert_with(|| AudioDepacketizer::new(law, None));
        if let Ok(Depacketized::Audio(f)) = d.depacketize(packet) {
            self.reorder
                .push(now, f.header.sequence, f.header.timestamp, f.samples);
        }
    }

    fn drain(&mut self, now: Instant, out: &mpsc::Sender<LegEvent>) {
        while let Some(f) = self.reorder.pop(now) {
            self.pending.extend_from_slice(&f.samples);
            while self.pending.len() >= FRAME_SAMPLES {
                let pcm: Vec<i16> = self.pending.drain(..FRAME_SAMPLES).collect();
                let ev = LegEvent::Audio {
                    track: self.track,
                    pcm,
                    timestamp_ms: self.frames * 20,
                };
                self.frames += 1;
                if out.try_send(ev).is_err() {
                    metrics::counter!("switchboard_fork_dropped_frames_total").increment(1);
                }
            }
        }
    }
}

/// A leg fed by a relay tap; returns it and the sender to give to [`crate::media::Relay::tap`].
pub fn tap_leg() -> (Leg, mpsc::Sender<(Side, Vec<u8>)>) {
    let (leg, events, mut commands) = Leg::channel();
    let (tx, mut rx) = mpsc::channel::<(Side, Vec<u8>)>(TAP_QUEUE);
    tokio::spawn(async move {
        let mut a = Track1::new(Track::Inbound);
        let mut b = Track1::new(Track::Outbound);
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                p = rx.recv() => {
                    let Some((side, packet)) = p else { break };
                    let now = Instant::now();
                    let t = match side { Side::A => &mut a, Side::B => &mut b };
                    t.push(&packet, now);
                    t.drain(now, &events);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    a.drain(now, &events);
                    b.drain(now, &events);
                }
                // A fork never plays anything: commands are read and dropped.
                c = commands.recv() => if c.is_none() { break },
            }
            if events.is_closed() {
                break;
            }
        }
    });
    (leg, tx)
}
