//! `switchboard-devsim`: a simulated ESP32 fleet for demos and load tests.
//!
//! Each simulated device follows the device protocol of the gateway
//! (`actors/src/devices/session.rs`):
//!
//! 1. **Claim** (once, unless its password is already in `--credentials`): connect as a
//!    claimant (username = device id, empty password), subscribe to
//!    `claim/{id}/response/{nonce}`, publish `{device_id, nonce, ts, hmac}` on
//!    `claim/{id}/request` and read the password from the answer.
//! 2. **Run**: connect with username = client id = device id and the password, a retained Last
//!    Will `offline` (QoS 1) on `devices/{id}/status`; subscribe to `devices/{id}/cmd/+`;
//!    publish `online` (retained); send a telemetry JSON object on `devices/{id}/telemetry`
//!    every `--telemetry-interval-ms` (each device at a random phase, so the fleet's load is
//!    spread evenly); answer every command `devices/{id}/cmd/{req}` on `…/{req}/reply`
//!    (a request id already answered gets its reply again but is counted once).
//! 3. **Leave** (duration reached, Ctrl-C or SIGTERM): publish `offline` (retained), then
//!    DISCONNECT, and print a final JSON summary line on stdout.
//!
//! `--no-auth` skips the claim and connects with the device id as username and no password,
//! to offer the same load to a plain broker such as mosquitto. `--subscribe-count FILTER`
//! runs one subscriber instead of a fleet and counts what it receives (the receiving side of a
//! broker throughput measurement).
//!
//! One rumqttc client per device, with small queues, a small inflight window and a bounded
//! packet size, so 10,000 devices fit in one process. Connection errors are counted and
//! retried with jittered exponential backoff; nothing the broker sends can make it panic.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use rand::Rng;
use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing,
    Packet, QoS, SubscribeReasonCode,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_mqtt::claim::{claim_mac, device_secret, ClaimRequest};
use switchboard_mqtt::DeviceId;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests queued toward one device's event loop.
const DEVICE_QUEUE: usize = 8;
/// QoS 1 messages in flight per device.
const DEVICE_INFLIGHT: u16 = 8;
/// Largest packet a device sends or accepts (commands are at most 16 KiB of JSON).
const DEVICE_MAX_PACKET: usize = 32 * 1024;
/// Claims run at the same time.
const CLAIM_CONCURRENCY: usize = 8;
/// Attempts per claim when the transport fails (a refusal is final).
const CLAIM_ATTEMPTS: u32 = 3;
/// Time allowed for one claim exchange.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed for the whole fleet to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// Request ids remembered per device, to recognise a re-delivered command.
const ANSWERED_MEMORY: usize = 16;
/// Error messages printed before further ones are only counted.
const MAX_ERROR_LINES: u64 = 20;
/// Firmware version the simulated devices report.
const FIRMWARE: &str = "devsim-1";

#[derive(Parser, Debug)]
#[command(
    name = "switchboard-devsim",
    version,
    about = "Simulated ESP32 fleet: claims and runs N devices against an MQTT broker"
)]
struct Args {
    /// MQTT broker, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Number of devices.
    #[arg(long, default_value_t = 10)]
    devices: u32,
    /// Device id prefix: ids are PREFIX-000001, PREFIX-000002, ...
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Fleet secret the factory secrets derive from (needed to claim).
    #[arg(long, env = "SWITCHBOARD_DEVICES_FLEET_SECRET", hide_env_values = true)]
    fleet_secret: Option<String>,
    /// Telemetry period per device, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    telemetry_interval_ms: u64,
    /// QoS of telemetry (0 or 1); with --subscribe-count, the subscription's QoS.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Stop after this many seconds of running (after claiming); 0 = until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    duration_secs: u64,
    /// New connections (claims and device sessions) per second while ramping up.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    connect_rate: u32,
    /// JSON file mapping device id to MQTT password: ids found there are not claimed again,
    /// newly claimed ones are added.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Do not claim: connect with the device id as username and no password (plain brokers).
    #[arg(long)]
    no_auth: bool,
    /// Claim the devices that need it, save the credentials, print the summary and exit.
    #[arg(long)]
    claim_only: bool,
    /// Print a stats line on stdout every this many seconds; 0 = none.
    #[arg(long, default_value_t = 5)]
    stats_interval_secs: u64,
    /// MQTT keep-alive of every connection, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=65535))]
    keep_alive_secs: u64,
    /// Instead of a fleet, run ONE subscriber to this filter and count the messages it gets.
    #[arg(long, value_name = "TOPIC_FILTER")]
    subscribe_count: Option<String>,
    /// Username of the counting subscriber.
    #[arg(long, requires = "subscribe_count")]
    username: Option<String>,
    /// Password of the counting subscriber.
    #[arg(long, requires = "username", hide_env_values = true)]
    password: Option<String>,
    /// Client id of the counting subscriber (default devsim-count-PID).
    #[arg(long, requires = "subscribe_count")]
    client_id: Option<String>,
}

/// Fleet-wide counters, shared by every device task.
#[derive(Default)]
struct Stats {
    connected: AtomicU64,
    telemetry_sent: AtomicU64,
    commands_answered: AtomicU64,
    claims: AtomicU64,
    claim_failures: AtomicU64,
    errors: AtomicU64,
    /// `connected` when the stop was requested (before any device left).
    connected_at_stop: AtomicU64,
}

impl Stats {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Count an error; print the first few.
    fn error(&self, what: std::fmt::Arguments<'_>) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_ERROR_LINES {
            eprintln!("devsim: {what}");
        } else if n == MAX_ERROR_LINES {
            eprintln!("devsim: further errors are only counted");
        }
    }
}

/// Where the broker is and how every connection is set up.
struct Setup {
    host: String,
    port: u16,
    keep_alive: Duration,
    telemetry_every: Duration,
    qos: QoS,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        if let Some(filter) = args.subscribe_count.clone() {
            run_counter(&args, &filter).await
        } else {
            run_fleet(&args).await
        }
    })
}

fn parse_broker(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("--broker {s:?}: expected HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("--broker {s:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("--broker {s:?}: empty host");
    }
    Ok((host.to_string(), port))
}

fn qos_of(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Resident memory of this process in KiB, from /proc (0 where unavailable).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The device ids of the fleet, checked against the gateway's id rules.
fn device_ids(prefix: &str, n: u32) -> anyhow::Result<Vec<String>> {
    (1..=n)
        .map(|i| {
            let id = format!("{prefix}-{i:06}");
            DeviceId::parse(&id)
                .map(|_| id)
                .map_err(|e| anyhow::anyhow!("--prefix {prefix:?} gives a bad device id: {e}"))
        })
        .collect()
}

/// Resolves when Ctrl-C or SIGTERM arrives (never, if the handlers cannot be installed).
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                std::future::pending::<()>().await;
            }
        }
        _ = term => {}
    }
}

/// Sets the shutdown flag once; the first call records how many devices were connected.
fn request_stop(tx: &watch::Sender<bool>, stats: &Stats) {
    tx.send_if_modified(|stop| {
        if *stop {
            return false;
        }
        let n = Stats::get(&stats.connected);
        stats.connected_at_stop.store(n, Ordering::Relaxed);
        *stop = true;
        true
    });
}

/// Requests the stop on Ctrl-C / SIGTERM, or when `duration` (if any) has passed.
fn spawn_stopper(tx: Arc<watch::Sender<bool>>, stats: Arc<Stats>, duration: Option<Duration>) {
    tokio::spawn(async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = interrupted() => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            None => interrupted().await,
        }
        request_stop(&tx, &stats);
    });
}

/// Waits until the shutdown flag is set.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens at exit: stop too.
    let _ = rx.wait_for(|s| *s).await;
}

/// Jittered exponential backoff: 0.5 s doubling to 30 s, each wait 50..100 % of the step.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Self(Self::FIRST)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    fn next_wait(&mut self) -> Duration {
        let wait = self.0.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }
}

/// Spaces out new connections to `rate` per second (bursting to catch up after a late wake).
struct Pacer {
    next: tokio::time::Instant,
    period: Duration,
}

impl Pacer {
    fn new(rate: u32) -> Self {
        Self {
            next: tokio::time::Instant::now(),
            period: Duration::from_secs(1) / rate.max(1),
        }
    }

    async fn wait(&mut self) {
        // Never owe more than a second's worth of connections after a stall.
        if let Some(floor) = tokio::time::Instant::now().checked_sub(Duration::from_secs(1)) {
            self.next = self.next.max(floor);
        }
        tokio::time::sleep_until(self.next).await;
        self.next += self.period;
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials file

/// Device id → MQTT password.
type Credentials = BTreeMap<String, String>;

fn load_credentials(path: &Path) -> anyhow::Result<Credentials> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a JSON object of id → password", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write atomically (temporary file, then rename), readable by the owner only.
fn save_credentials(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(creds)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Claim

/// The fields of a claim answer this tool uses.
#[derive(Deserialize)]
struct ClaimAnswer {
    ok: bool,
    password: Option<String>,
    reason: Option<String>,
}

/// Why a claim did not give a password.
enum ClaimError {
    /// The gateway said no (final).
    Refused(String),
    /// The exchange failed or timed out (worth another try).
    Transport(String),
}

fn random_nonce() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// A signed claim request with a fresh nonce.
fn claim_request(fleet_secret: &[u8], id: &str) -> ClaimRequest {
    let nonce = random_nonce();
    let ts = unix_secs();
    let secret = device_secret(fleet_secret, id);
    let hmac = claim_mac(&secret, id, &nonce, ts);
    ClaimRequest {
        device_id: id.to_string(),
        nonce,
        ts,
        hmac,
    }
}

/// One claim exchange over MQTT as an unclaimed device; returns the password.
async fn claim_once(setup: &Setup, fleet_secret: &[u8], id: &str) -> Result<String, ClaimError> {
    let req = claim_request(fleet_secret, id);
    let body = serde_json::to_vec(&req).map_err(|e| ClaimError::Transport(e.to_string()))?;
    let response_topic = format!("claim/{id}/response/{}", req.nonce);
    // A claimant's client id is its device id (the broker refuses any other).
    let mut opts = MqttOptions::new(id, setup.host.clone(), setup.port);
    opts.set_credentials(id, ""); // an empty password makes a claimant
    opts.set_keep_alive(setup.keep_alive);
    opts.set_inflight(2);
    opts.set_max_packet_size(4096, 4096);
    let (client, mut events) = AsyncClient::new(opts, 4);
    let exchange = async {
        client
            .subscribe(response_topic.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|e| ClaimError::Transport(e.to_string()))?;
        loop {
            let event = events.poll().await.map_err(|e| match e {
                ConnectionError::ConnectionRefused(code) => {
                    ClaimError::Refused(format!("CONNACK {code:?}"))
                }
                other => ClaimError::Transport(other.to_string()),
            })?;
            match event {
                Event::Incoming(Packet::SubAck(ack)) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        return Err(ClaimError::Refused("response topic refused".into()));
                    }
                    client
                        .publish(
                            format!("claim/{id}/request"),
                            QoS::AtLeastOnce,
                            false,
                            body.clone(),
                        )
                        .await
                        .map_err(|e| ClaimError::Transport(e.to_string()))?;
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == response_topic => {
                    return parse_claim_answer(&p.payload);
                }
                _ => {}
            }
        }
    };
    let result = tokio::time::timeout(CLAIM_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(ClaimError::Transport("no answer in time".into())));
    say_goodbye(&client, &mut events).await;
    result
}

fn parse_claim_answer(payload: &[u8]) -> Result<String, ClaimError> {
    let answer: ClaimAnswer = serde_json::from_slice(payload)
        .map_err(|_| ClaimError::Transport("claim answer is not JSON".into()))?;
    match (answer.ok, answer.password) {
        (true, Some(p)) if !p.is_empty() => Ok(p),
        (true, _) => Err(ClaimError::Refused("answer without a password".into())),
        (false, _) => Err(ClaimError::Refused(
            answer.reason.unwrap_or_else(|| "rejected".into()),
        )),
    }
}

/// DISCONNECT and let the event loop flush it (bounded in time).
async fn say_goodbye(client: &AsyncClient, events: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Claim with retries on transport errors.
async fn claim(setup: &Setup, fleet_secret: &[u8], id: &str) -> Result<String, String> {
    let mut backoff = Backoff::new();
    let mut last = String::new();
    for attempt in 1..=CLAIM_ATTEMPTS {
        match claim_once(setup, fleet_secret, id).await {
            Ok(p) => return Ok(p),
            Err(ClaimError::Refused(r)) => return Err(format!("refused: {r}")),
            Err(ClaimError::Transport(e)) => last = e,
        }
        if attempt < CLAIM_ATTEMPTS {
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }
    Err(last)
}

/// Claims every id in `ids`, paced and bounded, until done or shut down; adds the passwords
/// to `creds`.
async fn claim_all(
    setup: &Arc<Setup>,
    fleet_secret: &Arc<[u8]>,
    ids: Vec<String>,
    rate: u32,
    creds: &mut Credentials,
    stats: &Arc<Stats>,
    shutdown: &watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CLAIM_CONCURRENCY));
    let mut pacer = Pacer::new(rate);
    let mut tasks = JoinSet::new();
    for id in ids {
        if *shutdown.borrow() {
            break;
        }
        pacer.wait().await;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (setup, secret) = (Arc::clone(setup), Arc::clone(fleet_secret));
        tasks.spawn(async move {
            let result = claim(&setup, &secret, &id).await;
            drop(slot);
            (id, result)
        });
        while let Some(done) = tasks.try_join_next() {
            record_claim(done, creds, stats);
        }
    }
    while let Some(done) = tasks.join_next().await {
        record_claim(done, creds, stats);
    }
}

fn record_claim(
    done: Result<(String, Result<String, String>), tokio::task::JoinError>,
    creds: &mut Credentials,
    stats: &Stats,
) {
    match done {
        Ok((id, Ok(password))) => {
            Stats::bump(&stats.claims);
            creds.insert(id, password);
        }
        Ok((id, Err(why))) => {
            Stats::bump(&stats.claim_failures);
            stats.error(format_args!("claim of {id} failed: {why}"));
        }
        Err(e) => {
            Stats::bump(&stats.claim_failures);
            stats.error(format_args!("claim task failed: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A running device

/// One simulated device.
struct Device {
    id: String,
    /// None: connect without a password (`--no-auth`).
    password: Option<String>,
}

/// Topics of one device, formatted once.
struct Topics {
    status: String,
    telemetry: String,
    commands: String,
    command_prefix: String,
}

impl Topics {
    fn new(id: &str) -> Self {
        Self {
            status: format!("devices/{id}/status"),
            telemetry: format!("devices/{id}/telemetry"),
            commands: format!("devices/{id}/cmd/+"),
            command_prefix: format!("devices/{id}/cmd/"),
        }
    }
}

fn device_options(setup: &Setup, dev: &Device, topics: &Topics) -> MqttOptions {
    let mut opts = MqttOptions::new(dev.id.clone(), setup.host.clone(), setup.port);
    opts.set_credentials(dev.id.clone(), dev.password.clone().unwrap_or_default());
    opts.set_keep_alive(setup.keep_alive);
    opts.set_inflight(DEVICE_INFLIGHT);
    opts.set_max_packet_size(DEVICE_MAX_PACKET, DEVICE_MAX_PACKET);
    opts.set_last_will(LastWill::new(
        topics.status.clone(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    opts
}

/// Runs one device until shutdown: the MQTT event loop and the telemetry timer side by side in
/// one task (`join!`, so neither is ever cancelled half-way).
async fn run_device(
    setup: Arc<Setup>,
    dev: Device,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
) {
    let topics = Topics::new(&dev.id);
    let (client, mut events) =
        AsyncClient::new(device_options(&setup, &dev, &topics), DEVICE_QUEUE);
    let mut network = events.network_options();
    network.set_connection_timeout(10);
    events.set_network_options(network);
    let connected = AtomicBool::new(false);
    let link = Link {
        client: &client,
        topics: &topics,
        stats: &stats,
        connected: &connected,
    };
    tokio::join!(
        link.drive(&mut events, shutdown.clone()),
        link.telemetry(&setup, shutdown)
    );
}

/// What both halves of a running device share.
struct Link<'a> {
    client: &'a AsyncClient,
    topics: &'a Topics,
    stats: &'a Stats,
    connected: &'a AtomicBool,
}

impl Link<'_> {
    fn set_connected(&self, up: bool) {
        if self.connected.swap(up, Ordering::Relaxed) != up {
            if up {
                self.stats.connected.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Queue a publish without blocking the event loop; if the queue is full, hand it to a
    /// small task that waits for room.
    fn send(&self, topic: String, qos: QoS, retain: bool, payload: Vec<u8>) {
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {}
            Err(ClientError::TryRequest(rumqttc::Request::Publish(p))) => {
                let client = self.client.clone();
                tokio::spawn(async move {
                    let _ = client
                        .publish_bytes(p.topic, p.qos, p.retain, p.payload)
                        .await;
                });
            }
            Err(_) => {}
        }
    }

    /// The MQTT event loop: (re)connects with backoff, subscribes, announces `online`, answers
    /// commands. Ends after its DISCONNECT went out, or on shutdown while not connected.
    async fn drive(&self, events: &mut EventLoop, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new();
        let mut answered: VecDeque<String> = VecDeque::new();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    self.set_connected(true);
                    if *shutdown.borrow() {
                        let _ = self.client.try_disconnect();
                    } else if self
                        .client
                        .try_subscribe(self.topics.commands.clone(), QoS::AtLeastOnce)
                        .is_err()
                    {
                        self.stats.error(format_args!("cannot queue SUBSCRIBE"));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        self.stats.error(format_args!(
                            "{}: command subscription refused",
                            self.topics.status
                        ));
                    }
                    self.send(
                        self.topics.status.clone(),
                        QoS::AtLeastOnce,
                        true,
                        b"online".to_vec(),
                    );
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    self.on_command(&p.topic, &p.payload, &mut answered);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    self.set_connected(false);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    // Read the flag first: an error before the stop is always counted.
                    let stopping = *shutdown.borrow();
                    self.set_connected(false);
                    if stopping {
                        return;
                    }
                    self.stats
                        .error(format_args!("{}: {e}", self.topics.telemetry));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_wait()) => {}
                        _ = stopped(&mut shutdown) => return,
                    }
                }
            }
        }
    }

    /// Answer `devices/{id}/cmd/{req}` on `…/reply`; count each request id once.
    fn on_command(&self, topic: &str, payload: &[u8], answered: &mut VecDeque<String>) {
        let Some(req) = topic.strip_prefix(&self.topics.command_prefix) else {
            return; // not a command of ours (e.g. a retained message); ignore
        };
        if req.is_empty() || req.contains('/') {
            return;
        }
        let echo: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        let reply = json!({"ok": true, "echo": echo}).to_string().into_bytes();
        if !answered.iter().any(|r| r == req) {
            Stats::bump(&self.stats.commands_answered);
            if answered.len() == ANSWERED_MEMORY {
                answered.pop_front();
            }
            answered.push_back(req.to_string());
        }
        self.send(format!("{topic}/reply"), QoS::AtLeastOnce, false, reply);
    }

    /// Telemetry every period at a random phase while connected; on shutdown, `offline`
    /// (retained) and DISCONNECT.
    async fn telemetry(&self, setup: &Setup, mut shutdown: watch::Receiver<bool>) {
        let period = setup.telemetry_every;
        let phase = period.mul_f64(rand::random::<f64>());
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(&mut shutdown) => break,
            }
            if !self.connected.load(Ordering::Relaxed) {
                continue;
            }
            seq += 1;
            let publish = self.client.publish(
                self.topics.telemetry.clone(),
                setup.qos,
                false,
                reading(seq),
            );
            tokio::select! {
                r = publish => match r {
                    Ok(()) => Stats::bump(&self.stats.telemetry_sent),
                    Err(_) => break, // the event loop is gone
                },
                _ = stopped(&mut shutdown) => break,
            }
        }
        if self.connected.load(Ordering::Relaxed) {
            let step = Duration::from_secs(2);
            let offline = self.client.publish(
                self.topics.status.clone(),
                QoS::AtLeastOnce,
                true,
                "offline",
            );
            let _ = tokio::time::timeout(step, offline).await;
            let _ = tokio::time::timeout(step, self.client.disconnect()).await;
        }
    }
}

/// A telemetry reading: `{"ts", "seq", "temp", "rssi", "fw"}`.
fn reading(seq: u64) -> Vec<u8> {
    let (temp, rssi): (f64, i32) = {
        let mut rng = rand::thread_rng();
        (rng.gen_range(18.0..30.0), rng.gen_range(-90..-40))
    };
    let temp = (temp * 10.0).round() / 10.0;
    format!(
        r#"{{"ts":{},"seq":{seq},"temp":{temp},"rssi":{rssi},"fw":"{FIRMWARE}"}}"#,
        unix_secs()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The fleet

/// Prints one stats line every `every` until shutdown.
async fn print_stats(
    stats: Arc<Stats>,
    every: Duration,
    started: Instant,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        let sent = Stats::get(&stats.telemetry_sent);
        let now = Instant::now();
        let rate = (sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, sent);
        println!(
            "stats t_ms={} elapsed_s={:.1} connected={} telemetry_sent={sent} telemetry_rate={rate:.0} commands_answered={} claims={} errors={}",
            unix_ms(),
            started.elapsed().as_secs_f64(),
            Stats::get(&stats.connected),
            Stats::get(&stats.commands_answered),
            Stats::get(&stats.claims),
            Stats::get(&stats.errors),
        );
    }
}

/// The final line of a fleet run.
#[derive(Serialize)]
struct Summary {
    devices: u32,
    connected: u64,
    telemetry_sent: u64,
    commands_answered: u64,
    claims: u64,
    claim_failures: u64,
    errors: u64,
    seconds: f64,
    rss_kb: u64,
}

fn summary(devices: u32, connected: u64, stats: &Stats, started: Instant) -> String {
    let s = Summary {
        devices,
        connected,
        telemetry_sent: Stats::get(&stats.telemetry_sent),
        commands_answered: Stats::get(&stats.commands_answered),
        claims: Stats::get(&stats.claims),
        claim_failures: Stats::get(&stats.claim_failures),
        errors: Stats::get(&stats.errors),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        rss_kb: rss_kb(),
    };
    serde_json::to_string(&s).unwrap_or_default()
}

async fn run_fleet(args: &Args) -> anyhow::Result<()> {
    let (host, port) = parse_broker(&args.broker)?;
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let ids = device_ids(&args.prefix, args.devices)?;
    let mut creds = match &args.credentials {
        Some(p) => load_credentials(p)?,
        None => Credentials::new(),
    };
    let to_claim: Vec<String> = if args.no_auth {
        Vec::new()
    } else {
        ids.iter()
            .filter(|id| !creds.contains_key(*id))
            .cloned()
            .collect()
    };
    let fleet_secret: Option<Arc<[u8]>> =
        args.fleet_secret.as_ref().map(|s| Arc::from(s.as_bytes()));
    if !to_claim.is_empty() && fleet_secret.is_none() {
        bail!(
            "{} devices need claiming: give --fleet-secret (or SWITCHBOARD_DEVICES_FLEET_SECRET), a --credentials file that has them, or --no-auth",
            to_claim.len()
        );
    }
    let setup = Arc::new(Setup {
        host,
        port,
        keep_alive: Duration::from_secs(args.keep_alive_secs),
        telemetry_every: Duration::from_millis(args.telemetry_interval_ms),
        qos: qos_of(args.qos),
    });
    let stats = Arc::new(Stats::default());
    let (stop_tx, shutdown) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let started = Instant::now();
    if args.stats_interval_secs > 0 {
        tokio::spawn(print_stats(
            Arc::clone(&stats),
            Duration::from_secs(args.stats_interval_secs),
            started,
            shutdown.clone(),
        ));
    }

    // Claims: Ctrl-C stops them; the duration starts with the fleet.
    spawn_stopper(Arc::clone(&stop_tx), Arc::clone(&stats), None);
    if let Some(secret) = fleet_secret.filter(|_| !to_claim.is_empty()) {
        eprintln!("devsim: claiming {} devices", to_claim.len());
        claim_all(
            &setup,
            &secret,
            to_claim,
            args.connect_rate,
            &mut creds,
            &stats,
            &shutdown,
        )
        .await;
        if let Some(path) = &args.credentials {
            save_credentials(path, &creds)?;
        }
    }
    if args.claim_only || *shutdown.borrow() {
        request_stop(&stop_tx, &stats);
        println!("{}", summary(args.devices, 0, &stats, started));
        return Ok(());
    }

    if args.duration_secs > 0 {
        let d = Duration::from_secs(args.duration_secs);
        spawn_stopper(Arc::clone(&stop_tx), Arc::clone(&stats), Some(d));
    }
    let mut fleet = start_fleet(args, &ids, &creds, &setup, &stats, shutdown.clone()).await;
    let mut wait = shutdown.clone();
    stopped(&mut wait).await;
    let connected = Stats::get(&stats.connected_at_stop);
    let all_left = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while fleet.join_next().await.is_some() {}
    })
    .await;
    if all_left.is_err() {
        stats.error(format_args!(
            "{} devices did not disconnect within {SHUTDOWN_GRACE:?}",
            fleet.len()
        ));
        fleet.abort_all();
    }
    println!("{}", summary(args.devices, connected, &stats, started));
    Ok(())
}

/// Starts the devices at `--connect-rate` per second (stops early on shutdown).
async fn start_fleet(
    args: &Args,
    ids: &[String],
    creds: &Credentials,
    setup: &Arc<Setup>,
    stats: &Arc<Stats>,
    shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut fleet = JoinSet::new();
    let mut pacer = Pacer::new(args.connect_rate);
    for id in ids {
        if *shutdown.borrow() {
            break;
        }
        let password = if args.no_auth {
            None
        } else {
            match creds.get(id) {
                Some(p) => Some(p.clone()),
                None => continue, // its claim failed (already counted)
            }
        };
        pacer.wait().await;
        let dev = Device {
            id: id.clone(),
            password,
        };
        fleet.spawn(run_device(
            Arc::clone(setup),
            dev,
            Arc::clone(stats),
            shutdown.clone(),
        ));
    }
    fleet
}

// ---------------------------------------------------------------------------------------------
// The counting subscriber

async fn run_counter(args: &Args, filter: &str) -> anyhow::Result<()> {
    let (host, port) = parse_broker(&args.broker)?;
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("devsim-count-{}", std::process::id()));
    let mut opts = MqttOptions::new(client_id, host, port);
    if let Some(user) = &args.username {
        opts.set_credentials(user.clone(), args.password.clone().unwrap_or_default());
    }
    opts.set_keep_alive(Duration::from_secs(args.keep_alive_secs));
    opts.set_max_packet_size(256 * 1024, 16 * 1024);
    let (client, mut events) = AsyncClient::new(opts, 16);
    let (stop_tx, shutdown) = watch::channel(false);
    let duration = (args.duration_secs > 0).then(|| Duration::from_secs(args.duration_secs));
    spawn_stopper(Arc::new(stop_tx), Arc::new(Stats::default()), duration);
    let counter = Counter {
        client: &client,
        filter,
        qos: qos_of(args.qos),
        received: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    };
    let started = Instant::now();
    let every = Duration::from_secs(args.stats_interval_secs.max(1));
    tokio::join!(
        counter.drive(&mut events, shutdown.clone()),
        counter.report(every, args.stats_interval_secs > 0, shutdown)
    );
    let secs = started.elapsed().as_secs_f64();
    let received = counter.received.load(Ordering::Relaxed);
    let total = CountSummary {
        filter,
        received,
        seconds: (secs * 10.0).round() / 10.0,
        rate: (received as f64 / secs.max(1e-3)).round(),
        errors: counter.errors.load(Ordering::Relaxed),
    };
    println!("{}", serde_json::to_string(&total).unwrap_or_default());
    Ok(())
}

/// The final line of a counting run.
#[derive(Serialize)]
struct CountSummary<'a> {
    filter: &'a str,
    received: u64,
    seconds: f64,
    rate: f64,
    errors: u64,
}

/// One subscriber that counts what it receives.
struct Counter<'a> {
    client: &'a AsyncClient,
    filter: &'a str,
    qos: QoS,
    received: AtomicU64,
    errors: AtomicU64,
}

impl Counter<'_> {
    async fn drive(&self, events: &mut EventLoop, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    let _ = self.client.try_subscribe(self.filter, self.qos);
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("devsim: subscription to {} refused", self.filter);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    self.received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    if *shutdown.borrow() {
                        return;
                    }
                    if self.errors.fetch_add(1, Ordering::Relaxed) < MAX_ERROR_LINES {
                        eprintln!("devsim: subscriber: {e}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_wait()) => {}
                        _ = stopped(&mut shutdown) => return,
                    }
                }
            }
        }
    }

    /// Prints `count t_ms=.. received=.. rate=..` every interval; DISCONNECT at shutdown.
    async fn report(&self, every: Duration, print: bool, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(&mut shutdown) => break,
            }
            let n = self.received.load(Ordering::Relaxed);
            let now = Instant::now();
            let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, n);
            if print {
                println!("count t_ms={} received={n} rate={rate:.0}", unix_ms());
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.disconnect()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_gateway_rules() {
        let ids = device_ids("sim", 3).unwrap();
        assert_eq!(ids, ["sim-000001", "sim-000002", "sim-000003"]);
        assert!(device_ids("bad/prefix", 1).is_err());
        assert!(device_ids(&"x".repeat(60), 1).is_err());
    }

    #[test]
    fn broker_addresses() {
        assert_eq!(
            parse_broker("127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(parse_broker("[::1]:1883").unwrap(), ("::1".into(), 1883));
        assert!(parse_broker("localhost").is_err());
        assert!(parse_broker(":1883").is_err());
        assert!(parse_broker("h:99999").is_err());
    }

    #[test]
    fn claim_answers() {
        assert!(matches!(
            parse_claim_answer(br#"{"ok":true,"password":"p"}"#),
            Ok(p) if p == "p"
        ));
        assert!(matches!(
            parse_claim_answer(br#"{"ok":false,"reason":"clock_skew"}"#),
            Err(ClaimError::Refused(r)) if r == "clock_skew"
        ));
        assert!(matches!(
            parse_claim_answer(b"\xff"),
            Err(ClaimError::Transport(_))
        ));
        assert!(matches!(
            parse_claim_answer(br#"{"ok":true}"#),
            Err(ClaimError::Refused(_))
        ));
    }

    #[test]
    fn claim_requests_verify() {
        let req = claim_request(b"fleet-secret-0123456789", "sim-000001");
        let json = serde_json::to_vec(&req).unwrap();
        let parsed = ClaimRequest::from_json(&json).unwrap();
        let secret = device_secret(b"fleet-secret-0123456789", "sim-000001");
        assert_eq!(
            switchboard_mqtt::claim::verify(&parsed, &secret, req.ts, 300, false),
            Ok(())
        );
    }

    #[test]
    fn readings_are_json_objects_with_firmware() {
        let v: Value = serde_json::from_slice(&reading(7)).unwrap();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["fw"], FIRMWARE);
        assert!(v["temp"].is_f64() || v["temp"].is_i64());
    }
}
