//! `DeviceSession`: one actor per connected device. It tracks presence
//! (`devices/{id}/status`, retained, with the Last Will `offline`), keeps the
//! last telemetry values and counters, and delivers queued commands
//! (`devices/{id}/cmd/{req}`) one at a time, in order, waiting for each reply
//! (`…/reply`) with a timeout and retries. Commands live in the store, so an
//! offline device or a restarted gateway loses none.
//!
//! Device protocol: connect with a retained Last Will `offline` on
//! `devices/{id}/status`, subscribe to `devices/{id}/cmd/+`, publish `online`
//! (retained). Delivery starts once the command subscription exists: granted
//! now, or kept by a resumed persistent session (with the embedded broker; an
//! external broker does not tell, so there `online` starts it). A command
//! sent before a reconnect onto a resumed session is not published again:
//! the broker resends it (DUP) itself, and the retry timer covers the rest.
//! Replies carry the request id in the topic; a device should ignore a
//! request id it has already answered (a retry after a lost reply re-sends
//! it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::mqttbytes::QoS;
use serde::Serialize;
use switchboard_config::Config;
use switchboard_mqtt::{DeviceId, Topic};
use switchboard_storage::{
    now_unix_ms, pending_commands, rfc3339, update_command, CommandRecord, CommandStatus, Store,
    StoreError,
};
use tokio::sync::watch;

use super::voice::{self, VoiceCall, VoiceEvent};
use crate::broker_msg::BrokerMsg;
use crate::store_io::on_store;
use switchboard_call::HangupCause;

/// Most telemetry keys remembered per device.
const MAX_TELEMETRY_KEYS: usize = 64;

/// Per-device counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Telemetry messages received.
    pub telemetry: u64,
    /// All messages received from the device.
    pub messages_in: u64,
    /// Messages sent to the device.
    pub messages_out: u64,
    /// Commands answered.
    pub commands_replied: u64,
    /// Commands given up.
    pub commands_failed: u64,
    /// Telemetry payloads that were not a JSON object.
    pub bad_telemetry: u64,
}

/// What the admin API shows of a device.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceView {
    /// Device id.
    pub id: String,
    /// Account it is bound to.
    pub account: Option<String>,
    /// Connected and announced `online`.
    pub online: bool,
    /// Last message time (RFC 3339).
    pub last_seen: Option<String>,
    /// Firmware version, from telemetry key `firmware` or `fw`.
    pub firmware: Option<String>,
    /// Counters.
    pub counters: DeviceCounters,
    /// Last value of each telemetry key.
    pub telemetry: serde_json::Map<String, serde_json::Value>,
    /// Device-side timestamp of the last telemetry (`ts`), if it sent one.
    pub telemetry_ts: Option<i64>,
    /// Commands waiting for delivery or a reply.
    pub commands_pending: usize,
}

impl DeviceView {
    /// A device not seen yet.
    pub fn new(id: &str, account: Option<String>, firmware: Option<String>) -> Self {
        Self {
            id: id.to_string(),
            account,
            online: false,
            last_seen: None,
            firmware,
            counters: DeviceCounters::default(),
            telemetry: serde_json::Map::new(),
            telemetry_ts: None,
            commands_pending: 0,
        }
    }
}

/// Messages of a device session.
#[derive(Debug)]
pub enum DeviceMsg {
    /// The device connected.
    Online,
    /// The device's connection ended.
    Offline {
        /// It sent DISCONNECT.
        clean: bool,
    },
    /// A message from the device (ACL already applied).
    Message {
        /// The parsed topic.
        topic: Topic,
        /// Its payload.
        payload: Bytes,
        /// The sending connection's credit (dropped once handled).
        _credit: Option<crate::broker_msg::Credit>,
    },
    /// The device was granted subscriptions.
    Subscribed {
        /// The filters.
        filters: Vec<String>,
        /// They are those of a persistent session resumed at CONNECT.
        resumed: bool,
    },
    /// A command was stored for this device.
    CommandQueued,
    /// The command timer fired (generation).
    Timer(u64),
    /// A call for the device (it rings), or one it placed.
    Ring(super::voice::VoiceCall),
    /// A call-control message to publish on `devices/{id}/call` (`ends`: the call is over).
    CallControl {
        /// The call it is about.
        call_id: String,
        /// The JSON message.
        payload: Bytes,
        /// Whether it ends the call.
        ends: bool,
    },
}

/// The device's current call, as its session sees it.
struct VoiceSlot {
    call_id: String,
    link: tokio::sync::mpsc::Sender<super::voice::VoiceEvent>,
}

/// Start-up arguments of a session.
pub struct SessionArgs {
    /// The device.
    pub id: DeviceId,
    /// Store with its commands.
    pub store: Arc<dyn Store>,
    /// Configuration (command timeout and retries).
    pub config: Arc<Config>,
    /// Where to publish.
    pub broker: ActorRef<BrokerMsg>,
    /// Its view, shared with the supervisor.
    pub view: Arc<watch::Sender<DeviceView>>,
    /// The fleet's online count.
    pub online: super::OnlineGauge,
    /// The call supervisor, for calls the device places.
    pub calls: ActorRef<crate::supervisor_msg::SupervisorMsg>,
    /// The drain flag, to say why a dial was refused.
    pub drain: Arc<crate::drain::Drain>,
}

impl std::fmt::Debug for SessionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionArgs")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// State of a device session.
pub struct SessionState {
    args: SessionArgs,
    /// Delivery allowed: the device announced `online` after subscribing.
    ready: bool,
    queue: VecDeque<CommandRecord>,
    inflight: Option<CommandRecord>,
    timer_gen: u64,
    voice: Option<VoiceSlot>,
}

/// The device session actor.
#[derive(Debug, Default)]
pub struct DeviceSession;

impl Actor for DeviceSession {
    type Msg = DeviceMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _: ActorRef<DeviceMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        Ok(SessionState {
            args,
            ready: false,
            queue: VecDeque::new(),
            inflight: None,
            timer_gen: 0,
            voice: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DeviceMsg>,
        msg: DeviceMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DeviceMsg::Online => state.set_online(true),
            DeviceMsg::Offline { .. } => {
                state.set_online(false);
                state.end_voice(HangupCause::DeviceOffline);
                // Commands stay in the store; a new session picks them up.
                myself.stop(None);
                return Ok(());
            }
            DeviceMsg::Message {
                topic: Topic::Dial(_),
                payload,
                ..
            } => state.on_dial(&myself, &payload).await,
            DeviceMsg::Message { topic, payload, .. } => state.on_message(topic, &payload).await?,
            DeviceMsg::Ring(call) => state.on_ring(call),
            DeviceMsg::CallControl {
                call_id,
                payload,
                ends,
            } => {
                if state.voice.as_ref().is_some_and(|v| v.call_id == call_id) {
                    state.publish_raw(
                        Topic::Call(state.args.id.clone()),
                        payload,
                        QoS::AtLeastOnce,
                    );
                    if ends {
                        state.clear_voice();
                    }
                }
            }
            DeviceMsg::CommandQueued => state.reload()?,
            DeviceMsg::Subscribed { filters, resumed } => {
                let prefix = format!("devices/{}/cmd/", state.args.id);
                if filters.iter().any(|f| f.starts_with(&prefix)) {
                    // It listens for commands now: start delivering.
                    state.ready = true;
                    state.reload()?;
                    if resumed {
                        state.adopt_sent(&myself);
                    }
                }
            }
            DeviceMsg::Timer(gen) if gen == state.timer_gen => state.on_timeout().await?,
            DeviceMsg::Timer(_) => {}
        }
        state.deliver(&myself).await?;
        Ok(())
    }
}

impl SessionState {
    fn touch(&self, f: impl FnOnce(&mut DeviceView)) {
        self.args.view.send_modify(|v| {
            v.last_seen = Some(rfc3339(now_unix_ms()));
            f(v);
        });
    }

    fn set_online(&self, online: bool) {
        self.touch(|_| {});
        self.args.online.set(&self.args.view, online);
    }

    async fn on_message(&mut self, topic: Topic, payload: &[u8]) -> Result<(), ActorProcessingErr> {
        self.touch(|v| v.counters.messages_in += 1);
        match topic {
            Topic::Status(_) => match payload {
                b"online" => {
                    self.set_online(true);
                    // With the embedded broker, delivery waits for the
                    // command subscription (a command published before it
                    // exists is lost and costs a retry).
                    if self.args.config.mqtt.mode != switchboard_config::MqttMode::Embedded {
                        self.ready = true;
                    }
                    self.reload()?;
                }
                b"offline" => {
                    self.set_online(false);
                    self.ready = false;
                }
                _ => {}
            },
            Topic::Telemetry(_) => self.telemetry(payload),
            Topic::CommandReply(_, req) => self.on_reply(&req, payload).await?,
            Topic::CallEvent(_) => {
                let ev = self
                    .voice
                    .as_ref()
                    .and_then(|v| voice::parse_call_event(payload, &v.call_id));
                match ev {
                    Some(ev) => {
                        let ends = matches!(ev, VoiceEvent::Rejected(_) | VoiceEvent::Hangup(_));
                        if let Some(v) = &self.voice {
                            let _ = v.link.try_send(ev);
                        }
                        if ends {
                            self.clear_voice();
                        }
                    }
                    None => {
                        metrics::counter!("switchboard_device_voice_bad_events_total").increment(1)
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn publish_raw(&self, topic: Topic, payload: Bytes, qos: QoS) {
        let _ = self.args.broker.send_message(BrokerMsg::Publish {
            topic: topic.to_string(),
            payload,
            qos,
            retain: false,
        });
        self.touch(|v| v.counters.messages_out += 1);
    }

    /// A call for the device, or one it placed: announce it, unless it is in a call already.
    fn on_ring(&mut self, call: VoiceCall) {
        if self.voice.is_some() {
            let _ = call.link.try_send(VoiceEvent::Rejected("busy"));
            return;
        }
        // Its audio goes from the broker straight to the call (routed before the device
        // hears of the call, so its first frame finds the route).
        let _ = self.args.broker.send_message(BrokerMsg::AudioRoute {
            device: self.args.id.clone(),
            call: call.call_id.clone(),
            tx: Some(call.audio.clone()),
        });
        self.publish_raw(
            Topic::Call(self.args.id.clone()),
            voice::ring_message(&call),
            QoS::AtLeastOnce,
        );
        self.voice = Some(VoiceSlot {
            call_id: call.call_id,
            link: call.link,
        });
    }

    /// The device's call (if any) is over from its side.
    fn end_voice(&mut self, cause: HangupCause) {
        if let Some(v) = self.clear_voice() {
            let _ = v.link.try_send(VoiceEvent::Hangup(cause));
        }
    }

    /// Forget the current call and its audio route at the broker.
    fn clear_voice(&mut self) -> Option<VoiceSlot> {
        let v = self.voice.take()?;
        let _ = self.args.broker.send_message(BrokerMsg::AudioRoute {
            device: self.args.id.clone(),
            call: v.call_id.clone(),
            tx: None,
        });
        Some(v)
    }

    /// The device dials: route the number like any call and bridge it to the device.
    async fn on_dial(&mut self, myself: &ActorRef<DeviceMsg>, payload: &[u8]) {
        self.touch(|v| v.counters.messages_in += 1);
        let refuse = |this: &Self, reason: &str| {
            let body = serde_json::json!({"event": "rejected", "reason": reason}).to_string();
            this.publish_raw(
                Topic::Call(this.args.id.clone()),
                Bytes::from(body),
                QoS::AtLeastOnce,
            );
        };
        let Some(req) = voice::parse_dial(payload) else {
            metrics::counter!("switchboard_device_voice_bad_events_total").increment(1);
            return refuse(self, "bad request");
        };
        if self.voice.is_some() {
            return refuse(self, "busy");
        }
        let calls = self.args.calls.clone();
        let rate = self.args.config.devices.audio_rate;
        let line = voice::DeviceLine {
            session: myself.clone(),
            downlink: voice::Downlink::new(self.args.broker.clone(), &self.args.id),
        };
        match voice::dial(&calls, rate, line, self.args.id.as_str(), req).await {
            Some(call) => {
                metrics::counter!("switchboard_device_calls_total", "dir" => "out").increment(1);
                self.on_ring(call);
            }
            None => {
                if self.args.drain.is_draining() {
                    refuse(self, "gateway draining")
                } else {
                    refuse(self, "no call could be placed")
                }
            }
        }
    }

    fn telemetry(&self, payload: &[u8]) {
        let parsed: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(payload).ok();
        self.touch(|v| {
            v.counters.telemetry += 1;
            let Some(map) = parsed else {
                v.counters.bad_telemetry += 1;
                return;
            };
            for (k, val) in map {
                match k.as_str() {
                    "ts" => v.telemetry_ts = val.as_i64(),
                    "firmware" | "fw" => v.firmware = val.as_str().map(str::to_string),
                    _ => {}
                }
                if v.telemetry.len() < MAX_TELEMETRY_KEYS || v.telemetry.contains_key(&k) {
                    v.telemetry.insert(k, val);
                }
            }
        });
        metrics::counter!("switchboard_device_telemetry_total").increment(1);
    }

    /// Re-read the pending commands from the store (the source of truth).
    fn reload(&mut self) -> Result<(), ActorProcessingErr> {
        let pending = pending_commands(self.args.store.as_ref(), self.args.id.as_str())?;
        let inflight = self.inflight.as_ref().map(|c| c.id.clone());
        self.queue = pending
            .into_iter()
            .filter(|c| Some(&c.id) != inflight.as_ref())
            .collect();
        let n = self.queue.len() + usize::from(self.inflight.is_some());
        self.args.view.send_modify(|v| v.commands_pending = n);
        Ok(())
    }

    /// The device got its persistent session back: the broker resends the
    /// command it had sent and not had acknowledged, so a command already
    /// `sent` is in flight, not to be published again (one delivery path per
    /// command). Its reply timer starts now.
    fn adopt_sent(&mut self, myself: &ActorRef<DeviceMsg>) {
        if self.inflight.is_some() {
            return;
        }
        if self.queue.front().map(|c| c.status) != Some(CommandStatus::Sent) {
            return;
        }
        self.inflight = self.queue.pop_front();
        self.arm_timer(myself);
    }

    fn arm_timer(&mut self, myself: &ActorRef<DeviceMsg>) {
        self.timer_gen += 1;
        let gen = self.timer_gen;
        let timeout = Duration::from_secs(u64::from(self.args.config.devices.command_timeout_secs));
        myself.send_after(timeout, move || DeviceMsg::Timer(gen));
    }

    /// Write a command's new state, flushed, off the async workers.
    async fn save(&self, cmd: &CommandRecord) -> Result<(), StoreError> {
        let cmd = cmd.clone();
        on_store(&self.args.store, move |s| update_command(s, &cmd)).await
    }

    async fn deliver(&mut self, myself: &ActorRef<DeviceMsg>) -> Result<(), ActorProcessingErr> {
        if !self.ready || self.inflight.is_some() {
            return Ok(());
        }
        let Some(mut cmd) = self.queue.pop_front() else {
            return Ok(());
        };
        cmd.status = CommandStatus::Sent;
        cmd.attempts += 1;
        cmd.updated_at = rfc3339(now_unix_ms());
        self.save(&cmd).await?;
        self.publish(&cmd);
        self.arm_timer(myself);
        self.inflight = Some(cmd);
        Ok(())
    }

    fn publish(&self, cmd: &CommandRecord) {
        let topic = Topic::Command(self.args.id.clone(), cmd.id.clone()).to_string();
        let payload = Bytes::from(serde_json::to_vec(&cmd.payload).unwrap_or_default());
        let _ = self.args.broker.send_message(BrokerMsg::Publish {
            topic,
            payload,
            qos: QoS::AtLeastOnce,
            retain: false,
        });
        self.touch(|v| v.counters.messages_out += 1);
        metrics::counter!("switchboard_device_messages_out_total").increment(1);
    }

    async fn on_reply(&mut self, req: &str, payload: &[u8]) -> Result<(), ActorProcessingErr> {
        let Some(mut cmd) = self.inflight.take_if(|c| c.id == req) else {
            return Ok(()); // a late or duplicate reply
        };
        cmd.status = CommandStatus::Replied;
        cmd.updated_at = rfc3339(now_unix_ms());
        cmd.reply = Some(serde_json::from_slice(payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
        }));
        self.save(&cmd).await?;
        self.timer_gen += 1;
        self.touch(|v| {
            v.counters.commands_replied += 1;
            v.commands_pending = v.commands_pending.saturating_sub(1);
        });
        Ok(())
    }

    async fn on_timeout(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(mut cmd) = self.inflight.take() else {
            return Ok(());
        };
        if cmd.attempts <= self.args.config.devices.command_retries {
            // Try again: back to the head of the queue.
            self.queue.push_front(cmd);
            return Ok(());
        }
        cmd.status = CommandStatus::Failed;
        cmd.error = Some(format!("no reply after {} attempts", cmd.attempts));
        cmd.updated_at = rfc3339(now_unix_ms());
        self.save(&cmd).await?;
        self.touch(|v| {
            v.counters.commands_failed += 1;
            v.commands_pending = v.commands_pending.saturating_sub(1);
        });
        Ok(())
    }
}
