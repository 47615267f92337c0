//! ESP32 devices as voice endpoints: a call routed to `device:ID` rings the device over MQTT
//! and, once it answers, carries audio between the call's RTP and the device's PCM16 topics;
//! a device can also place a call through the dial plan.
//!
//! Device protocol (all JSON unless noted, QoS 1 for control, QoS 0 for audio):
//!
//! - Gateway → device on `devices/{id}/call`:
//!   `{"event":"ring","call":ID,"from":NUM,"to":NUM,"rate":16000,"format":"pcm16le","frame_ms":20}`,
//!   `{"event":"dialing","call":ID,"to":NUM,...}` (its own call), `{"event":"ringing","call":ID}`,
//!   `{"event":"answered","call":ID}`, `{"event":"hangup","call":ID,"reason":TEXT}`,
//!   `{"event":"dtmf","call":ID,"digit":"5"}` (a digit from the far end), and
//!   `{"event":"rejected","reason":TEXT}` for a dial request that could not start.
//! - Device → gateway on `devices/{id}/call/event`: `{"event":"answer","call":ID}`,
//!   `{"event":"reject","call":ID,"reason":"busy"|"decline"}`, `{"event":"hangup","call":ID}`.
//! - Device → gateway on `devices/{id}/dial`: `{"to":NUM}` (optional `"from"`).
//! - Audio, binary little-endian PCM16 mono at the call's `rate` (`[devices] audio_rate`):
//!   `devices/{id}/audio/up` from the device (any whole number of samples up to 200 ms per
//!   message; bursts are smoothed by the playout buffer toward RTP) and
//!   `devices/{id}/audio/down` to it (one 20 ms frame per message).
//!
//! The gateway transcodes G.711 ↔ PCM16 and resamples 8 kHz ↔ the device rate. One call per
//! device at a time: a second ring gets `busy` (486).
//!
//! Audio takes a direct path, like RTP's: the broker hands each `audio/up` frame to the
//! call's bounded channel (drop-newest, counted), the bridge task decodes it into the call's
//! RTP leg, and downlink frames go from the bridge to the broker as QoS 0 publishes. Neither
//! passes through the device supervisor's or the session's mailbox, which carry only
//! call control.

use bytes::Bytes;
use ractor::ActorRef;
use rumqttc::mqttbytes::QoS;
use serde_json::json;
use switchboard_media::g711;
use switchboard_media::resample::{Resampler, SampleRate};
use switchboard_mqtt::{DeviceId, Topic};
use tokio::sync::mpsc;

use super::session::DeviceMsg;
use super::DeviceSupervisorMsg;
use crate::audio::leg::{Leg, LegCommand, LegEvent};
use crate::broker_msg::BrokerMsg;
use crate::call_msg::{CallId, CallMsg};
use crate::supervisor_msg::SupervisorMsg;
use crate::ua_event::{Listener, UaEvent, UaMode};
use switchboard_call::HangupCause;

mod wire;

use wire::reject_code;
pub(crate) use wire::{control, parse_call_event, parse_dial, ring_message, DialRequest};

/// Largest call-control message accepted from a device.
pub const MAX_CONTROL_BYTES: usize = 1024;
/// Most audio one `audio/up` message may carry, in ms.
pub const MAX_UP_MS: usize = 200;
/// Events queued from the device session to a call's bridge.
const LINK_QUEUE: usize = 64;
/// Uplink audio messages queued from the broker to a call's bridge (1.3 s of 20 ms frames);
/// a message that does not fit is dropped (the newest) and counted.
const AUDIO_QUEUE: usize = 64;
/// Playout buffered toward RTP for a device (bursty MQTT delivery).
const DEVICE_PLAYOUT_MS: u32 = 2000;

/// What the device did, as its session reports it to the call's bridge.
#[derive(Debug)]
pub enum VoiceEvent {
    /// It answered.
    Answered,
    /// It refused (`busy`, `decline`, or it was offline / already in a call).
    Rejected(&'static str),
    /// It hung up (or went offline).
    Hangup(HangupCause),
}

/// A call offered to a device session.
#[derive(Debug)]
pub struct VoiceCall {
    /// Call id.
    pub call_id: String,
    /// Caller.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Audio rate in Hz.
    pub rate: u32,
    /// Where the session reports.
    pub link: mpsc::Sender<VoiceEvent>,
    /// Where the broker hands the device's uplink audio (PCM16LE at `rate`).
    pub audio: mpsc::Sender<Bytes>,
    /// Whether the device placed this call itself (no ring; it is told `dialing`).
    pub outbound: bool,
}

/// Where a call's downlink audio goes: to the broker, as QoS 0 publishes on the device's
/// `audio/down`, not through its session's mailbox.
#[derive(Debug, Clone)]
pub struct Downlink {
    broker: ActorRef<BrokerMsg>,
    topic: String,
}

impl Downlink {
    /// The downlink of `device` through `broker`.
    pub fn new(broker: ActorRef<BrokerMsg>, device: &DeviceId) -> Self {
        Downlink {
            broker,
            topic: Topic::AudioDown(device.clone()).to_string(),
        }
    }

    fn send(&self, pcm: Bytes) {
        let _ = self.broker.send_message(BrokerMsg::Publish {
            topic: self.topic.clone(),
            payload: pcm,
            qos: QoS::AtMostOnce,
            retain: false,
        });
    }
}

/// A device that took a call: its session (call control) and its downlink (audio).
#[derive(Debug, Clone)]
pub struct DeviceLine {
    /// The device's session.
    pub session: ActorRef<DeviceMsg>,
    /// Its audio.
    pub downlink: Downlink,
}

/// Why a device cannot be rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// No such claimed device.
    #[error("unknown device")]
    Unknown,
    /// Not connected.
    #[error("device offline")]
    Offline,
}

fn rate_of(hz: u32) -> SampleRate {
    if hz == 8000 {
        SampleRate::Hz8000
    } else {
        SampleRate::Hz16000
    }
}

/// Converts between the call's 8 kHz PCM and the device's PCM16LE.
struct DeviceCodec {
    rate: SampleRate,
    up: Option<Resampler>,
    down: Option<Resampler>,
    scratch: Vec<i16>,
}

impl DeviceCodec {
    fn new(hz: u32) -> Self {
        let rate = rate_of(hz);
        let (up, down) = if rate == SampleRate::Hz8000 {
            (None, None)
        } else {
            (
                Some(Resampler::new(rate, SampleRate::Hz8000)),
                Some(Resampler::new(SampleRate::Hz8000, rate)),
            )
        };
        DeviceCodec {
            rate,
            up,
            down,
            scratch: Vec::new(),
        }
    }

    /// Device bytes → 8 kHz PCM; `None` for a payload that is odd-sized or too long.
    fn decode_up(&mut self, payload: &[u8]) -> Option<Vec<i16>> {
        let max = self.rate.samples_per_ms() * MAX_UP_MS * 2;
        if payload.is_empty() || payload.len() & 1 == 1 || payload.len() > max {
            return None;
        }
        self.scratch.clear();
        g711::pcm16le_decode(payload, &mut self.scratch);
        Some(match self.up.as_mut() {
            Some(r) => {
                let mut out = Vec::with_capacity(self.scratch.len() / 2 + 4);
                r.process(&self.scratch, &mut out);
                out
            }
            None => self.scratch.clone(),
        })
    }

    /// 8 kHz PCM → device bytes.
    fn encode_down(&mut self, pcm: &[i16]) -> Bytes {
        let mut out = Vec::with_capacity(pcm.len() * 4);
        match self.down.as_mut() {
            Some(r) => {
                self.scratch.clear();
                r.process(pcm, &mut self.scratch);
                g711::pcm16le_encode(&self.scratch, &mut out);
            }
            None => g711::pcm16le_encode(pcm, &mut out),
        }
        Bytes::from(out)
    }
}

/// Inputs of a bridge.
enum Input {
    Call(UaEvent),
    Device(VoiceEvent),
    Audio(Bytes),
}

/// What a bridge listens to besides its leg.
struct Inputs {
    /// Call events (and the end of an ingest stream).
    call: mpsc::Receiver<Input>,
    /// The device's call events, from its session.
    device: mpsc::Receiver<VoiceEvent>,
    /// The device's uplink audio, from the broker.
    audio: mpsc::Receiver<Bytes>,
}

/// Which way the call was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Routed to the device; it must answer.
    ToDevice,
    /// Placed by the device.
    FromDevice,
}

/// The other end of a device's call.
enum Peer {
    /// A SIP call (its `UaCall` answers, refuses or ends on our word, through the call
    /// supervisor).
    Sip(ActorRef<SupervisorMsg>),
    /// A media stream a CPaaS sent to the ingest server; `close` ends it.
    Ingest {
        close: Option<tokio::sync::oneshot::Sender<&'static str>>,
    },
}

struct Bridge {
    peer: Peer,
    call: CallId,
    device: String,
    direction: Direction,
    /// The device, until it hangs up.
    line: Option<DeviceLine>,
    /// The other end's audio: the call's RTP leg, or the ingest stream.
    leg: Option<Leg>,
    /// Audio flows only once the device has answered (or placed the call).
    answered: bool,
    codec: DeviceCodec,
}

impl Bridge {
    fn tell_call(&mut self, msg: CallMsg) {
        match &mut self.peer {
            Peer::Sip(calls) => {
                let _ = calls.send_message(SupervisorMsg::Tell(self.call.clone(), msg));
            }
            Peer::Ingest { close } => match msg {
                CallMsg::Answer => {}
                CallMsg::Reject(_) => {
                    if let Some(c) = close.take() {
                        let _ = c.send("device refused");
                    }
                }
                _ => {
                    if let Some(c) = close.take() {
                        let _ = c.send("device hangup");
                    }
                }
            },
        }
    }

    fn tell_device(&self, msg: DeviceMsg) {
        if let Some(l) = &self.line {
            let _ = l.session.send_message(msg);
        }
    }

    fn control(&self, event: &'static str, reason: Option<&str>) {
        self.tell_device(DeviceMsg::CallControl {
            call_id: self.call.0.clone(),
            payload: control(event, &self.call.0, reason),
            ends: event == "hangup",
        });
    }

    /// Returns false when the bridge is done.
    fn on_input(&mut self, input: Input) -> bool {
        match input {
            Input::Device(VoiceEvent::Answered) => {
                if matches!(self.peer, Peer::Ingest { .. }) {
                    self.answered = true;
                }
                self.tell_call(CallMsg::Answer)
            }
            Input::Device(VoiceEvent::Rejected(reason)) => {
                self.tell_call(CallMsg::Reject(reject_code(reason)))
            }
            Input::Device(VoiceEvent::Hangup(cause)) => {
                self.line = None;
                self.tell_call(CallMsg::End(cause));
            }
            Input::Audio(bytes) => {
                let Some(leg) = &self.leg else { return true };
                match self.codec.decode_up(&bytes) {
                    Some(pcm) => {
                        if leg.commands.try_send(LegCommand::Play(pcm)).is_ok() {
                            metrics::counter!("switchboard_device_voice_frames_total", "dir" => "up")
                                .increment(1);
                        } else {
                            metrics::counter!("switchboard_device_voice_dropped_total", "dir" => "up")
                                .increment(1);
                        }
                    }
                    None => {
                        metrics::counter!("switchboard_device_voice_bad_audio_total").increment(1)
                    }
                }
            }
            Input::Call(UaEvent::Ringing) => {
                if self.direction == Direction::FromDevice {
                    self.control("ringing", None);
                }
            }
            Input::Call(UaEvent::Answered) => {
                if self.direction == Direction::FromDevice {
                    self.control("answered", None);
                }
            }
            Input::Call(UaEvent::Audio(media)) => match &self.leg {
                Some(leg) => {
                    let _ = leg.commands.try_send(LegCommand::Remote(media.remote));
                }
                None => {
                    let leg = Leg::for_call(media, DEVICE_PLAYOUT_MS);
                    match leg {
                        Ok(l) => {
                            self.leg = Some(l);
                            self.answered = true;
                        }
                        Err(err) => {
                            tracing::error!(call = %self.call, %err, "cannot start the audio leg");
                            self.tell_call(CallMsg::End(HangupCause::MediaError));
                        }
                    }
                }
            },
            Input::Call(UaEvent::T38(_)) => {}
            Input::Call(UaEvent::Ended(outcome)) => {
                let reason = if outcome.answered || self.direction == Direction::FromDevice {
                    outcome.cause()
                } else {
                    "cancelled"
                };
                self.control("hangup", Some(reason));
                return false;
            }
        }
        true
    }

    fn on_leg(&mut self, ev: LegEvent) {
        if !self.answered {
            return;
        }
        match ev {
            LegEvent::Audio { pcm, .. } => {
                if let Some(l) = &self.line {
                    l.downlink.send(self.codec.encode_down(&pcm));
                    metrics::counter!("switchboard_device_voice_frames_total", "dir" => "down")
                        .increment(1);
                }
            }
            LegEvent::Dtmf { digit, .. } => {
                let mut v = json!({"event": "dtmf", "call": self.call.0});
                v["digit"] = json!(digit.to_string());
                self.tell_device(DeviceMsg::CallControl {
                    call_id: self.call.0.clone(),
                    payload: Bytes::from(v.to_string()),
                    ends: false,
                });
            }
            LegEvent::Marks(_) => {}
        }
    }
}

async fn run(mut bridge: Bridge, mut inputs: Inputs) {
    loop {
        let leg_event = async {
            match bridge.leg.as_mut() {
                Some(l) => l.events.recv().await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            input = inputs.call.recv() => match input {
                Some(input) => input,
                None => break,
            },
            Some(ev) = inputs.device.recv() => Input::Device(ev),
            Some(frame) = inputs.audio.recv() => Input::Audio(frame),
            ev = leg_event => {
                match ev {
                    Some(ev) => bridge.on_leg(ev),
                    None => bridge.leg = None,
                }
                continue;
            }
        };
        if !bridge.on_input(input) {
            break;
        }
    }
}

/// Ends a bridge when the call's listener goes away.
struct EndOnDrop(mpsc::Sender<Input>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_send(Input::Call(UaEvent::Ended(crate::ua::UaOutcome::ended(
                switchboard_call::HangupCause::Crash,
            ))));
    }
}

/// A bridge's channels, as [`channels`] makes them.
struct Wires {
    /// Into the bridge's call input.
    tx: mpsc::Sender<Input>,
    /// What the bridge reads.
    inputs: Inputs,
    /// The call's listener.
    listener: Listener,
    /// For the device's [`VoiceCall`]: its link and audio channel.
    link: mpsc::Sender<VoiceEvent>,
    audio: mpsc::Sender<Bytes>,
}

/// Inputs of a bridge: the call's listener, and the device's link and audio channel (for
/// its [`VoiceCall`]).
fn channels() -> Wires {
    let (tx, rx) = mpsc::channel::<Input>(LINK_QUEUE * 2);
    let call_tx = tx.clone();
    // If the call actor dies without saying `Ended` (a crash), its listener is dropped: the
    // guard then ends the bridge, so the device is told and freed for the next call.
    let guard = EndOnDrop(tx.clone());
    let listener = Listener::new(move |ev| {
        let _ = &guard;
        // Call events are few and must not be lost: wait for room off the actor's thread.
        let tx = call_tx.clone();
        if let Err(mpsc::error::TrySendError::Full(Input::Call(ev))) = tx.try_send(Input::Call(ev))
        {
            tokio::spawn(async move {
                let _ = tx.send(Input::Call(ev)).await;
            });
        }
    });
    let (link_tx, link_rx) = mpsc::channel::<VoiceEvent>(LINK_QUEUE);
    let (audio_tx, audio_rx) = mpsc::channel::<Bytes>(AUDIO_QUEUE);
    let inputs = Inputs {
        call: rx,
        device: link_rx,
        audio: audio_rx,
    };
    Wires {
        tx,
        inputs,
        listener,
        link: link_tx,
        audio: audio_tx,
    }
}

/// The listener of a call routed to `device:ID`: rings the device, answers or refuses the
/// call for it, and bridges the audio once both ends are up.
pub fn ring_listener(
    calls: &ActorRef<SupervisorMsg>,
    devices: Option<&ActorRef<DeviceSupervisorMsg>>,
    rate: u32,
    device: String,
    call: CallId,
    from: String,
    to: String,
) -> Listener {
    let Wires {
        tx,
        inputs,
        listener,
        link,
        audio,
    } = channels();
    let (calls, devices) = (calls.clone(), devices.cloned());
    tokio::spawn(async move {
        let mut bridge = Bridge {
            peer: Peer::Sip(calls),
            call: call.clone(),
            device: device.clone(),
            direction: Direction::ToDevice,
            line: None,
            leg: None,
            answered: false,
            codec: DeviceCodec::new(rate),
        };
        let voice_call = VoiceCall {
            call_id: call.0.clone(),
            from,
            to,
            rate,
            link,
            audio,
            outbound: false,
        };
        match ring(devices.as_ref(), &device, voice_call).await {
            Some(Ok(line)) => bridge.line = Some(line),
            Some(Err(e)) => {
                tracing::info!(call = %call, device = %bridge.device, err = %e, "device cannot take the call");
                let reason = match e {
                    RingError::Unknown => "unknown",
                    RingError::Offline => "offline",
                };
                bridge.tell_call(CallMsg::Reject(reject_code(reason)));
            }
            None => bridge.tell_call(CallMsg::Reject(503)),
        }
        drop(tx);
        run(bridge, inputs).await;
    });
    listener
}

/// Ring `device` through the device supervisor: its session, or why not (`None`: the
/// supervisor did not answer).
async fn ring(
    devices: Option<&ActorRef<DeviceSupervisorMsg>>,
    device: &str,
    call: VoiceCall,
) -> Option<Result<DeviceLine, RingError>> {
    let (Some(devices), Ok(id)) = (devices, switchboard_mqtt::DeviceId::parse(device)) else {
        return Some(Err(RingError::Unknown));
    };
    ractor::call_t!(
        devices,
        |reply| DeviceSupervisorMsg::Ring {
            device: id,
            call,
            reply,
        },
        2_000
    )
    .ok()
}

/// Bridge a media stream from the ingest server (`leg`) to `device`: ring it, and once it
/// answers, carry the stream's audio to it and its audio back. `close` ends the stream when
/// the device refuses or hangs up; dropping the returned sender hangs the device up.
pub async fn ingest_to_device(
    devices: Option<&ActorRef<DeviceSupervisorMsg>>,
    device: &str,
    from: String,
    rate: u32,
    leg: Leg,
    close: tokio::sync::oneshot::Sender<&'static str>,
) -> Result<mpsc::Sender<()>, RingError> {
    let call = CallId::new();
    // No SIP call here: the listener (and its end-on-drop guard) lives as long as the stream.
    let Wires {
        tx,
        inputs,
        listener,
        link,
        audio,
    } = channels();
    let voice_call = VoiceCall {
        call_id: call.0.clone(),
        from,
        to: device.to_string(),
        rate,
        link,
        audio,
        outbound: false,
    };
    let line = match ring(devices, device, voice_call).await {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(e),
        None => return Err(RingError::Offline),
    };
    let bridge = Bridge {
        peer: Peer::Ingest { close: Some(close) },
        call,
        device: device.to_string(),
        direction: Direction::ToDevice,
        line: Some(line),
        leg: Some(leg),
        answered: false,
        codec: DeviceCodec::new(rate),
    };
    // The stream's end: an `Ended` input through the same channel.
    let (end_tx, mut end_rx) = mpsc::channel::<()>(1);
    let ended = tx.clone();
    tokio::spawn(async move {
        let _listener = listener;
        let _ = end_rx.recv().await;
        let _ = ended
            .send(Input::Call(UaEvent::Ended(crate::ua::UaOutcome::ended(
                switchboard_call::HangupCause::StreamEnded,
            ))))
            .await;
    });
    drop(tx);
    tokio::spawn(run(bridge, inputs));
    Ok(end_tx)
}

/// A call the device placed: dial `to` through the dial plan and bridge it to the device.
/// Returns the link for the session, or `None` when no call could start.
pub(crate) async fn dial(
    calls: &ActorRef<SupervisorMsg>,
    ctx_rate: u32,
    line: DeviceLine,
    device: &str,
    req: DialRequest,
) -> Option<VoiceCall> {
    let call = CallId::new();
    let Wires {
        tx,
        inputs,
        listener,
        link,
        audio,
    } = channels();
    let src = req.from.clone().unwrap_or_else(|| device.to_string());
    let placed = ractor::call_t!(
        calls,
        |reply| SupervisorMsg::Originate {
            id: call.clone(),
            to: req.to.clone(),
            src: src.clone(),
            listener,
            mode: UaMode::Audio { ring_first: false },
            reply,
        },
        2_000
    );
    if !matches!(placed, Ok(true)) {
        return None;
    }
    let bridge = Bridge {
        peer: Peer::Sip(calls.clone()),
        call: call.clone(),
        device: device.to_string(),
        direction: Direction::FromDevice,
        line: Some(line),
        leg: None,
        answered: false,
        codec: DeviceCodec::new(ctx_rate),
    };
    drop(tx);
    tokio::spawn(run(bridge, inputs));
    Some(VoiceCall {
        call_id: call.0,
        from: src,
        to: req.to,
        rate: ctx_rate,
        link,
        audio,
        outbound: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_audio_is_resampled_both_ways_and_bad_frames_refused() {
        let mut c = DeviceCodec::new(16000);
        let pcm16k: Vec<i16> = (0..320)
            .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let mut bytes = Vec::new();
        g711::pcm16le_encode(&pcm16k, &mut bytes);
        let mut total = 0;
        for _ in 0..10 {
            total += c.decode_up(&bytes).unwrap().len();
        }
        assert!((1550..=1600).contains(&total), "{total}");
        assert_eq!(c.encode_down(&[0i16; 160]).len() % 2, 0);
        assert!(c.decode_up(&[0u8; 3]).is_none(), "odd length");
        assert!(c.decode_up(&[]).is_none());
        assert!(
            c.decode_up(&vec![0u8; 16 * 200 * 2 + 2]).is_none(),
            "over 200 ms"
        );
        let mut c8 = DeviceCodec::new(8000);
        assert_eq!(c8.encode_down(&[1i16; 160]).len(), 320);
    }
}
