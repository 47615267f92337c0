//! The RTP side of a call whose audio ends in the gateway (an app stream, a device): one
//! task per call that owns the call's RTP socket, decodes what the far end sends into 20 ms
//! frames of 8 kHz PCM16 (reordered, losses concealed) plus RFC 4733 digits, and plays what
//! the consumer queues (paced every 20 ms, silence when nothing is queued, marks released
//! once their audio has been sent).
//!
//! The task never waits on its consumer: events go through a bounded channel and audio
//! frames that do not fit are dropped and counted, so a slow app or device cannot stall
//! the call. Commands come through a bounded channel too; the playout queue itself is
//! bounded by `max_playout_ms` (oldest audio dropped).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchboard_media::dtmf::{DigitEvent, DtmfDetector};
use switchboard_media::g711::Law;
use switchboard_media::jitter::{
    FrameKind, JitterError, PlayoutBuffer, PlayoutConfig, ReorderBuffer, ReorderConfig,
    MAX_PLAYOUT_DEPTH_MS,
};
use switchboard_media::latch::{Latch, Verdict};
use switchboard_media::resample::SampleRate;
use switchboard_media::rtp_audio::{AudioDepacketizer, AudioPacketizer, Depacketized};
use switchboard_media::streams::Track;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One frame: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples in a frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Events queued toward the consumer (2 s of frames) before audio is dropped.
const EVENT_QUEUE: usize = 100;
/// Commands queued toward the leg.
const COMMAND_QUEUE: usize = 256;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// What the leg plays and how.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// The negotiated G.711 law (PCMU or PCMA).
    pub law: Law,
    /// The negotiated telephone-event payload type, if any.
    pub event_payload_type: Option<u8>,
    /// Where to send RTP (from SDP); latches to the source of the first packet received from
    /// the SDP's or the signalling's IP (strict symmetric RTP, [`Latch`]).
    pub remote: Option<SocketAddr>,
    /// The IP the call's SIP comes from (a source the latch accepts besides the SDP's).
    pub signalling: Option<IpAddr>,
    /// Stamped on every packet accepted from the far end.
    pub activity: Option<Arc<crate::media::Activity>>,
    /// Most audio queued for playout.
    pub max_playout_ms: u32,
    /// Whether RTP is sent at all (false: listen only, e.g. a one-way stream).
    pub send: bool,
}

/// What the consumer asks of the leg.
#[derive(Debug)]
pub enum LegCommand {
    /// Queue 8 kHz PCM16 audio for playout.
    Play(Vec<i16>),
    /// Queue a mark after the audio queued so far.
    Mark(String),
    /// Drop queued audio; pending marks are released at once.
    Clear,
    /// The far end's media address changed (re-INVITE); `None` = on hold.
    Remote(Option<SocketAddr>),
}

/// What the leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// 20 ms of the far end's audio, 8 kHz PCM16, in order (concealed when lost).
    Audio {
        /// Whose audio: the far end's (`Inbound`) or, for a forked call, the other leg's.
        track: Track,
        /// Samples (160).
        pcm: Vec<i16>,
        /// Position of this frame in the stream, in ms (20 per frame).
        timestamp_ms: u64,
    },
    /// A digit the far end sent (RFC 4733).
    Dtmf {
        /// The digit.
        digit: char,
        /// Its duration.
        duration_ms: u32,
    },
    /// Marks whose audio has been played (or dropped by `Clear`), in order.
    Marks(Vec<String>),
}

/// Counters of a leg, readable while it runs.
#[derive(Debug, Default)]
pub struct LegStats {
    /// RTP packets received (valid).
    pub packets_in: AtomicU64,
    /// RTP packets sent.
    pub packets_out: AtomicU64,
    /// Datagrams that were not acceptable RTP.
    pub bad_packets: AtomicU64,
    /// RTP packets dropped because they came from someone else than the latched peer.
    pub foreign_packets: AtomicU64,
    /// Audio frames dropped because the consumer was behind.
    pub dropped_frames: AtomicU64,
    /// Digits detected.
    pub digits: AtomicU64,
    /// Queued playout, in ms (a gauge).
    pub playout_ms: AtomicU64,
    /// Playout samples dropped by overflow.
    pub playout_overflow_samples: AtomicU64,
}

/// A plain copy of [`LegStats`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct LegCounters {
    /// RTP packets received.
    pub packets_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Unacceptable datagrams.
    pub bad_packets: u64,
    /// Packets from strangers, dropped.
    pub foreign_packets: u64,
    /// Frames dropped toward a slow consumer.
    pub dropped_frames: u64,
    /// Digits detected.
    pub digits: u64,
    /// Queued playout in ms.
    pub playout_ms: u64,
}

impl LegStats {
    /// A snapshot.
    pub fn counters(&self) -> LegCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LegCounters {
            packets_in: get(&self.packets_in),
            packets_out: get(&self.packets_out),
            bad_packets: get(&self.bad_packets),
            foreign_packets: get(&self.foreign_packets),
            dropped_frames: get(&self.dropped_frames),
            digits: get(&self.digits),
            playout_ms: get(&self.playout_ms),
        }
    }
}

/// The consumer's end of a running leg. Dropping it stops the leg.
#[derive(Debug)]
pub struct Leg {
    /// Commands toward the leg.
    pub commands: mpsc::Sender<LegCommand>,
    /// Events from the leg; `None` once it stopped.
    pub events: mpsc::Receiver<LegEvent>,
    /// Its counters.
    pub stats: Arc<LegStats>,
    task: Option<JoinHandle<()>>,
}

impl Leg {
    /// Start the leg on `socket` (fails only on a playout setting out of range).
    pub fn spawn(socket: Arc<UdpSocket>, config: LegConfig) -> Result<Leg, JitterError> {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let stats = Arc::new(LegStats::default());
        let core = Core::new(config, Arc::clone(&stats), event_tx)?;
        let task = tokio::spawn(run(socket, core, command_rx));
        Ok(Leg {
            commands,
            events,
            stats,
            task: Some(task),
        })
    }

    /// The leg of a call's negotiated audio: RTP sent and received, playout up to
    /// `max_playout_ms`.
    pub fn for_call(
        media: crate::audio::AudioMedia,
        max_playout_ms: u32,
    ) -> Result<Leg, JitterError> {
        Leg::spawn(
            media.socket,
            LegConfig {
                law: media.law,
                event_payload_type: media.event_payload_type,
                remote: media.remote,
                signalling: media.peer_ip,
                activity: Some(media.activity),
                max_playout_ms,
                send: true,
            },
        )
    }

    /// A leg fed by something else than an RTP socket (a media stream, a tap on a relayed
    /// call): whoever holds the other ends of the channels produces the events and serves
    /// the commands.
    pub fn from_parts(
        commands: mpsc::Sender<LegCommand>,
        events: mpsc::Receiver<LegEvent>,
        stats: Arc<LegStats>,
    ) -> Leg {
        Leg {
            commands,
            events,
            stats,
            task: None,
        }
    }

    /// A pair of channels for [`Leg::from_parts`]: the leg, and the producer's ends.
    pub fn channel() -> (Leg, mpsc::Sender<LegEvent>, mpsc::Receiver<LegCommand>) {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        (
            Leg::from_parts(commands, events, Arc::new(LegStats::default())),
            event_tx,
            command_rx,
        )
    }

    /// Stop the leg now.
    pub fn stop(&self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The leg's state, apart from its I/O.
struct Core {
    config: LegConfig,
    depacketizer: AudioDepacketizer,
    reorder: ReorderBuffer,
    dtmf: DtmfDetector,
    playout: PlayoutBuffer,
    packetizer: AudioPacketizer,
    latch: Latch,
    /// Decoded audio not yet a whole frame.
    pending: Vec<i16>,
    frames_in: u64,
    frames_out: u64,
    stats: Arc<LegStats>,
    events: mpsc::Sender<LegEvent>,
    out: Vec<u8>,
}

impl Core {
    fn new(
        config: LegConfig,
        stats: Arc<LegStats>,
        events: mpsc::Sender<LegEvent>,
    ) -> Result<Core, JitterError> {
        let playout = PlayoutBuffer::new(PlayoutConfig {
            rate: SampleRate::Hz8000,
            max_depth_ms: config.max_playout_ms.clamp(200, MAX_PLAYOUT_DEPTH_MS),
            prebuffer_ms: 40,
            max_marks: 256,
        })?;
        Ok(Core {
            depacketizer: AudioDepacketizer::new(config.law, config.event_payload_type),
            reorder: ReorderBuffer::new(ReorderConfig::default()),
            dtmf: DtmfDetector::new(8000),
            playout,
            packetizer: AudioPacketizer::new(
                config.law,
                rand::random(),
                rand::random(),
                rand::random(),
            ),
            latch: Latch::new(config.remote, config.signalling),
            pending: Vec::with_capacity(2 * FRAME_SAMPLES),
            frames_in: 0,
            frames_out: 0,
            config,
            stats,
            events,
            out: Vec::with_capacity(12 + FRAME_SAMPLES),
        })
    }

    fn emit(&self, ev: LegEvent) {
        let audio = matches!(ev, LegEvent::Audio { .. });
        if self.events.try_send(ev).is_err() && audio {
            self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let parsed = match self.depacketizer.depacketize(data) {
            Ok(p) => p,
            Err(_) => {
                self.stats.bad_packets.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        // Strict symmetric RTP (RFC 4961): answer where the far end really sends from, and
        // take nothing from anyone else.
        if self.latch.on_packet(from) == Verdict::Foreign {
            self.stats.foreign_packets.fetch_add(1, Ordering::Relaxed);
            crate::media::count_foreign();
            return;
        }
        self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = &self.config.activity {
            a.touch();
        }
        match parsed {
            Depacketized::Audio(frame) => {
                self.reorder.push(
                    now,
                    frame.header.sequence,
                    frame.header.timestamp,
                    frame.samples,
                );
            }
            Depacketized::Event { header, event } => {
                self.dtmf.on_packet(now, header.timestamp, &event);
            }
            Depacketized::ComfortNoise { .. } => {}
        }
        self.drain(now);
    }

    /// Release reordered frames and finished digits.
    fn drain(&mut self, now: Instant) {
        while let Some(frame) = self.reorder.pop(now) {
            // Whatever the far end's packet time, the consumer gets 20 ms frames.
            self.pending.extend_from_slice(&frame.samples);
            while self.pending.len() >= FRAME_SAMPLES {
                let pcm: Vec<i16> = self.pending.drain(..FRAME_SAMPLES).collect();
                let timestamp_ms = self.frames_in * 20;
                self.frames_in += 1;
                self.emit(LegEvent::Audio {
                    track: Track::Inbound,
                    pcm,
                    timestamp_ms,
                });
            }
        }
        if self.dtmf.poll_timeout().is_some_and(|t| t <= now) {
            self.dtmf.handle_timeout(now);
        }
        while let Some(DigitEvent {
            digit, duration_ms, ..
        }) = self.dtmf.poll_event()
        {
            if let Some(digit) = digit {
                self.stats.digits.fetch_add(1, Ordering::Relaxed);
                self.emit(LegEvent::Dtmf { digit, duration_ms });
            }
        }
    }

    fn on_command(&mut self, cmd: LegCommand, now: Instant) {
        match cmd {
            LegCommand::Play(pcm) => self.playout.push(now, &pcm),
            LegCommand::Mark(name) => {
                // Over the mark limit: release it at once rather than lose it.
                if self.playout.push_mark(name.clone()).is_err() {
                    self.emit(LegEvent::Marks(vec![name]));
                }
            }
            LegCommand::Clear => {
                let marks = self.playout.clear();
                if !marks.is_empty() {
                    self.emit(LegEvent::Marks(marks));
                }
            }
            LegCommand::Remote(remote) => self.latch.rearm(remote),
        }
        self.stats
            .playout_ms
            .store(u64::from(self.playout.depth_ms()), Ordering::Relaxed);
    }

    /// One 20 ms tick: the next playout frame as RTP (`missed` ticks were skipped before it).
    fn on_tick(&mut self, now: Instant, missed: u32) -> Option<(SocketAddr, &[u8])> {
        self.drain(now);
        if missed > 0 {
            self.packetizer.skip(missed * FRAME_SAMPLES as u32);
        }
        let frame = self.playout.pull(now);
        let stats = self.playout.stats();
        self.stats
            .playout_overflow_samples
            .store(stats.dropped_samples, Ordering::Relaxed);
        self.stats
            .playout_ms
            .store(u64::from(self.playout.depth_ms()), Ordering::Relaxed);
        if !frame.marks.is_empty() {
            self.emit(LegEvent::Marks(frame.marks));
        }
        self.frames_out += 1;
        if !self.config.send {
            return None;
        }
        let remote = self.latch.destination()?;
        if frame.talkspurt_start && frame.kind != FrameKind::Silence {
            self.packetizer.start_talkspurt();
        }
        self.out.clear();
        self.packetizer.packetize(&frame.samples, &mut self.out);
        Some((remote, &self.out))
    }
}

async fn run(socket: Arc<UdpSocket>, mut core: Core, mut commands: mpsc::Receiver<LegCommand>) {
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_tick: Option<Instant> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => core.on_datagram(&buf[..n], from, Instant::now()),
                // ICMP port unreachable and the like: keep going.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            },
            cmd = commands.recv() => match cmd {
                Some(cmd) => core.on_command(cmd, Instant::now()),
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let missed = last_tick.map_or(0, |t| {
                    let gap = now.duration_since(t).as_millis() as u32;
                    (gap + 10) / 20
                }).saturating_sub(1);
                last_tick = Some(now);
                if let Some((to, pkt)) = core.on_tick(now, missed) {
                    if socket.send_to(pkt, to).await.is_ok() {
                        core.stats.packets_out.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if core.events.is_closed() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::dtmf;

    async fn pair() -> (Arc<UdpSocket>, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (Arc::new(a), b)
    }

    fn config(remote: SocketAddr) -> LegConfig {
        LegConfig {
            law: Law::Mu,
            event_payload_type: Some(101),
            remote: Some(remote),
            signalling: None,
            activity: None,
            max_playout_ms: 2000,
            send: true,
        }
    }

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[tokio::test]
    async fn decodes_in_order_and_reports_digits() {
        let (ours, far) = pair().await;
        let local = ours.local_addr().unwrap();
        let mut leg = Leg::spawn(ours, config(far.local_addr().unwrap())).unwrap();
        let mut p = AudioPacketizer::new(Law::Mu, 7, 100, 0);
        let mut pkts = Vec::new();
        for i in 0..5 {
            let mut out = Vec::new();
            p.packetize(&vec![(i * 100) as i16; 160], &mut out);
            pkts.push(out);
        }
        // Out of order: 0 2 1 3 4.
        for i in [0usize, 2, 1, 3, 4] {
            far.send_to(&pkts[i], local).await.unwrap();
        }
        let mut levels = Vec::new();
        while levels.len() < 5 {
            match tokio::time::timeout(Duration::from_secs(2), leg.events.recv()).await {
                Ok(Some(LegEvent::Audio { pcm, .. })) => levels.push(pcm[0]),
                Ok(Some(_)) => {}
                other => panic!("no audio: {other:?}"),
            }
        }
        let expected: Vec<i16> = (0..5)
            .map(|i| Law::Mu.decode_sample(Law::Mu.encode_sample(i * 100)))
            .collect();
        assert_eq!(levels, expected);
        // A digit: RFC 4733 packets for '5'.
        let start_ts = p.timestamp();
        for (seq, pkt) in dtmf::generate('5', 100, 10, 20, 8000)
            .unwrap()
            .iter()
            .enumerate()
        {
            let mut out = Vec::new();
            switchboard_media::rtp_audio::RtpHeader {
                marker: pkt.marker,
                payload_type: 101,
                sequence: 200 + seq as u16,
                timestamp: start_ts,
                ssrc: 7,
            }
            .write(&pkt.event.to_bytes(), &mut out);
            far.send_to(&out, local).await.unwrap();
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(2), leg.events.recv()).await {
                Ok(Some(LegEvent::Dtmf { digit, duration_ms })) => {
                    assert_eq!(digit, '5');
                    assert!(duration_ms >= 80, "{duration_ms}");
                    break;
                }
                Ok(Some(_)) => {}
                other => panic!("no digit: {other:?}"),
            }
        }
        assert_eq!(leg.stats.counters().digits, 1);
    }

    #[tokio::test]
    async fn plays_queued_audio_then_releases_the_mark_and_clear_drops() {
        let (ours, far) = pair().await;
        let mut leg = Leg::spawn(ours, config(far.local_addr().unwrap())).unwrap();
        leg.commands
            .send(LegCommand::Play(tone(800)))
            .await
            .unwrap();
        leg.commands
            .send(LegCommand::Mark("a".into()))
            .await
            .unwrap();
        // Five frames of tone, then silence; the mark comes after the fifth.
        let mut buf = [0u8; 2048];
        let mut loud = 0;
        for _ in 0..30 {
            let (n, _) = tokio::time::timeout(Duration::from_secs(1), far.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let pkt = switchboard_media::rtp_audio::parse(&buf[..n]).unwrap();
            let mut pcm = Vec::new();
            Law::Mu.decode(pkt.payload, &mut pcm);
            if pcm.iter().any(|s| s.unsigned_abs() > 1000) {
                loud += 1;
            }
        }
        assert_eq!(loud, 5, "800 samples of tone = 5 frames");
        match tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Some(LegEvent::Marks(m)) = leg.events.recv().await {
                    return m;
                }
            }
        })
        .await
        {
            Ok(m) => assert_eq!(m, vec!["a".to_string()]),
            Err(_) => panic!("mark not released"),
        }
        // Ten seconds queued, a mark, then clear: the mark comes back at once.
        leg.commands
            .send(LegCommand::Play(tone(80_000)))
            .await
            .unwrap();
        leg.commands
            .send(LegCommand::Mark("b".into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(leg.stats.counters().playout_ms > 1000);
        leg.commands.send(LegCommand::Clear).await.unwrap();
        let m = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                if let Some(LegEvent::Marks(m)) = leg.events.recv().await {
                    return m;
                }
            }
        })
        .await
        .expect("clear releases the mark");
        assert_eq!(m, vec!["b".to_string()]);
        assert_eq!(leg.stats.counters().playout_ms, 0);
    }

    #[tokio::test]
    async fn garbage_is_counted_and_a_slow_consumer_loses_frames_not_the_leg() {
        let (ours, far) = pair().await;
        let local = ours.local_addr().unwrap();
        let leg = Leg::spawn(ours, config(far.local_addr().unwrap())).unwrap();
        for _ in 0..10 {
            far.send_to(b"\x00garbage", local).await.unwrap();
        }
        let mut p = AudioPacketizer::new(Law::Mu, 9, 0, 0);
        for _ in 0..(EVENT_QUEUE + 50) {
            let mut out = Vec::new();
            p.packetize(&[0i16; 160], &mut out);
            far.send_to(&out, local).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c = leg.stats.counters();
        assert_eq!(c.bad_packets, 10);
        assert_eq!(c.packets_in, (EVENT_QUEUE + 50) as u64);
        assert!(c.dropped_frames >= 40, "{c:?}");
        // Still sending silence.
        assert!(c.packets_out > 0);
    }

    #[tokio::test]
    async fn a_stranger_neither_feeds_the_leg_nor_receives_its_audio() {
        let (ours, far) = pair().await;
        let local = ours.local_addr().unwrap();
        let mut leg = Leg::spawn(ours, config(far.local_addr().unwrap())).unwrap();
        let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let mut p = AudioPacketizer::new(Law::Mu, 7, 0, 0);
        let mut out = Vec::new();
        // The stranger speaks first (loud), then the far end (silence).
        for _ in 0..20 {
            out.clear();
            p.packetize(&tone(160), &mut out);
            stranger.send_to(&out, local).await.unwrap();
        }
        let mut q = AudioPacketizer::new(Law::Mu, 9, 0, 0);
        for _ in 0..5 {
            out.clear();
            q.packetize(&[0i16; 160], &mut out);
            far.send_to(&out, local).await.unwrap();
        }
        leg.commands
            .send(LegCommand::Play(tone(1600)))
            .await
            .unwrap();
        // The far end gets our audio; the stranger gets nothing.
        let mut buf = [0u8; 512];
        tokio::time::timeout(Duration::from_secs(1), far.recv_from(&mut buf))
            .await
            .expect("the far end gets RTP")
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stranger.recv_from(&mut buf))
                .await
                .is_err(),
            "the stranger got the leg's audio"
        );
        let deadline = Instant::now() + Duration::from_secs(1);
        while leg.stats.counters().packets_in < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let c = leg.stats.counters();
        assert_eq!((c.foreign_packets, c.packets_in), (20, 5), "{c:?}");
        // Nothing the stranger sent reached the consumer: every frame is silence.
        while let Ok(ev) = leg.events.try_recv() {
            if let LegEvent::Audio { pcm, .. } = ev {
                assert!(pcm.iter().all(|&x| x.abs() < 100), "stranger audio decoded");
            }
        }
    }
}
