//! Call audio that ends in the gateway: the RTP leg of a call answered locally
//! ([`leg`]), its stream to an app over WebSocket ([`app`]), and the registry of live
//! streams the admin API lists.

pub mod app;
pub mod leg;
pub mod tap;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use switchboard_media::g711::Law;

/// The negotiated audio of a locally answered call, handed to whoever consumes it.
#[derive(Debug, Clone)]
pub struct AudioMedia {
    /// Where the far end wants RTP (from its SDP); `None` when on hold.
    pub remote: Option<SocketAddr>,
    /// The IP the call's SIP comes from: RTP from it is accepted besides the SDP's IP.
    pub peer_ip: Option<std::net::IpAddr>,
    /// Stamped by the leg on every packet accepted from the peer (the call's RTP timeout).
    pub activity: Arc<crate::media::Activity>,
    /// Our RTP port.
    pub local_port: u16,
    /// The negotiated G.711 law.
    pub law: Law,
    /// The negotiated telephone-event payload type.
    pub event_payload_type: Option<u8>,
    /// The socket, shared with the call (which keeps the port's lease).
    pub socket: Arc<tokio::net::UdpSocket>,
}

/// Live counters of one stream.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Frames (messages) sent to the app.
    pub frames_out: AtomicU64,
    /// Frames received from the app.
    pub frames_in: AtomicU64,
    /// Bytes of audio payload sent.
    pub bytes_out: AtomicU64,
    /// Bytes of audio payload received.
    pub bytes_in: AtomicU64,
    /// Audio frames dropped (a slow app, a full queue).
    pub dropped: AtomicU64,
    /// Messages from the app that were refused.
    pub rejected: AtomicU64,
    /// Marks echoed.
    pub marks: AtomicU64,
    /// Digits sent.
    pub digits: AtomicU64,
}

/// What the admin API shows of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    /// Stream id (`streamSid`).
    pub stream_sid: String,
    /// The call it belongs to, if any.
    pub call_id: Option<String>,
    /// `app` (we connect to an app), `ingest` (a CPaaS connected to us) or `fork`.
    pub kind: &'static str,
    /// App name, or the ingest target.
    pub target: String,
    /// `twilio` or `exotel`.
    pub mode: &'static str,
    /// `connecting`, `streaming` or `closing`.
    pub state: &'static str,
    /// RFC 3339 start time.
    pub started: String,
    /// Frames sent to the peer.
    pub frames_out: u64,
    /// Frames received from the peer.
    pub frames_in: u64,
    /// Audio bytes sent.
    pub bytes_out: u64,
    /// Audio bytes received.
    pub bytes_in: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Refused messages.
    pub rejected: u64,
    /// Marks echoed.
    pub marks: u64,
    /// Digits sent.
    pub digits: u64,
}

/// One registered stream.
#[derive(Debug)]
pub struct StreamEntry {
    /// Stream id.
    pub stream_sid: String,
    /// Call id.
    pub call_id: Option<String>,
    /// Kind (see [`StreamView::kind`]).
    pub kind: &'static str,
    /// App name or ingest target.
    pub target: String,
    /// Dialect name.
    pub mode: &'static str,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    state: Mutex<&'static str>,
    /// Counters.
    pub counters: StreamCounters,
}

impl StreamEntry {
    /// Set the state shown.
    pub fn set_state(&self, state: &'static str) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    fn view(&self) -> StreamView {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        StreamView {
            stream_sid: self.stream_sid.clone(),
            call_id: self.call_id.clone(),
            kind: self.kind,
            target: self.target.clone(),
            mode: self.mode,
            state: self.state.lock().map(|s| *s).unwrap_or("unknown"),
            started: switchboard_storage::rfc3339(self.started_ms),
            frames_out: get(&c.frames_out),
            frames_in: get(&c.frames_in),
            bytes_out: get(&c.bytes_out),
            bytes_in: get(&c.bytes_in),
            dropped: get(&c.dropped),
            rejected: get(&c.rejected),
            marks: get(&c.marks),
            digits: get(&c.digits),
        }
    }
}

/// The live streams, for the admin API. Entries leave when their [`StreamGuard`] drops.
#[derive(Debug, Default)]
pub struct Streams {
    live: Mutex<HashMap<String, Arc<StreamEntry>>>,
}

/// Keeps a stream registered; dropping it removes the entry.
#[derive(Debug)]
pub struct StreamGuard {
    streams: Arc<Streams>,
    /// The entry.
    pub entry: Arc<StreamEntry>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Ok(mut live) = self.streams.live.lock() {
            live.remove(&self.entry.stream_sid);
            metrics::gauge!("switchboard_streams_active").set(live.len() as f64);
        }
    }
}

/// A new Twilio-style stream id: `MZ` and 32 hex digits.
pub fn new_stream_sid() -> String {
    format!("MZ{:032x}", rand::random::<u128>())
}

impl Streams {
    /// Register a stream.
    pub fn register(
        self: &Arc<Self>,
        stream_sid: String,
        call_id: Option<String>,
        kind: &'static str,
        target: String,
        mode: &'static str,
    ) -> StreamGuard {
        let entry = Arc::new(StreamEntry {
            stream_sid: stream_sid.clone(),
            call_id,
            kind,
            target,
            mode,
            started_ms: switchboard_storage::now_unix_ms(),
            state: Mutex::new("connecting"),
            counters: StreamCounters::default(),
        });
        if let Ok(mut live) = self.live.lock() {
            live.insert(stream_sid, Arc::clone(&entry));
            metrics::gauge!("switchboard_streams_active").set(live.len() as f64);
        }
        StreamGuard {
            streams: Arc::clone(self),
            entry,
        }
    }

    /// Every live stream, oldest first.
    pub fn list(&self) -> Vec<StreamView> {
        let mut v: Vec<StreamView> = self
            .live
            .lock()
            .map(|l| l.values().map(|e| e.view()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| {
            a.started
                .cmp(&b.started)
                .then(a.stream_sid.cmp(&b.stream_sid))
        });
        v
    }

    /// The streams of one call.
    pub fn for_call(&self, call_id: &str) -> Vec<StreamView> {
        let mut v = self.list();
        v.retain(|s| s.call_id.as_deref() == Some(call_id));
        v
    }

    /// How many are live.
    pub fn len(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
