//! External broker mode (`[mqtt] mode = "external"`): instead of hosting the
//! broker, the gateway is an MQTT client of one (mosquitto, EMQX, …) and
//! several gateway instances split the device traffic between them.
//!
//! Subscriptions, chosen by what each kind of message needs:
//! - telemetry, the bulk of the traffic, through the shared subscription
//!   `$share/switchboard/devices/+/telemetry`: the broker hands each message
//!   to exactly one instance;
//! - presence (`devices/+/status`) and command replies
//!   (`devices/+/cmd/+/reply`) without sharing: every instance knows which
//!   devices are online (to deliver the commands queued on it), and the
//!   instance that sent a command is sure to see its reply (the others ignore
//!   a request id they did not send).
//!
//! The actor speaks the same messages as the embedded broker
//! ([`BrokerMsg`]), so device sessions publish through either without
//! knowing which. Device authentication and topic ACLs are the external
//! broker's job in this mode (see `docs/decisions.md`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter};
use switchboard_config::{BrokerUrl, MqttConfig};
use switchboard_mqtt::broker::Principal;
use switchboard_mqtt::{DeviceId, Topic};

use crate::devices::DeviceSupervisorMsg;
use crate::mqtt::{BrokerMsg, BrokerStatus};

/// Shared-subscription group of all gateway instances.
pub const SHARE_GROUP: &str = "switchboard";
/// Requests queued toward the client's event loop.
const REQUEST_QUEUE: usize = 4096;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The filters the gateway subscribes to at the external broker.
pub fn filters() -> Vec<SubscribeFilter> {
    vec![
        SubscribeFilter::new(
            format!("$share/{SHARE_GROUP}/devices/+/telemetry"),
            QoS::AtLeastOnce,
        ),
        SubscribeFilter::new("devices/+/status".into(), QoS::AtLeastOnce),
        SubscribeFilter::new("devices/+/cmd/+/reply".into(), QoS::AtLeastOnce),
    ]
}

/// What an incoming message means for the device supervisor: the device it
/// came from, if the topic is one a device publishes.
fn device_of(topic: &str) -> Option<(DeviceId, Topic)> {
    match Topic::parse(topic).ok()? {
        t @ (Topic::Status(_) | Topic::Telemetry(_) | Topic::CommandReply(..)) => {
            Some((t.device().clone(), t))
        }
        _ => None,
    }
}

/// Start-up arguments.
pub struct ExternalArgs {
    /// `[mqtt]` (url, client id, credentials, packet size).
    pub mqtt: MqttConfig,
    /// Where device traffic goes.
    pub devices: ActorRef<DeviceSupervisorMsg>,
}

impl std::fmt::Debug for ExternalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalArgs")
            .field("url", &self.mqtt.url)
            .finish_non_exhaustive()
    }
}

/// State of the external link.
pub struct ExternalState {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

/// The external broker link actor.
#[derive(Debug, Default)]
pub struct ExternalBroker;

impl Actor for ExternalBroker {
    type Msg = BrokerMsg;
    type State = ExternalState;
    type Arguments = ExternalArgs;

    async fn pre_start(
        &self,
        _: ActorRef<BrokerMsg>,
        args: ExternalArgs,
    ) -> Result<ExternalState, ActorProcessingErr> {
        let url = args.mqtt.url.clone().unwrap_or_default();
        let parts = BrokerUrl::parse(&url).ok_or("invalid [mqtt] url")?;
        if parts.tls {
            return Err("mqtts:// to an external broker is not supported yet".into());
        }
        // A suffix per process: several instances may share one config, and
        // two clients with one id would keep disconnecting each other.
        let client_id = format!("{}-{:08x}", args.mqtt.client_id, rand::random::<u32>());
        let mut opts = MqttOptions::new(client_id, parts.host, parts.port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(args.mqtt.max_packet_bytes, args.mqtt.max_packet_bytes)
            .set_inflight(256);
        if let Some(user) = &args.mqtt.username {
            let pass = args
                .mqtt
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            opts.set_credentials(user.clone(), pass);
        }
        let (client, eventloop) = AsyncClient::new(opts, REQUEST_QUEUE);
        let connected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            eventloop,
            client.clone(),
            Arc::clone(&connected),
            args.devices,
            url.clone(),
        ));
        Ok(ExternalState {
            client,
            connected,
            url,
            task,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<BrokerMsg>,
        state: &mut ExternalState,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<BrokerMsg>,
        msg: BrokerMsg,
        state: &mut ExternalState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BrokerMsg::Publish {
                topic,
                payload,
                qos,
                retain,
            } => {
                // Commands are durable and re-sent on timeout, so a publish
                // dropped on a full queue costs a retry, not the command.
                if state
                    .client
                    .try_publish(topic, qos, retain, payload)
                    .is_err()
                {
                    metrics::counter!("switchboard_mqtt_external_dropped_total").increment(1);
                } else {
                    metrics::counter!("switchboard_mqtt_packets_out_total").increment(1);
                }
            }
            BrokerMsg::Status(reply) => {
                let _ = reply.send(BrokerStatus {
                    clients: 0,
                    retained: 0,
                    listen: state.url.clone(),
                    connected: state.connected.load(Ordering::Relaxed),
                });
            }
            // Connection events belong to the embedded broker only.
            _ => {}
        }
        Ok(())
    }
}

/// Drive the client: (re)subscribe after every CONNACK, turn presence into
/// connect/disconnect events and forward device messages.
async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    devices: ActorRef<DeviceSupervisorMsg>,
    url: String,
) {
    let mut online: HashSet<DeviceId> = HashSet::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%url, "connected to the external MQTT broker");
                backoff = Duration::from_millis(200);
                connected.store(true, Ordering::Relaxed);
                if let Err(err) = client.try_subscribe_many(filters()) {
                    tracing::error!(%err, "cannot subscribe at the external broker");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!("the external broker refused a subscription (its ACL?)");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                metrics::counter!("switchboard_mqtt_packets_in_total").increment(1);
                let Some((id, topic)) = device_of(&p.topic) else {
                    continue;
                };
                forward(&devices, &mut online, id, topic, p.topic, p.payload);
            }
            Ok(_) => {}
            Err(err) => {
                if connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%url, %err, "lost the external MQTT broker; reconnecting");
                } else {
                    tracing::debug!(%url, %err, "external MQTT broker unreachable");
                }
                metrics::counter!("switchboard_mqtt_external_errors_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Hand one device message to the supervisor. `online`/`offline` on the
/// status topic stand for the connect and disconnect the embedded broker
/// would have seen; `online` remembers who is up so that a retained status
/// delivered again (after our own reconnect) starts no second session.
fn forward(
    devices: &ActorRef<DeviceSupervisorMsg>,
    online: &mut HashSet<DeviceId>,
    id: DeviceId,
    topic: Topic,
    raw_topic: String,
    payload: bytes::Bytes,
) {
    let status = matches!(topic, Topic::Status(_)).then(|| payload.as_ref().to_vec());
    let principal = Principal::Device(id.clone());
    if status.as_deref() == Some(b"online") && online.insert(id.clone()) {
        let _ = devices.send_message(DeviceSupervisorMsg::Connected {
            principal: principal.clone(),
            client_id: id.as_str().to_string(),
        });
    }
    let _ = devices.send_message(DeviceSupervisorMsg::Published {
        from: principal.clone(),
        topic: raw_topic,
        payload,
        credit: None,
    });
    if status.as_deref() == Some(b"offline") && online.remove(&id) {
        let _ = devices.send_message(DeviceSupervisorMsg::Disconnected {
            principal,
            clean: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_device_published_topics_are_taken() {
        assert!(device_of("devices/a1/telemetry").is_some());
        assert!(device_of("devices/a1/status").is_some());
        assert!(device_of("devices/a1/cmd/r1/reply").is_some());
        // What the gateway itself publishes, and foreign topics, are not.
        assert!(device_of("devices/a1/cmd/r1").is_none());
        assert!(device_of("claim/a1/request").is_none());
        assert!(device_of("other/thing").is_none());
        assert!(device_of("devices/+/telemetry").is_none());
    }

    #[test]
    fn telemetry_is_shared_and_presence_is_not() {
        let f = filters();
        assert!(f
            .iter()
            .any(|f| f.path == "$share/switchboard/devices/+/telemetry"));
        assert!(f.iter().any(|f| f.path == "devices/+/status"));
        assert!(f.iter().all(|f| !f.path.contains("claim")));
    }
}
