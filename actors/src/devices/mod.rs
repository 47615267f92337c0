//! ESP32 devices: the device supervisor and one `DeviceSession` actor per
//! connected device.
//!
//! The supervisor receives every device event from the broker actor. It runs
//! claims (MQTT and HTTP go through the same code, serialised here so a nonce
//! can be checked and recorded without a race), keeps the registry of
//! sessions with a live view of each device, spawns a session on connect
//! (`spawn_linked`) and restarts a crashed one, at most `MAX_RESTARTS` times a
//! minute per device.

mod session;
#[cfg(test)]
mod tests;
pub mod voice;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rumqttc::mqttbytes::QoS;
use switchboard_config::Config;
use switchboard_mqtt::broker::Principal;
use switchboard_mqtt::claim::{self, ClaimRejection, ClaimRequest, ClaimResponse};
use switchboard_mqtt::{credential, DeviceId, Topic};
use switchboard_storage::{
    enqueue_command, get_device, list_devices, nonce_seen, now_unix_ms, pending_commands,
    put_device, record_nonce, rfc3339, CommandRecord, DeviceRecord, Store, StoreError,
    StoredCredentialData,
};
use tokio::sync::watch;

use crate::broker_msg::BrokerMsg;
use crate::store_io::on_store;
pub use session::{DeviceMsg, DeviceSession, DeviceView};

/// Restarts allowed per device session within a minute.
const MAX_RESTARTS: usize = 5;
/// Largest command payload accepted from the API.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// Messages of the device supervisor.
#[derive(Debug)]
pub enum DeviceSupervisorMsg {
    /// The broker to publish through (sent once at start-up).
    SetBroker(ActorRef<BrokerMsg>),
    /// A client finished CONNECT.
    Connected {
        principal: Principal,
        client_id: String,
    },
    /// A client went away.
    Disconnected { principal: Principal, clean: bool },
    /// A client was granted subscriptions (`resumed`: the filters of a
    /// persistent session it got back at CONNECT).
    Subscribed {
        principal: Principal,
        filters: Vec<String>,
        resumed: bool,
    },
    /// A client published (after the ACL).
    Published {
        from: Principal,
        topic: String,
        payload: Bytes,
        /// The sending connection's credit, released once handled.
        credit: Option<crate::broker_msg::Credit>,
    },
    /// A claim over HTTP.
    Claim(
        ClaimRequest,
        RpcReplyPort<Result<ClaimResponse, ClaimRejection>>,
    ),
    /// Queue a command for a device (delivered now if online, else on reconnect).
    Command {
        device: DeviceId,
        payload: serde_json::Value,
        reply: RpcReplyPort<Result<CommandRecord, CommandError>>,
    },
    /// Ring a device for a call; the reply is its session, which then reports through the
    /// call's link.
    Ring {
        device: DeviceId,
        call: voice::VoiceCall,
        reply: RpcReplyPort<Result<voice::DeviceLine, voice::RingError>>,
    },
    /// Reset a claimed device so it can be claimed again (an operator act):
    /// its credential is deleted, its connections closed, its pending
    /// commands failed. `Ok(false)`: it was not claimed.
    Reset(DeviceId, RpcReplyPort<Result<bool, CommandError>>),
    /// The gateway started draining: tell every online device (QoS 1, not retained, on
    /// `devices/{id}/cmd/gateway-drain`, which devices already subscribe to with `cmd/+`).
    Draining {
        /// `[sip] drain_secs`: when the gateway will be gone at the latest.
        drain_secs: u64,
    },
    /// Shutdown: close every device connection; the answer is how many devices were online.
    Disconnect(RpcReplyPort<usize>),
    /// All known devices.
    List(RpcReplyPort<Vec<DeviceView>>),
    /// One device.
    Get(DeviceId, RpcReplyPort<Option<DeviceView>>),
}

/// Why a command was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// No such device has been claimed.
    #[error("unknown device")]
    UnknownDevice,
    /// The store failed.
    #[error("store error")]
    Store,
}

/// The number of devices online, kept as a running count: every change of a
/// view's `online` flag goes through [`OnlineGauge::set`], which moves the
/// count only when the flag flips (no scan over the fleet).
#[derive(Debug, Clone, Default)]
pub struct OnlineGauge(Arc<AtomicUsize>);

impl OnlineGauge {
    /// Mark a device online or offline.
    pub fn set(&self, view: &watch::Sender<DeviceView>, online: bool) {
        let flipped = view.send_if_modified(|v| {
            let changed = v.online != online;
            v.online = online;
            changed
        });
        if !flipped {
            return;
        }
        let n = if online {
            self.0.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.0.fetch_sub(1, Ordering::Relaxed) - 1
        };
        metrics::gauge!("switchboard_devices_online").set(n as f64);
    }

    /// Devices online now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct Entry {
    view: Arc<watch::Sender<DeviceView>>,
    actor: Option<ActorRef<DeviceMsg>>,
    restarts: Vec<Instant>,
    /// Open MQTT connections of this device (it is offline at 0).
    connections: usize,
}

/// The request id of the drain notice (`devices/{id}/cmd/gateway-drain`, issue 12).
pub const DRAIN_NOTICE: &str = "gateway-drain";

/// State of the device supervisor.
pub struct DeviceSupervisorState {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    broker: Option<ActorRef<BrokerMsg>>,
    devices: HashMap<DeviceId, Entry>,
    by_actor: HashMap<ActorId, DeviceId>,
    broker_url: String,
    online: OnlineGauge,
    calls: ActorRef<crate::supervisor_msg::SupervisorMsg>,
    drain: Arc<crate::drain::Drain>,
    /// The drain notice, once the gateway drains (issue 12).
    drain_notice: Option<Bytes>,
    /// Devices the drain notice was published to.
    drain_told: std::collections::HashSet<DeviceId>,
}

/// Start-up arguments.
pub struct DeviceSupervisorArgs {
    /// Configuration.
    pub config: Arc<Config>,
    /// Store.
    pub store: Arc<dyn Store>,
    /// The call supervisor, for calls devices place.
    pub calls: ActorRef<crate::supervisor_msg::SupervisorMsg>,
    /// The drain flag: a device's dial refused while draining says so.
    pub drain: Arc<crate::drain::Drain>,
}

impl std::fmt::Debug for DeviceSupervisorArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSupervisorArgs")
            .finish_non_exhaustive()
    }
}

/// The device supervisor actor.
#[derive(Debug, Default)]
pub struct DeviceSupervisor;

impl Actor for DeviceSupervisor {
    type Msg = DeviceSupervisorMsg;
    type State = DeviceSupervisorState;
    type Arguments = DeviceSupervisorArgs;

    async fn pre_start(
        &self,
        _: ActorRef<DeviceSupervisorMsg>,
        args: DeviceSupervisorArgs,
    ) -> Result<DeviceSupervisorState, ActorProcessingErr> {
        // Where a claimed device should connect.
        let broker_url = match (&args.config.mqtt.mode, &args.config.mqtt.url) {
            (switchboard_config::MqttMode::External, Some(url)) => url.clone(),
            _ => format!("mqtt://{}", args.config.mqtt.listen),
        };
        let state = DeviceSupervisorState {
            config: args.config,
            store: args.store,
            broker: None,
            devices: HashMap::new(),
            by_actor: HashMap::new(),
            broker_url,
            online: OnlineGauge::default(),
            calls: args.calls,
            drain: args.drain,
            drain_notice: None,
            drain_told: Default::default(),
        };
        // The registry holds devices seen since start; claimed devices that
        // never connected are listed from the store (no memory per device
        // for a fleet that is mostly asleep).
        metrics::gauge!("switchboard_devices_online").set(0.0);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<DeviceSupervisorMsg>,
        msg: DeviceSupervisorMsg,
        state: &mut DeviceSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DeviceSupervisorMsg::SetBroker(b) => state.broker = Some(b),
            DeviceSupervisorMsg::Connected {
                principal: Principal::Device(id),
                ..
            } => {
                state.spawn(&myself, &id).await;
                if let Some(e) = state.devices.get_mut(&id) {
                    e.connections += 1;
                    state.online.set(&e.view, true);
                }
                state.send(&id, DeviceMsg::Online);
            }
            DeviceSupervisorMsg::Connected { .. } => {}
            DeviceSupervisorMsg::Disconnected {
                principal: Principal::Device(id),
                clean,
            } => {
                let Some(e) = state.devices.get_mut(&id) else {
                    return Ok(());
                };
                e.connections = e.connections.saturating_sub(1);
                if e.connections > 0 {
                    return Ok(()); // another connection of the same device is still up
                }
                state.online.set(&e.view, false);
                // The session stops on Offline; forget it now so that a quick
                // reconnect gets a fresh one instead of the stopping actor.
                if let Some(a) = e.actor.take() {
                    let _ = a.send_message(DeviceMsg::Offline { clean });
                }
            }
            DeviceSupervisorMsg::Disconnected { .. } => {}
            DeviceSupervisorMsg::Subscribed {
                principal: Principal::Device(id),
                filters,
                resumed,
            } => {
                state.send(&id, DeviceMsg::Subscribed { filters, resumed });
            }
            DeviceSupervisorMsg::Subscribed { .. } => {}
            DeviceSupervisorMsg::Published {
                from,
                topic,
                payload,
                credit,
            } => {
                state
                    .published(&myself, from, &topic, payload, credit)
                    .await
            }
            DeviceSupervisorMsg::Claim(req, reply) => {
                let result = state.claim(&req).await;
                let claimed = result.is_ok();
                let _ = reply.send(result);
                if claimed {
                    state.end_claimant(&req.device_id);
                }
            }
            DeviceSupervisorMsg::Reset(id, reply) => {
                let _ = reply.send(state.reset(&id).await);
            }
            DeviceSupervisorMsg::Command {
                device,
                payload,
                reply,
            } => {
                let _ = reply.send(state.command(&device, payload).await);
            }
            DeviceSupervisorMsg::List(reply) => {
                let mut list: Vec<DeviceView> = state
                    .devices
                    .values()
                    .map(|e| e.view.borrow().clone())
                    .collect();
                let stored = list_devices(state.store.as_ref(), 1_000_000).unwrap_or_else(|err| {
                    tracing::error!(%err, "listing devices from the store failed");
                    Vec::new()
                });
                for rec in stored {
                    let seen =
                        DeviceId::parse(&rec.id).is_ok_and(|id| state.devices.contains_key(&id));
                    if !seen {
                        let mut v = DeviceView::new(&rec.id, Some(rec.account), rec.firmware);
                        v.commands_pending = pending_count(state.store.as_ref(), &rec.id);
                        list.push(v);
                    }
                }
                list.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(list);
            }
            DeviceSupervisorMsg::Ring {
                device,
                call,
                reply,
            } => {
                let result = match (state.devices.get(&device), &state.broker) {
                    (
                        Some(Entry {
                            actor: Some(actor),
                            view,
                            ..
                        }),
                        Some(broker),
                    ) if view.borrow().online => {
                        metrics::counter!("switchboard_device_calls_total", "dir" => "in")
                            .increment(1);
                        let _ = actor.send_message(DeviceMsg::Ring(call));
                        Ok(voice::DeviceLine {
                            session: actor.clone(),
                            downlink: voice::Downlink::new(broker.clone(), &device),
                        })
                    }
                    _ => match get_device(state.store.as_ref(), device.as_str()) {
                        Ok(Some(_)) => Err(voice::RingError::Offline),
                        _ => Err(voice::RingError::Unknown),
                    },
                };
                let _ = reply.send(result);
            }
            DeviceSupervisorMsg::Draining { drain_secs } => {
                let payload = serde_json::json!({
                    "type": "gateway_draining",
                    "drain_secs": drain_secs,
                    "reconnect": true,
                });
                state.drain_notice = Some(Bytes::from(payload.to_string()));
                let told = state.tell_drain();
                tracing::info!(devices = told, "devices told of the drain");
            }
            DeviceSupervisorMsg::Disconnect(reply) => {
                // A device that came online after the notice went out is told now, before
                // it is disconnected (the notice is queued ahead of the close).
                let late = state.tell_drain();
                if late > 0 {
                    tracing::info!(devices = late, "devices told of the drain at disconnect");
                }
                let online = state.online();
                if let Some(b) = &state.broker {
                    for id in &online {
                        let _ = b.send_message(BrokerMsg::Revoke(Principal::Device(id.clone())));
                    }
                }
                let _ = reply.send(online.len());
            }
            DeviceSupervisorMsg::Get(id, reply) => {
                let view = match state.devices.get(&id) {
                    Some(e) => Some(e.view.borrow().clone()),
                    None => get_device(state.store.as_ref(), id.as_str())
                        .ok()
                        .flatten()
                        .map(|r| {
                            let mut v = DeviceView::new(&r.id, Some(r.account), r.firmware);
                            v.commands_pending = pending_count(state.store.as_ref(), &r.id);
                            v
                        }),
                };
                let _ = reply.send(view);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DeviceSupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut DeviceSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = state.by_actor.remove(&cell.get_id()) {
                    if let Some(e) = state.devices.get_mut(&id) {
                        // Only if it is still the current session of the device.
                        if e.actor
                            .as_ref()
                            .is_some_and(|a| a.get_id() == cell.get_id())
                        {
                            e.actor = None;
                        }
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                metrics::counter!("switchboard_device_session_crashes_total").increment(1);
                tracing::error!(device = %id, %err, "device session crashed");
                let now = Instant::now();
                let Some(e) = state.devices.get_mut(&id) else {
                    return Ok(());
                };
                if e.actor
                    .as_ref()
                    .is_some_and(|a| a.get_id() != cell.get_id())
                {
                    return Ok(()); // an old session; the device has a new one
                }
                e.actor = None;
                e.restarts
                    .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                let online = e.view.borrow().online;
                if e.restarts.len() >= MAX_RESTARTS {
                    tracing::error!(device = %id, "device session keeps crashing; not restarting");
                    state.online.set(&e.view, false);
                } else if online {
                    e.restarts.push(now);
                    state.spawn(&myself, &id).await;
                    state.send(&id, DeviceMsg::Online);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Commands of a device waiting for delivery or a reply, from the store.
fn pending_count(store: &dyn Store, id: &str) -> usize {
    pending_commands(store, id).map_or(0, |c| c.len())
}

impl DeviceSupervisorState {
    /// The devices with at least one live connection.
    /// Publish the drain notice (once set by `Draining`) to every online device not told
    /// yet; the number told.
    fn tell_drain(&mut self) -> usize {
        let (Some(payload), Some(b)) = (&self.drain_notice, &self.broker) else {
            return 0;
        };
        let mut told = 0;
        for id in self.online() {
            if !self.drain_told.insert(id.clone()) {
                continue;
            }
            let _ = b.send_message(BrokerMsg::Publish {
                topic: format!("devices/{id}/cmd/{DRAIN_NOTICE}"),
                payload: payload.clone(),
                qos: QoS::AtLeastOnce,
                retain: false,
            });
            told += 1;
        }
        told
    }

    fn online(&self) -> Vec<DeviceId> {
        self.devices
            .iter()
            .filter(|(_, e)| e.connections > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn entry(&mut self, id: &DeviceId, rec: Option<&DeviceRecord>) -> &mut Entry {
        let store = &self.store;
        self.devices.entry(id.clone()).or_insert_with(|| {
            let mut v = DeviceView::new(
                id.as_str(),
                rec.map(|r| r.account.clone()),
                rec.and_then(|r| r.firmware.clone()),
            );
            v.commands_pending = pending_count(store.as_ref(), id.as_str());
            let (view, _) = watch::channel(v);
            Entry {
                view: Arc::new(view),
                actor: None,
                restarts: Vec::new(),
                connections: 0,
            }
        })
    }

    fn send(&self, id: &DeviceId, msg: DeviceMsg) {
        if let Some(a) = self.devices.get(id).and_then(|e| e.actor.as_ref()) {
            let _ = a.send_message(msg);
        }
    }

    async fn spawn(&mut self, myself: &ActorRef<DeviceSupervisorMsg>, id: &DeviceId) {
        let rec = get_device(self.store.as_ref(), id.as_str()).ok().flatten();
        let (store, config, broker) = (
            Arc::clone(&self.store),
            Arc::clone(&self.config),
            self.broker.clone(),
        );
        let entry = self.entry(id, rec.as_ref());
        if entry.actor.is_some() {
            return;
        }
        let Some(broker) = broker else { return };
        let args = session::SessionArgs {
            id: id.clone(),
            store,
            config,
            broker,
            view: entry.view.clone(),
            online: self.online.clone(),
            calls: self.calls.clone(),
            drain: Arc::clone(&self.drain),
        };
        match Actor::spawn_linked(None, DeviceSession, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor.insert(actor.get_id(), id.clone());
                if let Some(e) = self.devices.get_mut(id) {
                    e.actor = Some(actor);
                }
            }
            Err(err) => tracing::error!(device = %id, %err, "cannot start device session"),
        }
    }

    async fn published(
        &mut self,
        myself: &ActorRef<DeviceSupervisorMsg>,
        from: Principal,
        topic: &str,
        payload: Bytes,
        credit: Option<crate::broker_msg::Credit>,
    ) {
        metrics::counter!("switchboard_device_messages_in_total").increment(1);
        match (from, Topic::parse(topic)) {
            (Principal::Claimant(id), Ok(Topic::ClaimRequest(d))) if d == id => {
                self.claim_over_mqtt(&id, &payload).await
            }
            (Principal::Device(id), Ok(t)) if *t.device() == id => {
                let has_session = self.devices.get(&id).is_some_and(|e| e.actor.is_some());
                if !has_session {
                    if matches!(t, Topic::Status(_)) && payload.as_ref() == b"offline" {
                        // The Last Will of a device whose session already ended.
                        if let Some(e) = self.devices.get(&id) {
                            self.online.set(&e.view, false);
                        }
                        return;
                    }
                    // A connected device without a session (e.g. after a restart of this supervisor).
                    self.spawn(myself, &id).await;
                    self.send(&id, DeviceMsg::Online);
                }
                self.send(
                    &id,
                    DeviceMsg::Message {
                        topic: t,
                        payload,
                        _credit: credit,
                    },
                );
            }
            _ => {}
        }
    }

    async fn claim_over_mqtt(&mut self, id: &DeviceId, payload: &[u8]) {
        let req = match ClaimRequest::from_json(payload) {
            Ok(r) if r.device_id == id.as_str() => r,
            Ok(_) | Err(_) => {
                // Without a parseable nonce there is no topic to answer on.
                metrics::counter!("switchboard_claim_failures_total", "reason" => "malformed")
                    .increment(1);
                return;
            }
        };
        let response = match self.claim(&req).await {
            Ok(ok) => ok,
            Err(r) => ClaimResponse::rejected(r),
        };
        let claimed = response.is_ok();
        let topic = Topic::ClaimResponse(id.clone(), req.nonce.clone()).to_string();
        if let Some(b) = &self.broker {
            let _ = b.send_message(BrokerMsg::Publish {
                topic,
                payload: Bytes::from(response.to_json()),
                qos: QoS::AtLeastOnce,
                retain: false,
            });
        }
        if claimed {
            self.end_claimant(id.as_str());
        }
    }

    /// The device is claimed now: its claimant connection (if any) is no
    /// longer a valid login. It is closed after the answer it was sent.
    fn end_claimant(&self, id: &str) {
        if let (Some(b), Ok(id)) = (&self.broker, DeviceId::parse(id)) {
            let _ = b.send_message(BrokerMsg::Revoke(Principal::Claimant(id)));
        }
    }

    /// Reset a device (see [`DeviceSupervisorMsg::Reset`]).
    async fn reset(&mut self, id: &DeviceId) -> Result<bool, CommandError> {
        let (device, now) = (id.as_str().to_string(), now_unix_ms());
        let existed = on_store(&self.store, move |s| {
            switchboard_storage::device::reset_device(s, &device, now)
        })
        .await
        .map_err(|err| {
            tracing::error!(%err, "resetting a device failed");
            CommandError::Store
        })?;
        if !existed {
            return Ok(false);
        }
        metrics::counter!("switchboard_device_resets_total").increment(1);
        tracing::info!(device = %id, "device reset; it may be claimed again");
        // Connections still open with the old credential end now.
        if let Some(b) = &self.broker {
            let _ = b.send_message(BrokerMsg::Revoke(Principal::Device(id.clone())));
        }
        if let Some(e) = self.devices.remove(id) {
            self.online.set(&e.view, false);
            if let Some(a) = e.actor {
                self.by_actor.remove(&a.get_id());
                let _ = a.send_message(DeviceMsg::Offline { clean: false });
            }
        }
        Ok(true)
    }

    /// Check a claim and, when genuine and fresh, bind the device to the
    /// default account with a new credential. The nonce and the credential
    /// are on disk before the answer leaves.
    async fn claim(&mut self, req: &ClaimRequest) -> Result<ClaimResponse, ClaimRejection> {
        let result = self.try_claim(req).await;
        match &result {
            Ok(_) => metrics::counter!("switchboard_claims_total").increment(1),
            Err(r) => {
                metrics::counter!("switchboard_claim_failures_total", "reason" => r.metric_reason()).increment(1);
                tracing::info!(device = %req.device_id, reason = r.metric_reason(), "claim refused");
            }
        }
        result
    }

    async fn try_claim(&mut self, req: &ClaimRequest) -> Result<ClaimResponse, ClaimRejection> {
        let Some(fleet) = self.config.devices.fleet_secret.as_ref() else {
            return Err(ClaimRejection::Disabled);
        };
        let id = DeviceId::parse(&req.device_id).map_err(|_| ClaimRejection::Malformed)?;
        let secret = claim::device_secret(fleet.expose().as_bytes(), id.as_str());
        let window = i64::from(self.config.devices.claim_window_secs);
        let account = self.config.devices.default_account.clone();
        let (req, device) = (req.clone(), id.clone());
        // One trip to the blocking pool; this actor waits for it, so claims stay serialised.
        let (password, rec) = on_store(&self.store, move |s| {
            Ok::<_, StoreError>(claim_in_store(s, &req, &device, &secret, window, account))
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(%err, "the claim's store task failed");
            Err(ClaimRejection::Disabled)
        })?;
        let entry = self.entry(&id, Some(&rec));
        entry
            .view
            .send_modify(|v| v.account = Some(rec.account.clone()));
        Ok(ClaimResponse::success(
            id.as_str(),
            id.as_str(),
            &password,
            &self.broker_url,
        ))
    }

    async fn command(
        &mut self,
        id: &DeviceId,
        payload: serde_json::Value,
    ) -> Result<CommandRecord, CommandError> {
        let device = id.as_str().to_string();
        let req_id = format!("{:016x}", rand::random::<u64>());
        let rec = on_store(&self.store, move |s| {
            if get_device(s, &device)?.is_none() {
                return Ok(None);
            }
            enqueue_command(s, &device, &req_id, payload, now_unix_ms()).map(Some)
        })
        .await
        .map_err(|err| {
            tracing::error!(%err, "queueing a command failed");
            CommandError::Store
        })?
        .ok_or(CommandError::UnknownDevice)?;
        let has_session = self.devices.get(id).is_some_and(|e| e.actor.is_some());
        if has_session {
            self.send(id, DeviceMsg::CommandQueued);
        } else if let Some(e) = self.devices.get(id) {
            // Offline: its view counts what waits for it.
            e.view.send_modify(|v| v.commands_pending += 1);
        }
        Ok(rec)
    }
}

/// The store's part of a claim, run off the async workers: the nonce looked up, the claim
/// verified, the nonce recorded and the new credential stored, each flushed before the
/// next, so the answer leaves only with both on disk. Returns the password and the record.
fn claim_in_store(
    store: &dyn Store,
    req: &ClaimRequest,
    id: &DeviceId,
    secret: &[u8],
    window: i64,
    account: String,
) -> Result<(String, DeviceRecord), ClaimRejection> {
    let seen = nonce_seen(store, id.as_str(), &req.nonce).map_err(|_| ClaimRejection::Disabled)?;
    let now = (now_unix_ms() / 1000) as i64;
    claim::verify(req, secret, now, window, seen)?;
    // Claiming is once: re-provisioning is an operator's reset, never a
    // new credential for whoever holds the device secret. The stored
    // credential is left alone.
    if get_device(store, id.as_str())
        .map_err(|_| ClaimRejection::Disabled)?
        .is_some()
    {
        return Err(ClaimRejection::AlreadyClaimed);
    }
    let fresh = record_nonce(store, id.as_str(), &req.nonce, req.ts.max(now) + window)
        .map_err(|_| ClaimRejection::Disabled)?;
    if !fresh {
        return Err(ClaimRejection::Replay);
    }
    let (password, stored) = credential::issue();
    let rec = DeviceRecord {
        v: 1,
        id: id.as_str().to_string(),
        account,
        credential: StoredCredentialData {
            salt: stored.salt,
            hash: stored.hash,
        },
        claimed_at: rfc3339(now_unix_ms()),
        firmware: None,
    };
    put_device(store, &rec).map_err(|err: StoreError| {
        tracing::error!(%err, "storing a claimed device failed");
        ClaimRejection::Disabled
    })?;
    Ok((password, rec))
}
