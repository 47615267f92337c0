//! A call's audio streamed to an app over WebSocket (Twilio Media Streams or Exotel
//! AgentStream shapes): we connect to the `[[app]]` URL, send `connected` and `start`,
//! then one `media` message per 20 ms frame of the caller's audio, `dtmf` for RFC 4733
//! digits, and `stop` when the call ends. A bidirectional app's `media` is played to the
//! caller; its `mark` is echoed once the audio queued before it has been sent, and `clear`
//! drops queued audio (pending marks are echoed at once, as Twilio does).
//!
//! `wss://` URLs use rustls (ring) with the public webpki roots, or only the certificates of
//! the app's `tls_ca` file when it has one; an untrusted server certificate is logged as
//! "certificate verification failed" and handled like any unreachable app.
//!
//! One task per stream. It never blocks the call: frames toward a slow app are dropped
//! and counted, and an app that cannot be reached, closes, or stops reading for
//! [`STALL_LIMIT`] frames is "gone": the call then hangs up or carries on in silence per
//! `on_failure`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use switchboard_config::{AppConfig, AppFailure, StreamDialect};
use switchboard_media::g711::{self, Law};
use switchboard_media::resample::{Resampler, SampleRate};
use switchboard_media::streams::{
    AppMessage, Dialect, Limits, MediaFormat, StartInfo, StreamReader, StreamWriter, Track,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use super::leg::{Leg, LegCommand, LegEvent};
use super::{StreamEntry, StreamGuard, Streams};

/// Messages queued toward the app before frames are dropped (2 s of audio).
const WRITE_QUEUE: usize = 100;
/// Consecutive frames the app may fail to take before it is considered gone (5 s).
pub const STALL_LIMIT: u64 = 250;
/// Refused app messages tolerated before the stream is closed.
const MAX_REJECTS: u64 = 100;
/// How long `stop` and the close handshake may take at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a stream is for.
#[derive(Debug, Clone)]
pub struct AppStreamArgs {
    /// The app.
    pub app: AppConfig,
    /// Custom parameters for `start` (the app's, overridden by the route's).
    pub parameters: BTreeMap<String, String>,
    /// Our call id (`callSid`).
    pub call_id: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// `app` (the call is answered for the app) or `fork` (a copy of a bridged call).
    pub kind: &'static str,
    /// Tracks announced and sent.
    pub tracks: Vec<Track>,
}

/// Why the app side ended before the call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppGone {
    /// Could not connect (refused, timeout, bad handshake).
    Unreachable,
    /// The app closed the connection or it broke.
    Closed,
    /// The app stopped reading.
    Stalled,
    /// The app sent too many invalid messages.
    Misbehaved,
}

impl AppGone {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            AppGone::Unreachable => "unreachable",
            AppGone::Closed => "closed",
            AppGone::Stalled => "stalled",
            AppGone::Misbehaved => "misbehaved",
        }
    }
}

/// Called once if the app goes away while the call is up and the app's policy is to hang up.
pub type OnGone = Box<dyn FnOnce(AppGone) + Send>;

/// A running stream; dropping it (or [`AppStream::stop`]) ends it with `stop`.
#[derive(Debug)]
pub struct AppStream {
    stop: Option<oneshot::Sender<&'static str>>,
    commands: mpsc::Sender<LegCommand>,
    task: Option<JoinHandle<()>>,
    /// The stream id.
    pub stream_sid: String,
}

impl AppStream {
    /// Start streaming `leg` to the app.
    pub fn spawn(args: AppStreamArgs, leg: Leg, streams: &Arc<Streams>, on_gone: OnGone) -> Self {
        let stream_sid = super::new_stream_sid();
        let guard = streams.register(
            stream_sid.clone(),
            Some(args.call_id.clone()),
            args.kind,
            args.app.name.clone(),
            dialect_name(args.app.mode),
        );
        let (stop_tx, stop_rx) = oneshot::channel();
        let commands = leg.commands.clone();
        let task = tokio::spawn(run(args, leg, guard, stop_rx, on_gone));
        AppStream {
            stop: Some(stop_tx),
            commands,
            task: Some(task),
            stream_sid,
        }
    }

    /// The call's media address changed.
    pub fn remote_changed(&self, remote: Option<std::net::SocketAddr>) {
        let _ = self.commands.try_send(LegCommand::Remote(remote));
    }

    /// End the stream (`reason` goes into Exotel's `stop`); returns the task to await.
    pub fn stop(mut self, reason: &'static str) -> Option<JoinHandle<()>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(reason);
        }
        self.task.take()
    }
}

impl Drop for AppStream {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send("call ended");
        }
    }
}

fn dialect_name(d: StreamDialect) -> &'static str {
    match d {
        StreamDialect::Twilio => "twilio",
        StreamDialect::Exotel => "exotel",
    }
}

/// The wire format of an app's `media`.
pub fn media_format(app: &AppConfig) -> (Dialect, MediaFormat) {
    match app.mode {
        StreamDialect::Twilio => (Dialect::Twilio, MediaFormat::Mulaw8k),
        StreamDialect::Exotel => (
            Dialect::Exotel,
            MediaFormat::Pcm16(if app.sample_rate == 16000 {
                SampleRate::Hz16000
            } else {
                SampleRate::Hz8000
            }),
        ),
    }
}

/// Converts between the leg's 8 kHz PCM and a stream's payload format.
#[derive(Debug)]
pub struct Transcoder {
    format: MediaFormat,
    up: Option<Resampler>,
    down: Option<Resampler>,
    scratch: Vec<i16>,
}

impl Transcoder {
    /// For `format`.
    pub fn new(format: MediaFormat) -> Self {
        let rate = format.rate();
        let (up, down) = if rate == SampleRate::Hz8000 {
            (None, None)
        } else {
            (
                Some(Resampler::new(SampleRate::Hz8000, rate)),
                Some(Resampler::new(rate, SampleRate::Hz8000)),
            )
        };
        Transcoder {
            format,
            up,
            down,
            scratch: Vec::new(),
        }
    }

    /// 8 kHz PCM → payload bytes.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match self.format {
            MediaFormat::Mulaw8k => Law::Mu.encode(pcm, out),
            MediaFormat::Pcm16(_) => match self.up.as_mut() {
                Some(r) => {
                    self.scratch.clear();
                    r.process(pcm, &mut self.scratch);
                    g711::pcm16le_encode(&self.scratch, out);
                }
                None => g711::pcm16le_encode(pcm, out),
            },
        }
    }

    /// Payload bytes → 8 kHz PCM.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.clear();
        match self.format {
            MediaFormat::Mulaw8k => Law::Mu.decode(payload, out),
            MediaFormat::Pcm16(_) => match self.down.as_mut() {
                Some(r) => {
                    self.scratch.clear();
                    g711::pcm16le_decode(payload, &mut self.scratch);
                    r.process(&self.scratch, out);
                }
                None => g711::pcm16le_decode(payload, out),
            },
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why an app's WebSocket could not be opened (logged as "app unreachable").
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The `[[app]] url` is not a WebSocket URL.
    #[error("bad url: {0}")]
    BadUrl(#[source] tokio_tungstenite::tungstenite::Error),
    /// `auth_header` holds characters a header value cannot carry.
    #[error("auth_header is not a valid header value")]
    BadAuthHeader,
    /// The app's `tls_ca` file is unusable.
    #[error("tls_ca {}: {reason}", path.display())]
    TlsCa {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: TlsCaError,
    },
    /// The server's certificate is not trusted.
    #[error("certificate verification failed: {error}{}", if *ca_as_leaf {
        " (the server's certificate is a CA certificate: a self-signed certificate \
         in tls_ca must be a leaf, basicConstraints CA:FALSE)"
    } else {
        ""
    })]
    Untrusted {
        /// rustls's verdict.
        error: rustls::Error,
        /// The server presented a CA certificate as its own (webpki never accepts that).
        ca_as_leaf: bool,
    },
    /// Another TLS failure.
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    /// The TCP connection or the WebSocket handshake failed.
    #[error("{0}")]
    WebSocket(#[source] tokio_tungstenite::tungstenite::Error),
    /// No answer within `connect_timeout_ms`.
    #[error("no answer within {0} ms")]
    Timeout(u32),
}

/// What is wrong with a `tls_ca` file.
#[derive(Debug, thiserror::Error)]
pub enum TlsCaError {
    /// It could not be read as PEM.
    #[error("{0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// It holds no certificate rustls can use.
    #[error("no usable certificate in the file")]
    NoCertificate,
    /// rustls refused the protocol setup.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS setup of a `wss://` app: `None` (tungstenite's default, the public webpki roots)
/// unless the app names a `tls_ca`, whose certificates are then the only trusted roots.
fn connector(app: &AppConfig) -> Result<Option<Connector>, ConnectError> {
    let Some(path) = app.tls_ca.as_deref() else {
        return Ok(None);
    };
    if !app.url.starts_with("wss://") {
        return Ok(None);
    }
    client_tls(path)
        .map(|config| Some(Connector::Rustls(config)))
        .map_err(|reason| ConnectError::TlsCa {
            path: path.to_path_buf(),
            reason,
        })
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting only the
/// certificates in the PEM file `ca`.
fn client_tls(ca: &Path) -> Result<Arc<ClientConfig>, TlsCaError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(ca)?.collect::<Result<_, _>>()?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsCaError::NoCertificate);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connect error for the log: a server certificate we do not trust is named as such.
fn describe(e: tokio_tungstenite::tungstenite::Error) -> ConnectError {
    use tokio_tungstenite::tungstenite::error::{Error, TlsError};
    let rustls_error = match &e {
        Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Error::Tls(TlsError::Rustls(inner)) => Some(&**inner),
        _ => None,
    };
    match rustls_error {
        Some(error @ rustls::Error::InvalidCertificate(why)) => ConnectError::Untrusted {
            // webpki never takes a CA certificate as the server's own, even as its anchor.
            ca_as_leaf: format!("{why:?}").contains("CaUsedAsEndEntity"),
            error: error.clone(),
        },
        Some(error) => ConnectError::Tls(error.clone()),
        None => ConnectError::WebSocket(e),
    }
}

async fn connect(app: &AppConfig, max_frame: usize) -> Result<Ws, ConnectError> {
    let mut request = app
        .url
        .as_str()
        .into_client_request()
        .map_err(ConnectError::BadUrl)?;
    if let Some(auth) = &app.auth_header {
        let value = auth
            .expose()
            .parse()
            .map_err(|_| ConnectError::BadAuthHeader)?;
        request.headers_mut().insert("authorization", value);
    }
    let config = WebSocketConfig::default()
        // Messages are a few hundred bytes: small buffers (tungstenite's defaults are 128 KiB
        // each per connection), and every message written at once (latency).
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    let connector = connector(app)?;
    let timeout = Duration::from_millis(u64::from(app.connect_timeout_ms));
    match tokio::time::timeout(
        timeout,
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(describe(e)),
        Err(_) => Err(ConnectError::Timeout(app.connect_timeout_ms)),
    }
}

fn count_gone(kind: &'static str, gone: AppGone) {
    metrics::counter!("switchboard_stream_app_failures_total", "kind" => kind, "reason" => gone.as_str())
        .increment(1);
}

async fn run(
    args: AppStreamArgs,
    mut leg: Leg,
    guard: StreamGuard,
    mut stop: oneshot::Receiver<&'static str>,
    on_gone: OnGone,
) {
    let entry = Arc::clone(&guard.entry);
    let (dialect, format) = media_format(&args.app);
    let limits = Limits::default();
    let ws = tokio::select! {
        r = connect(&args.app, limits.max_frame_bytes) => r,
        _ = &mut stop => return,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(err) => {
            tracing::warn!(app = %args.app.name, call = %args.call_id, %err, "app unreachable");
            count_gone(args.kind, AppGone::Unreachable);
            return gone(args, leg, entry, stop, on_gone, AppGone::Unreachable).await;
        }
    };
    metrics::counter!("switchboard_streams_total", "kind" => args.kind).increment(1);
    entry.set_state("streaming");
    let (sink, mut source) = ws.split();
    let (write_tx, write_rx) = mpsc::channel::<Message>(WRITE_QUEUE);
    let writer = tokio::spawn(write_all(sink, write_rx));
    let sid = guard.entry.stream_sid.clone();
    let mut writer_msgs = StreamWriter::new(dialect, format, sid.clone());
    let mut reader = StreamReader::new(dialect, format, sid, limits);
    let mut codec = Transcoder::new(format);
    let account = "switchboard".to_string();
    let info = StartInfo {
        account_sid: account.clone(),
        call_sid: args.call_id.clone(),
        from: Some(args.from.clone()),
        to: Some(args.to.clone()),
        tracks: args.tracks.clone(),
        custom_parameters: args.parameters.clone(),
    };
    let _ = write_tx.try_send(Message::text(writer_msgs.connected()));
    let _ = write_tx.try_send(Message::text(writer_msgs.start(&info)));
    let counters = &entry.counters;
    let mut stalled = 0u64;
    let mut payload = Vec::with_capacity(640);
    let mut pcm = Vec::with_capacity(1024);
    let outcome: Result<&'static str, AppGone> = loop {
        tokio::select! {
            reason = &mut stop => break Ok(reason.unwrap_or("call ended")),
            ev = leg.events.recv() => {
                let Some(ev) = ev else { break Ok("media ended") };
                let msg = match ev {
                    LegEvent::Audio { track, pcm: frame, timestamp_ms } => {
                        codec.encode(&frame, &mut payload);
                        counters.bytes_out.fetch_add(payload.len() as u64, Ordering::Relaxed);
                        writer_msgs.media(track, timestamp_ms, &payload)
                    }
                    LegEvent::Dtmf { digit, duration_ms } => {
                        counters.digits.fetch_add(1, Ordering::Relaxed);
                        writer_msgs.dtmf(digit, duration_ms)
                    }
                    LegEvent::Marks(names) => {
                        for name in &names[..names.len().saturating_sub(1)] {
                            counters.marks.fetch_add(1, Ordering::Relaxed);
                            let _ = write_tx.try_send(Message::text(writer_msgs.mark(name)));
                        }
                        let Some(last) = names.last() else { continue };
                        counters.marks.fetch_add(1, Ordering::Relaxed);
                        writer_msgs.mark(last)
                    }
                };
                match write_tx.try_send(Message::text(msg)) {
                    Ok(()) => {
                        stalled = 0;
                        counters.frames_out.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stalled += 1;
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("switchboard_stream_dropped_frames_total").increment(1);
                        if stalled >= STALL_LIMIT {
                            break Err(AppGone::Stalled);
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break Err(AppGone::Closed),
                }
            }
            msg = source.next() => {
                let text = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break Err(AppGone::Closed),
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(b))) => {
                        reject(counters, &reader.read_binary(&b));
                        continue;
                    }
                    // Ping/pong are answered by tungstenite.
                    Some(Ok(_)) => continue,
                };
                counters.frames_in.fetch_add(1, Ordering::Relaxed);
                match reader.read_text(text.as_str()) {
                    Ok(AppMessage::Media { payload }) => {
                        counters.bytes_in.fetch_add(payload.len() as u64, Ordering::Relaxed);
                        if args.app.bidirectional {
                            codec.decode(&payload, &mut pcm);
                            if leg.commands.try_send(LegCommand::Play(pcm.clone())).is_err() {
                                counters.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(AppMessage::Mark { name }) => {
                        if args.app.bidirectional {
                            let _ = leg.commands.send(LegCommand::Mark(name)).await;
                        } else {
                            // Nothing is played: the mark is due at once.
                            counters.marks.fetch_add(1, Ordering::Relaxed);
                            let _ = write_tx.try_send(Message::text(writer_msgs.mark(&name)));
                        }
                    }
                    Ok(AppMessage::Clear) => {
                        let _ = leg.commands.send(LegCommand::Clear).await;
                    }
                    Err(e) => {
                        reject(counters, &e);
                        if counters.rejected.load(Ordering::Relaxed) >= MAX_REJECTS {
                            let _ = write_tx.try_send(Message::Close(Some(CloseFrame {
                                code: CloseCode::from(e.close_code()),
                                reason: e.reason().into(),
                            })));
                            break Err(AppGone::Misbehaved);
                        }
                    }
                }
            }
        }
    };
    match outcome {
        Ok(reason) => {
            entry.set_state("closing");
            let stop_msg = writer_msgs.stop(&account, &args.call_id, reason);
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                let _ = write_tx.send(Message::text(stop_msg)).await;
                let _ = write_tx
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    })))
                    .await;
                drop(write_tx);
                let _ = writer.await;
            })
            .await;
            drop(guard);
        }
        Err(why) => {
            tracing::info!(app = %args.app.name, call = %args.call_id, reason = why.as_str(), "app stream ended by the app side");
            count_gone(args.kind, why);
            drop(write_tx);
            writer.abort();
            gone(args, leg, entry, stop, on_gone, why).await;
            drop(guard);
        }
    }
}

fn reject(counters: &super::StreamCounters, e: &switchboard_media::streams::StreamError) {
    counters.rejected.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("switchboard_stream_rejects_total", "reason" => e.reason()).increment(1);
}

/// The app side is gone: hang up, or keep the call in silence until it ends.
async fn gone(
    args: AppStreamArgs,
    leg: Leg,
    entry: Arc<StreamEntry>,
    stop: oneshot::Receiver<&'static str>,
    on_gone: OnGone,
    why: AppGone,
) {
    entry.set_state("closing");
    match args.app.on_failure {
        AppFailure::Hangup => on_gone(why),
        AppFailure::Continue => {
            // Keep the leg (silence toward the caller, audio drained) until the call ends.
            let mut leg = leg;
            let mut stop = stop;
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    ev = leg.events.recv() => if ev.is_none() { break },
                }
            }
        }
    }
}

async fn write_all(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(msg) = rx.recv().await {
        let close = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || close {
            break;
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_tls_ca_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("sb-app-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let reason = client_tls(&missing).unwrap_err();
        assert!(matches!(reason, TlsCaError::Pem(_)), "{reason:?}");
        let text = ConnectError::TlsCa {
            path: missing,
            reason,
        }
        .to_string();
        assert!(
            text.starts_with("tls_ca ") && text.contains("missing.pem"),
            "{text}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let reason = client_tls(&empty).unwrap_err();
        assert!(matches!(reason, TlsCaError::NoCertificate), "{reason:?}");
        assert!(reason.to_string().contains("no usable certificate"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_untrusted_certificate_is_named_in_the_error() {
        use tokio_tungstenite::tungstenite::Error;
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        let text = describe(Error::Io(io)).to_string();
        assert!(
            text.starts_with("certificate verification failed"),
            "{text}"
        );
        let other =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(describe(Error::Io(other))
            .to_string()
            .starts_with("TLS handshake failed"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!describe(Error::Io(refused))
            .to_string()
            .contains("certificate"));
    }

    #[test]
    fn transcoder_round_trips_each_format() {
        let tone: Vec<i16> = (0..160)
            .map(|i| ((i as f64 * 0.785).sin() * 6000.0) as i16)
            .collect();
        for format in [
            MediaFormat::Mulaw8k,
            MediaFormat::Pcm16(SampleRate::Hz8000),
            MediaFormat::Pcm16(SampleRate::Hz16000),
        ] {
            let mut t = Transcoder::new(format);
            let mut bytes = Vec::new();
            let mut back = Vec::new();
            let mut total = 0;
            for _ in 0..10 {
                t.encode(&tone, &mut bytes);
                assert_eq!(bytes.len(), 20 * format.bytes_per_ms(), "{format:?}");
                t.decode(&bytes, &mut back);
                total += back.len();
            }
            assert!((1500..=1600).contains(&total), "{format:?}: {total}");
            let energy: i64 = back.iter().map(|s| i64::from(*s).abs()).sum();
            assert!(energy > 160 * 2000, "{format:?} lost the tone");
        }
    }
}
