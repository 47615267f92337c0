//! The ingest direction: a CPaaS (Twilio Media Streams or Exotel AgentStream) connects to our
//! WebSocket server and streams a call to us, so here the gateway plays the app's part.
//!
//! - [`IngestReader`] parses what a provider sends (`connected`, `start`, `media`, `dtmf`,
//!   `mark`, `stop`: the shapes [`StreamWriter`](super::StreamWriter) produces) strictly and
//!   with bounds, through a small state machine: `connected` (optional, once), then `start`
//!   (once), then `media` / `dtmf` / `mark`, then `stop`, after which nothing is accepted.
//!   Ids are checked (non-empty, bounded, printable ASCII without spaces), every message after
//!   `start` must name the started stream, sequence numbers must increase when present, the
//!   announced audio format must be one we decode, and media payloads are bounded before
//!   decoding. State is committed only once the whole message is valid.
//! - [`IngestWriter`] builds our answers (`media`, `mark`, `clear`: the shapes
//!   [`StreamReader`](super::StreamReader) accepts) with the dialect's wire types.
//!
//! Every rejection is a [`StreamError`], with the same metric reasons and close codes as the
//! app → gateway direction.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::{
    counter, exotel, object_field, str_field, to_json, truncate, twilio, Dialect, MediaFormat,
    Object, StreamError, Track,
};
use crate::resample::SampleRate;

/// Longest custom parameter name, in bytes.
pub const MAX_PARAMETER_NAME: usize = 64;
/// Longest custom parameter value, in bytes.
pub const MAX_PARAMETER_VALUE: usize = 256;
/// Longest `from` / `to`, in bytes.
pub const MAX_NUMBER_LEN: usize = 64;

/// Bounds applied by [`IngestReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest text frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Most audio one `media` message may carry, in milliseconds of the announced format.
    pub max_payload_ms: usize,
    /// Longest mark name, in bytes.
    pub max_mark_name: usize,
    /// Most custom parameters in `start`.
    pub max_parameters: usize,
    /// Longest stream, call or account id, in bytes.
    pub max_id_len: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_frame_bytes: 64 * 1024,
            max_payload_ms: 1000,
            max_mark_name: 256,
            max_parameters: 32,
            max_id_len: 128,
        }
    }
}

/// What the provider's `start` message announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStart {
    /// The stream's id; every later message must carry it.
    pub stream_sid: String,
    /// Call identifier.
    pub call_sid: String,
    /// Account identifier.
    pub account_sid: String,
    /// Caller number, when sent (Exotel).
    pub from: Option<String>,
    /// Called number, when sent (Exotel).
    pub to: Option<String>,
    /// The audio format of `media` payloads.
    pub format: MediaFormat,
    /// Tracks that will be streamed (Twilio `tracks`; `[Inbound]` when absent and for Exotel).
    pub tracks: Vec<Track>,
    /// Custom parameters the stream was started with.
    pub custom_parameters: BTreeMap<String, String>,
}

/// A validated provider → gateway message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestEvent {
    /// The connection is up (no stream yet).
    Connected,
    /// The stream has started.
    Start(IngestStart),
    /// Audio in the announced format (µ-law bytes, or PCM16LE bytes).
    Media {
        /// The track it belongs to (always `Inbound` for Exotel).
        track: Track,
        /// The decoded payload.
        payload: Vec<u8>,
    },
    /// A DTMF digit: one of `0`-`9`, `*`, `#`, `A`-`D`.
    Dtmf {
        /// The digit.
        digit: char,
    },
    /// The echo of a mark we sent: the audio before it has played (or was cleared).
    Mark {
        /// The label.
        name: String,
    },
    /// The stream has ended; the reader accepts nothing more.
    Stop,
}

/// The provider events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connected,
    Start,
    Media,
    Dtmf,
    Mark,
    Stop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Connected => "connected",
            Kind::Start => "start",
            Kind::Media => "media",
            Kind::Dtmf => "dtmf",
            Kind::Mark => "mark",
            Kind::Stop => "stop",
        }
    }
}

/// A dialect's keys, and the field paths reported in errors.
struct Names {
    stream_sid: &'static str,
    sequence: &'static str,
    start_stream_sid: (&'static str, &'static str),
    call_sid: (&'static str, &'static str),
    account_sid: (&'static str, &'static str),
    custom_parameters: (&'static str, &'static str),
    parameter_name: &'static str,
    parameter_value: &'static str,
    stop_call_sid: (&'static str, &'static str),
    stop_account_sid: (&'static str, &'static str),
}

const TWILIO: Names = Names {
    stream_sid: "streamSid",
    sequence: "sequenceNumber",
    start_stream_sid: ("streamSid", "start.streamSid"),
    call_sid: ("callSid", "start.callSid"),
    account_sid: ("accountSid", "start.accountSid"),
    custom_parameters: ("customParameters", "start.customParameters"),
    parameter_name: "start.customParameters (name)",
    parameter_value: "start.customParameters (value)",
    stop_call_sid: ("callSid", "stop.callSid"),
    stop_account_sid: ("accountSid", "stop.accountSid"),
};

const EXOTEL: Names = Names {
    stream_sid: "stream_sid",
    sequence: "sequence_number",
    start_stream_sid: ("stream_sid", "start.stream_sid"),
    call_sid: ("call_sid", "start.call_sid"),
    account_sid: ("account_sid", "start.account_sid"),
    custom_parameters: ("custom_parameters", "start.custom_parameters"),
    parameter_name: "start.custom_parameters (name)",
    parameter_value: "start.custom_parameters (value)",
    stop_call_sid: ("call_sid", "stop.call_sid"),
    stop_account_sid: ("account_sid", "stop.account_sid"),
};

fn names(dialect: Dialect) -> &'static Names {
    match dialect {
        Dialect::Twilio => &TWILIO,
        Dialect::Exotel => &EXOTEL,
    }
}

/// `"inbound"` or `"outbound"`.
fn parse_track(s: &str) -> Option<Track> {
    match s {
        "inbound" => Some(Track::Inbound),
        "outbound" => Some(Track::Outbound),
        _ => None,
    }
}

/// An id: non-empty, at most `max` bytes, printable ASCII without spaces.
fn check_id(id: &str, field: &'static str, max: usize) -> Result<(), StreamError> {
    if id.is_empty() || id.len() > max || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StreamError::BadId { field });
    }
    Ok(())
}

/// A required id field.
fn id_field(
    obj: &Object,
    (key, field): (&'static str, &'static str),
    max: usize,
) -> Result<String, StreamError> {
    let id = str_field(obj, key, field)?.ok_or(StreamError::MissingField { field })?;
    check_id(id, field, max)?;
    Ok(id.into())
}

/// An optional string of at most `max` bytes.
fn short_field(
    obj: &Object,
    key: &str,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, StreamError> {
    match str_field(obj, key, field)? {
        Some(s) if s.len() > max => Err(StreamError::FieldTooLong {
            field,
            len: s.len(),
            max,
        }),
        other => Ok(other.map(String::from)),
    }
}

/// An optional counter (number or decimal string) that must be valid when present.
fn optional_counter(
    obj: &Object,
    key: &str,
    field: &'static str,
) -> Result<Option<u64>, StreamError> {
    obj.get(key).map(|v| counter(v, field)).transpose()
}

fn unsupported(field: &'static str, value: &str) -> StreamError {
    StreamError::UnsupportedFormat {
        field,
        value: truncate(value),
    }
}

/// Twilio `start.mediaFormat`: µ-law, 8 kHz, mono only (the only format Twilio streams, and
/// the default when the object is absent).
fn twilio_format(start: &Object) -> Result<MediaFormat, StreamError> {
    let Some(mf) = object_field(start, "mediaFormat", "start.mediaFormat")? else {
        return Ok(MediaFormat::Mulaw8k);
    };
    const ENCODING: &str = "start.mediaFormat.encoding";
    const RATE: &str = "start.mediaFormat.sampleRate";
    const CHANNELS: &str = "start.mediaFormat.channels";
    let encoding = str_field(mf, "encoding", ENCODING)?
        .ok_or(StreamError::MissingField { field: ENCODING })?;
    if !encoding.eq_ignore_ascii_case("audio/x-mulaw") {
        return Err(unsupported(ENCODING, encoding));
    }
    let rate = optional_counter(mf, "sampleRate", RATE)?.unwrap_or(8000);
    if rate != 8000 {
        return Err(unsupported(RATE, &rate.to_string()));
    }
    let channels = optional_counter(mf, "channels", CHANNELS)?.unwrap_or(1);
    if channels != 1 {
        return Err(unsupported(CHANNELS, &channels.to_string()));
    }
    Ok(MediaFormat::Mulaw8k)
}

/// Encodings Exotel announces for little-endian PCM16 (`base64` is what its documentation
/// shows: raw "slin" audio, base64-encoded).
const PCM16_ENCODINGS: &[&str] = &[
    "audio/x-raw",
    "raw",
    "slin",
    "audio/l16",
    "pcm",
    "pcm16",
    "linear16",
    "base64",
];
/// Encodings Exotel announces for G.711 µ-law.
const MULAW_ENCODINGS: &[&str] = &["audio/x-mulaw", "ulaw", "mulaw", "pcmu"];

/// Exotel `start.media_format`: PCM16 at 8, 16 or 24 kHz, or µ-law at 8 kHz (PCM16 at 8 kHz
/// when the object, its encoding or its rate is absent). `bit_rate` is informational only.
fn exotel_format(start: &Object) -> Result<MediaFormat, StreamError> {
    let Some(mf) = object_field(start, "media_format", "start.media_format")? else {
        return Ok(MediaFormat::Pcm16(SampleRate::Hz8000));
    };
    const ENCODING: &str = "start.media_format.encoding";
    const RATE: &str = "start.media_format.sample_rate";
    const BIT_RATE: &str = "start.media_format.bit_rate";
    let mulaw = match str_field(mf, "encoding", ENCODING)? {
        None => false,
        Some(e) if PCM16_ENCODINGS.iter().any(|p| e.eq_ignore_ascii_case(p)) => false,
        Some(e) if MULAW_ENCODINGS.iter().any(|m| e.eq_ignore_ascii_case(m)) => true,
        Some(e) => return Err(unsupported(ENCODING, e)),
    };
    let hz = optional_counter(mf, "sample_rate", RATE)?.unwrap_or(8000);
    let rate = u32::try_from(hz)
        .ok()
        .and_then(SampleRate::from_hz)
        .ok_or_else(|| unsupported(RATE, &hz.to_string()))?;
    match mf.get("bit_rate") {
        None | Some(Value::String(_)) | Some(Value::Number(_)) => {}
        Some(_) => return Err(StreamError::WrongType { field: BIT_RATE }),
    }
    match (mulaw, rate) {
        (false, rate) => Ok(MediaFormat::Pcm16(rate)),
        (true, SampleRate::Hz8000) => Ok(MediaFormat::Mulaw8k),
        (true, _) => Err(unsupported(RATE, &hz.to_string())),
    }
}

/// Twilio `start.tracks`: a non-empty array of `"inbound"` / `"outbound"` (duplicates count
/// once); `[Inbound]` when absent.
fn twilio_tracks(start: &Object) -> Result<Vec<Track>, StreamError> {
    const FIELD: &str = "start.tracks";
    let items = match start.get("tracks") {
        None => return Ok(vec![Track::Inbound]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(StreamError::WrongType { field: FIELD }),
    };
    if items.is_empty() {
        return Err(StreamError::BadTrack { field: FIELD });
    }
    let mut tracks = Vec::with_capacity(2);
    for item in items {
        let Value::String(s) = item else {
            return Err(StreamError::WrongType { field: FIELD });
        };
        let track = parse_track(s).ok_or(StreamError::BadTrack { field: FIELD })?;
        if !tracks.contains(&track) {
            tracks.push(track);
        }
    }
    Ok(tracks)
}

/// Parses and validates the provider → gateway messages of one WebSocket connection.
#[derive(Debug, Clone)]
pub struct IngestReader {
    dialect: Dialect,
    limits: IngestLimits,
    connected: bool,
    start: Option<IngestStart>,
    stopped: bool,
    last_sequence: Option<u64>,
}

impl IngestReader {
    /// A reader for a new connection.
    pub fn new(dialect: Dialect, limits: IngestLimits) -> Self {
        IngestReader {
            dialect,
            limits,
            connected: false,
            start: None,
            stopped: false,
            last_sequence: None,
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// What `start` announced, once it has been accepted (kept after `stop`).
    pub fn started(&self) -> Option<&IngestStart> {
        self.start.as_ref()
    }

    /// Whether `stop` has been accepted (the reader is finished).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The largest decoded `media` payload accepted, in bytes, once the format is known.
    pub fn max_payload_bytes(&self) -> Option<usize> {
        self.start.as_ref().map(|s| self.payload_limit(s.format))
    }

    fn payload_limit(&self, format: MediaFormat) -> usize {
        self.limits
            .max_payload_ms
            .saturating_mul(format.bytes_per_ms())
    }

    /// Rejects a binary frame (neither protocol uses them).
    pub fn read_binary(&self, frame: &[u8]) -> StreamError {
        StreamError::BinaryFrame { len: frame.len() }
    }

    /// Parses one text frame.
    pub fn read_text(&mut self, frame: &str) -> Result<IngestEvent, StreamError> {
        let obj = super::frame_object(frame, self.limits.max_frame_bytes)?;
        let event = super::event_name(&obj)?;
        let kind = match event {
            "connected" => Kind::Connected,
            "start" => Kind::Start,
            "media" => Kind::Media,
            "dtmf" => Kind::Dtmf,
            "mark" => Kind::Mark,
            "stop" => Kind::Stop,
            "clear" => return Err(StreamError::UnexpectedEvent { event: "clear" }),
            other => {
                return Err(StreamError::UnknownEvent {
                    event: truncate(other),
                })
            }
        };
        if self.stopped {
            return Err(StreamError::Stopped { event: kind.name() });
        }
        let started = match (kind, &self.start) {
            (Kind::Connected, _) if self.connected || self.start.is_some() => {
                return Err(StreamError::ConnectedOutOfOrder)
            }
            (Kind::Connected, _) => None,
            (Kind::Start, Some(_)) => return Err(StreamError::AlreadyStarted),
            (Kind::Start, None) => None,
            (_, None) => return Err(StreamError::NotStarted { event: kind.name() }),
            (_, Some(start)) => {
                self.check_stream_sid(&obj, &start.stream_sid)?;
                Some(start)
            }
        };
        let n = names(self.dialect);
        let sequence = match obj.get(n.sequence) {
            Some(seq) => {
                let got = counter(seq, n.sequence)?;
                if let Some(previous) = self.last_sequence {
                    if got <= previous {
                        return Err(StreamError::SequenceNotMonotonic { previous, got });
                    }
                }
                Some(got)
            }
            None => None,
        };
        let event = match (kind, started) {
            (Kind::Connected, _) => {
                self.connected_body(&obj)?;
                IngestEvent::Connected
            }
            (Kind::Start, _) => IngestEvent::Start(self.start_body(&obj)?),
            (_, None) => return Err(StreamError::NotStarted { event: kind.name() }),
            (Kind::Media, Some(start)) => self.media_body(&obj, start)?,
            (Kind::Dtmf, Some(_)) => self.dtmf_body(&obj)?,
            (Kind::Mark, Some(_)) => self.mark_body(&obj)?,
            (Kind::Stop, Some(_)) => {
                self.stop_body(&obj)?;
                IngestEvent::Stop
            }
        };
        // Committed only once the whole message is valid.
        if sequence.is_some() {
            self.last_sequence = sequence;
        }
        match &event {
            IngestEvent::Connected => self.connected = true,
            IngestEvent::Start(start) => self.start = Some(start.clone()),
            IngestEvent::Stop => self.stopped = true,
            _ => {}
        }
        Ok(event)
    }

    /// The top-level stream id: `streamSid` (Twilio), `stream_sid` or `streamSid` (Exotel).
    fn top_stream_sid<'a>(&self, obj: &'a Object) -> Result<Option<&'a str>, StreamError> {
        match self.dialect {
            Dialect::Twilio => str_field(obj, "streamSid", "streamSid"),
            Dialect::Exotel => match str_field(obj, "stream_sid", "stream_sid")? {
                Some(sid) => Ok(Some(sid)),
                None => str_field(obj, "streamSid", "streamSid"),
            },
        }
    }

    fn check_stream_sid(&self, obj: &Object, expected: &str) -> Result<(), StreamError> {
        let field = names(self.dialect).stream_sid;
        let sid = self
            .top_stream_sid(obj)?
            .ok_or(StreamError::MissingField { field })?;
        if sid != expected {
            return Err(StreamError::StreamSidMismatch { got: truncate(sid) });
        }
        Ok(())
    }

    fn connected_body(&self, obj: &Object) -> Result<(), StreamError> {
        if self.dialect == Dialect::Twilio {
            str_field(obj, "protocol", "protocol")?;
            str_field(obj, "version", "version")?;
        }
        Ok(())
    }

    fn start_body(&self, obj: &Object) -> Result<IngestStart, StreamError> {
        let n = names(self.dialect);
        let max_id = self.limits.max_id_len;
        let start = object_field(obj, "start", "start")?
            .ok_or(StreamError::MissingField { field: "start" })?;
        // The id is at the top level and repeated in `start`: either will do, both must agree.
        let (inner_key, inner_field) = n.start_stream_sid;
        let stream_sid = match (
            self.top_stream_sid(obj)?,
            str_field(start, inner_key, inner_field)?,
        ) {
            (Some(top), Some(inner)) if top != inner => {
                return Err(StreamError::StreamSidMismatch {
                    got: truncate(inner),
                })
            }
            (Some(sid), _) => {
                check_id(sid, n.stream_sid, max_id)?;
                sid
            }
            (None, Some(sid)) => {
                check_id(sid, inner_field, max_id)?;
                sid
            }
            (None, None) => {
                return Err(StreamError::MissingField {
                    field: n.stream_sid,
                })
            }
        };
        let call_sid = id_field(start, n.call_sid, max_id)?;
        let account_sid = id_field(start, n.account_sid, max_id)?;
        let from = short_field(start, "from", "start.from", MAX_NUMBER_LEN)?;
        let to = short_field(start, "to", "start.to", MAX_NUMBER_LEN)?;
        let (format, tracks) = match self.dialect {
            Dialect::Twilio => (twilio_format(start)?, twilio_tracks(start)?),
            Dialect::Exotel => (exotel_format(start)?, vec![Track::Inbound]),
        };
        let custom_parameters = self.parameters(start, n)?;
        Ok(IngestStart {
            stream_sid: stream_sid.into(),
            call_sid,
            account_sid,
            from,
            to,
            format,
            tracks,
            custom_parameters,
        })
    }

    fn parameters(
        &self,
        start: &Object,
        n: &Names,
    ) -> Result<BTreeMap<String, String>, StreamError> {
        let (key, field) = n.custom_parameters;
        let Some(params) = object_field(start, key, field)? else {
            return Ok(BTreeMap::new());
        };
        if params.len() > self.limits.max_parameters {
            return Err(StreamError::TooManyParameters {
                count: params.len(),
                max: self.limits.max_parameters,
            });
        }
        let mut out = BTreeMap::new();
        for (name, value) in params {
            let Value::String(value) = value else {
                return Err(StreamError::WrongType {
                    field: n.parameter_value,
                });
            };
            if name.len() > MAX_PARAMETER_NAME {
                return Err(StreamError::FieldTooLong {
                    field: n.parameter_name,
                    len: name.len(),
                    max: MAX_PARAMETER_NAME,
                });
            }
            if value.len() > MAX_PARAMETER_VALUE {
                return Err(StreamError::FieldTooLong {
                    field: n.parameter_value,
                    len: value.len(),
                    max: MAX_PARAMETER_VALUE,
                });
            }
            out.insert(name.clone(), value.clone());
        }
        Ok(out)
    }

    fn media_body(&self, obj: &Object, start: &IngestStart) -> Result<IngestEvent, StreamError> {
        let media = object_field(obj, "media", "media")?
            .ok_or(StreamError::MissingField { field: "media" })?;
        let track = match self.dialect {
            Dialect::Twilio => match str_field(media, "track", "media.track")? {
                None => Track::Inbound,
                Some(s) => parse_track(s).ok_or(StreamError::BadTrack {
                    field: "media.track",
                })?,
            },
            Dialect::Exotel => Track::Inbound,
        };
        // Only the tracks `start` announced are streamed.
        if !start.tracks.contains(&track) {
            return Err(StreamError::BadTrack {
                field: "media.track",
            });
        }
        optional_counter(media, "chunk", "media.chunk")?;
        optional_counter(media, "timestamp", "media.timestamp")?;
        let payload =
            str_field(media, "payload", "media.payload")?.ok_or(StreamError::MissingField {
                field: "media.payload",
            })?;
        let payload = decode_media(payload, start.format, self.payload_limit(start.format))?;
        Ok(IngestEvent::Media { track, payload })
    }

    fn dtmf_body(&self, obj: &Object) -> Result<IngestEvent, StreamError> {
        let dtmf = object_field(obj, "dtmf", "dtmf")?
            .ok_or(StreamError::MissingField { field: "dtmf" })?;
        match self.dialect {
            Dialect::Twilio => {
                str_field(dtmf, "track", "dtmf.track")?;
            }
            Dialect::Exotel => {
                optional_counter(dtmf, "duration", "dtmf.duration")?;
            }
        }
        let digit = str_field(dtmf, "digit", "dtmf.digit")?.ok_or(StreamError::MissingField {
            field: "dtmf.digit",
        })?;
        let mut chars = digit.chars();
        match (chars.next(), chars.next()) {
            (Some(c @ ('0'..='9' | '*' | '#' | 'A'..='D')), None) => {
                Ok(IngestEvent::Dtmf { digit: c })
            }
            _ => Err(StreamError::BadDtmfDigit {
                digit: truncate(digit),
            }),
        }
    }

    fn mark_body(&self, obj: &Object) -> Result<IngestEvent, StreamError> {
        Ok(IngestEvent::Mark {
            name: super::mark_name(obj, self.limits.max_mark_name)?.into(),
        })
    }

    /// `stop` may carry the call's ids (and, for Exotel, a reason): only their types are
    /// checked.
    fn stop_body(&self, obj: &Object) -> Result<(), StreamError> {
        let n = names(self.dialect);
        if let Some(stop) = object_field(obj, "stop", "stop")? {
            let (key, field) = n.stop_call_sid;
            str_field(stop, key, field)?;
            let (key, field) = n.stop_account_sid;
            str_field(stop, key, field)?;
            if self.dialect == Dialect::Exotel {
                str_field(stop, "reason", "stop.reason")?;
            }
        }
        Ok(())
    }
}

/// Decodes a `media` payload. Provider chunk sizes vary, so PCM16 needs only whole samples.
fn decode_media(b64: &str, format: MediaFormat, max: usize) -> Result<Vec<u8>, StreamError> {
    super::decode_media(b64, format, max, 2)
}

/// Builds our answers to the provider (the app → gateway shapes), each accepted by
/// [`StreamReader`](super::StreamReader) for the same dialect, format and stream id. Exotel
/// messages carry a `sequence_number` counting from 1; Twilio ones carry none.
///
/// `media` payloads are sent as given: they must be non-empty, at most the provider's
/// per-message limit, and for Exotel PCM16 a multiple of 320 bytes (20 ms at 8 kHz).
#[derive(Debug, Clone)]
pub struct IngestWriter {
    dialect: Dialect,
    format: MediaFormat,
    stream_sid: String,
    sequence: u64,
}

impl IngestWriter {
    /// A writer for stream `stream_sid` (as announced in `start`) carrying `format`.
    pub fn new(dialect: Dialect, format: MediaFormat, stream_sid: impl Into<String>) -> Self {
        IngestWriter {
            dialect,
            format,
            stream_sid: stream_sid.into(),
            sequence: 0,
        }
    }

    /// The stream id.
    pub fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    /// The audio format `media` payloads must be in.
    pub fn format(&self) -> MediaFormat {
        self.format
    }

    fn next_sequence(&mut self) -> Option<String> {
        self.sequence += 1;
        Some(self.sequence.to_string())
    }

    /// `media`: audio to play to the caller, already in the stream's format.
    pub fn media(&mut self, payload: &[u8]) -> String {
        let payload = STANDARD.encode(payload);
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::FromApp::Media {
                stream_sid,
                media: twilio::MediaPayload { payload },
            }),
            Dialect::Exotel => to_json(&exotel::FromApp::Media {
                stream_sid,
                sequence_number: self.next_sequence(),
                media: exotel::MediaPayload { payload },
            }),
        }
    }

    /// `mark`: a label the provider echoes once the audio sent before it has played.
    pub fn mark(&mut self, name: &str) -> String {
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::FromApp::Mark {
                stream_sid,
                mark: twilio::Mark { name: name.into() },
            }),
            Dialect::Exotel => to_json(&exotel::FromApp::Mark {
                stream_sid,
                sequence_number: self.next_sequence(),
                mark: exotel::Mark { name: name.into() },
            }),
        }
    }

    /// `clear`: drop the audio queued at the provider (barge-in); pending marks are echoed.
    pub fn clear(&mut self) -> String {
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::FromApp::Clear { stream_sid }),
            Dialect::Exotel => to_json(&exotel::FromApp::Clear {
                stream_sid,
                sequence_number: self.next_sequence(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::{AppMessage, Limits, StartInfo, StreamReader, StreamWriter};
    use super::*;

    const SID: &str = "MZ00000000000000000000000000000001";

    fn text(v: Value) -> String {
        v.to_string()
    }

    fn info() -> StartInfo {
        StartInfo {
            account_sid: "AC0001".into(),
            call_sid: "CA0001".into(),
            from: Some("+15550100".into()),
            to: Some("+15550199".into()),
            tracks: vec![Track::Inbound, Track::Outbound],
            custom_parameters: [
                ("lang".to_string(), "en".to_string()),
                ("tenant".to_string(), "acme".to_string()),
            ]
            .into(),
        }
    }

    fn reader(dialect: Dialect) -> IngestReader {
        IngestReader::new(dialect, IngestLimits::default())
    }

    /// A reader that has accepted `StreamWriter::start(&info())` for `format`.
    fn started(dialect: Dialect, format: MediaFormat) -> IngestReader {
        let mut r = reader(dialect);
        let mut w = StreamWriter::new(dialect, format, SID);
        assert!(matches!(
            r.read_text(&w.start(&info())),
            Ok(IngestEvent::Start(_))
        ));
        r
    }

    fn pcm(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Every `StreamWriter` message is read back as the event it encodes.
    fn writer_round_trip(dialect: Dialect, format: MediaFormat) {
        let mut w = StreamWriter::new(dialect, format, SID);
        let mut r = reader(dialect);
        assert_eq!(r.read_text(&w.connected()), Ok(IngestEvent::Connected));
        assert_eq!(r.started(), None);
        let expected = IngestStart {
            stream_sid: SID.into(),
            call_sid: "CA0001".into(),
            account_sid: "AC0001".into(),
            from: (dialect == Dialect::Exotel).then(|| "+15550100".into()),
            to: (dialect == Dialect::Exotel).then(|| "+15550199".into()),
            format,
            tracks: match dialect {
                Dialect::Twilio => vec![Track::Inbound, Track::Outbound],
                Dialect::Exotel => vec![Track::Inbound],
            },
            custom_parameters: info().custom_parameters,
        };
        assert_eq!(
            r.read_text(&w.start(&info())),
            Ok(IngestEvent::Start(expected.clone()))
        );
        assert_eq!(r.started(), Some(&expected));
        let tracks: &[Track] = match dialect {
            Dialect::Twilio => &[Track::Inbound, Track::Outbound],
            Dialect::Exotel => &[Track::Inbound],
        };
        let max = r.max_payload_bytes().unwrap();
        assert_eq!(max, 1000 * format.bytes_per_ms());
        // 20 ms, an uneven provider chunk (whole samples), and the full second.
        let sizes = [20 * format.bytes_per_ms(), 2 * 161, max];
        let mut ts = 0;
        for &track in tracks {
            for size in sizes {
                let payload = pcm(size);
                ts += 20;
                assert_eq!(
                    r.read_text(&w.media(track, ts, &payload)),
                    Ok(IngestEvent::Media { track, payload }),
                    "{dialect:?} {format:?} {size}"
                );
            }
        }
        for digit in "0123456789*#ABCD".chars() {
            assert_eq!(
                r.read_text(&w.dtmf(digit, 80)),
                Ok(IngestEvent::Dtmf { digit })
            );
        }
        for name in ["greeting done", "é", &"m".repeat(256)] {
            assert_eq!(
                r.read_text(&w.mark(name)),
                Ok(IngestEvent::Mark { name: name.into() })
            );
        }
        assert!(!r.is_stopped());
        assert_eq!(
            r.read_text(&w.stop("AC0001", "CA0001", "callended")),
            Ok(IngestEvent::Stop)
        );
        assert!(r.is_stopped());
        assert_eq!(r.started(), Some(&expected));
    }

    #[test]
    fn reads_everything_stream_writer_produces() {
        writer_round_trip(Dialect::Twilio, MediaFormat::Mulaw8k);
        writer_round_trip(Dialect::Exotel, MediaFormat::Mulaw8k);
        for rate in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000] {
            writer_round_trip(Dialect::Exotel, MediaFormat::Pcm16(rate));
        }
        // Twilio only streams µ-law: a PCM16 announcement is not one of its formats.
        let mut w = StreamWriter::new(
            Dialect::Twilio,
            MediaFormat::Pcm16(SampleRate::Hz16000),
            SID,
        );
        let err = reader(Dialect::Twilio).read_text(&w.start(&info()));
        assert!(matches!(
            err,
            Err(StreamError::UnsupportedFormat {
                field: "start.mediaFormat.encoding",
                ..
            })
        ));
    }

    #[test]
    fn stream_reader_accepts_everything_ingest_writer_produces() {
        let cases = [
            (Dialect::Twilio, MediaFormat::Mulaw8k, 160),
            (Dialect::Exotel, MediaFormat::Mulaw8k, 800),
            (
                Dialect::Exotel,
                MediaFormat::Pcm16(SampleRate::Hz8000),
                3200,
            ),
            (
                Dialect::Exotel,
                MediaFormat::Pcm16(SampleRate::Hz16000),
                320,
            ),
            (
                Dialect::Exotel,
                MediaFormat::Pcm16(SampleRate::Hz24000),
                48000,
            ),
        ];
        for (dialect, format, size) in cases {
            let mut w = IngestWriter::new(dialect, format, SID);
            assert_eq!((w.stream_sid(), w.format()), (SID, format));
            let mut r = StreamReader::new(dialect, format, SID, Limits::default());
            for round in 0..3 {
                let payload = pcm(size - round * 320 % size);
                let media = w.media(&payload);
                assert_eq!(
                    r.read_text(&media),
                    Ok(AppMessage::Media { payload }),
                    "{media:.120}"
                );
                let name = format!("turn-{round}");
                assert_eq!(r.read_text(&w.mark(&name)), Ok(AppMessage::Mark { name }));
                assert_eq!(r.read_text(&w.clear()), Ok(AppMessage::Clear));
            }
        }
        // Exotel answers count from 1; Twilio ones carry no counter.
        let mut w = IngestWriter::new(Dialect::Exotel, MediaFormat::Mulaw8k, SID);
        let seqs: Vec<Value> = [w.media(&[1]), w.mark("a"), w.clear()]
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap()["sequence_number"].clone())
            .collect();
        assert_eq!(seqs, [json!("1"), json!("2"), json!("3")]);
        let mut w = IngestWriter::new(Dialect::Twilio, MediaFormat::Mulaw8k, SID);
        assert_eq!(
            serde_json::from_str::<Value>(&w.media(&[0xFF, 0x7F, 0x00])).unwrap(),
            json!({"event": "media", "streamSid": SID, "media": {"payload": "/38A"}})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&w.clear()).unwrap(),
            json!({"event": "clear", "streamSid": SID})
        );
    }

    #[test]
    fn twilio_golden_session() {
        let sid = "MZ18ad3ab5a668481ce02b83e7395059f0";
        let payload = STANDARD.encode([0xFFu8, 0x7E, 0x7F, 0xFE, 0x00, 0x80]);
        let frames = [
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_string(),
            format!(
                r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC7a1b2c3d4e5f60718293a4b5c6d7e8f9","streamSid":"{sid}","callSid":"CA0f1e2d3c4b5a69788796a5b4c3d2e1f0","tracks":["inbound"],"customParameters":{{"caller":"Ada","queue":"support"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{sid}"}}"#
            ),
            format!(
                r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"{payload}"}},"streamSid":"{sid}"}}"#
            ),
            format!(
                r#"{{"event":"media","sequenceNumber":"3","media":{{"track":"inbound","chunk":"2","timestamp":"25","payload":"{payload}"}},"streamSid":"{sid}"}}"#
            ),
            format!(
                r#"{{"event":"dtmf","streamSid":"{sid}","sequenceNumber":"4","dtmf":{{"track":"inbound_track","digit":"7"}}}}"#
            ),
            format!(
                r#"{{"event":"mark","sequenceNumber":"6","streamSid":"{sid}","mark":{{"name":"prompt-1"}}}}"#
            ),
            format!(
                r#"{{"event":"stop","sequenceNumber":"7","streamSid":"{sid}","stop":{{"accountSid":"AC7a1b2c3d4e5f60718293a4b5c6d7e8f9","callSid":"CA0f1e2d3c4b5a69788796a5b4c3d2e1f0"}}}}"#
            ),
        ];
        let mut r = reader(Dialect::Twilio);
        let events: Vec<IngestEvent> = frames.iter().map(|f| r.read_text(f).unwrap()).collect();
        let media = IngestEvent::Media {
            track: Track::Inbound,
            payload: vec![0xFF, 0x7E, 0x7F, 0xFE, 0x00, 0x80],
        };
        assert_eq!(
            events,
            [
                IngestEvent::Connected,
                IngestEvent::Start(IngestStart {
                    stream_sid: sid.into(),
                    call_sid: "CA0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
                    account_sid: "AC7a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
                    from: None,
                    to: None,
                    format: MediaFormat::Mulaw8k,
                    tracks: vec![Track::Inbound],
                    custom_parameters: [
                        ("caller".to_string(), "Ada".to_string()),
                        ("queue".to_string(), "support".to_string()),
                    ]
                    .into(),
                }),
                media.clone(),
                media,
                IngestEvent::Dtmf { digit: '7' },
                IngestEvent::Mark {
                    name: "prompt-1".into()
                },
                IngestEvent::Stop,
            ]
        );
        // The answers we would send on this stream.
        let mut w = IngestWriter::new(Dialect::Twilio, MediaFormat::Mulaw8k, sid);
        assert_eq!(
            w.mark("prompt-1"),
            format!(r#"{{"event":"mark","streamSid":"{sid}","mark":{{"name":"prompt-1"}}}}"#)
        );
    }

    #[test]
    fn exotel_golden_session() {
        let sid = "b2a7c41e90d34f1d8e6a5c3b2a19f0e7";
        let audio = pcm(3200);
        let payload = STANDARD.encode(&audio);
        let frames = [
            r#"{"event":"connected"}"#.to_string(),
            format!(
                r#"{{"event":"start","sequence_number":1,"stream_sid":"{sid}","start":{{"stream_sid":"{sid}","call_sid":"7f3e9b2c1a0d4e5f6a7b8c9d0e1f2a3b","account_sid":"acme_corp1","from":"09876543210","to":"08047491899","custom_parameters":{{"lang":"hi-IN"}},"media_format":{{"encoding":"base64","sample_rate":"8000","bit_rate":"128kbps"}}}}}}"#
            ),
            format!(
                r#"{{"event":"media","sequence_number":2,"stream_sid":"{sid}","media":{{"chunk":1,"timestamp":"108","payload":"{payload}"}}}}"#
            ),
            format!(
                r##"{{"event":"dtmf","sequence_number":3,"stream_sid":"{sid}","dtmf":{{"duration":"240","digit":"#"}}}}"##
            ),
            format!(
                r#"{{"event":"mark","sequence_number":4,"stream_sid":"{sid}","mark":{{"name":"bot-turn-1"}}}}"#
            ),
            format!(
                r#"{{"event":"stop","sequence_number":5,"stream_sid":"{sid}","stop":{{"call_sid":"7f3e9b2c1a0d4e5f6a7b8c9d0e1f2a3b","account_sid":"acme_corp1","reason":"callended"}}}}"#
            ),
        ];
        let mut r = reader(Dialect::Exotel);
        let events: Vec<IngestEvent> = frames.iter().map(|f| r.read_text(f).unwrap()).collect();
        assert_eq!(
            events,
            [
                IngestEvent::Connected,
                IngestEvent::Start(IngestStart {
                    stream_sid: sid.into(),
                    call_sid: "7f3e9b2c1a0d4e5f6a7b8c9d0e1f2a3b".into(),
                    account_sid: "acme_corp1".into(),
                    from: Some("09876543210".into()),
                    to: Some("08047491899".into()),
                    format: MediaFormat::Pcm16(SampleRate::Hz8000),
                    tracks: vec![Track::Inbound],
                    custom_parameters: [("lang".to_string(), "hi-IN".to_string())].into(),
                }),
                IngestEvent::Media {
                    track: Track::Inbound,
                    payload: audio
                },
                IngestEvent::Dtmf { digit: '#' },
                IngestEvent::Mark {
                    name: "bot-turn-1".into()
                },
                IngestEvent::Stop,
            ]
        );
        let mut w = IngestWriter::new(Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz8000), sid);
        assert_eq!(
            w.clear(),
            format!(r#"{{"event":"clear","stream_sid":"{sid}","sequence_number":"1"}}"#)
        );
    }

    fn exotel_start(media_format: Option<Value>) -> String {
        let mut start = json!({
            "stream_sid": SID, "call_sid": "CA1", "account_sid": "AC1",
        });
        if let Some(mf) = media_format {
            start["media_format"] = mf;
        }
        text(json!({"event": "start", "stream_sid": SID, "start": start}))
    }

    fn twilio_start(start: Value) -> String {
        let mut base = json!({"accountSid": "AC1", "streamSid": SID, "callSid": "CA1"});
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), start) {
            base.extend(extra);
        }
        text(json!({"event": "start", "streamSid": SID, "start": base}))
    }

    fn start_format(dialect: Dialect, frame: &str) -> Result<MediaFormat, StreamError> {
        match reader(dialect).read_text(frame)? {
            IngestEvent::Start(s) => Ok(s.format),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn formats_and_start_defaults() {
        let ex = |mf| start_format(Dialect::Exotel, &exotel_start(mf));
        assert_eq!(ex(None), Ok(MediaFormat::Pcm16(SampleRate::Hz8000)));
        assert_eq!(
            ex(Some(json!({}))),
            Ok(MediaFormat::Pcm16(SampleRate::Hz8000))
        );
        assert_eq!(
            ex(Some(
                json!({"encoding": "audio/x-raw", "sample_rate": 16000, "bit_rate": 16})
            )),
            Ok(MediaFormat::Pcm16(SampleRate::Hz16000))
        );
        assert_eq!(
            ex(Some(json!({"encoding": "RAW", "sample_rate": "24000"}))),
            Ok(MediaFormat::Pcm16(SampleRate::Hz24000))
        );
        assert_eq!(
            ex(Some(
                json!({"encoding": "ulaw", "sample_rate": "8000", "bit_rate": "8"})
            )),
            Ok(MediaFormat::Mulaw8k)
        );
        let tw = |extra| start_format(Dialect::Twilio, &twilio_start(extra));
        assert_eq!(tw(json!({})), Ok(MediaFormat::Mulaw8k));
        assert_eq!(
            tw(json!({"mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": "8000"}})),
            Ok(MediaFormat::Mulaw8k)
        );
        // Defaults: no tracks means inbound only; no parameters means none.
        let Ok(IngestEvent::Start(s)) = reader(Dialect::Twilio).read_text(&twilio_start(json!({})))
        else {
            panic!()
        };
        assert_eq!(s.tracks, [Track::Inbound]);
        assert!(s.custom_parameters.is_empty() && s.from.is_none());
        // Duplicated tracks count once.
        let Ok(IngestEvent::Start(s)) = reader(Dialect::Twilio).read_text(&twilio_start(
            json!({"tracks": ["outbound", "inbound", "outbound"]}),
        )) else {
            panic!()
        };
        assert_eq!(s.tracks, [Track::Outbound, Track::Inbound]);
        // The stream id may come from `start` alone, and Exotel accepts `streamSid`.
        let inner_only = json!({"event": "start", "start": {"stream_sid": SID, "call_sid": "c", "account_sid": "a"}});
        assert!(reader(Dialect::Exotel).read_text(&text(inner_only)).is_ok());
        let alias = json!({"event": "start", "streamSid": SID, "start": {"call_sid": "c", "account_sid": "a"}});
        let mut r = reader(Dialect::Exotel);
        assert!(r.read_text(&text(alias)).is_ok());
        assert_eq!(
            r.read_text(&text(
                json!({"event": "mark", "streamSid": SID, "mark": {"name": "m"}})
            )),
            Ok(IngestEvent::Mark { name: "m".into() })
        );
    }

    #[test]
    fn state_machine() {
        let media = |sid: &str| {
            text(json!({"event": "media", "streamSid": sid, "media": {"payload": "/w=="}}))
        };
        let mut r = reader(Dialect::Twilio);
        assert_eq!(
            r.read_text(&media(SID)),
            Err(StreamError::NotStarted { event: "media" })
        );
        for event in ["dtmf", "mark", "stop"] {
            let err = r
                .read_text(&text(json!({"event": event, "streamSid": SID})))
                .unwrap_err();
            assert!(matches!(err, StreamError::NotStarted { event: e } if e == event));
        }
        let connected = text(json!({"event": "connected", "protocol": "Call"}));
        assert_eq!(r.read_text(&connected), Ok(IngestEvent::Connected));
        assert_eq!(
            r.read_text(&connected),
            Err(StreamError::ConnectedOutOfOrder)
        );
        let start = twilio_start(json!({}));
        assert!(matches!(r.read_text(&start), Ok(IngestEvent::Start(_))));
        assert_eq!(r.read_text(&start), Err(StreamError::AlreadyStarted));
        assert_eq!(
            r.read_text(&connected),
            Err(StreamError::ConnectedOutOfOrder)
        );
        assert_eq!(
            r.read_text(&text(json!({"event": "clear", "streamSid": SID}))),
            Err(StreamError::UnexpectedEvent { event: "clear" })
        );
        assert!(r.read_text(&media(SID)).is_ok());
        let stop = text(json!({"event": "stop", "streamSid": SID}));
        assert_eq!(r.read_text(&stop), Ok(IngestEvent::Stop));
        assert_eq!(
            r.read_text(&media(SID)),
            Err(StreamError::Stopped { event: "media" })
        );
        assert_eq!(
            r.read_text(&stop),
            Err(StreamError::Stopped { event: "stop" })
        );
        assert_eq!(
            r.read_text(&start),
            Err(StreamError::Stopped { event: "start" })
        );
        assert_eq!(
            r.read_text(&connected),
            Err(StreamError::Stopped { event: "connected" })
        );
        // `connected` is optional; an invalid `start` leaves the reader unstarted.
        let mut r = reader(Dialect::Exotel);
        assert!(r
            .read_text(&exotel_start(Some(json!({"encoding": "opus"}))))
            .is_err());
        assert!(r.started().is_none());
        assert!(r.read_text(&exotel_start(None)).is_ok());
        assert_eq!(
            r.read_text(&text(json!({"event": "connected"}))),
            Err(StreamError::ConnectedOutOfOrder)
        );
        // A rejected stop does not finish the stream.
        let bad_stop = text(json!({"event": "stop", "stream_sid": SID, "stop": {"reason": 5}}));
        assert_eq!(
            r.read_text(&bad_stop),
            Err(StreamError::WrongType {
                field: "stop.reason"
            })
        );
        assert!(!r.is_stopped());
        assert_eq!(
            r.read_text(&text(json!({"event": "stop", "stream_sid": SID}))),
            Ok(IngestEvent::Stop)
        );
    }

    #[test]
    fn stream_sid_must_match() {
        let mut r = started(Dialect::Twilio, MediaFormat::Mulaw8k);
        let mark =
            |key: &str, sid: &str| text(json!({"event": "mark", key: sid, "mark": {"name": "x"}}));
        assert_eq!(
            r.read_text(&mark("streamSid", "MZother")),
            Err(StreamError::StreamSidMismatch {
                got: "MZother".into()
            })
        );
        // Twilio does not take the Exotel spelling.
        assert_eq!(
            r.read_text(&mark("stream_sid", SID)),
            Err(StreamError::MissingField { field: "streamSid" })
        );
        assert!(r.read_text(&mark("streamSid", SID)).is_ok());
        let mut r = started(Dialect::Exotel, MediaFormat::Mulaw8k);
        assert!(r.read_text(&mark("stream_sid", SID)).is_ok());
        assert!(r.read_text(&mark("streamSid", SID)).is_ok());
        assert!(matches!(
            r.read_text(&mark("stream_sid", "x")),
            Err(StreamError::StreamSidMismatch { .. })
        ));
        // In `start`, the top-level and nested ids must agree.
        let split = json!({"event": "start", "stream_sid": SID, "start": {"stream_sid": "MZ2", "call_sid": "c", "account_sid": "a"}});
        assert_eq!(
            reader(Dialect::Exotel).read_text(&text(split)),
            Err(StreamError::StreamSidMismatch { got: "MZ2".into() })
        );
        let none = json!({"event": "start", "start": {"callSid": "c", "accountSid": "a"}});
        assert_eq!(
            reader(Dialect::Twilio).read_text(&text(none)),
            Err(StreamError::MissingField { field: "streamSid" })
        );
    }

    #[test]
    fn sequence_numbers_increase() {
        let mut r = started(Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz8000));
        // The writer's start carried sequence number 1.
        let mark = |seq: Value, name: &str| {
            text(
                json!({"event": "mark", "stream_sid": SID, "sequence_number": seq, "mark": {"name": name}}),
            )
        };
        assert_eq!(
            r.read_text(&mark(json!("1"), "a")),
            Err(StreamError::SequenceNotMonotonic {
                previous: 1,
                got: 1
            })
        );
        assert!(r.read_text(&mark(json!(2), "a")).is_ok());
        assert!(r.read_text(&mark(json!("5"), "a")).is_ok());
        // A rejected message does not advance the sequence.
        assert_eq!(
            r.read_text(&mark(json!("9"), "")),
            Err(StreamError::EmptyMarkName)
        );
        assert!(r.read_text(&mark(json!("6"), "a")).is_ok());
        assert_eq!(
            r.read_text(&mark(json!("4"), "a")),
            Err(StreamError::SequenceNotMonotonic {
                previous: 6,
                got: 4
            })
        );
        for bad in [
            json!(-1),
            json!("0x7"),
            json!(""),
            json!(1.5),
            json!(null),
            json!("99999999999999999999"),
        ] {
            assert_eq!(
                r.read_text(&mark(bad, "a")),
                Err(StreamError::BadCounter {
                    field: "sequence_number"
                })
            );
        }
        // Absent is fine.
        assert!(r
            .read_text(&text(
                json!({"event": "mark", "stream_sid": SID, "mark": {"name": "a"}})
            ))
            .is_ok());
        let mut r = started(Dialect::Twilio, MediaFormat::Mulaw8k);
        let dtmf = |seq: &str| {
            text(
                json!({"event": "dtmf", "streamSid": SID, "sequenceNumber": seq, "dtmf": {"digit": "1"}}),
            )
        };
        assert!(r.read_text(&dtmf("2")).is_ok());
        assert_eq!(
            r.read_text(&dtmf("2")),
            Err(StreamError::SequenceNotMonotonic {
                previous: 2,
                got: 2
            })
        );
    }

    #[test]
    fn oversized_payload_rejected_before_decoding() {
        let mut r = started(Dialect::Twilio, MediaFormat::Mulaw8k);
        // Not even base64, but far too long: the size check comes first.
        let junk = "!!!!".repeat(3000);
        let frame = text(json!({"event": "media", "streamSid": SID, "media": {"payload": junk}}));
        assert_eq!(
            r.read_text(&frame),
            Err(StreamError::PayloadTooLarge {
                len: 9000,
                max: 8000
            })
        );
        // Just over the limit: caught after decoding.
        let frame = text(
            json!({"event": "media", "streamSid": SID, "media": {"payload": STANDARD.encode(pcm(8001))}}),
        );
        assert_eq!(
            r.read_text(&frame),
            Err(StreamError::PayloadTooLarge {
                len: 8001,
                max: 8000
            })
        );
        let mut tight = IngestReader::new(
            Dialect::Exotel,
            IngestLimits {
                max_payload_ms: 20,
                ..IngestLimits::default()
            },
        );
        assert!(tight
            .read_text(&exotel_start(Some(json!({"sample_rate": "16000"}))))
            .is_ok());
        assert_eq!(tight.max_payload_bytes(), Some(640));
        let media = |n: usize| {
            text(
                json!({"event": "media", "stream_sid": SID, "media": {"payload": STANDARD.encode(pcm(n))}}),
            )
        };
        assert!(tight.read_text(&media(640)).is_ok());
        assert_eq!(
            tight.read_text(&media(642)),
            Err(StreamError::PayloadTooLarge { len: 642, max: 640 })
        );
        assert_eq!(
            tight.read_text(&media(321)),
            Err(StreamError::PayloadMisaligned {
                len: 321,
                multiple: 2
            })
        );
        assert!(tight.read_text(&media(2)).is_ok());
    }

    #[test]
    fn rejections_have_reasons_and_close_codes() {
        let (tw, ex) = (Dialect::Twilio, Dialect::Exotel);
        let mu = MediaFormat::Mulaw8k;
        let pcm8 = MediaFormat::Pcm16(SampleRate::Hz8000);
        let tmedia =
            |media: Value| text(json!({"event": "media", "streamSid": SID, "media": media}));
        let emedia =
            |media: Value| text(json!({"event": "media", "stream_sid": SID, "media": media}));
        let tdtmf = |digit: &str| {
            text(
                json!({"event": "dtmf", "streamSid": SID, "dtmf": {"track": "inbound_track", "digit": digit}}),
            )
        };
        let params = |n: usize| {
            let map: serde_json::Map<String, Value> =
                (0..n).map(|i| (format!("k{i}"), json!("v"))).collect();
            Value::Object(map)
        };
        // (dialect, reader already started with this format?, frame, reason, close code)
        let cases: Vec<(Dialect, Option<MediaFormat>, String, &str, u16)> = vec![
            (tw, None, "not json".into(), "malformed_json", 1007),
            (tw, None, "[1]".into(), "wrong_type", 1007),
            (
                tw,
                None,
                text(json!({"protocol": "Call"})),
                "missing_field",
                1008,
            ),
            (
                tw,
                None,
                text(json!({"event": "Start"})),
                "unknown_event",
                1003,
            ),
            (
                tw,
                None,
                text(json!({"event": "clear"})),
                "unexpected_event",
                1008,
            ),
            (
                tw,
                None,
                text(json!({"event": "media"})),
                "not_started",
                1008,
            ),
            (
                tw,
                None,
                format!("{{\"event\":\"media\",\"pad\":\"{}\"}}", "x".repeat(70_000)),
                "frame_too_large",
                1009,
            ),
            (
                tw,
                None,
                text(json!({"event": "connected", "protocol": 1})),
                "wrong_type",
                1007,
            ),
            // start
            (
                tw,
                None,
                text(json!({"event": "start", "streamSid": SID})),
                "missing_field",
                1008,
            ),
            (
                tw,
                None,
                text(json!({"event": "start", "streamSid": SID, "start": []})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"callSid": "C".repeat(129)})),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"callSid": "CA 1"})),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"accountSid": ""})),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"accountSid": "ACé"})),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"accountSid": "AC\t1"})),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"accountSid": 7})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"callSid": null})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                text(
                    json!({"event": "start", "streamSid": "MZ 1", "start": {"callSid": "c", "accountSid": "a"}}),
                ),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                text(
                    json!({"event": "start", "streamSid": "M".repeat(129), "start": {"callSid": "c", "accountSid": "a"}}),
                ),
                "bad_id",
                1008,
            ),
            (
                tw,
                None,
                text(json!({"event": "start", "streamSid": SID, "start": {"accountSid": "a"}})),
                "missing_field",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(
                    json!({"mediaFormat": {"encoding": "audio/x-raw", "sampleRate": 8000}}),
                ),
                "unsupported_format",
                1003,
            ),
            (
                tw,
                None,
                twilio_start(
                    json!({"mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 16000}}),
                ),
                "unsupported_format",
                1003,
            ),
            (
                tw,
                None,
                twilio_start(json!({"mediaFormat": {"encoding": "audio/x-mulaw", "channels": 2}})),
                "unsupported_format",
                1003,
            ),
            (
                tw,
                None,
                twilio_start(json!({"mediaFormat": {"sampleRate": 8000}})),
                "missing_field",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(
                    json!({"mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": "fast"}}),
                ),
                "bad_counter",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"tracks": []})),
                "bad_track",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"tracks": ["both"]})),
                "bad_track",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"tracks": [1]})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"tracks": "inbound"})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"customParameters": params(33)})),
                "too_many_parameters",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"customParameters": {"k".repeat(65): "v"}})),
                "field_too_long",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"customParameters": {"k": "v".repeat(257)}})),
                "field_too_long",
                1008,
            ),
            (
                tw,
                None,
                twilio_start(json!({"customParameters": {"k": 1}})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"customParameters": ["k"]})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                None,
                twilio_start(json!({"from": "1".repeat(65)})),
                "field_too_long",
                1008,
            ),
            (tw, None, twilio_start(json!({"to": 5})), "wrong_type", 1007),
            (
                ex,
                None,
                exotel_start(Some(json!({"encoding": "opus"}))),
                "unsupported_format",
                1003,
            ),
            (
                ex,
                None,
                exotel_start(Some(json!({"sample_rate": "44100"}))),
                "unsupported_format",
                1003,
            ),
            (
                ex,
                None,
                exotel_start(Some(json!({"sample_rate": 99999999999u64}))),
                "unsupported_format",
                1003,
            ),
            (
                ex,
                None,
                exotel_start(Some(
                    json!({"encoding": "audio/x-mulaw", "sample_rate": "16000"}),
                )),
                "unsupported_format",
                1003,
            ),
            (
                ex,
                None,
                exotel_start(Some(json!({"bit_rate": []}))),
                "wrong_type",
                1007,
            ),
            (
                ex,
                None,
                exotel_start(Some(json!("8000"))),
                "wrong_type",
                1007,
            ),
            // after start
            (
                tw,
                Some(mu),
                twilio_start(json!({})),
                "already_started",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "connected"})),
                "connected_out_of_order",
                1008,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "!!!!"})),
                "bad_base64",
                1007,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "A"})),
                "bad_base64",
                1007,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": ""})),
                "empty_payload",
                1008,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": 5})),
                "wrong_type",
                1007,
            ),
            (tw, Some(mu), tmedia(json!({})), "missing_field", 1008),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "/w==", "track": "both"})),
                "bad_track",
                1008,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "/w==", "chunk": "x"})),
                "bad_counter",
                1008,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "/w==", "timestamp": -5})),
                "bad_counter",
                1008,
            ),
            (
                tw,
                Some(mu),
                tmedia(json!({"payload": "!!!!".repeat(3000)})),
                "payload_too_large",
                1009,
            ),
            (
                ex,
                Some(pcm8),
                emedia(json!({"payload": STANDARD.encode([0u8; 3])})),
                "payload_misaligned",
                1008,
            ),
            (
                ex,
                Some(pcm8),
                emedia(json!({"payload": STANDARD.encode(vec![0u8; 16002])})),
                "payload_too_large",
                1009,
            ),
            (tw, Some(mu), tdtmf("E"), "bad_dtmf_digit", 1008),
            (tw, Some(mu), tdtmf("a"), "bad_dtmf_digit", 1008),
            (tw, Some(mu), tdtmf("12"), "bad_dtmf_digit", 1008),
            (tw, Some(mu), tdtmf(""), "bad_dtmf_digit", 1008),
            (tw, Some(mu), tdtmf("١"), "bad_dtmf_digit", 1008),
            (
                tw,
                Some(mu),
                text(json!({"event": "dtmf", "streamSid": SID, "dtmf": {}})),
                "missing_field",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": 1}})),
                "wrong_type",
                1007,
            ),
            (
                ex,
                Some(pcm8),
                text(
                    json!({"event": "dtmf", "stream_sid": SID, "dtmf": {"digit": "1", "duration": "long"}}),
                ),
                "bad_counter",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "mark", "streamSid": SID, "mark": {"name": ""}})),
                "empty_mark_name",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "mark", "streamSid": SID, "mark": {"name": "x".repeat(257)}})),
                "mark_name_too_long",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "mark", "streamSid": SID})),
                "missing_field",
                1008,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "stop", "streamSid": SID, "stop": "now"})),
                "wrong_type",
                1007,
            ),
            (
                tw,
                Some(mu),
                text(json!({"event": "stop", "streamSid": SID, "stop": {"callSid": 1}})),
                "wrong_type",
                1007,
            ),
        ];
        for (dialect, format, frame, reason, code) in cases {
            let mut r = match format {
                Some(format) => started(dialect, format),
                None => reader(dialect),
            };
            let err = r.read_text(&frame).unwrap_err();
            assert_eq!(
                (err.reason(), err.close_code()),
                (reason, code),
                "{frame:.100}: {err}"
            );
        }
        // An announced-only track: outbound media on an inbound-only Twilio stream.
        let mut r = reader(Dialect::Twilio);
        r.read_text(&twilio_start(json!({"tracks": ["inbound"]})))
            .unwrap();
        assert_eq!(
            r.read_text(&tmedia(json!({"payload": "/w==", "track": "outbound"}))),
            Err(StreamError::BadTrack {
                field: "media.track"
            })
        );
        let err = r.read_binary(&[0, 1]);
        assert_eq!(err, StreamError::BinaryFrame { len: 2 });
        // Echoed values are truncated.
        match reader(Dialect::Exotel)
            .read_text(&exotel_start(Some(json!({"encoding": "é".repeat(100)}))))
        {
            Err(StreamError::UnsupportedFormat { value, .. }) => assert!(value.len() <= 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_are_configurable() {
        let limits = IngestLimits {
            max_parameters: 2,
            max_id_len: 4,
            max_mark_name: 3,
            max_frame_bytes: 200,
            max_payload_ms: 1,
        };
        let mut r = IngestReader::new(Dialect::Twilio, limits);
        assert_eq!(r.dialect(), Dialect::Twilio);
        assert_eq!(r.max_payload_bytes(), None);
        let start = |sid: &str, params: Value| {
            text(
                json!({"event": "start", "streamSid": sid, "start": {"callSid": "CA1", "accountSid": "AC1", "customParameters": params}}),
            )
        };
        assert_eq!(
            r.read_text(&start("MZ123", json!({}))),
            Err(StreamError::BadId { field: "streamSid" })
        );
        assert_eq!(
            r.read_text(&start("MZ1", json!({"a": "1", "b": "2", "c": "3"}))),
            Err(StreamError::TooManyParameters { count: 3, max: 2 })
        );
        assert!(r
            .read_text(&start("MZ1", json!({"a": "1", "b": "2"})))
            .is_ok());
        assert_eq!(r.max_payload_bytes(), Some(8));
        let mark = text(json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "abcd"}}));
        assert_eq!(
            r.read_text(&mark),
            Err(StreamError::MarkNameTooLong { len: 4, max: 3 })
        );
        let media = text(
            json!({"event": "media", "streamSid": "MZ1", "media": {"payload": STANDARD.encode([1u8; 9])}}),
        );
        assert_eq!(
            r.read_text(&media),
            Err(StreamError::PayloadTooLarge { len: 9, max: 8 })
        );
        let big = format!("{{\"event\":\"mark\",\"x\":\"{}\"}}", "y".repeat(200));
        assert!(matches!(
            r.read_text(&big),
            Err(StreamError::FrameTooLarge { max: 200, .. })
        ));
    }

    /// Randomised robustness: 20,000 mutated and random frames through fresh and started
    /// readers of both dialects must not panic, and what is accepted respects the bounds.
    #[test]
    fn never_panics() {
        use crate::test_rng::XorShift;
        const SPICE: &[u8] = b"{}[]\":,\\ 0123456789-+.eEtrufalsn/=AZaz#*\xc3\xa9\x00\x7f";
        let mut seeds = Vec::new();
        let formats = [
            (Dialect::Twilio, MediaFormat::Mulaw8k),
            (Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz16000)),
            (Dialect::Exotel, MediaFormat::Mulaw8k),
        ];
        for (dialect, format) in formats {
            let mut w = StreamWriter::new(dialect, format, SID);
            seeds.push(w.connected());
            seeds.push(w.start(&info()));
            seeds.push(w.media(Track::Inbound, 20, &pcm(40)));
            seeds.push(w.media(Track::Outbound, 40, &pcm(6)));
            seeds.push(w.dtmf('#', 40));
            seeds.push(w.mark("done"));
            seeds.push(w.stop("AC0001", "CA0001", "callended"));
        }
        let fresh = [reader(Dialect::Twilio), reader(Dialect::Exotel)];
        let primed = [
            started(Dialect::Twilio, MediaFormat::Mulaw8k),
            started(Dialect::Exotel, MediaFormat::Pcm16(SampleRate::Hz16000)),
            started(Dialect::Exotel, MediaFormat::Mulaw8k),
        ];
        // Long-lived readers see the frames as one session.
        let mut sessions = primed.clone();
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut accepted = 0usize;
        const ITERATIONS: usize = 20_000;
        for i in 0..ITERATIONS {
            let bytes: Vec<u8> = if i % 7 == 0 {
                rng.bytes(160)
            } else {
                let seed = seeds[rng.below(seeds.len())].as_bytes();
                rng.mutate(seed, SPICE)
            };
            let frame = String::from_utf8_lossy(&bytes);
            let mut readers: Vec<IngestReader> = fresh.iter().chain(&primed).cloned().collect();
            for r in readers.iter_mut().chain(sessions.iter_mut()) {
                match r.read_text(&frame) {
                    Ok(IngestEvent::Media { payload, .. }) => {
                        accepted += 1;
                        let max = r.max_payload_bytes().unwrap_or(0);
                        assert!(!payload.is_empty() && payload.len() <= max);
                        if let Some(MediaFormat::Pcm16(_)) = r.started().map(|s| s.format) {
                            assert_eq!(payload.len() & 1, 0);
                        }
                    }
                    Ok(IngestEvent::Start(s)) => {
                        accepted += 1;
                        assert!(!s.stream_sid.is_empty() && s.stream_sid.len() <= 128);
                        assert!(s.custom_parameters.len() <= 32 && !s.tracks.is_empty());
                    }
                    Ok(_) => accepted += 1,
                    Err(e) => {
                        let _ = (e.reason(), e.close_code(), e.to_string());
                    }
                }
            }
            for (session, fresh) in sessions.iter_mut().zip(&primed) {
                if session.is_stopped() || rng.below(200) == 0 {
                    *session = fresh.clone();
                }
            }
        }
        assert!(accepted > ITERATIONS / 5, "only {accepted} accepted");
    }
}
