//! The media-ingest server: a CPaaS (Twilio Media Streams, Exotel AgentStream) opens a
//! WebSocket to `[media_ws] listen` and streams a call to us; we bridge it to an app
//! (`app:NAME`), a device (`device:ID`) or a new call through the dial plan
//! (`call:NUMBER`), and send back what that side plays.
//!
//! URL: `ws[s]://HOST:PORT/ingest/{target}?mode=twilio|exotel[&token=JWT]`, the token in
//! `Authorization: Bearer` or the `token` query parameter.
//!
//! Admission happens before the upgrade, cheapest first ([`guard`]): source allowlist (403),
//! total and per-source connection caps (503/429), the RS256 token (401), the target's
//! existence (404) and the token's `targets` claim (403), the per-tenant cap (429). After the
//! upgrade every frame is checked for size and rate (close 1009/1008), and every message by
//! the stream parser (event types, ids, sequence numbers, payload bounds). A connection that
//! breaks a limit is closed alone; nothing else is disturbed.

pub mod guard;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ractor::ActorRef;
use switchboard_config::MediaWsConfig;
use switchboard_media::streams::ingest::{
    IngestEvent, IngestLimits, IngestReader, IngestStart, IngestWriter,
};
use switchboard_media::streams::{Dialect, MediaFormat, StreamError, Track};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::audio::app::{AppStream, AppStreamArgs, Transcoder};
use crate::audio::leg::{Leg, LegCommand, LegEvent, FRAME_SAMPLES};
use crate::context::CallContext;
use guard::{Allowlist, Claims, ConnLimits, ConnPermit, FrameGuard, JwtVerifier, Reject};

/// Refused app/parser messages tolerated on one stream before it is closed.
const MAX_BAD_MESSAGES: u64 = 50;
/// Largest chunk of audio sent back to the CPaaS in one `media` message.
const MAX_CHUNK_MS: usize = 1000;

/// Why the ingest server could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The JWT public key could not be read or used.
    #[error("media_ws.jwt_public_key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen for media streams on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Where an ingest stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app (`[[app]]` name).
    App(String),
    /// A device.
    Device(String),
    /// A new call through the dial plan.
    Call(String),
}

impl Target {
    fn parse(s: &str, ctx: &CallContext) -> Option<Target> {
        let (kind, rest) = s.split_once(':')?;
        match kind {
            "app" if ctx.config.app(rest).is_some() => Some(Target::App(rest.to_string())),
            "device" if switchboard_mqtt::DeviceId::parse(rest).is_ok() => {
                Some(Target::Device(rest.to_string()))
            }
            "call" if guard::is_dial_string(rest) => Some(Target::Call(rest.to_string())),
            _ => None,
        }
    }
}

/// Shared state of the server.
struct Server {
    cfg: MediaWsConfig,
    verifier: JwtVerifier,
    allow: Allowlist,
    limits: Arc<ConnLimits>,
    ctx: Arc<CallContext>,
    /// The device supervisor, for `device:ID` targets (None when MQTT is off).
    devices: Option<ActorRef<crate::devices::DeviceSupervisorMsg>>,
}

fn count_reject(reason: &str) {
    metrics::counter!("switchboard_ingest_rejects_total", "reason" => reason.to_string())
        .increment(1);
}

/// Start the server when `[media_ws] enabled`; `Ok(None)` when it is off. `devices` is the
/// device supervisor (None when MQTT is off: `device:` targets are unknown).
pub async fn start(
    ctx: Arc<CallContext>,
    devices: Option<ActorRef<crate::devices::DeviceSupervisorMsg>>,
) -> Result<Option<tokio::task::JoinHandle<()>>, IngestError> {
    let cfg = ctx.config.media_ws.clone();
    if !cfg.enabled {
        return Ok(None);
    }
    let Some(key_path) = cfg.jwt_public_key.clone() else {
        return Err(IngestError::Key {
            path: String::new(),
            reason: "not set".into(),
        });
    };
    let pem = std::fs::read(&key_path).map_err(|e| IngestError::Key {
        path: key_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let verifier =
        JwtVerifier::from_rsa_pem(&pem, cfg.jwt_issuer.as_deref(), cfg.jwt_audience.as_deref())
            .map_err(|e| IngestError::Key {
                path: key_path.display().to_string(),
                reason: e.to_string(),
            })?;
    let tls = match cfg.tls() {
        Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| IngestError::Bind {
            addr: cfg.listen,
            source,
        })?;
    for r in Reject::ALL.iter().map(Reject::as_str).chain([
        "handshake",
        "handshake_timeout",
        "tls_handshake",
    ]) {
        metrics::counter!("switchboard_ingest_rejects_total", "reason" => r).absolute(0);
    }
    metrics::gauge!("switchboard_ingest_connections").set(0.0);
    tracing::info!(addr = %cfg.listen, tls = tls.is_some(), "media ingest listening");
    let server = Arc::new(Server {
        limits: ConnLimits::new(cfg.max_connections, cfg.max_per_ip, cfg.max_per_tenant),
        allow: Allowlist::new(cfg.allow.clone()),
        verifier,
        cfg,
        ctx,
        devices,
    });
    Ok(Some(tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let server = Arc::clone(&server);
            let tls = tls.clone();
            tokio::spawn(async move { server.connection(tcp, peer, tls).await });
        }
    })))
}

/// A plain HTTP refusal before any WebSocket exchange.
async fn refuse<S: AsyncWrite + Unpin>(mut s: S, reject: Reject) {
    count_reject(reject.as_str());
    let body = format!("{{\"error\":\"{}\"}}", reject.as_str());
    let status = reject.http_status();
    let reason = http_reason(status);
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = s.write_all(msg.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await;
}

fn http_reason(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[allow(clippy::result_large_err)]
fn error_response(status: u16, reason: &str) -> ErrorResponse {
    count_reject(reason);
    let mut resp = ErrorResponse::new(Some(format!("{{\"error\":\"{reason}\"}}")));
    *resp.status_mut() =
        tokio_tungstenite::tungstenite::http::StatusCode::from_u16(status).unwrap_or_default();
    resp.headers_mut().insert(
        "content-type",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What admission decided.
struct Admitted {
    target: Target,
    dialect: Dialect,
    permit: ConnPermit,
    claims: Claims,
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Server {
    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let ip = peer.ip().to_canonical();
        if !self.allow.permits(ip) {
            return refuse(tcp, Reject::NotAllowed).await;
        }
        let ip_permit = match self.limits.admit_ip(ip) {
            Ok(p) => p,
            Err(r) => return refuse(tcp, r).await,
        };
        // One deadline for the TLS handshake and the upgrade together; this task holds the
        // source's connection slot meanwhile, so slow handshakes are bounded by `max_per_ip`.
        let deadline = tokio::time::Instant::now() + self.cfg.handshake_timeout();
        match tls {
            Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => self.handshake(s, ip, ip_permit, deadline).await,
                // Not TLS (e.g. a plain ws:// client), or a bad or unfinished handshake.
                Ok(Err(_)) => count_reject("tls_handshake"),
                Err(_) => count_reject("handshake_timeout"),
            },
            None => self.handshake(tcp, ip, ip_permit, deadline).await,
        }
    }

    async fn handshake<S>(
        self: Arc<Self>,
        stream: S,
        ip: IpAddr,
        ip_permit: guard::IpPermit,
        deadline: tokio::time::Instant,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut ip_permit = Some(ip_permit);
        let mut admitted: Option<Admitted> = None;
        // The signature is tungstenite's `Callback`; its error type is an HTTP response.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            let query = req.uri().query();
            let Some(token) = guard::token_from_request(auth, query) else {
                return Err(error_response(401, Reject::NoToken.as_str()));
            };
            let claims = self
                .verifier
                .verify(token, switchboard_storage::now_unix_ms() / 1000)
                .map_err(|r| error_response(r.http_status(), r.as_str()))?;
            let path = req.uri().path();
            let raw = path
                .strip_prefix("/ingest/")
                .unwrap_or("")
                .replace("%3A", ":")
                .replace("%3a", ":");
            let Some(target) = Target::parse(&raw, &self.ctx) else {
                return Err(error_response(404, "unknown_target"));
            };
            if !claims.allows(&raw) {
                return Err(error_response(403, Reject::TargetNotAllowed.as_str()));
            }
            let dialect = match query_param(query, "mode") {
                None | Some("twilio") => Dialect::Twilio,
                Some("exotel") => Dialect::Exotel,
                Some(_) => return Err(error_response(400, "bad_mode")),
            };
            let Some(ipp) = ip_permit.take() else {
                return Err(error_response(500, "internal"));
            };
            let permit = self
                .limits
                .admit_tenant(ipp, &claims.tenant)
                .map_err(|r| error_response(r.http_status(), r.as_str()))?;
            admitted = Some(Admitted {
                target,
                dialect,
                permit,
                claims,
            });
            Ok(resp)
        };
        let config = WebSocketConfig::default()
            // Messages are a few hundred bytes: small buffers (tungstenite's defaults are 128 KiB
            // each per connection), and every message written at once (latency).
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(self.cfg.max_frame_bytes))
            .max_frame_size(Some(self.cfg.max_frame_bytes));
        let ws = tokio::time::timeout_at(
            deadline,
            tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
        )
        .await;
        let ws = match ws {
            Ok(Ok(ws)) => ws,
            Ok(Err(_)) => {
                if admitted.is_none() {
                    // Refused in the callback (counted there) or not a WebSocket request.
                    return;
                }
                count_reject("handshake");
                return;
            }
            Err(_) => {
                count_reject("handshake_timeout");
                return;
            }
        };
        let Some(admitted) = admitted else { return };
        let target = match &admitted.target {
            Target::App(name) => format!("app:{name}"),
            Target::Device(id) => format!("device:{id}"),
            Target::Call(number) => format!("call:{}", crate::context::mask_number(number)),
        };
        tracing::info!(%ip, tenant = %admitted.claims.tenant, %target, "ingest stream accepted");
        metrics::counter!("switchboard_ingest_accepted_total").increment(1);
        metrics::gauge!("switchboard_ingest_connections").set(self.limits.active() as f64);
        self.run_stream(ws, admitted).await;
        metrics::gauge!("switchboard_ingest_connections")
            .set(self.limits.active().saturating_sub(1) as f64);
    }

    async fn run_stream<S>(
        self: &Arc<Self>,
        ws: tokio_tungstenite::WebSocketStream<S>,
        admitted: Admitted,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted {
            target,
            dialect,
            permit,
            ..
        } = admitted;
        let _permit = permit;
        let (mut sink, mut source) = ws.split();
        let mut reader = IngestReader::new(
            dialect,
            IngestLimits {
                max_frame_bytes: self.cfg.max_frame_bytes,
                ..IngestLimits::default()
            },
        );
        let mut frames = FrameGuard::new(
            self.cfg.max_frame_bytes,
            self.cfg.max_frames_per_sec,
            Instant::now(),
        );
        let idle = self.cfg.idle_timeout();
        let mut bad = 0u64;
        // Set up on `start`.
        let mut live: Option<Live> = None;
        let (close_tx, mut close_rx) = oneshot::channel::<&'static str>();
        let mut close_tx = Some(close_tx);
        let close = |code: CloseCode, reason: &str| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.to_string().into(),
            }))
        };
        let closing = loop {
            let command = async {
                match live.as_mut() {
                    Some(l) => l.commands.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                reason = &mut close_rx => {
                    let reason = reason.unwrap_or("ended");
                    break Some(close(CloseCode::Normal, reason));
                }
                cmd = command => {
                    let Some(cmd) = cmd else { continue };
                    let Some(l) = live.as_mut() else { continue };
                    for msg in l.answer(cmd) {
                        if sink.send(Message::text(msg)).await.is_err() {
                            break;
                        }
                    }
                }
                frame = tokio::time::timeout(idle, source.next()) => {
                    let frame = match frame {
                        Err(_) => {
                            count_reject("idle");
                            break Some(close(CloseCode::Away, "idle"));
                        }
                        Ok(None) | Ok(Some(Err(_))) => break None,
                        Ok(Some(Ok(f))) => f,
                    };
                    let len = match &frame {
                        Message::Text(t) => t.len(),
                        Message::Binary(b) => b.len(),
                        Message::Close(_) => break None,
                        _ => 0,
                    };
                    if let Err(r) = frames.check(len, Instant::now()) {
                        count_reject(r.as_str());
                        break Some(close(CloseCode::from(r.close_code()), r.as_str()));
                    }
                    metrics::counter!("switchboard_ingest_frames_total").increment(1);
                    metrics::counter!("switchboard_ingest_bytes_total").increment(len as u64);
                    let parsed = match frame {
                        Message::Text(t) => reader.read_text(t.as_str()),
                        Message::Binary(b) => Err(reader.read_binary(&b)),
                        _ => continue,
                    };
                    let event = match parsed {
                        Ok(ev) => ev,
                        Err(e) => {
                            bad += 1;
                            count_reject(e.reason());
                            if fatal(&e) || bad >= MAX_BAD_MESSAGES {
                                break Some(close(CloseCode::from(e.close_code()), e.reason()));
                            }
                            continue;
                        }
                    };
                    match event {
                        IngestEvent::Connected => {}
                        IngestEvent::Start(start) => {
                            let Some(tx) = close_tx.take() else { continue };
                            match self.begin(&target, dialect, &start, tx).await {
                                Ok(l) => live = Some(l),
                                Err(reason) => {
                                    count_reject(reason);
                                    let code = if reason == Reject::BadFrom.as_str() {
                                        CloseCode::Policy
                                    } else {
                                        CloseCode::Again
                                    };
                                    break Some(close(code, reason));
                                }
                            }
                        }
                        IngestEvent::Media { track, payload } => {
                            if let (Some(l), Track::Inbound) = (live.as_mut(), track) {
                                l.media(&payload);
                            }
                        }
                        IngestEvent::Dtmf { digit } => {
                            if let Some(l) = &live {
                                let _ = l.events.try_send(LegEvent::Dtmf { digit, duration_ms: 0 });
                            }
                        }
                        IngestEvent::Mark { name } => {
                            if let Some(l) = &live {
                                let _ = l.events.try_send(LegEvent::Marks(vec![name]));
                            }
                        }
                        IngestEvent::Stop => {
                            break Some(close(CloseCode::Normal, "stopped"));
                        }
                    }
                }
            }
        };
        if let Some(frame) = closing {
            // Close handshake (RFC 6455 §7.1.2): send ours, then read until the peer's
            // Close (or a second), so the peer sees our code instead of a reset.
            let _ = sink.send(frame).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(m)) = source.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        if let Some(l) = live {
            l.finish();
        }
    }

    /// `start` arrived: register the stream and connect its target.
    async fn begin(
        self: &Arc<Self>,
        target: &Target,
        dialect: Dialect,
        start: &IngestStart,
        close: oneshot::Sender<&'static str>,
    ) -> Result<Live, &'static str> {
        let ctx = &self.ctx;
        if ctx.drain.is_draining() {
            // Closed with 1013 (try again later): another instance, or this one after restart.
            return Err("draining");
        }
        // `from` reaches the SIP From of a `call:` target and the app's and device's `from`:
        // a dial string or nothing.
        let from = guard::calling_number(start.from.as_deref()).map_err(|r| r.as_str())?;
        let (target_name, kind_target) = match target {
            Target::App(n) => ("app", n.clone()),
            Target::Device(d) => ("device", d.clone()),
            Target::Call(n) => ("call", n.clone()),
        };
        let guard = ctx.streams.register(
            start.stream_sid.clone(),
            Some(start.call_sid.clone()),
            "ingest",
            format!("{target_name}:{kind_target}"),
            match dialect {
                Dialect::Twilio => "twilio",
                Dialect::Exotel => "exotel",
            },
        );
        guard.entry.set_state("streaming");
        let (leg, events, commands) = Leg::channel();
        let holder = match target {
            Target::App(name) => {
                let Some(app) = ctx.config.app(name) else {
                    return Err("unknown_target");
                };
                let args = AppStreamArgs {
                    app: app.clone(),
                    parameters: app.parameters_with(&start.custom_parameters),
                    call_id: start.call_sid.clone(),
                    from,
                    to: start.to.clone().unwrap_or_default(),
                    kind: "app",
                    tracks: vec![Track::Inbound],
                };
                let close = std::sync::Mutex::new(Some(close));
                let on_gone = Box::new(move |_why| {
                    if let Some(c) = close.lock().ok().and_then(|mut c| c.take()) {
                        let _ = c.send("app gone");
                    }
                });
                Holder::App(AppStream::spawn(args, leg, &ctx.streams, on_gone))
            }
            Target::Device(id) => {
                let rate = ctx.config.devices.audio_rate;
                match crate::devices::voice::ingest_to_device(
                    self.devices.as_ref(),
                    id,
                    from,
                    rate,
                    leg,
                    close,
                )
                .await
                {
                    Ok(end) => Holder::Device(end),
                    Err(crate::devices::voice::RingError::Offline) => return Err("device_offline"),
                    Err(crate::devices::voice::RingError::Unknown) => return Err("unknown_device"),
                }
            }
            Target::Call(number) => {
                match crate::local::ingest_to_call(ctx, number.clone(), from, leg, close).await {
                    Some(call) => Holder::Call(Arc::clone(ctx), call),
                    None => return Err("call_failed"),
                }
            }
        };
        Ok(Live {
            format: start.format,
            writer: IngestWriter::new(dialect, start.format, start.stream_sid.clone()),
            codec: Transcoder::new(start.format),
            pending: Vec::with_capacity(2 * FRAME_SAMPLES),
            frames: 0,
            events,
            commands,
            holder,
            guard,
        })
    }
}

/// Errors after which a stream is closed at once.
fn fatal(e: &StreamError) -> bool {
    matches!(
        e,
        StreamError::BinaryFrame { .. }
            | StreamError::FrameTooLarge { .. }
            | StreamError::StreamSidMismatch { .. }
    )
}

/// What keeps a stream's target alive.
enum Holder {
    App(AppStream),
    Device(mpsc::Sender<()>),
    Call(Arc<CallContext>, crate::call::CallId),
}

/// A started stream.
struct Live {
    format: MediaFormat,
    writer: IngestWriter,
    codec: Transcoder,
    pending: Vec<i16>,
    frames: u64,
    events: mpsc::Sender<LegEvent>,
    commands: mpsc::Receiver<LegCommand>,
    holder: Holder,
    guard: crate::audio::StreamGuard,
}

impl Live {
    /// CPaaS audio → 20 ms frames of 8 kHz PCM toward the target.
    fn media(&mut self, payload: &[u8]) {
        let counters = &self.guard.entry.counters;
        counters
            .bytes_in
            .fetch_add(payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
        counters
            .frames_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pcm = Vec::new();
        self.codec.decode(payload, &mut pcm);
        self.pending.extend_from_slice(&pcm);
        while self.pending.len() >= FRAME_SAMPLES {
            let frame: Vec<i16> = self.pending.drain(..FRAME_SAMPLES).collect();
            let ev = LegEvent::Audio {
                track: Track::Inbound,
                pcm: frame,
                timestamp_ms: self.frames * 20,
            };
            self.frames += 1;
            if self.events.try_send(ev).is_err() {
                counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("switchboard_ingest_buffer_drops_total").increment(1);
            }
        }
    }

    /// The target's audio, marks and clears → messages to the CPaaS.
    fn answer(&mut self, cmd: LegCommand) -> Vec<String> {
        let counters = &self.guard.entry.counters;
        match cmd {
            LegCommand::Play(pcm) => {
                let mut out = Vec::new();
                let mut bytes = Vec::new();
                // Whole 20 ms frames, at most a second per message.
                let step = FRAME_SAMPLES * (MAX_CHUNK_MS / 20);
                for chunk in pcm.chunks(step) {
                    self.codec.encode(chunk, &mut bytes);
                    let unit = 20 * self.format.bytes_per_ms();
                    let whole = bytes.len() / unit * unit;
                    if whole == 0 {
                        continue;
                    }
                    counters
                        .bytes_out
                        .fetch_add(whole as u64, std::sync::atomic::Ordering::Relaxed);
                    counters
                        .frames_out
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    out.push(self.writer.media(&bytes[..whole]));
                }
                out
            }
            LegCommand::Mark(name) => vec![self.writer.mark(&name)],
            LegCommand::Clear => vec![self.writer.clear()],
            LegCommand::Remote(_) => Vec::new(),
        }
    }

    fn finish(self) {
        match self.holder {
            Holder::App(stream) => {
                stream.stop("stream ended");
            }
            Holder::Device(end) => drop(end),
            Holder::Call(ctx, call) => {
                crate::local::end_call(&ctx, &call, switchboard_call::HangupCause::StreamEnded)
            }
        }
    }
}
