//! The admin API's accept loop (plain HTTP or HTTPS), in place of `axum::serve`, which sets no
//! header-read timeout and no connection cap.
//!
//! Each connection takes a slot at accept, before any TLS handshake: at most
//! `[admin] max_connections` in all and `max_connections_per_source` from one source (an
//! IPv6 source counts by its /64); beyond them it is closed at once. A TLS handshake has
//! [`HANDSHAKE_TIMEOUT`]. hyper then serves HTTP/1.1 with `[admin] header_timeout_secs` to
//! send each request's header block, counted from when the connection (or the previous
//! response) is ready for it, so a slow or idle client cannot hold its slot.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_actors::conn_limit::ConnLimiter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// Time allowed for one TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` (over TLS with `tls`) until `shutdown` completes; then stop
/// accepting, let open connections finish their requests, and return.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    config: &switchboard_config::AdminConfig,
    shutdown: impl Future<Output = ()>,
) {
    let limits = ConnLimiter::new(config.max_connections, config.max_connections_per_source);
    let header_timeout = config.header_timeout;
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(err) => {
                    // EMFILE and the like: wait for descriptors to come back.
                    tracing::warn!(%err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match limits.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                metrics::counter!("switchboard_admin_connections_refused_total", "reason" => why.label())
                    .increment(1);
                tracing::debug!(%peer, %why, "admin connection refused");
                continue;
            }
        };
        let (app, tls, close) = (app.clone(), tls.clone(), close_rx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => connection(tcp, peer, app, header_timeout, close).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, app, header_timeout, close).await
                        }
                        _ => metrics::counter!(
                            "switchboard_admin_tls_failures_total",
                            "reason" => "handshake"
                        )
                        .increment(1),
                    }
                }
            }
        });
    }
    drop(close_rx);
    drop(listener);
    // Every connection holds a receiver: `closed` completes when the last one ends.
    let _ = close_tx.send(());
    let _ = tokio::time::timeout(DRAIN, close_tx.closed()).await;
}

/// Serve HTTP/1.1 on one connection; the peer address reaches the handlers as `ConnectInfo`.
async fn connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    mut close: tokio::sync::watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = Arc::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = Router::clone(&app);
        async move { app.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(err) = r {
                tracing::trace!(%peer, %err, "admin connection ended");
            }
            return;
        }
        _ = close.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
