//! RTP/RTCP relay for anchored media (RFC 3550, RFC 4961 symmetric RTP).
//!
//! Each call takes two port pairs from the `[media] rtp_ports` range: one faces
//! the caller (A), one faces the callee (B). A relay task per pair of sockets
//! moves datagrams between the legs without going through any actor mailbox.
//! Each side's destination starts as the address from its SDP and latches to
//! the source of the first packet received from that side whose IP the SDP or
//! the signalling names (strict symmetric RTP; see
//! [`switchboard_media::latch`] for the NAT rule); an SDP change re-arms
//! the latch. Packets from anyone else are dropped and counted (`foreign`, and
//! the metric `switchboard_rtp_dropped_foreign_total`): they are never relayed,
//! tapped or counted as media activity.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use switchboard_media::latch::{Latch, Verdict};
use switchboard_media::rtp::RtpStats;
use switchboard_media::target::MediaPolicy;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest datagram the relay accepts; anything longer is truncated by the
/// kernel and dropped here.
const MAX_DATAGRAM: usize = 2048;

/// The even ports of the configured range, handed out as RTP/RTCP pairs.
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
    total: usize,
}

impl PortPool {
    /// A pool over the even ports of `range` (RTP on even, RTCP on even+1),
    /// bound on `ip`.
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Arc<Self> {
        let free: VecDeque<u16> = range
            .clone()
            .filter(|p| p % 2 == 0 && p.checked_add(1).is_some_and(|r| range.contains(&r)))
            .collect();
        let total = free.len();
        metrics::gauge!("switchboard_rtp_port_pairs_free").set(total as f64);
        Arc::new(Self {
            ip,
            free: Mutex::new(free),
            total,
        })
    }

    /// Pairs currently free.
    pub fn free(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Pairs in the pool.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Take a pair and bind both sockets. Ports that another process holds are
    /// skipped (put back at the end of the queue). `None` when nothing is free.
    pub fn allocate(self: &Arc<Self>) -> Option<PortPair> {
        let attempts = self.free();
        for _ in 0..attempts {
            let port = {
                let mut free = self.free.lock().ok()?;
                free.pop_front()?
            };
            match bind_pair(self.ip, port) {
                Ok((rtp, rtcp)) => {
                    metrics::gauge!("switchboard_rtp_port_pairs_free").decrement(1.0);
                    return Some(PortPair {
                        port,
                        rtp: Some(rtp),
                        rtcp: Some(rtcp),
                        pool: Arc::clone(self),
                    });
                }
                Err(err) => {
                    tracing::warn!(port, %err, "RTP port busy, skipping");
                    self.give_back(port);
                }
            }
        }
        None
    }

    fn give_back(&self, port: u16) {
        if let Ok(mut free) = self.free.lock() {
            free.push_back(port);
        }
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(rtp)?, UdpSocket::from_std(rtcp)?))
}

/// An RTP/RTCP port pair leased from the pool; returned on drop.
#[derive(Debug)]
pub struct PortPair {
    port: u16,
    rtp: Option<UdpSocket>,
    rtcp: Option<UdpSocket>,
    pool: Arc<PortPool>,
}

impl PortPair {
    /// The RTP port (RTCP is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Take the RTP socket out for a media task of a call the gateway ends
    /// itself (UDPTL for fax). The pair keeps the lease: drop it only once
    /// that task is gone.
    pub fn take_rtp(&mut self) -> Option<UdpSocket> {
        self.rtp.take()
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        // Close the sockets before the port is offered again.
        self.rtp.take();
        self.rtcp.take();
        self.pool.give_back(self.port);
        metrics::gauge!("switchboard_rtp_port_pairs_free").increment(1.0);
    }
}

/// Counters of one direction of a call's media.
#[derive(Debug, Default)]
pub struct DirectionStats {
    /// RTP packets relayed.
    pub packets: AtomicU64,
    /// RTP payload+header bytes relayed.
    pub bytes: AtomicU64,
    /// Packets lost upstream of us (sequence gaps, RFC 3550 A.3).
    pub lost: AtomicU64,
    /// RTCP packets relayed.
    pub rtcp: AtomicU64,
    /// Datagrams dropped: not RTP, or no destination known yet.
    pub dropped: AtomicU64,
    /// Datagrams dropped because they came from a source other than the side's peer
    /// (strict latching), on the port facing that side.
    pub foreign: AtomicU64,
}

/// Per-call media counters, shared read-only with the admin API.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Caller (A) to callee (B).
    pub a_to_b: DirectionStats,
    /// Callee (B) to caller (A).
    pub b_to_a: DirectionStats,
    /// When a datagram was last accepted from either peer.
    pub activity: Activity,
}

/// When a call's media socket last accepted a datagram from its peer (for
/// `[media] rtp_timeout_secs`); written by the socket task, read by the call actor.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Ms after `epoch` (plus one) of the last datagram; 0 = none yet.
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// A datagram from the peer arrived now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms.store(ms + 1, Ordering::Relaxed);
    }

    /// When the last one arrived; `None` before the first.
    pub fn last(&self) -> Option<Instant> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms - 1)),
        }
    }
}

/// A serialisable copy of one direction's counters.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct DirectionSnapshot {
    /// RTP packets relayed.
    pub packets: u64,
    /// Bytes relayed.
    pub bytes: u64,
    /// Sequence-gap loss seen on input.
    pub lost: u64,
    /// RTCP packets relayed.
    pub rtcp: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Datagrams from strangers dropped on the port facing this direction's sender.
    pub foreign: u64,
}

impl DirectionStats {
    fn snapshot(&self) -> DirectionSnapshot {
        DirectionSnapshot {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            rtcp: self.rtcp.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            foreign: self.foreign.load(Ordering::Relaxed),
        }
    }
}

/// Both directions' counters, for JSON.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct MediaSnapshot {
    /// Caller to callee.
    pub a_to_b: DirectionSnapshot,
    /// Callee to caller.
    pub b_to_a: DirectionSnapshot,
}

impl RelayStats {
    /// Read the counters.
    pub fn snapshot(&self) -> MediaSnapshot {
        MediaSnapshot {
            a_to_b: self.a_to_b.snapshot(),
            b_to_a: self.b_to_a.snapshot(),
        }
    }

    /// When a datagram (RTP or RTCP) was last accepted from either peer; `None` before the
    /// first one.
    pub fn last_activity(&self) -> Option<Instant> {
        self.activity.last()
    }

    fn touch(&self) {
        self.activity.touch();
    }
}

/// Count one datagram from a stranger (the metric; the caller counts the call's side).
pub fn count_foreign() {
    metrics::counter!("switchboard_rtp_dropped_foreign_total").increment(1);
}

/// Where [`policy`] learns the gateway's own addresses: the call context implements it, so
/// media needs no knowledge of calls.
pub trait OwnAddresses {
    /// The configuration in force.
    fn config(&self) -> &switchboard_config::Config;
    /// The address put in SDP for anchored media.
    fn media_ip(&self) -> std::net::IpAddr;
    /// Our SIP address as peers reach it.
    fn sip_addr(&self) -> std::net::SocketAddr;
}

impl<T: OwnAddresses> OwnAddresses for Arc<T> {
    fn config(&self) -> &switchboard_config::Config {
        (**self).config()
    }
    fn media_ip(&self) -> std::net::IpAddr {
        (**self).media_ip()
    }
    fn sip_addr(&self) -> std::net::SocketAddr {
        (**self).sip_addr()
    }
}

/// The SDP media-address policy of this gateway: `[media] allow_loopback`, and its own
/// addresses (SIP listen and advertised, media) with its RTP ports and SIP listener ports.
pub fn policy(ctx: &impl OwnAddresses) -> MediaPolicy {
    let cfg = ctx.config();
    let mut own_ips = vec![ctx.media_ip(), ctx.sip_addr().ip(), cfg.sip.listen.ip()];
    own_ips.extend(cfg.sip.advertise);
    own_ips.extend(cfg.media.advertise);
    own_ips.extend(cfg.sip.tls_listen.map(|a| a.ip()));
    own_ips.retain(|ip| !ip.is_unspecified());
    own_ips.dedup();
    let mut own_ports = vec![cfg.media.rtp_ports.clone()];
    for port in [
        Some(cfg.sip.listen.port()),
        cfg.sip.tls_listen.map(|a| a.port()),
    ]
    .into_iter()
    .flatten()
    {
        own_ports.push(port..=port);
    }
    MediaPolicy {
        allow_loopback: cfg.media.allow_loopback,
        own_ips,
        own_ports,
    }
}

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The caller's leg.
    A,
    /// The callee's leg.
    B,
}

#[derive(Debug)]
enum Control {
    /// New destination from SDP for a side (None: on hold / unknown). Re-arms latching.
    Remote(Side, Option<SocketAddr>),
    /// Copy every RTP packet received from either side here (fork mode); `try_send`, so a
    /// slow tap loses copies, never the call's audio.
    Tap(mpsc::Sender<(Side, Vec<u8>)>),
}

/// The media relay of one call: two tasks (RTP and RTCP) and the four sockets.
/// Dropping it stops the tasks and returns the ports.
#[derive(Debug)]
pub struct Relay {
    a: PortPair,
    b: PortPair,
    stats: Arc<RelayStats>,
    controls: Vec<mpsc::UnboundedSender<Control>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Start relaying between the A-facing pair `a` and the B-facing pair `b`; `a_ip` and
    /// `b_ip` are where each side's SIP comes from (a source the latch accepts besides the
    /// SDP address).
    pub fn start(
        mut a: PortPair,
        mut b: PortPair,
        a_ip: Option<IpAddr>,
        b_ip: Option<IpAddr>,
    ) -> Self {
        let stats = Arc::new(RelayStats::default());
        let mut controls = Vec::with_capacity(2);
        let mut tasks = Vec::with_capacity(2);
        let sockets = [
            (a.rtp.take(), b.rtp.take(), Kind::Rtp),
            (a.rtcp.take(), b.rtcp.take(), Kind::Rtcp),
        ];
        for (sa, sb, kind) in sockets {
            if let (Some(sa), Some(sb)) = (sa, sb) {
                let (tx, rx) = mpsc::unbounded_channel();
                controls.push(tx);
                tasks.push(tokio::spawn(relay_task(
                    Sockets { sa, sb, kind },
                    [Latch::new(None, a_ip), Latch::new(None, b_ip)],
                    rx,
                    Arc::clone(&stats),
                )));
            }
        }
        Self {
            a,
            b,
            stats,
            controls,
            tasks,
        }
    }

    /// The port facing `side`.
    pub fn port(&self, side: Side) -> u16 {
        match side {
            Side::A => self.a.port(),
            Side::B => self.b.port(),
        }
    }

    /// Counters, shared.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }

    /// Send copies of the RTP packets of both sides to `tap` (fork mode).
    pub fn tap(&self, tap: mpsc::Sender<(Side, Vec<u8>)>) {
        if let Some(ctl) = self.controls.first() {
            let _ = ctl.send(Control::Tap(tap));
        }
    }

    /// Set where media for `side` goes (RTP address; RTCP is port+1), from SDP.
    /// Port 0 or an unspecified address (hold) clears it.
    pub fn set_remote(&self, side: Side, rtp: Option<SocketAddr>) {
        let rtp = rtp.filter(|a| a.port() != 0 && !a.ip().is_unspecified());
        for (i, ctl) in self.controls.iter().enumerate() {
            let addr = match i {
                0 => rtp,
                _ => rtp.and_then(|a| a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p))),
            };
            let _ = ctl.send(Control::Remote(side, addr));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtp,
    Rtcp,
}

/// The two sockets of one relay task.
struct Sockets {
    sa: UdpSocket,
    sb: UdpSocket,
    kind: Kind,
}

async fn relay_task(
    sockets: Sockets,
    [mut a, mut b]: [Latch; 2],
    mut ctl: mpsc::UnboundedReceiver<Control>,
    stats: Arc<RelayStats>,
) {
    let Sockets { sa, sb, kind } = sockets;
    let mut in_a = RtpStats::new();
    let mut in_b = RtpStats::new();
    let mut buf_a = vec![0u8; MAX_DATAGRAM];
    let mut buf_b = vec![0u8; MAX_DATAGRAM];
    let relayed = metrics::counter!("switchboard_rtp_packets_relayed_total");
    let mut tap: Option<mpsc::Sender<(Side, Vec<u8>)>> = None;
    let copy = |tap: &mut Option<mpsc::Sender<(Side, Vec<u8>)>>, side: Side, data: &[u8]| {
        if let Some(t) = tap {
            match t.try_send((side, data.to_vec())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("switchboard_fork_dropped_packets_total").increment(1)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => *tap = None,
            }
        }
    };
    loop {
        tokio::select! {
            // Controls first: an SDP learnt before a packet is read applies to it.
            biased;
            c = ctl.recv() => match c {
                Some(Control::Remote(side, addr)) => match side {
                    Side::A => a.rearm(addr),
                    Side::B => b.rearm(addr),
                },
                Some(Control::Tap(t)) => tap = Some(t),
                None => return,
            },
            r = sa.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if a.on_packet(from) == Verdict::Foreign {
                    stats.a_to_b.foreign.fetch_add(1, Ordering::Relaxed);
                    count_foreign();
                    continue;
                }
                stats.touch();
                copy(&mut tap, Side::A, &buf_a[..n]);
                forward(&sb, b.destination(), &buf_a[..n], kind, &mut in_a, &stats.a_to_b, &relayed).await;
            }
            r = sb.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if b.on_packet(from) == Verdict::Foreign {
                    stats.b_to_a.foreign.fetch_add(1, Ordering::Relaxed);
                    count_foreign();
                    continue;
                }
                stats.touch();
                copy(&mut tap, Side::B, &buf_b[..n]);
                forward(&sa, a.destination(), &buf_b[..n], kind, &mut in_b, &stats.b_to_a, &relayed).await;
            }
        }
    }
}

async fn forward(
    out: &UdpSocket,
    to: Option<SocketAddr>,
    data: &[u8],
    kind: Kind,
    rx: &mut RtpStats,
    stats: &DirectionStats,
    relayed: &metrics::Counter,
) {
    let Some(to) = to else {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match kind {
        Kind::Rtcp => {
            stats.rtcp.fetch_add(1, Ordering::Relaxed);
        }
        Kind::Rtp => {
            if rx.observe(data).is_err() {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.packets.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            stats.lost.store(rx.lost(), Ordering::Relaxed);
            relayed.increment(1);
        }
    }
    if out.send_to(data, to).await.is_err() {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn rtp_packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xffu8; 160]);
        p
    }

    #[tokio::test]
    async fn pool_returns_ports_on_drop() {
        let pool = PortPool::new(LO, 31000..=31007);
        assert_eq!(pool.total(), 4);
        let a = pool.allocate().expect("pair");
        let b = pool.allocate().expect("pair");
        assert_eq!(pool.free(), 2);
        assert_ne!(a.port(), b.port());
        drop(a);
        assert_eq!(pool.free(), 3);
        drop(b);
        assert_eq!(pool.free(), 4);
    }

    #[tokio::test]
    async fn relays_and_latches() {
        let pool = PortPool::new(LO, 31100..=31107);
        let relay = Relay::start(
            pool.allocate().unwrap(),
            pool.allocate().unwrap(),
            Some(LO),
            Some(LO),
        );
        let caller = UdpSocket::bind((LO, 0)).await.unwrap();
        let callee = UdpSocket::bind((LO, 0)).await.unwrap();
        relay.set_remote(Side::B, Some(callee.local_addr().unwrap()));
        // Caller's SDP address is wrong (NAT): latching must find it anyway.
        relay.set_remote(Side::A, Some(SocketAddr::new(LO, 9)));
        let a_port = SocketAddr::new(LO, relay.port(Side::A));
        let b_port = SocketAddr::new(LO, relay.port(Side::B));
        let mut buf = [0u8; 512];
        for seq in 0..5u16 {
            caller.send_to(&rtp_packet(seq), a_port).await.unwrap();
            let (n, from) = callee.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 172);
            assert_eq!(from, b_port);
        }
        callee.send_to(&rtp_packet(7), b_port).await.unwrap();
        let (_, from) = caller.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, a_port);
        // A stranger on another IP reaches nobody, and the caller keeps its latch.
        let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
            .await
            .unwrap();
        for seq in 100..110u16 {
            stranger.send_to(&rtp_packet(seq), a_port).await.unwrap();
            stranger.send_to(&rtp_packet(seq), b_port).await.unwrap();
        }
        callee.send_to(&rtp_packet(8), b_port).await.unwrap();
        let (_, from) = caller.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, a_port);
        let deadline = Instant::now() + Duration::from_secs(2);
        while relay.stats().snapshot().a_to_b.foreign + relay.stats().snapshot().b_to_a.foreign < 20
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let s = relay.stats().snapshot();
        assert_eq!(s.a_to_b.packets, 5);
        assert_eq!(s.b_to_a.packets, 2);
        assert_eq!(s.a_to_b.lost, 0);
        assert_eq!((s.a_to_b.foreign, s.b_to_a.foreign), (10, 10));
        assert!(relay.stats().last_activity().is_some());
        let mut probe = [0u8; 512];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), stranger.recv_from(&mut probe))
                .await
                .is_err(),
            "the stranger got media"
        );
    }
}
