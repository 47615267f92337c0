//! Twilio Media Streams wire types (Twilio docs, "Media Streams - WebSocket Messages").
//!
//! JSON text frames with an `event` discriminator and camelCase keys. Counters
//! (`sequenceNumber`, `chunk`, `timestamp`) are decimal strings; `mediaFormat.sampleRate` and
//! `channels` are numbers. Audio is base64 µ-law at 8 kHz. Both directions derive `Serialize`
//! and `Deserialize`, so test peers and simulated apps can use the same types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Messages from the gateway (acting as Twilio) to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ToApp {
    /// First message on a new connection.
    Connected {
        /// Always `"Call"`.
        protocol: String,
        /// Protocol version, `"1.0.0"`.
        version: String,
    },
    /// Stream metadata, once, right after `connected`.
    #[serde(rename_all = "camelCase")]
    Start {
        /// Message counter, starting at `"1"`.
        sequence_number: String,
        /// The metadata.
        start: StartMeta,
        /// The stream's id.
        stream_sid: String,
    },
    /// A chunk of audio.
    #[serde(rename_all = "camelCase")]
    Media {
        /// Message counter.
        sequence_number: String,
        /// The audio.
        media: MediaChunk,
        /// The stream's id.
        stream_sid: String,
    },
    /// A DTMF digit detected on the inbound track.
    #[serde(rename_all = "camelCase")]
    Dtmf {
        /// The stream's id.
        stream_sid: String,
        /// Message counter.
        sequence_number: String,
        /// The digit.
        dtmf: Dtmf,
    },
    /// Echo of an app `mark` whose audio has been played (or cleared).
    #[serde(rename_all = "camelCase")]
    Mark {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// The mark.
        mark: Mark,
    },
    /// The stream has ended.
    #[serde(rename_all = "camelCase")]
    Stop {
        /// Message counter.
        sequence_number: String,
        /// The stream's id.
        stream_sid: String,
        /// Call identifiers.
        stop: StopMeta,
    },
}

/// `start.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartMeta {
    /// Account identifier.
    pub account_sid: String,
    /// The stream's id.
    pub stream_sid: String,
    /// Call identifier.
    pub call_sid: String,
    /// Tracks that will be sent: `"inbound"`, `"outbound"`.
    pub tracks: Vec<String>,
    /// Parameters the stream was started with.
    pub custom_parameters: BTreeMap<String, String>,
    /// Audio format.
    pub media_format: MediaFormat,
}

/// `start.start.mediaFormat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    /// `"audio/x-mulaw"`.
    pub encoding: String,
    /// `8000`.
    pub sample_rate: u32,
    /// `1`.
    pub channels: u32,
}

/// `media.media` from the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChunk {
    /// `"inbound"` or `"outbound"`.
    pub track: String,
    /// Per-track chunk counter, starting at `"1"`.
    pub chunk: String,
    /// Milliseconds since the stream started.
    pub timestamp: String,
    /// Base64 audio.
    pub payload: String,
}

/// `dtmf.dtmf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dtmf {
    /// `"inbound_track"`.
    pub track: String,
    /// The digit, one character.
    pub digit: String,
}

/// `mark.mark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The app's label.
    pub name: String,
}

/// `stop.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopMeta {
    /// Account identifier.
    pub account_sid: String,
    /// Call identifier.
    pub call_sid: String,
}

/// Messages from the app to the gateway (bidirectional streams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum FromApp {
    /// Audio to play to the caller.
    #[serde(rename_all = "camelCase")]
    Media {
        /// The stream's id.
        stream_sid: String,
        /// The audio.
        media: MediaPayload,
    },
    /// A label to echo once the audio sent before it has played.
    #[serde(rename_all = "camelCase")]
    Mark {
        /// The stream's id.
        stream_sid: String,
        /// The label.
        mark: Mark,
    },
    /// Drop all queued audio (marks are echoed).
    #[serde(rename_all = "camelCase")]
    Clear {
        /// The stream's id.
        stream_sid: String,
    },
}

/// `media.media` from the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPayload {
    /// Base64 µ-law 8 kHz audio.
    pub payload: String,
}
