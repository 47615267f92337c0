//! The MQTT broker's mailbox (MQTT 3.1.1) as device sessions and the gateway see it: what
//! the gateway publishes, the audio routes of device calls, the credits that bound a
//! connection's packets in flight, and the broker's counters. Apart from the broker actor
//! (`mqtt`), which reports to the device supervisor, so devices can name the broker's
//! mailbox without importing the actor.

use std::sync::Arc;

use bytes::Bytes;
use ractor::RpcReplyPort;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::QoS;
use switchboard_mqtt::broker::{ConnId, Principal};
use switchboard_mqtt::DeviceId;
use tokio::sync::{mpsc, oneshot};

/// One in-flight packet's credit; released when the last holder drops it.
pub type Credit = Arc<tokio::sync::OwnedSemaphorePermit>;

/// Messages of the broker actor.
#[derive(Debug)]
pub enum BrokerMsg {
    /// A connection from `source` was accepted; packets for it go to `tx`.
    Accepted {
        conn: ConnId,
        source: std::net::IpAddr,
        tx: mpsc::Sender<Bytes>,
        /// Resolves when the connection's writer has written what was queued and ended.
        written: oneshot::Receiver<()>,
    },
    /// Close every connection of this principal and drop its session (its
    /// credential was reset, or its claim completed).
    Revoke(Principal),
    /// A decoded packet, holding one of its connection's credits until the
    /// message it caused has been handled all the way to the device session.
    Packet {
        conn: ConnId,
        packet: Packet,
        credit: Credit,
    },
    /// The client sent bytes that are not MQTT (or too large).
    ProtocolError { conn: ConnId },
    /// The client asked for a protocol level we do not speak.
    UnsupportedProtocol { conn: ConnId },
    /// The transport closed.
    Closed { conn: ConnId },
    /// Publish from the gateway.
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    },
    /// Hand `device`'s `audio/up` frames for call `call` straight to `tx` (bounded; a frame
    /// that does not fit is dropped and counted), or, with `None`, stop routing them if the
    /// route is still that call's. Unrouted frames go to the device supervisor.
    AudioRoute {
        /// The device.
        device: DeviceId,
        /// The call the route belongs to.
        call: String,
        /// The call's uplink audio channel.
        tx: Option<mpsc::Sender<Bytes>>,
    },
    /// Timer tick.
    Tick,
    /// Counters for status and readiness.
    Status(RpcReplyPort<BrokerStatus>),
    /// The writers of the connections closed so far that may still be sending what was
    /// queued for them (a revoked device's last notice): await them before the process
    /// exits (see [`wait_written`]).
    Closing(RpcReplyPort<Vec<oneshot::Receiver<()>>>),
}

/// Broker counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerStatus {
    /// Connected clients.
    pub clients: usize,
    /// Retained messages.
    pub retained: usize,
    /// The listening address (the broker's URL in external mode).
    pub listen: String,
    /// Ready for devices: always for the embedded broker; connected to the
    /// broker in external mode.
    pub connected: bool,
}
