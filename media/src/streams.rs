//! WebSocket media streams in the two wire dialects apps already speak: Twilio Media Streams
//! and Exotel AgentStream (Voicebot). The gateway plays the provider's part.
//!
//! - [`StreamWriter`] builds the gateway → app messages (`connected`, `start`, `media`, `dtmf`,
//!   `mark`, `stop`) with the dialect's keys and counters: a message `sequenceNumber` /
//!   `sequence_number` starting at 1 on `start`, and a per-track `chunk` starting at 1.
//! - [`StreamReader`] parses app → gateway messages (`media`, `mark`, `clear`) strictly and with
//!   bounds: frame size, known event names, the stream id, base64 and decoded payload size (at
//!   most `max_payload_ms` of audio; Exotel PCM16 in multiples of 320 bytes), mark names, and
//!   (Exotel) increasing sequence numbers when present. Every rejection is a [`StreamError`]
//!   with a stable [`reason`](StreamError::reason) for metrics and a WebSocket
//!   [`close_code`](StreamError::close_code) (RFC 6455 §7.4.1).
//!
//! Variants accepted from Exotel apps: `streamSid` for `stream_sid`, and counters as numbers
//! or decimal strings. Unknown extra fields are ignored in both dialects (a duplicated key
//! counts once: the last); a known field of the wrong JSON type is rejected. The wire types
//! themselves are in [`twilio`] and [`exotel`].

pub mod exotel;
pub mod ingest;
pub mod twilio;

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::resample::SampleRate;

/// Base64 decoding as apps send it: standard alphabet, padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Longest event name or stream id echoed back in an error.
const MAX_ECHO: usize = 64;
/// Longest decimal counter accepted.
const MAX_COUNTER_DIGITS: usize = 19;

/// Which provider's wire format a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Twilio Media Streams (camelCase).
    Twilio,
    /// Exotel AgentStream (snake_case).
    Exotel,
}

/// A media track, named from the gateway's point of view as Twilio does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Audio from the caller (the call leg) toward the app.
    Inbound,
    /// Audio played to the caller.
    Outbound,
}

impl Track {
    /// `"inbound"` or `"outbound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Inbound => "inbound",
            Track::Outbound => "outbound",
        }
    }
}

/// The audio format carried in `media` payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaFormat {
    /// G.711 µ-law at 8 kHz, one byte per sample (Twilio; Exotel `audio/x-mulaw`).
    Mulaw8k,
    /// Little-endian PCM16 mono (Exotel `audio/x-raw`).
    Pcm16(SampleRate),
}

impl MediaFormat {
    /// Payload bytes per millisecond of audio.
    pub fn bytes_per_ms(self) -> usize {
        match self {
            MediaFormat::Mulaw8k => 8,
            MediaFormat::Pcm16(rate) => rate.samples_per_ms() * 2,
        }
    }

    /// The sample rate.
    pub fn rate(self) -> SampleRate {
        match self {
            MediaFormat::Mulaw8k => SampleRate::Hz8000,
            MediaFormat::Pcm16(rate) => rate,
        }
    }
}

/// What the `start` message announces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartInfo {
    /// Account identifier (`accountSid` / `account_sid`).
    pub account_sid: String,
    /// Call identifier (`callSid` / `call_sid`).
    pub call_sid: String,
    /// Caller number (Exotel only; omitted when `None`).
    pub from: Option<String>,
    /// Called number (Exotel only; omitted when `None`).
    pub to: Option<String>,
    /// Tracks that will be streamed (Twilio only).
    pub tracks: Vec<Track>,
    /// Custom parameters from the route or the app's URL.
    pub custom_parameters: BTreeMap<String, String>,
}

fn to_json<T: Serialize>(msg: &T) -> String {
    match serde_json::to_string(msg) {
        Ok(s) => s,
        // Unreachable: plain structs of strings, numbers and string-keyed maps.
        Err(_) => String::from("{}"),
    }
}

/// Builds the gateway → app messages of one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    dialect: Dialect,
    format: MediaFormat,
    stream_sid: String,
    sequence: u64,
    chunks: [u64; 2],
}

impl StreamWriter {
    /// A writer for stream `stream_sid`.
    pub fn new(dialect: Dialect, format: MediaFormat, stream_sid: impl Into<String>) -> Self {
        StreamWriter {
            dialect,
            format,
            stream_sid: stream_sid.into(),
            sequence: 0,
            chunks: [0; 2],
        }
    }

    /// The stream id.
    pub fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    /// `connected`: the first message (carries no counter).
    pub fn connected(&mut self) -> String {
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Connected {
                protocol: "Call".into(),
                version: "1.0.0".into(),
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Connected),
        }
    }

    /// `start`: stream metadata, sent once after `connected`.
    pub fn start(&mut self, info: &StartInfo) -> String {
        let sequence_number = self.next_sequence();
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Start {
                sequence_number,
                start: twilio::StartMeta {
                    account_sid: info.account_sid.clone(),
                    stream_sid: stream_sid.clone(),
                    call_sid: info.call_sid.clone(),
                    tracks: info.tracks.iter().map(|t| t.as_str().into()).collect(),
                    custom_parameters: info.custom_parameters.clone(),
                    media_format: twilio::MediaFormat {
                        encoding: self.encoding().into(),
                        sample_rate: self.format.rate().hz(),
                        channels: 1,
                    },
                },
                stream_sid,
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Start {
                sequence_number,
                stream_sid: stream_sid.clone(),
                start: exotel::StartMeta {
                    stream_sid,
                    call_sid: info.call_sid.clone(),
                    account_sid: info.account_sid.clone(),
                    from: info.from.clone(),
                    to: info.to.clone(),
                    custom_parameters: info.custom_parameters.clone(),
                    media_format: exotel::MediaFormat {
                        encoding: self.encoding().into(),
                        sample_rate: self.format.rate().hz().to_string(),
                        bit_rate: match self.format {
                            MediaFormat::Mulaw8k => "8".into(),
                            MediaFormat::Pcm16(_) => "16".into(),
                        },
                    },
                },
            }),
        }
    }

    fn encoding(&self) -> &'static str {
        match self.format {
            MediaFormat::Mulaw8k => "audio/x-mulaw",
            MediaFormat::Pcm16(_) => "audio/x-raw",
        }
    }

    /// `media`: `payload` (already in the stream's format) on `track`, `timestamp_ms` after
    /// the stream started. Exotel has no track field.
    pub fn media(&mut self, track: Track, timestamp_ms: u64, payload: &[u8]) -> String {
        let sequence_number = self.next_sequence();
        let counter = &mut self.chunks[track as usize];
        *counter += 1;
        let chunk = counter.to_string();
        let timestamp = timestamp_ms.to_string();
        let payload = STANDARD.encode(payload);
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Media {
                sequence_number,
                media: twilio::MediaChunk {
                    track: track.as_str().into(),
                    chunk,
                    timestamp,
                    payload,
                },
                stream_sid,
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Media {
                sequence_number,
                stream_sid,
                media: exotel::MediaChunk {
                    chunk,
                    timestamp,
                    payload,
                },
            }),
        }
    }

    /// `dtmf`: a digit detected on the caller's side (Twilio reports `inbound_track` and no
    /// duration; Exotel reports the duration).
    pub fn dtmf(&mut self, digit: char, duration_ms: u32) -> String {
        let sequence_number = self.next_sequence();
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Dtmf {
                stream_sid,
                sequence_number,
                dtmf: twilio::Dtmf {
                    track: "inbound_track".into(),
                    digit: digit.to_string(),
                },
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Dtmf {
                sequence_number,
                stream_sid,
                dtmf: exotel::Dtmf {
                    digit: digit.to_string(),
                    duration: duration_ms.to_string(),
                },
            }),
        }
    }

    /// `mark`: the echo of an app mark whose audio has played or been cleared.
    pub fn mark(&mut self, name: &str) -> String {
        let sequence_number = self.next_sequence();
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Mark {
                sequence_number,
                stream_sid,
                mark: twilio::Mark { name: name.into() },
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Mark {
                sequence_number,
                stream_sid,
                mark: exotel::Mark { name: name.into() },
            }),
        }
    }

    /// `stop`: the stream has ended (`reason` is sent by Exotel only).
    pub fn stop(&mut self, account_sid: &str, call_sid: &str, reason: &str) -> String {
        let sequence_number = self.next_sequence();
        let stream_sid = self.stream_sid.clone();
        match self.dialect {
            Dialect::Twilio => to_json(&twilio::ToApp::Stop {
                sequence_number,
                stream_sid,
                stop: twilio::StopMeta {
                    account_sid: account_sid.into(),
                    call_sid: call_sid.into(),
                },
            }),
            Dialect::Exotel => to_json(&exotel::ToApp::Stop {
                sequence_number,
                stream_sid,
                stop: exotel::StopMeta {
                    call_sid: call_sid.into(),
                    account_sid: account_sid.into(),
                    reason: reason.into(),
                },
            }),
        }
    }
}

/// Bounds applied by [`StreamReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest text frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Most audio one `media` message may carry, in milliseconds.
    pub max_payload_ms: usize,
    /// Longest mark name, in bytes.
    pub max_mark_name: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_payload_ms: 1000,
            max_mark_name: 256,
        }
    }
}

/// A validated app → gateway message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppMessage {
    /// Audio to play, in the stream's format (µ-law bytes, or PCM16LE bytes).
    Media {
        /// The decoded payload.
        payload: Vec<u8>,
    },
    /// A mark to echo once the audio before it has played.
    Mark {
        /// The label.
        name: String,
    },
    /// Drop queued audio (barge-in).
    Clear,
}

/// Why an app message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Binary frames are not part of either protocol.
    #[error("binary frame of {len} bytes (only JSON text frames are accepted)")]
    BinaryFrame {
        /// Frame length.
        len: usize,
    },
    /// The frame exceeds [`Limits::max_frame_bytes`].
    #[error("frame of {len} bytes exceeds {max}")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not JSON (or is truncated, or nested too deeply).
    #[error("invalid JSON at line {line}, column {column}")]
    Json {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// A field (or the message itself) has the wrong JSON type.
    #[error("{field} has the wrong JSON type")]
    WrongType {
        /// The field, with its path (`message` for the top level).
        field: &'static str,
    },
    /// A required field is absent.
    #[error("missing field {field}")]
    MissingField {
        /// The field, with its path.
        field: &'static str,
    },
    /// The event name is not one of the protocol's.
    #[error("unknown event {event:?}")]
    UnknownEvent {
        /// The event name (truncated).
        event: String,
    },
    /// A protocol event that apps do not send (`start`, `stop`, ...).
    #[error("event {event:?} is not accepted from the app")]
    UnexpectedEvent {
        /// The event name.
        event: &'static str,
    },
    /// The message names another stream.
    #[error("stream id {got:?} does not match this stream")]
    StreamSidMismatch {
        /// The id sent (truncated).
        got: String,
    },
    /// A counter is not a non-negative decimal integer.
    #[error("invalid {field}")]
    BadCounter {
        /// The field.
        field: &'static str,
    },
    /// Sequence numbers must increase.
    #[error("sequence number {got} does not follow {previous}")]
    SequenceNotMonotonic {
        /// The last accepted sequence number.
        previous: u64,
        /// The one received.
        got: u64,
    },
    /// The payload is not base64.
    #[error("payload is not valid base64")]
    BadBase64,
    /// The payload is empty.
    #[error("empty media payload")]
    EmptyPayload,
    /// The decoded payload exceeds [`Limits::max_payload_ms`] of audio.
    #[error("media payload of {len} bytes exceeds {max}")]
    PayloadTooLarge {
        /// Decoded length (estimated from the base64 length when rejected early).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// PCM16 payloads must be a multiple of 320 bytes (Exotel apps), or of 2 bytes (whole
    /// samples, [`ingest`]).
    #[error("media payload of {len} bytes is not a multiple of {multiple}")]
    PayloadMisaligned {
        /// Decoded length.
        len: usize,
        /// Required multiple.
        multiple: usize,
    },
    /// A mark with an empty name.
    #[error("empty mark name")]
    EmptyMarkName,
    /// A mark name longer than [`Limits::max_mark_name`].
    #[error("mark name of {len} bytes exceeds {max}")]
    MarkNameTooLong {
        /// Name length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// ([`ingest`]) A stream event before `start`.
    #[error("event {event:?} before start")]
    NotStarted {
        /// The event name.
        event: &'static str,
    },
    /// ([`ingest`]) A second `start`.
    #[error("stream already started")]
    AlreadyStarted,
    /// ([`ingest`]) A second `connected`, or one after `start`.
    #[error("connected out of order")]
    ConnectedOutOfOrder,
    /// ([`ingest`]) Any event after `stop`.
    #[error("event {event:?} after stop")]
    Stopped {
        /// The event name.
        event: &'static str,
    },
    /// ([`ingest`]) A stream, call or account id that is empty, too long, or not printable
    /// ASCII without spaces.
    #[error("invalid {field}")]
    BadId {
        /// The field.
        field: &'static str,
    },
    /// ([`ingest`]) An audio format the gateway does not decode.
    #[error("unsupported {field} {value:?}")]
    UnsupportedFormat {
        /// The field.
        field: &'static str,
        /// The value sent (truncated).
        value: String,
    },
    /// ([`ingest`]) More custom parameters than allowed.
    #[error("{count} custom parameters exceed {max}")]
    TooManyParameters {
        /// Parameters sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// ([`ingest`]) A bounded string (custom parameter, number) is too long.
    #[error("{field} of {len} bytes exceeds {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// ([`ingest`]) A track that is not `inbound` / `outbound`, or was not announced.
    #[error("invalid {field}")]
    BadTrack {
        /// The field.
        field: &'static str,
    },
    /// ([`ingest`]) A DTMF digit that is not one of `0`-`9`, `*`, `#`, `A`-`D`.
    #[error("invalid DTMF digit {digit:?}")]
    BadDtmfDigit {
        /// The digit sent (truncated).
        digit: String,
    },
}

impl StreamError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            StreamError::BinaryFrame { .. } => "binary_frame",
            StreamError::FrameTooLarge { .. } => "frame_too_large",
            StreamError::Json { .. } => "malformed_json",
            StreamError::WrongType { .. } => "wrong_type",
            StreamError::MissingField { .. } => "missing_field",
            StreamError::UnknownEvent { .. } => "unknown_event",
            StreamError::UnexpectedEvent { .. } => "unexpected_event",
            StreamError::StreamSidMismatch { .. } => "stream_sid_mismatch",
            StreamError::BadCounter { .. } => "bad_counter",
            StreamError::SequenceNotMonotonic { .. } => "sequence_not_monotonic",
            StreamError::BadBase64 => "bad_base64",
            StreamError::EmptyPayload => "empty_payload",
            StreamError::PayloadTooLarge { .. } => "payload_too_large",
            StreamError::PayloadMisaligned { .. } => "payload_misaligned",
            StreamError::EmptyMarkName => "empty_mark_name",
            StreamError::MarkNameTooLong { .. } => "mark_name_too_long",
            StreamError::NotStarted { .. } => "not_started",
            StreamError::AlreadyStarted => "already_started",
            StreamError::ConnectedOutOfOrder => "connected_out_of_order",
            StreamError::Stopped { .. } => "after_stop",
            StreamError::BadId { .. } => "bad_id",
            StreamError::UnsupportedFormat { .. } => "unsupported_format",
            StreamError::TooManyParameters { .. } => "too_many_parameters",
            StreamError::FieldTooLong { .. } => "field_too_long",
            StreamError::BadTrack { .. } => "bad_track",
            StreamError::BadDtmfDigit { .. } => "bad_dtmf_digit",
        }
    }

    /// The WebSocket close code to end the connection with: 1003 unsupported data, 1007
    /// invalid payload data, 1008 policy violation, 1009 message too big.
    pub fn close_code(&self) -> u16 {
        match self {
            StreamError::BinaryFrame { .. }
            | StreamError::UnknownEvent { .. }
            | StreamError::UnsupportedFormat { .. } => 1003,
            StreamError::Json { .. } | StreamError::WrongType { .. } | StreamError::BadBase64 => {
                1007
            }
            StreamError::FrameTooLarge { .. } | StreamError::PayloadTooLarge { .. } => 1009,
            StreamError::MissingField { .. }
            | StreamError::UnexpectedEvent { .. }
            | StreamError::StreamSidMismatch { .. }
            | StreamError::BadCounter { .. }
            | StreamError::SequenceNotMonotonic { .. }
            | StreamError::EmptyPayload
            | StreamError::PayloadMisaligned { .. }
            | StreamError::EmptyMarkName
            | StreamError::MarkNameTooLong { .. }
            | StreamError::NotStarted { .. }
            | StreamError::AlreadyStarted
            | StreamError::ConnectedOutOfOrder
            | StreamError::Stopped { .. }
            | StreamError::BadId { .. }
            | StreamError::TooManyParameters { .. }
            | StreamError::FieldTooLong { .. }
            | StreamError::BadTrack { .. }
            | StreamError::BadDtmfDigit { .. } => 1008,
        }
    }
}

/// The app events.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Media,
    Mark,
    Clear,
}

type Object = serde_json::Map<String, Value>;

/// A string field: `None` when absent, an error when of another type.
fn str_field<'a>(
    obj: &'a Object,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, StreamError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(StreamError::WrongType { field }),
    }
}

/// An object field: `None` when absent, an error when of another type.
fn object_field<'a>(
    obj: &'a Object,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a Object>, StreamError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(StreamError::WrongType { field }),
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_ECHO);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A counter sent as a number or a decimal string.
fn counter(value: &Value, field: &'static str) -> Result<u64, StreamError> {
    let bad = StreamError::BadCounter { field };
    match value {
        Value::Number(n) => n.as_u64().ok_or(bad),
        Value::String(s) => {
            if s.is_empty()
                || s.len() > MAX_COUNTER_DIGITS
                || !s.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad);
            }
            s.parse().map_err(|_| bad)
        }
        _ => Err(bad),
    }
}

/// A text frame as a JSON object, within `max_frame_bytes`.
pub(crate) fn frame_object(frame: &str, max_frame_bytes: usize) -> Result<Object, StreamError> {
    if frame.len() > max_frame_bytes {
        return Err(StreamError::FrameTooLarge {
            len: frame.len(),
            max: max_frame_bytes,
        });
    }
    let value: Value = serde_json::from_str(frame).map_err(|e| StreamError::Json {
        line: e.line(),
        column: e.column(),
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(StreamError::WrongType { field: "message" }),
    }
}

/// A `mark` message's `mark.name`: present, non-empty, at most `max` bytes.
pub(crate) fn mark_name(obj: &Object, max: usize) -> Result<&str, StreamError> {
    let mark =
        object_field(obj, "mark", "mark")?.ok_or(StreamError::MissingField { field: "mark" })?;
    let name = str_field(mark, "name", "mark.name")?
        .ok_or(StreamError::MissingField { field: "mark.name" })?;
    if name.is_empty() {
        return Err(StreamError::EmptyMarkName);
    }
    if name.len() > max {
        return Err(StreamError::MarkNameTooLong {
            len: name.len(),
            max,
        });
    }
    Ok(name)
}

/// Decodes a `media` payload: bounded by the base64 length before decoding, then non-empty,
/// at most `max` bytes and, for PCM16, a multiple of `pcm_multiple` bytes.
pub(crate) fn decode_media(
    b64: &str,
    format: MediaFormat,
    max: usize,
    pcm_multiple: usize,
) -> Result<Vec<u8>, StreamError> {
    // Every 4 base64 characters carry 3 bytes.
    let estimate = b64.len() / 4 * 3;
    if estimate > max.saturating_add(2) {
        return Err(StreamError::PayloadTooLarge { len: estimate, max });
    }
    let payload = LENIENT_BASE64
        .decode(b64)
        .map_err(|_| StreamError::BadBase64)?;
    if payload.is_empty() {
        return Err(StreamError::EmptyPayload);
    }
    if payload.len() > max {
        return Err(StreamError::PayloadTooLarge {
            len: payload.len(),
            max,
        });
    }
    if matches!(format, MediaFormat::Pcm16(_)) && payload.len() % pcm_multiple.max(1) != 0 {
        return Err(StreamError::PayloadMisaligned {
            len: payload.len(),
            multiple: pcm_multiple,
        });
    }
    Ok(payload)
}

/// A message's `event`.
pub(crate) fn event_name(obj: &Object) -> Result<&str, StreamError> {
    str_field(obj, "event", "event")?.ok_or(StreamError::MissingField { field: "event" })
}

/// Parses and validates the app → gateway messages of one stream.
#[derive(Debug, Clone)]
pub struct StreamReader {
    dialect: Dialect,
    format: MediaFormat,
    stream_sid: String,
    limits: Limits,
    last_sequence: Option<u64>,
}

impl StreamReader {
    /// A reader for stream `stream_sid` carrying `format`.
    pub fn new(
        dialect: Dialect,
        format: MediaFormat,
        stream_sid: impl Into<String>,
        limits: Limits,
    ) -> Self {
        StreamReader {
            dialect,
            format,
            stream_sid: stream_sid.into(),
            limits,
            last_sequence: None,
        }
    }

    /// The largest decoded payload accepted, in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.limits
            .max_payload_ms
            .saturating_mul(self.format.bytes_per_ms())
    }

    /// Rejects a binary frame (neither protocol uses them).
    pub fn read_binary(&self, frame: &[u8]) -> StreamError {
        StreamError::BinaryFrame { len: frame.len() }
    }

    /// Parses one text frame.
    pub fn read_text(&mut self, frame: &str) -> Result<AppMessage, StreamError> {
        let obj = frame_object(frame, self.limits.max_frame_bytes)?;
        let event = event_name(&obj)?;
        let kind = match event {
            "media" => Kind::Media,
            "mark" => Kind::Mark,
            "clear" => Kind::Clear,
            "connected" => return Err(StreamError::UnexpectedEvent { event: "connected" }),
            "start" => return Err(StreamError::UnexpectedEvent { event: "start" }),
            "dtmf" => return Err(StreamError::UnexpectedEvent { event: "dtmf" }),
            "stop" => return Err(StreamError::UnexpectedEvent { event: "stop" }),
            other => {
                return Err(StreamError::UnknownEvent {
                    event: truncate(other),
                })
            }
        };
        self.check_stream_sid(&obj)?;
        let sequence = match (obj.get("sequence_number"), self.dialect) {
            (Some(seq), Dialect::Exotel) => {
                let got = counter(seq, "sequence_number")?;
                if let Some(previous) = self.last_sequence {
                    if got <= previous {
                        return Err(StreamError::SequenceNotMonotonic { previous, got });
                    }
                }
                Some(got)
            }
            _ => None,
        };
        let msg = self.body(kind, &obj)?;
        // Committed only once the whole message is valid.
        if sequence.is_some() {
            self.last_sequence = sequence;
        }
        Ok(msg)
    }

    fn check_stream_sid(&self, obj: &Object) -> Result<(), StreamError> {
        let sid = match self.dialect {
            Dialect::Twilio => str_field(obj, "streamSid", "streamSid")?
                .ok_or(StreamError::MissingField { field: "streamSid" })?,
            Dialect::Exotel => match str_field(obj, "stream_sid", "stream_sid")? {
                Some(sid) => sid,
                None => {
                    str_field(obj, "streamSid", "streamSid")?.ok_or(StreamError::MissingField {
                        field: "stream_sid",
                    })?
                }
            },
        };
        if sid != self.stream_sid {
            return Err(StreamError::StreamSidMismatch { got: truncate(sid) });
        }
        Ok(())
    }

    fn body(&self, kind: Kind, obj: &Object) -> Result<AppMessage, StreamError> {
        match kind {
            Kind::Media => {
                let media = object_field(obj, "media", "media")?
                    .ok_or(StreamError::MissingField { field: "media" })?;
                if self.dialect == Dialect::Exotel {
                    if let Some(chunk) = media.get("chunk") {
                        counter(chunk, "media.chunk")?;
                    }
                    if let Some(ts) = media.get("timestamp") {
                        counter(ts, "media.timestamp")?;
                    }
                }
                let payload = str_field(media, "payload", "media.payload")?.ok_or(
                    StreamError::MissingField {
                        field: "media.payload",
                    },
                )?;
                Ok(AppMessage::Media {
                    payload: self.decode_payload(payload)?,
                })
            }
            Kind::Mark => Ok(AppMessage::Mark {
                name: mark_name(obj, self.limits.max_mark_name)?.into(),
            }),
            Kind::Clear => Ok(AppMessage::Clear),
        }
    }

    fn decode_payload(&self, b64: &str) -> Result<Vec<u8>, StreamError> {
        // PCM16 from an app must come in whole 20 ms frames at 8 kHz (Exotel's rule).
        decode_media(b64, self.format, self.max_payload_bytes(), 320)
    }
}

#[cfg(test)]
mod tests;
