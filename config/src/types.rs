//! The validated, typed configuration sections. Values here are already parsed and checked, so
//! the rest of the gateway never re-validates them ("parse, don't validate").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// `[sip]`: signalling listener and RFC 3261 timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// UDP and TCP listen on this same address (default `127.0.0.1:5060`).
    pub listen: SocketAddr,
    /// Address put in Via/Contact/SDP; `None` = the listen IP (see [`SipConfig::advertised_ip`]).
    pub advertise: Option<IpAddr>,
    /// RFC 3261 T1, RTT estimate (key `t1_ms`, default 500 ms).
    pub t1: Duration,
    /// RFC 3261 T2, maximum retransmit interval (key `t2_ms`, default 4000 ms).
    pub t2: Duration,
    /// RFC 3261 T4, maximum message lifetime (key `t4_ms`, default 5000 ms).
    pub t4: Duration,
    /// User-Agent/Server header value (default "switchboard").
    pub user_agent: String,
    /// Concurrent call limit (default 10000).
    pub max_calls: usize,
    /// Give up ringing after this long (key `no_answer_timeout_secs`, default 120 s).
    pub no_answer_timeout: Duration,
    /// Sources that may call without a digest challenge, besides the trunks (CIDRs; default
    /// none).
    pub trusted: Vec<ipnet::IpNet>,
    /// Digest realm offered to other sources (default "switchboard").
    pub realm: String,
    /// SIP users that may authenticate from other sources (`[[sip_user]]`).
    pub users: Vec<SipUser>,
    /// Requests per second accepted from one untrusted source (1..=100000, default 50);
    /// beyond it requests are dropped.
    pub rate_limit_per_source: u32,
    /// Failed authentications from one source, within `ban_window_secs`, that ban it
    /// (1..=1000, default 10).
    pub ban_after: u32,
    /// Window for `ban_after`, in seconds (1..=86400, default 60).
    pub ban_window_secs: u32,
    /// How long a ban lasts, in seconds (1..=604800, default 600).
    pub ban_secs: u32,
    /// How long a digest nonce we issue is accepted, in seconds (1..=3600, default 300, like
    /// Kamailio's `nonce_expire`); an older one gets a 401 with `stale=true`.
    pub nonce_lifetime_secs: u32,
    /// SIP over TLS listener (usually port 5061; default off). Needs `tls_cert` and `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for `tls_listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_listen`.
    pub tls_key: Option<PathBuf>,
    /// Most TCP and TLS connections open at once, inbound and outbound (key
    /// `max_tcp_connections`, 1..=100000, default 1024).
    pub max_tcp_connections: usize,
    /// Most inbound TCP and TLS connections from one source address (an IPv6 source counts by
    /// its /64) (key `max_tcp_per_source`, 1..=100000, default 32).
    pub max_tcp_per_source: usize,
    /// Time an inbound connection has to deliver its first complete SIP message, and a message
    /// once begun has to complete (key `tcp_message_timeout_secs`, 1..=600, default 20).
    pub tcp_message_timeout: Duration,
    /// A connection that delivers no complete SIP message (or RFC 5626 keep-alive) for this long
    /// is closed; bytes of an unfinished message do not count (key `tcp_idle_secs`, 1..=86400,
    /// default 300).
    pub tcp_idle: Duration,
    /// Longest an answered call may last before the gateway hangs it up (key
    /// `max_call_secs`, 1..=604800, default 4 h; cause `max duration`).
    pub max_call: Duration,
    /// How often the call journal records how long each answered call has lasted, so a call
    /// cut by a crash is billed up to its last checkpoint (key `journal_checkpoint_secs`,
    /// 1..=3600, default 10).
    pub journal_checkpoint: Duration,
    /// How long a drain (SIGTERM, `switchboard drain`) lets calls in progress go on before
    /// they are hung up with cause `shutdown` (key `drain_secs`, 0..=86400, default 30).
    pub drain: Duration,
}

/// One `[[sip_user]]`: a digest identity for phones and softswitches that are not trunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUser {
    /// User name (`[A-Za-z0-9_-]`, 1..=64).
    pub username: String,
    /// Password (or `SWITCHBOARD_SIP_USER_<NAME>_PASSWORD`).
    pub password: Secret,
    /// The ledger account this user's rated calls are charged to (or
    /// `SWITCHBOARD_SIP_USER_<NAME>_ACCOUNT`); a fixed account id, never `caller`: the user
    /// proved who it is, not which number it calls from. `None`: the route's or
    /// `[billing] account` pays.
    pub account: Option<String>,
}

impl SipConfig {
    /// The IP to advertise: `advertise`, else the listen IP, else (listen IP unspecified)
    /// 127.0.0.1.
    pub fn advertised_ip(&self) -> IpAddr {
        match self.advertise {
            Some(ip) => ip,
            None if self.listen.ip().is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => self.listen.ip(),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            advertise: None,
            t1: Duration::from_millis(500),
            t2: Duration::from_millis(4000),
            t4: Duration::from_millis(5000),
            user_agent: "switchboard".into(),
            max_calls: 10_000,
            no_answer_timeout: Duration::from_secs(120),
            trusted: Vec::new(),
            realm: "switchboard".into(),
            users: Vec::new(),
            rate_limit_per_source: 50,
            ban_after: 10,
            ban_window_secs: 60,
            ban_secs: 600,
            nonce_lifetime_secs: 300,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            max_tcp_connections: 1024,
            max_tcp_per_source: 32,
            tcp_message_timeout: Duration::from_secs(20),
            tcp_idle: Duration::from_secs(300),
            max_call: Duration::from_secs(4 * 3600),
            journal_checkpoint: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

/// `[media]`: RTP relay ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// RTP/RTCP port range (key `rtp_ports = "20000-20999"`); starts even, at least 4 ports.
    pub rtp_ports: RangeInclusive<u16>,
    /// Address put in SDP for media; `None` = the SIP advertised address.
    pub advertise: Option<IpAddr>,
    /// Accept SDP media addresses on loopback (127.0.0.0/8, ::1). Off by default: only tests
    /// and single-host labs need it.
    pub allow_loopback: bool,
    /// An answered call with no RTP from either side for this long is hung up (BYE both
    /// legs, cause `rtp timeout`); held calls are exempt. Key `rtp_timeout_secs`, 0..=86400,
    /// default 60; 0 = off.
    pub rtp_timeout: Option<Duration>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_ports: 20000..=20999,
            advertise: None,
            allow_loopback: false,
            rtp_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// `[admin]`: the admin HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Listen address (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Enables test-only endpoints (default false).
    pub test_hooks: bool,
    /// An admin key (`sbk_{16 hex}_{64 hex}`) installed on the first start, when the store has
    /// no key yet; best given as `SWITCHBOARD_ADMIN_BOOTSTRAP_KEY`. Ignored once keys exist.
    pub bootstrap_key: Option<Secret>,
    /// Sources that may read `/metrics` without a key (default loopback: `127.0.0.0/8`,
    /// `::1/128`); others need a key with `metrics:read` (or `admin`).
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// Browser origins allowed by CORS (exact `scheme://host[:port]`; default none; `*` is refused).
    pub cors_origins: Vec<String>,
    /// Requests per second allowed from one source address (1..=100000, default 100; bursts
    /// of twice that).
    pub rate_limit_per_ip: u32,
    /// Requests per second allowed for one API key (1..=100000, default 200; bursts of twice that).
    pub rate_limit_per_key: u32,
    /// PEM certificate chain; with `tls_key`, the admin API speaks HTTPS only (both or neither).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most connections open at once, TLS handshakes included (key `max_connections`,
    /// 1..=100000, default 256).
    pub max_connections: usize,
    /// Most connections open at once from one source address (an IPv6 source counts by its /64)
    /// (key `max_connections_per_source`, 1..=100000, default 16).
    pub max_connections_per_source: usize,
    /// Time a client has to send a request's whole header block, counted from when the
    /// connection (or the previous response) is ready for it: idle keep-alive connections
    /// close after it too (key `header_timeout_secs`, 1..=300, default 10).
    pub header_timeout: Duration,
    /// Time one request has, body upload included, before it is answered 408 (key
    /// `request_timeout_secs`, 1..=3600, default 120).
    pub request_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            test_hooks: false,
            bootstrap_key: None,
            metrics_allow: default_metrics_allow(),
            cors_origins: Vec::new(),
            rate_limit_per_ip: 100,
            rate_limit_per_key: 200,
            tls_cert: None,
            tls_key: None,
            max_connections: 256,
            max_connections_per_source: 16,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Loopback, v4 and v6.
pub(crate) fn default_metrics_allow() -> Vec<ipnet::IpNet> {
    vec![
        ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
        ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::LOCALHOST,
            128,
        )),
    ]
}

/// Whether `key` has the shape of an API key: `sbk_` + 16 hex + `_` + 64 hex.
pub fn is_api_key_shape(key: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match key.strip_prefix("sbk_").and_then(|r| r.split_once('_')) {
        Some((id, secret)) => hex(id, 16) && hex(secret, 64),
        None => false,
    }
}

/// `[storage]`: where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Store directory (default `./data`).
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `info,switchboard_sip=debug` (default "info").
    pub level: String,
    /// Log JSON lines instead of text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            json: false,
        }
    }
}

/// SIP transport towards a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// UDP (default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Lower-case name as written in the file and in Via (`udp`, `tcp`, `tls`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Port used when an address has none: 5060, or 5061 for TLS (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret (password) that never shows in logs: Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; use only where it is needed (digest computation).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One `[[trunk]]`: a SIP provider or peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Unique name, `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Resolved address (first IPv4 preferred); port 5060 (5061 for TLS) when not written.
    pub address: SocketAddr,
    /// Host as written (without port), for the Request-URI domain.
    pub host: String,
    /// Transport (default UDP).
    pub transport: Transport,
    /// Auth user (also from `SWITCHBOARD_TRUNK_<NAME>_USERNAME`).
    pub username: Option<String>,
    /// Auth password (also from `SWITCHBOARD_TRUNK_<NAME>_PASSWORD`).
    pub password: Option<Secret>,
    /// REGISTER to the trunk (requires username and password).
    pub register: bool,
    /// Requested registration expiry in seconds (60..=86400, default 3600).
    pub register_expires: u32,
    /// OPTIONS keepalive interval when the trunk is monitored (key `qualify`), zero when it
    /// is not. `qualify` is off by default; on, the interval is `keepalive_secs` (default 30).
    /// Without `qualify`, a `keepalive_secs` above zero turns it on (files written before
    /// `qualify` existed keep their probing). See [`TrunkConfig::monitored`].
    pub keepalive: Duration,
    /// Source networks accepted as this trunk (a single IP is a /32 or /128).
    pub allow: Vec<ipnet::IpNet>,
    /// Domain for the From header, if not `host`.
    pub from_domain: Option<String>,
    /// Whether fax on this trunk may switch to T.38 (key `t38`, default `prefer`).
    pub t38: crate::fax::T38Policy,
    /// `transport = "tls"`: PEM file of the CA certificates that verify the trunk (key
    /// `tls_ca`); `None` = the public web PKI roots.
    pub tls_ca: Option<PathBuf>,
    /// `transport = "tls"`: the name the trunk's certificate must carry (key
    /// `tls_server_name`, a DNS name or an IP); `None` = the host of `address`.
    pub tls_server_name: Option<String>,
    /// Price per minute of calls out through this trunk, in credit units (key
    /// `price_per_minute`, default 0: not rated); a route's own price wins.
    pub price_per_minute: u64,
    /// Who pays for rated calls that arrive from this trunk (key `account`), unless the route
    /// names a payer.
    pub account: Option<crate::billing::AccountRule>,
}

impl TrunkConfig {
    /// True when the gateway probes this trunk with OPTIONS (`qualify`) and may mark it down.
    /// An unmonitored trunk is never marked down: every call routed to it tries it.
    pub fn monitored(&self) -> bool {
        !self.keepalive.is_zero()
    }

    /// The name the trunk's TLS certificate is checked against: `tls_server_name`, else the
    /// host of `address` (an IPv6 host without its brackets).
    pub fn tls_name(&self) -> &str {
        self.tls_server_name
            .as_deref()
            .unwrap_or_else(|| self.host.trim_start_matches('[').trim_end_matches(']'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_hidden() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn advertised_ip_fallbacks() {
        let mut sip = SipConfig::default();
        assert_eq!(sip.advertised_ip(), IpAddr::from([127, 0, 0, 1]));
        sip.listen = "0.0.0.0:5060".parse().unwrap();
        assert_eq!(sip.advertised_ip(), IpAddr::from([127, 0, 0, 1]));
        sip.listen = "10.1.2.3:5060".parse().unwrap();
        assert_eq!(sip.advertised_ip(), IpAddr::from([10, 1, 2, 3]));
        sip.advertise = Some(IpAddr::from([203, 0, 113, 5]));
        assert_eq!(sip.advertised_ip(), IpAddr::from([203, 0, 113, 5]));
    }
}
