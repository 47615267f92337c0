//! Jitter buffers for the two directions of a bridged call (RFC 3550 §6.4.1 interarrival
//! jitter is what they absorb; the playout model follows Twilio Media Streams' `mark`/`clear`).
//!
//! - [`PlayoutBuffer`], toward RTP: audio arrives in bursts of any size (MQTT from an ESP32, or
//!   WebSocket `media` messages from an app) and leaves as exactly one 20 ms frame per tick.
//!   Playout starts once a prebuffer has filled (or has waited long enough), silence is sent
//!   when the queue runs dry, depth is bounded (overflow drops the oldest audio), `clear()`
//!   empties it for barge-in, and marks queued between audio are released by the pull that
//!   plays the last sample queued before them (or by the `clear()` that discards it).
//! - [`ReorderBuffer`], toward the app: RTP frames arrive out of order, duplicated or not at
//!   all; it releases them in sequence order (16-bit wrap-around handled), waits a few packets
//!   or a short time for a missing one, then conceals it (the last frame at falling gain, then
//!   silence), and resynchronises after a confirmed sequence jump.
//!
//! Sizing: a real-time source (a device) needs a small depth (60–200 ms). An app that sends
//! text-to-speech faster than real time needs a deep buffer (tens of seconds), as Twilio queues
//! everything an app sends; size `max_depth_ms` for the source.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::resample::SampleRate;

/// Largest configurable playout depth (10 minutes).
pub const MAX_PLAYOUT_DEPTH_MS: u32 = 600_000;
/// Forward sequence jumps above this many packets need a second packet to confirm them.
const MAX_GAP: u16 = 50;
/// Backward sequence jumps up to this many packets are late packets, beyond it a restart.
const MAX_MISORDER: u16 = 100;

/// Why a jitter buffer refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    /// Maximum depth below one frame or above [`MAX_PLAYOUT_DEPTH_MS`].
    #[error("playout depth of {max_depth_ms} ms is out of range (20..={MAX_PLAYOUT_DEPTH_MS})")]
    BadDepth {
        /// The requested depth.
        max_depth_ms: u32,
    },
    /// Prebuffer deeper than the buffer.
    #[error("prebuffer of {prebuffer_ms} ms exceeds the depth of {max_depth_ms} ms")]
    BadPrebuffer {
        /// The requested prebuffer.
        prebuffer_ms: u32,
        /// The configured depth.
        max_depth_ms: u32,
    },
    /// Too many marks waiting to be released.
    #[error("too many pending marks (limit {max})")]
    TooManyMarks {
        /// The limit.
        max: usize,
    },
}

/// Settings of a [`PlayoutBuffer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayoutConfig {
    /// Sample rate of the audio pushed and pulled (a frame is 20 ms at this rate).
    pub rate: SampleRate,
    /// Most audio held; older audio is dropped beyond it.
    pub max_depth_ms: u32,
    /// Audio to gather before playout (re)starts; a shorter burst starts after this long.
    pub prebuffer_ms: u32,
    /// Most marks held.
    pub max_marks: usize,
}

impl Default for PlayoutConfig {
    fn default() -> Self {
        PlayoutConfig {
            rate: SampleRate::Hz8000,
            max_depth_ms: 200,
            prebuffer_ms: 40,
            max_marks: 256,
        }
    }
}

/// What a pulled frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A full frame of queued audio.
    Audio,
    /// The queue ran dry within the frame: audio then silence.
    Partial,
    /// Silence only (idle, prebuffering, or ran dry).
    Silence,
}

/// One 20 ms frame from [`PlayoutBuffer::pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayoutFrame {
    /// Exactly one frame of samples.
    pub samples: Vec<i16>,
    /// Audio, partial or silence.
    pub kind: FrameKind,
    /// First frame of a talkspurt (set the RTP marker bit).
    pub talkspurt_start: bool,
    /// Marks whose audio has now all been played, in the order they were queued.
    pub marks: Vec<String>,
}

/// Counters of a [`PlayoutBuffer`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Frames pulled.
    pub frames: u64,
    /// Times playout started (after idle or a run-dry).
    pub talkspurts: u64,
    /// Times the queue ran dry while playing (includes the natural end of a talkspurt).
    pub underruns: u64,
    /// Silence samples inserted into frames that had some audio.
    pub padded_samples: u64,
    /// Pushes that overflowed the depth.
    pub overflows: u64,
    /// Samples dropped by overflow.
    pub dropped_samples: u64,
    /// Calls to `clear`.
    pub clears: u64,
    /// Samples discarded by `clear`.
    pub cleared_samples: u64,
    /// Marks released.
    pub marks_released: u64,
}

/// The buffer toward RTP: bursty pushes in, one frame per tick out, with marks.
#[derive(Debug, Clone)]
pub struct PlayoutBuffer {
    frame: usize,
    max_samples: usize,
    prebuffer_samples: usize,
    prebuffer: Duration,
    max_marks: usize,
    queue: VecDeque<i16>,
    /// Marks and the absolute sample position they wait for.
    marks: VecDeque<(u64, String)>,
    /// Absolute positions: the queue holds samples `played..written`.
    written: u64,
    played: u64,
    playing: bool,
    fill_started: Option<Instant>,
    stats: PlayoutStats,
}

impl PlayoutBuffer {
    /// A buffer with `config`, checked.
    pub fn new(config: PlayoutConfig) -> Result<Self, JitterError> {
        let PlayoutConfig {
            rate,
            max_depth_ms,
            prebuffer_ms,
            max_marks,
        } = config;
        if !(20..=MAX_PLAYOUT_DEPTH_MS).contains(&max_depth_ms) {
            return Err(JitterError::BadDepth { max_depth_ms });
        }
        if prebuffer_ms > max_depth_ms {
            return Err(JitterError::BadPrebuffer {
                prebuffer_ms,
                max_depth_ms,
            });
        }
        let per_ms = rate.samples_per_ms();
        Ok(PlayoutBuffer {
            frame: rate.samples_per_20ms(),
            max_samples: max_depth_ms as usize * per_ms,
            prebuffer_samples: prebuffer_ms as usize * per_ms,
            prebuffer: Duration::from_millis(u64::from(prebuffer_ms)),
            max_marks,
            queue: VecDeque::new(),
            marks: VecDeque::new(),
            written: 0,
            played: 0,
            playing: false,
            fill_started: None,
            stats: PlayoutStats::default(),
        })
    }

    /// Queues audio (any length). Beyond the depth, the oldest audio is dropped.
    pub fn push(&mut self, now: Instant, pcm: &[i16]) {
        if pcm.is_empty() {
            return;
        }
        if !self.playing && self.fill_started.is_none() {
            self.fill_started = Some(now);
        }
        self.queue.extend(pcm);
        self.written += pcm.len() as u64;
        let excess = self.queue.len().saturating_sub(self.max_samples);
        if excess > 0 {
            self.queue.drain(..excess);
            self.played += excess as u64;
            self.stats.overflows += 1;
            self.stats.dropped_samples += excess as u64;
        }
    }

    /// Queues a mark after the audio pushed so far.
    pub fn push_mark(&mut self, name: String) -> Result<(), JitterError> {
        if self.marks.len() >= self.max_marks {
            return Err(JitterError::TooManyMarks {
                max: self.max_marks,
            });
        }
        self.marks.push_back((self.written, name));
        Ok(())
    }

    /// Discards all queued audio (barge-in) and returns every pending mark, to be echoed now.
    pub fn clear(&mut self) -> Vec<String> {
        self.stats.clears += 1;
        self.stats.cleared_samples += self.queue.len() as u64;
        self.queue.clear();
        self.played = self.written;
        self.playing = false;
        self.fill_started = None;
        self.stats.marks_released += self.marks.len() as u64;
        self.marks.drain(..).map(|(_, name)| name).collect()
    }

    /// Takes the next 20 ms frame: audio when playing, silence otherwise, with the marks that
    /// became due.
    pub fn pull(&mut self, now: Instant) -> PlayoutFrame {
        self.stats.frames += 1;
        let mut talkspurt_start = false;
        if !self.playing && !self.queue.is_empty() {
            let waited = self
                .fill_started
                .is_some_and(|start| now.saturating_duration_since(start) >= self.prebuffer);
            if self.queue.len() >= self.prebuffer_samples || waited {
                self.playing = true;
                talkspurt_start = true;
                self.stats.talkspurts += 1;
            }
        }
        let mut samples = Vec::with_capacity(self.frame);
        let kind = if self.playing {
            let take = self.frame.min(self.queue.len());
            samples.extend(self.queue.drain(..take));
            self.played += take as u64;
            if take == self.frame {
                FrameKind::Audio
            } else {
                self.playing = false;
                self.fill_started = None;
                self.stats.underruns += 1;
                if take > 0 {
                    self.stats.padded_samples += (self.frame - take) as u64;
                    FrameKind::Partial
                } else {
                    FrameKind::Silence
                }
            }
        } else {
            FrameKind::Silence
        };
        samples.resize(self.frame, 0);
        let mut marks = Vec::new();
        while let Some((pos, _)) = self.marks.front() {
            if *pos > self.played {
                break;
            }
            if let Some((_, name)) = self.marks.pop_front() {
                marks.push(name);
            }
        }
        self.stats.marks_released += marks.len() as u64;
        PlayoutFrame {
            samples,
            kind,
            talkspurt_start,
            marks,
        }
    }

    /// Queued audio in samples.
    pub fn depth_samples(&self) -> usize {
        self.queue.len()
    }

    /// Queued audio in whole milliseconds.
    pub fn depth_ms(&self) -> u32 {
        (self.queue.len() * 20 / self.frame) as u32
    }

    /// Marks waiting for their audio.
    pub fn pending_marks(&self) -> usize {
        self.marks.len()
    }

    /// Whether audio is being played out (as opposed to idle or prebuffering).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// The counters.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }
}

/// Settings of a [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// How many later packets may be queued before a missing one is given up (1..=16
    /// sensible; 3 is 60 ms of 20 ms packets).
    pub depth: usize,
    /// How long a missing packet is waited for once a later one is queued.
    pub max_wait: Duration,
    /// Samples in a concealment frame when no frame has been received yet.
    pub frame_samples: usize,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            depth: 3,
            max_wait: Duration::from_millis(60),
            frame_samples: 160,
        }
    }
}

/// Where a released frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSource {
    /// A received packet.
    Received,
    /// Concealment for a lost packet.
    Concealed,
}

/// A frame released in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReorderedFrame {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (estimated for concealed frames).
    pub timestamp: u32,
    /// PCM samples.
    pub samples: Vec<i16>,
    /// Received or concealed.
    pub source: FrameSource,
}

/// What [`ReorderBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for release.
    Queued,
    /// Already queued: dropped.
    Duplicate,
    /// Its turn has passed: dropped.
    Late,
    /// A large sequence jump: held until the next packet confirms it.
    Probation,
    /// Confirmed jump: the buffer restarted at the new sequence.
    Resynced,
}

/// Counters of a [`ReorderBuffer`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets queued.
    pub received: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late packets dropped.
    pub late: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Sequence resynchronisations.
    pub resyncs: u64,
    /// Queued packets discarded by a resynchronisation.
    pub discarded: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    timestamp: u32,
    samples: Vec<i16>,
    arrived: Instant,
}

/// The RTP → app reorder buffer.
#[derive(Debug, Clone)]
pub struct ReorderBuffer {
    cfg: ReorderConfig,
    /// Sequence number of `slots[0]`.
    next: Option<u16>,
    /// Expected timestamp of `slots[0]`.
    next_timestamp: u32,
    /// Slot `i` holds sequence `next + i`; the last slot is always occupied.
    slots: VecDeque<Option<Slot>>,
    probation: Option<(u16, Slot)>,
    /// Whether a frame has been released since the last (re)start.
    started: bool,
    last: Vec<i16>,
    lost_run: u32,
    stats: ReorderStats,
}

impl ReorderBuffer {
    /// An empty buffer.
    pub fn new(cfg: ReorderConfig) -> Self {
        ReorderBuffer {
            cfg: ReorderConfig {
                depth: cfg.depth.max(1),
                frame_samples: cfg.frame_samples.max(1),
                ..cfg
            },
            next: None,
            next_timestamp: 0,
            slots: VecDeque::new(),
            probation: None,
            started: false,
            last: Vec::new(),
            lost_run: 0,
            stats: ReorderStats::default(),
        }
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        *self = ReorderBuffer {
            stats: self.stats,
            ..ReorderBuffer::new(self.cfg)
        };
    }

    /// Offers one received frame.
    pub fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        samples: Vec<i16>,
    ) -> PushOutcome {
        let slot = Slot {
            timestamp,
            samples,
            arrived: now,
        };
        let Some(next) = self.next else {
            self.restart(sequence, slot);
            self.stats.received += 1;
            return PushOutcome::Queued;
        };
        let diff = sequence.wrapping_sub(next);
        if diff < MAX_GAP {
            let idx = usize::from(diff);
            if idx >= self.slots.len() {
                self.slots.resize_with(idx + 1, || None);
            }
            self.probation = None;
            return match self.slots.get_mut(idx) {
                Some(Some(_)) => {
                    self.stats.duplicates += 1;
                    PushOutcome::Duplicate
                }
                Some(entry) => {
                    *entry = Some(slot);
                    self.stats.received += 1;
                    PushOutcome::Queued
                }
                None => PushOutcome::Late,
            };
        }
        if diff > u16::MAX - MAX_MISORDER {
            // Before anything is released, an earlier packet moves the start back (the first
            // packet to arrive need not be the first sent).
            let behind = usize::from(next.wrapping_sub(sequence));
            if !self.started && self.slots.len() + behind <= usize::from(MAX_GAP) {
                for _ in 1..behind {
                    self.slots.push_front(None);
                }
                self.next = Some(sequence);
                self.next_timestamp = slot.timestamp;
                self.slots.push_front(Some(slot));
                self.probation = None;
                self.stats.received += 1;
                return PushOutcome::Queued;
            }
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        match self.probation.take() {
            Some((held, held_slot)) if sequence == held.wrapping_add(1) => {
                self.stats.resyncs += 1;
                self.stats.discarded += self.slots.iter().flatten().count() as u64;
                self.restart(held, held_slot);
                self.slots.push_back(Some(slot));
                self.stats.received += 2;
                PushOutcome::Resynced
            }
            _ => {
                self.probation = Some((sequence, slot));
                PushOutcome::Probation
            }
        }
    }

    fn restart(&mut self, sequence: u16, slot: Slot) {
        self.started = false;
        self.next = Some(sequence);
        self.next_timestamp = slot.timestamp;
        self.slots.clear();
        self.slots.push_back(Some(slot));
    }

    /// Releases the next frame in order, concealing a missing one once `depth` later packets
    /// are queued or the oldest of them has waited `max_wait`. Call until `None`.
    pub fn pop(&mut self, now: Instant) -> Option<ReorderedFrame> {
        let next = self.next?;
        let give_up = match self.slots.front()? {
            Some(_) => false,
            None => {
                let later = self.slots.iter().flatten().count();
                let oldest = self.slots.iter().flatten().map(|s| s.arrived).min()?;
                later >= self.cfg.depth
                    || now.saturating_duration_since(oldest) >= self.cfg.max_wait
            }
        };
        let frame = match self.slots.front() {
            Some(Some(_)) => {
                let slot = self.slots.pop_front().flatten()?;
                self.lost_run = 0;
                self.last.clone_from(&slot.samples);
                ReorderedFrame {
                    sequence: next,
                    timestamp: slot.timestamp,
                    samples: slot.samples,
                    source: FrameSource::Received,
                }
            }
            _ if give_up => {
                self.slots.pop_front();
                self.stats.concealed += 1;
                ReorderedFrame {
                    sequence: next,
                    timestamp: self.next_timestamp,
                    samples: self.conceal(),
                    source: FrameSource::Concealed,
                }
            }
            _ => return None,
        };
        self.started = true;
        self.next = Some(next.wrapping_add(1));
        self.next_timestamp = frame.timestamp.wrapping_add(frame.samples.len() as u32);
        Some(frame)
    }

    /// PLC-lite: the last frame at half, then quarter gain, then silence.
    fn conceal(&mut self) -> Vec<i16> {
        self.lost_run += 1;
        if self.last.is_empty() {
            return vec![0; self.cfg.frame_samples];
        }
        let shift = self.lost_run;
        if shift > 2 {
            return vec![0; self.last.len()];
        }
        self.last.iter().map(|s| s >> shift).collect()
    }

    /// Frames queued (received, not yet released).
    pub fn queued(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// The counters.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
