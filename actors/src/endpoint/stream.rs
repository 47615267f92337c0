//! The stream transports of the endpoint: TCP and TLS connections (RFC 3261 §18.3, §26.3.1).
//!
//! One generic task runs every connection, whatever the stream (`TcpStream` or a rustls
//! stream): a writer drains the connection's queue, the reader frames and parses what
//! arrives and hands it to the endpoint actor as from the connection's [`Peer`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::ActorRef;
use rustls_pki_types::ServerName;
use switchboard_sip::message;
use switchboard_sip::transport::{Peer, StreamDeadline, StreamFramer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::EndpointMsg;
use crate::conn_limit::ConnLimiter;

/// Messages queued toward one stream connection before new ones are dropped.
pub(super) const QUEUE: usize = 256;

/// The timers of stream connections (`[sip] tcp_message_timeout_secs`, `tcp_idle_secs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamTimeouts {
    /// A message, once begun (and an inbound connection's first), must complete within this.
    pub message: Duration,
    /// No complete message for this long closes the connection.
    pub idle: Duration,
}

impl StreamTimeouts {
    pub(super) fn of(config: &switchboard_config::Config) -> Self {
        Self {
            message: config.sip.tcp_message_timeout,
            idle: config.sip.tcp_idle,
        }
    }
}
/// Time to open a TCP connection toward a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection may take to write what is queued for it.
const DRAIN_ON_CLOSE: Duration = Duration::from_secs(2);
/// Time a TLS handshake may take, either way.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a TLS connection toward one destination.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls client (root certificates).
    pub connector: TlsConnector,
    /// The name the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// TLS clients for outbound connections: one per TLS trunk address (its `tls_ca` and
/// `tls_server_name`), and a default (web PKI roots, the peer's IP as the name) for any
/// other destination, e.g. a caller whose connection closed before its BYE.
#[derive(Clone)]
pub struct TlsClients {
    /// By trunk address.
    pub trunks: HashMap<SocketAddr, TlsClient>,
    /// For everything else.
    pub default: TlsConnector,
}

impl TlsClients {
    /// The client for `addr`.
    pub fn get(&self, addr: SocketAddr) -> TlsClient {
        self.trunks
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| TlsClient {
                connector: self.default.clone(),
                server_name: ServerName::IpAddress(addr.ip().into()),
            })
    }
}

impl std::fmt::Debug for TlsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClients")
            .field("trunks", &self.trunks)
            .finish_non_exhaustive()
    }
}

/// The metrics label of a transport.
pub(super) fn label(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// Accept TCP connections on `listener`; with `tls`, each one first completes a TLS handshake
/// in its own task (with [`TLS_HANDSHAKE_TIMEOUT`]), so a slow or broken client never holds
/// up the accept loop. Beyond the caps of `limits` (in total and per source) new connections
/// are closed at once, before any handshake.
pub(super) async fn accept(
    listener: Arc<TcpListener>,
    tls: Option<TlsAcceptor>,
    limits: Arc<ConnLimiter>,
    timeouts: StreamTimeouts,
    endpoint: ActorRef<EndpointMsg>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(%err, %transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match limits.try_acquire(addr.ip()) {
            Ok(p) => p,
            Err(why) => {
                metrics::counter!("switchboard_sip_connections_refused_total", "transport" => label(transport), "reason" => why.label())
                    .increment(1);
                tracing::debug!(%addr, %transport, %why, "stream connection refused");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer { addr, transport };
        let endpoint = endpoint.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = tls else {
                return inbound(stream, peer, endpoint, timeouts).await;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => inbound(stream, peer, endpoint, timeouts).await,
                Ok(Err(err)) => {
                    metrics::counter!("switchboard_sip_tls_handshake_failures_total", "direction" => "in", "reason" => "error")
                        .increment(1);
                    tracing::debug!(%addr, %err, "SIP TLS handshake failed");
                }
                Err(_) => {
                    metrics::counter!("switchboard_sip_tls_handshake_failures_total", "direction" => "in", "reason" => "timeout")
                        .increment(1);
                    tracing::debug!(%addr, "SIP TLS handshake timed out");
                }
            }
        });
    }
}

/// An accepted (and, for TLS, handshaken) connection: register it, then run it.
async fn inbound<S>(
    stream: S,
    peer: Peer,
    endpoint: ActorRef<EndpointMsg>,
    timeouts: StreamTimeouts,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let replies = tx.clone();
    if endpoint
        .send_message(EndpointMsg::StreamUp { peer, tx })
        .is_err()
    {
        return;
    }
    let deadline =
        StreamDeadline::inbound(std::time::Instant::now(), timeouts.message, timeouts.idle);
    run(stream, peer, endpoint, (replies, rx), deadline).await;
}

/// Move bytes on one TCP or TLS connection: a writer task drains `rx`, this task frames
/// what arrives (RFC 3261 §18.3) and hands parsed messages to the endpoint as from `peer`,
/// answering a malformed request itself on `replies` (400, 416, 501, 505 as over UDP).
/// The connection closes when `deadline` passes: only complete messages move it. On close
/// (framing error, timeout, the peer's end) what is queued still leaves, for up to
/// [`DRAIN_ON_CLOSE`]: the answers to the messages read before the close.
async fn run<S>(
    stream: S,
    peer: Peer,
    endpoint: ActorRef<EndpointMsg>,
    (replies, mut rx): (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>),
    mut deadline: StreamDeadline,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let addr = peer.addr;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            // TLS buffers records: flush so each message leaves now.
            if wr.write_all(&data).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let due = tokio::time::Instant::from_std(deadline.deadline());
        let n = match tokio::time::timeout_at(due, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                metrics::counter!("switchboard_sip_connections_timed_out_total", "transport" => label(peer.transport))
                    .increment(1);
                tracing::debug!(%addr, transport = %peer.transport, "closing connection: no complete message in time");
                break;
            }
            Ok(Ok(n)) => n,
        };
        let now = std::time::Instant::now();
        if let Err(err) = framer.push(&buf[..n]) {
            tracing::debug!(%addr, transport = %peer.transport, %err, "closing connection: framing error");
            break;
        }
        let mut fatal = false;
        loop {
            match framer.next_message() {
                Ok(Some(data)) => match message::parse(&data) {
                    Ok(msg) => {
                        deadline.on_message(now);
                        let _ = endpoint.send_message(EndpointMsg::Inbound { peer, msg });
                    }
                    Err(err) => {
                        metrics::counter!("switchboard_sip_parse_errors_total", "transport" => label(peer.transport)).increment(1);
                        tracing::debug!(%addr, transport = %peer.transport, %err, "malformed SIP on a stream");
                        if let Some(reply) = message::bad_request(&data, &err) {
                            // Never wait on a slow reader: a full queue drops the answer.
                            let _ = replies.try_send(Bytes::from(reply));
                        }
                    }
                },
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(%addr, transport = %peer.transport, %err, "closing connection: framing error");
                    fatal = true;
                    break;
                }
            }
        }
        if fatal {
            break;
        }
        if framer.take_pong() {
            // An RFC 5626 keep-alive: the peer is alive.
            deadline.on_message(now);
        }
        deadline.on_data(now, framer.buffered() > 0);
    }
    // The endpoint drops its sender on StreamDown, after the answers to what was read
    // before it; the writer then ends once the queue is written.
    drop(replies);
    let _ = endpoint.send_message(EndpointMsg::StreamDown { peer });
    if tokio::time::timeout(DRAIN_ON_CLOSE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Open a TCP (and, with `tls`, TLS) connection to `peer` and run it, draining `rx`. A
/// connect or handshake failure is reported as `StreamFailed`.
pub(super) async fn connect(
    peer: Peer,
    tls: Option<TlsClient>,
    endpoint: ActorRef<EndpointMsg>,
    (replies, rx): (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>),
    timeouts: StreamTimeouts,
) {
    let addr = peer.addr;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::warn!(%addr, transport = %peer.transport, %err, "SIP connect failed");
            let _ = endpoint.send_message(EndpointMsg::StreamFailed { peer });
            return;
        }
        Err(_) => {
            tracing::warn!(%addr, transport = %peer.transport, "SIP connect timed out");
            let _ = endpoint.send_message(EndpointMsg::StreamFailed { peer });
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let deadline =
        StreamDeadline::outbound(std::time::Instant::now(), timeouts.message, timeouts.idle);
    let Some(client) = tls else {
        return run(stream, peer, endpoint, (replies, rx), deadline).await;
    };
    let name = client.server_name.to_str().into_owned();
    let handshake = client.connector.connect(client.server_name, stream);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => run(stream, peer, endpoint, (replies, rx), deadline).await,
        Ok(Err(err)) => {
            metrics::counter!("switchboard_sip_tls_handshake_failures_total", "direction" => "out", "reason" => "error")
                .increment(1);
            tracing::warn!(%addr, server_name = %name, %err, "SIP TLS handshake failed");
            let _ = endpoint.send_message(EndpointMsg::StreamFailed { peer });
        }
        Err(_) => {
            metrics::counter!("switchboard_sip_tls_handshake_failures_total", "direction" => "out", "reason" => "timeout")
                .increment(1);
            tracing::warn!(%addr, server_name = %name, "SIP TLS handshake timed out");
            let _ = endpoint.send_message(EndpointMsg::StreamFailed { peer });
        }
    }
}
