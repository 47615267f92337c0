//! Exotel AgentStream (Voicebot / Stream applet) wire types (Exotel developer docs,
//! "WebSocket protocol").
//!
//! The same events as Twilio with snake_case keys (`stream_sid`, `sequence_number`,
//! `call_sid`, `custom_parameters`, `media_format`); counters are decimal strings. Audio is
//! base64 little-endian PCM16 mono at 8, 16 or 24 kHz (`media_format.sample_rate`), and media
//! the app sends must be a multiple of 320 bytes. There is no `track` field (only the caller's
//! audio is streamed). Both directions derive `Serialize` and `Deserialize`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Messages from the gateway (acting as Exotel) to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ToApp {
    /// First message on a new connection (no other fields).
    Connected,
    /// Stream metadata, once, right after `connected`.
    Start {
        /// Message counter, starting at `"1"`.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// The metadata.
        start: StartMeta,
    },
    /// A chunk of audio.
    Media {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// The audio.
        media: MediaChunk,
    },
    /// A DTMF digit.
    Dtmf {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// The digit.
        dtmf: Dtmf,
    },
    /// Echo of an app `mark` whose audio has been played (or cleared).
    Mark {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// The mark.
        mark: Mark,
    },
    /// The stream has ended.
    Stop {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// Call identifiers and reason.
        stop: StopMeta,
    },
}

/// `start.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartMeta {
    /// The stream's id.
    pub stream_sid: String,
    /// Call identifier.
    pub call_sid: String,
    /// Account identifier.
    pub account_sid: String,
    /// Caller number, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Called number, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Parameters the stream was started with.
    pub custom_parameters: BTreeMap<String, String>,
    /// Audio format.
    pub media_format: MediaFormat,
}

/// `start.start.media_format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFormat {
    /// `"audio/x-raw"` (PCM16) or `"audio/x-mulaw"`.
    pub encoding: String,
    /// `"8000"`, `"16000"` or `"24000"`.
    pub sample_rate: String,
    /// Bits per sample: `"16"` (PCM16) or `"8"` (µ-law).
    pub bit_rate: String,
}

/// `media.media` from the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChunk {
    /// Chunk counter, starting at `"1"`.
    pub chunk: String,
    /// Milliseconds since the stream started.
    pub timestamp: String,
    /// Base64 audio.
    pub payload: String,
}

/// `dtmf.dtmf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dtmf {
    /// The digit, one character.
    pub digit: String,
    /// Duration in milliseconds.
    pub duration: String,
}

/// `mark.mark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The app's label.
    pub name: String,
}

/// `stop.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopMeta {
    /// Call identifier.
    pub call_sid: String,
    /// Account identifier.
    pub account_sid: String,
    /// Why the stream stopped (e.g. `"callended"`).
    pub reason: String,
}

/// Messages from the app to the gateway (Voicebot, bidirectional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum FromApp {
    /// Audio to play to the caller (a multiple of 320 bytes).
    Media {
        /// The stream's id.
        stream_sid: String,
        /// Optional message counter, increasing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// The audio.
        media: MediaPayload,
    },
    /// A label to echo once the audio sent before it has played.
    Mark {
        /// The stream's id.
        stream_sid: String,
        /// Optional message counter, increasing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// The label.
        mark: Mark,
    },
    /// Drop all queued audio (marks are echoed).
    Clear {
        /// The stream's id.
        stream_sid: String,
        /// Optional message counter, increasing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
    },
}

/// `media.media` from the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPayload {
    /// Base64 PCM16 little-endian audio.
    pub payload: String,
}
