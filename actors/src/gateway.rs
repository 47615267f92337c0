//! Wiring and the root supervisor.
//!
//! `Gateway::start` binds the SIP sockets, opens the CDR writer and spawns the
//! actor tree under a `Root` actor: the call supervisor (which owns the calls),
//! the SIP endpoint and one actor per trunk. ractor has no restart strategy of
//! its own, so `Root` implements one: a failed endpoint or trunk actor is
//! started again with the same sockets and configuration, at most
//! `MAX_RESTARTS` times in `RESTART_WINDOW`; past that the root stops and the
//! process exits rather than limp along.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use switchboard_config::Config;
use switchboard_sip::transaction::Timers;
use switchboard_storage::Store;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::cdr;
use crate::context::{CallContext, TrunkHandle};
use crate::devices::{DeviceSupervisor, DeviceSupervisorArgs, DeviceSupervisorMsg};
use crate::drain::{Drain, Stage};
use crate::endpoint::{Endpoint, EndpointArgs, EndpointMsg, TlsClient, TlsClients};
use crate::media::PortPool;
use crate::mqtt::{BrokerActor, BrokerArgs, BrokerMsg};
use crate::mqtt_external::{ExternalArgs, ExternalBroker};
use crate::sip_contact::sip_transport;
use crate::supervisor::{CallSupervisor, CallWiring, SupervisorMsg};
use crate::trunk::{initial_status, Trunk, TrunkArgs, TrunkMsg, TrunkStatus};

/// Receive and send buffer asked for on the SIP UDP socket.
pub const SIP_SOCKET_BUFFER: usize = 8 * 1024 * 1024;

/// Restarts allowed per child within the window.
pub const MAX_RESTARTS: usize = 5;
/// The window for restart intensity.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A socket could not be bound.
    #[error("cannot bind {transport} on {addr}: {source}")]
    Bind {
        /// Transport.
        transport: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// An actor failed to start.
    #[error("cannot start the {which} actor: {source}")]
    Spawn {
        /// Which actor.
        which: &'static str,
        /// Cause.
        source: ractor::SpawnErr,
    },
    /// A TLS trunk's CA file or server name is unusable.
    #[error("trunk {trunk}")]
    TrunkTls {
        /// The trunk.
        trunk: String,
        /// Cause.
        source: crate::tls::TlsError,
    },
    /// A configured feature that this build does not have yet.
    #[error("{what} is not supported yet")]
    NotYet {
        /// The setting.
        what: &'static str,
    },
    /// The endpoint did not come up.
    #[error("the SIP endpoint stopped during start-up")]
    EndpointGone,
    /// A TLS listener's certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The media-ingest server could not start.
    #[error("{0}")]
    Ingest(#[from] crate::ingest::IngestError),
    /// The CDR writer thread could not start.
    #[error("cannot start the CDR writer: {0}")]
    CdrWriter(std::io::Error),
    /// The call supervisor could not be wired.
    #[error(transparent)]
    CallSupervisor(#[from] crate::supervisor::StartError),
    /// The call journal could not be recovered or its writer started.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

/// A running gateway: handles for the admin API.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The root supervisor.
    pub root: ActorRef<RootMsg>,
    /// The call supervisor.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Live endpoint reference (changes on restart).
    pub endpoint: watch::Receiver<Option<ActorRef<EndpointMsg>>>,
    /// Trunk statuses by name, in config order.
    pub trunks: Vec<watch::Receiver<TrunkStatus>>,
    /// RTP ports.
    pub ports: Arc<PortPool>,
    /// The bound SIP address.
    pub sip_addr: SocketAddr,
    /// The bound SIP over TLS address (`[sip] tls_listen`).
    pub sip_tls_addr: Option<SocketAddr>,
    /// The device supervisor (None when `[mqtt] mode = "off"`).
    pub devices: Option<ActorRef<DeviceSupervisorMsg>>,
    /// The fax supervisor.
    pub faxes: ActorRef<crate::fax::FaxMsg>,
    /// Live broker reference (changes on restart; None when not embedded).
    pub broker: watch::Receiver<Option<ActorRef<BrokerMsg>>>,
    /// Live media streams.
    pub streams: Arc<crate::audio::Streams>,
    /// Whether the media-ingest server runs (`[media_ws] enabled`).
    pub ingest: bool,
    /// SIP bans and rate limits.
    pub sip_guard: Arc<crate::sip_guard::SipGuard>,
    /// The credits ledger (its one writer).
    pub ledger: ActorRef<crate::ledger::LedgerMsg>,
    /// The drain flag (issue 12).
    pub drain: Arc<Drain>,
    /// The CDR writer thread, closed and joined at shutdown.
    pub cdr_writer: Arc<cdr::CdrWriter>,
    /// The call journal's writer thread, closed and joined at shutdown after the CDR writer
    /// (whose CDRs remove the ended calls' records).
    pub journal_writer: Arc<crate::journal::JournalWriter>,
}

/// The TLS clients of the TLS trunks: each verifies with its `tls_ca` (or the web PKI roots)
/// against its `tls_server_name` (or its host). A bad CA file or name is a start-up error.
fn tls_clients(config: &Config) -> Result<TlsClients, GatewayError> {
    let default = crate::tls::connector(None)?;
    let mut trunks = HashMap::new();
    for t in &config.trunks {
        if t.transport != switchboard_config::Transport::Tls {
            continue;
        }
        let err = |source| GatewayError::TrunkTls {
            trunk: t.name.clone(),
            source,
        };
        let connector = match &t.tls_ca {
            Some(ca) => crate::tls::connector(Some(ca)).map_err(err)?,
            None => default.clone(),
        };
        let server_name = crate::tls::server_name(t.tls_name()).map_err(err)?;
        trunks.insert(
            t.address,
            TlsClient {
                connector,
                server_name,
            },
        );
    }
    Ok(TlsClients { trunks, default })
}

impl Gateway {
    /// Bind, spawn and wire everything.
    pub async fn start(config: Arc<Config>, store: Arc<dyn Store>) -> Result<Self, GatewayError> {
        // Calls a crash cut become CDRs (cause `crash`) and are charged, before any listener
        // or the ledger actor starts (issue 12).
        crate::journal::recover(store.as_ref(), switchboard_storage::now_unix_ms())?;
        let tls_clients = Arc::new(tls_clients(&config)?);
        if config.mqtt.mode == switchboard_config::MqttMode::External
            && config
                .mqtt
                .url
                .as_deref()
                .and_then(switchboard_config::BrokerUrl::parse)
                .is_some_and(|u| u.tls)
        {
            return Err(GatewayError::NotYet {
                what: "mqtts:// to an external broker",
            });
        }
        let listen = config.sip.listen;
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| GatewayError::Bind {
                transport: "SIP UDP",
                addr: listen,
                source,
            })?;
        // Bursts of SIP at high call rates overflow the kernel's default
        // ~200 KiB; ask for more (the kernel caps it at net.core.rmem_max).
        let sock = socket2::SockRef::from(&udp);
        let _ = sock.set_recv_buffer_size(SIP_SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(SIP_SOCKET_BUFFER);
        let bound = udp.local_addr().map_err(|source| GatewayError::Bind {
            transport: "SIP UDP",
            addr: listen,
            source,
        })?;
        let tcp = TcpListener::bind(bound)
            .await
            .map_err(|source| GatewayError::Bind {
                transport: "SIP TCP",
                addr: bound,
                source,
            })?;
        let advertised = config.sip.advertised_ip();
        let sip_addr = SocketAddr::new(advertised, bound.port());
        let sip_tls = match (
            config.sip.tls_listen,
            &config.sip.tls_cert,
            &config.sip.tls_key,
        ) {
            (Some(addr), Some(cert), Some(key)) => {
                // Load the pair before binding: a bad file is a start-up error.
                let acceptor = crate::tls::acceptor(cert, key)?;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind {
                        transport: "SIP TLS",
                        addr,
                        source,
                    })?;
                let tls_bound = l.local_addr().map_err(|source| GatewayError::Bind {
                    transport: "SIP TLS",
                    addr,
                    source,
                })?;
                tracing::info!(%tls_bound, "SIP listening on TLS");
                Some((Arc::new(l), acceptor, tls_bound))
            }
            _ => None,
        };
        let sip_tls_bound = sip_tls.as_ref().map(|(_, _, a)| *a);
        let sip_tls_addr = sip_tls_bound.map(|a| SocketAddr::new(advertised, a.port()));
        let sip_tls = sip_tls.map(|(l, acceptor, _)| (l, acceptor));
        let media_ip = config.media.advertise.unwrap_or(advertised);
        let bind_ip = match config.sip.listen.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip => ip,
        };
        let ports = PortPool::new(bind_ip, config.media.rtp_ports.clone());
        let streams = Arc::new(crate::audio::Streams::default());
        let sip_guard = Arc::new(crate::sip_guard::SipGuard::default());
        let (journal, journal_writer) =
            crate::journal::start(Arc::clone(&store), config.sip.journal_checkpoint)?;
        let (cdrs, cdr_writer) = cdr::start(Arc::clone(&store)).map_err(GatewayError::CdrWriter)?;
        let drain = Arc::new(Drain::new(config.sip.drain));

        let mqtt_listener = match config.mqtt.mode {
            switchboard_config::MqttMode::Embedded => {
                let addr = config.mqtt.listen;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind {
                        transport: "MQTT",
                        addr,
                        source,
                    })?;
                tracing::info!(%addr, "MQTT broker listening");
                Some(Arc::new(l))
            }
            _ => None,
        };
        let mqtt_tls = match (&config.mqtt, mqtt_listener.is_some()) {
            (
                switchboard_config::MqttConfig {
                    tls_listen: Some(addr),
                    tls_cert: Some(cert),
                    tls_key: Some(key),
                    ..
                },
                true,
            ) => {
                // Load the pair before binding: a bad file is a start-up error.
                let acceptor = crate::tls::acceptor(cert, key)?;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind {
                        transport: "MQTT TLS",
                        addr: *addr,
                        source,
                    })?;
                tracing::info!(%addr, "MQTT broker listening with TLS");
                Some((Arc::new(l), acceptor))
            }
            _ => None,
        };
        // Phase one of the wiring (issue 13): the call supervisor's address, so the actors
        // that place or receive calls are built with it. It handles nothing until phase two
        // (`wire` below) gives it the call context; what arrives before waits in its mailbox.
        let (supervisor, supervisor_start) =
            CallSupervisor::start().map_err(|source| GatewayError::Spawn {
                which: "call supervisor",
                source,
            })?;
        let devices = match config.mqtt.mode {
            switchboard_config::MqttMode::Off => None,
            _ => {
                let args = DeviceSupervisorArgs {
                    config: Arc::clone(&config),
                    store: Arc::clone(&store),
                    calls: supervisor.clone(),
                    drain: Arc::clone(&drain),
                };
                let (d, _) =
                    Actor::spawn(None, DeviceSupervisor, args)
                        .await
                        .map_err(|source| GatewayError::Spawn {
                            which: "device supervisor",
                            source,
                        })?;
                Some(d)
            }
        };
        let (broker_tx, broker_rx) = watch::channel(None);
        let (ledger, _) = Actor::spawn(None, crate::ledger::LedgerActor, Arc::clone(&store))
            .await
            .map_err(|source| GatewayError::Spawn {
                which: "ledger",
                source,
            })?;
        let (faxes, _) = Actor::spawn(
            None,
            crate::fax::FaxSupervisor,
            crate::fax::FaxArgs {
                config: Arc::clone(&config),
                store: Arc::clone(&store),
                calls: supervisor.clone(),
                ledger: Some(ledger.clone()),
                drain: Arc::clone(&drain),
            },
        )
        .await
        .map_err(|source| GatewayError::Spawn {
            which: "fax supervisor",
            source,
        })?;
        let (endpoint_tx, endpoint_rx) = watch::channel(None);
        let mut trunk_status = Vec::new();
        let mut trunk_senders = Vec::new();
        for t in &config.trunks {
            let (tx, rx) = watch::channel(initial_status(t));
            trunk_status.push(rx);
            trunk_senders.push(Arc::new(tx));
        }
        let root_args = RootArgs {
            config: Arc::clone(&config),
            udp: Arc::new(udp),
            tcp: Arc::new(tcp),
            tls: sip_tls,
            tls_clients,
            sip_tls_addr,
            supervisor: supervisor.clone(),
            endpoint_tx,
            trunk_senders,
            sip_addr,
            mqtt_listener,
            mqtt_tls,
            devices: devices.clone(),
            broker_tx,
            store: Arc::clone(&store),
            sip_guard: Arc::clone(&sip_guard),
        };
        let (root, _) = Actor::spawn(Some("root".into()), Root, root_args)
            .await
            .map_err(|source| GatewayError::Spawn {
                which: "root",
                source,
            })?;
        faxes.get_cell().link(root.get_cell());
        if let Some(d) = &devices {
            d.get_cell().link(root.get_cell());
        }
        // Wait for the root to publish the endpoint, then wire the call supervisor (phase two).
        let mut ep_rx = endpoint_rx.clone();
        let endpoint = loop {
            if let Some(ep) = ep_rx.borrow_and_update().clone() {
                break ep;
            }
            if ep_rx.changed().await.is_err() {
                return Err(GatewayError::EndpointGone);
            }
        };
        let trunk_refs = ractor::call!(root, RootMsg::Trunks).unwrap_or_default();
        let trunks: HashMap<String, TrunkHandle> = config
            .trunks
            .iter()
            .zip(trunk_status.iter())
            .filter_map(|(t, st)| {
                trunk_refs.get(&t.name).map(|a| {
                    (
                        t.name.clone(),
                        TrunkHandle {
                            actor: a.clone(),
                            status: st.clone(),
                        },
                    )
                })
            })
            .collect();
        let ctx = Arc::new(CallContext {
            config: Arc::clone(&config),
            endpoint,
            supervisor: supervisor.clone(),
            ports: Arc::clone(&ports),
            cdrs,
            journal,
            trunks,
            sip_addr,
            sip_tls_addr,
            media_ip,
            streams: Arc::clone(&streams),
            ledger: Some(ledger.clone()),
            drain: Arc::clone(&drain),
            clock: crate::clock::system(),
        });
        supervisor_start
            .wire(CallWiring {
                ctx: Arc::clone(&ctx),
                faxes: Some(faxes.clone()),
                devices: devices.clone(),
            })
            .await?;
        supervisor.get_cell().link(root.get_cell());
        let ingest = crate::ingest::start(ctx, devices.clone()).await?.is_some();
        tracing::info!(%bound, advertised = %sip_addr, "SIP listening on UDP and TCP");
        Ok(Self {
            root,
            supervisor,
            endpoint: endpoint_rx,
            trunks: trunk_status,
            ports,
            sip_addr: bound,
            sip_tls_addr: sip_tls_bound,
            devices,
            broker: broker_rx,
            faxes,
            streams,
            ingest,
            sip_guard,
            ledger,
            drain,
            cdr_writer: Arc::new(cdr_writer),
            journal_writer: Arc::new(journal_writer),
        })
    }

    /// Apply a reloaded configuration to new calls (routes, apps, SIP users and limits).
    /// The caller has checked that nothing else changed (see `switchboard` `reload`).
    pub fn reload(&self, config: Arc<Config>) {
        let _ = self
            .supervisor
            .send_message(SupervisorMsg::Reload(Arc::clone(&config)));
        let _ = self.root.send_message(RootMsg::Reload(config));
    }

    /// Start a drain (SIGTERM, SIGINT, the admin call, `switchboard drain`): readiness turns
    /// false, new INVITEs get 503 with Retry-After, originations and new fax attempts are
    /// refused, devices are told. Returns false when a drain was already under way.
    pub fn start_drain(&self) -> bool {
        let first = self.drain.start();
        if first {
            if let Some(d) = &self.devices {
                let _ = d.send_message(DeviceSupervisorMsg::Draining {
                    drain_secs: self.drain.window().as_secs(),
                });
            }
        }
        first
    }

    /// Calls alive now (any phase).
    pub async fn live_calls(&self) -> usize {
        ractor::call_t!(self.supervisor, SupervisorMsg::Count, 2_000).unwrap_or(0)
    }

    /// The orderly exit after [`Gateway::start_drain`] (which it starts if needed): wait until
    /// no call is left or the drain deadline passes (or [`Drain::now`] is called); hang up what
    /// is left with cause `shutdown` (BYE both legs, CDR, reservation posted) and wait for those
    /// calls to finish; let WebSocket streams send their `stop`; tell devices and close their
    /// connections; let fax jobs record their state; then close and join the CDR writer. The
    /// caller flushes the store afterwards.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.start_drain();
        let mut report = ShutdownReport::default();
        let deadline = self.drain.deadline().unwrap_or_else(Instant::now);
        let mut stage = self.drain.subscribe();
        // 1. Calls in progress go on until they end, the deadline, or a second signal.
        loop {
            let n = self.live_calls().await;
            if n == 0 {
                break;
            }
            if *stage.borrow() == Stage::Now || Instant::now() >= deadline {
                report.hung_up = n;
                break;
            }
            let tick = (Instant::now() + DRAIN_POLL).min(deadline);
            tokio::select! {
                _ = stage.changed() => {}
                _ = tokio::time::sleep_until(tick.into()) => {}
            }
        }
        // 2. What is left is hung up; each call ends as a normal hangup does (BYE, settlement,
        // CDR) once its BYEs are answered or its BYE guard passes.
        if report.hung_up > 0 {
            tracing::warn!(
                calls = report.hung_up,
                "drain deadline: hanging up the calls left"
            );
            let _ = self.supervisor.send_message(SupervisorMsg::EndAll(
                switchboard_call::HangupCause::Shutdown,
            ));
            let until = Instant::now() + ENDING_WAIT;
            loop {
                let n = self.live_calls().await;
                if n == 0 {
                    break;
                }
                if Instant::now() >= until {
                    tracing::error!(calls = n, "calls did not end in time; their CDRs are lost");
                    report.lost = n;
                    break;
                }
                tokio::time::sleep(DRAIN_POLL).await;
            }
        }
        // 3. WebSocket apps got `stop` as their calls ended; give the frames time to leave.
        let until = Instant::now() + STREAMS_WAIT;
        while !self.streams.is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 4. Devices: told at the start of the drain, disconnected now.
        if let Some(d) = &self.devices {
            let n = ractor::call_t!(d, DeviceSupervisorMsg::Disconnect, 5_000).unwrap_or(0);
            report.devices = n;
            // Their connections close after what was queued for them (the drain notice) is
            // written: wait for those writers, or the exit could cut the notice off.
            let broker = self.broker.borrow().clone();
            if let Some(b) = broker {
                let written = ractor::call_t!(b, BrokerMsg::Closing, 5_000).unwrap_or_default();
                let deadline = Instant::now() + DEVICES_FLUSH_WAIT;
                if !crate::mqtt::wait_written(written, deadline).await {
                    tracing::warn!("some device connections did not flush before exit");
                }
            }
        }
        // 5. Fax jobs: every job has handled what its call told it (its state is on disk).
        report.fax_jobs = ractor::call_t!(self.faxes, crate::fax::FaxMsg::Sync, 10_000)
            .unwrap_or_else(|err| {
                tracing::error!(%err, "fax jobs did not answer at shutdown");
                0
            });
        // 6. Every CDR queued is written and flushed (removing its call's journal record); the
        // writer thread is joined, then the journal's.
        let writer = Arc::clone(&self.cdr_writer);
        let journal = Arc::clone(&self.journal_writer);
        if tokio::task::spawn_blocking(move || {
            writer.close();
            journal.close();
        })
        .await
        .is_err()
        {
            tracing::error!("closing the CDR and journal writers failed");
        }
        report
    }

    /// The endpoint, if it is running.
    pub fn endpoint(&self) -> Option<ActorRef<EndpointMsg>> {
        self.endpoint.borrow().clone()
    }
}

/// How often the drain looks at the number of calls.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// How long hung-up calls get to finish (past the calls' own 32 s BYE guard).
const ENDING_WAIT: Duration = Duration::from_secs(35);
/// How long WebSocket streams get to send `stop` and close.
const STREAMS_WAIT: Duration = Duration::from_secs(2);
/// How long revoked device connections get to write their last packets (the drain notice).
const DEVICES_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// What [`Gateway::shutdown`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShutdownReport {
    /// Calls hung up at the deadline (cause `shutdown`).
    pub hung_up: usize,
    /// Calls that did not end even then (no CDR).
    pub lost: usize,
    /// Device connections closed.
    pub devices: usize,
    /// Fax jobs that were live.
    pub fax_jobs: usize,
}

/// Messages of the root supervisor.
#[derive(Debug)]
pub enum RootMsg {
    /// The trunk actors by name.
    Trunks(ractor::RpcReplyPort<HashMap<String, ActorRef<TrunkMsg>>>),
    /// A reloaded configuration: children started from now on use it, and the endpoint
    /// takes it at once.
    Reload(Arc<Config>),
}

/// What the root needs to (re)start its children.
pub struct RootArgs {
    config: Arc<Config>,
    udp: Arc<UdpSocket>,
    tcp: Arc<TcpListener>,
    tls: Option<(Arc<TcpListener>, tokio_rustls::TlsAcceptor)>,
    tls_clients: Arc<TlsClients>,
    sip_tls_addr: Option<SocketAddr>,
    supervisor: ActorRef<SupervisorMsg>,
    endpoint_tx: watch::Sender<Option<ActorRef<EndpointMsg>>>,
    trunk_senders: Vec<Arc<watch::Sender<TrunkStatus>>>,
    sip_addr: SocketAddr,
    mqtt_listener: Option<Arc<TcpListener>>,
    mqtt_tls: Option<(Arc<TcpListener>, tokio_rustls::TlsAcceptor)>,
    devices: Option<ActorRef<DeviceSupervisorMsg>>,
    broker_tx: watch::Sender<Option<ActorRef<BrokerMsg>>>,
    store: Arc<dyn Store>,
    sip_guard: Arc<crate::sip_guard::SipGuard>,
}

impl std::fmt::Debug for RootArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootArgs")
            .field("sip_addr", &self.sip_addr)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Child {
    Endpoint,
    Trunk(usize),
    Broker,
}

/// State of the root supervisor.
#[derive(Debug)]
pub struct RootState {
    args: RootArgs,
    children: HashMap<ractor::ActorId, Child>,
    endpoint: Option<ActorRef<EndpointMsg>>,
    trunks: HashMap<String, ActorRef<TrunkMsg>>,
    restarts: HashMap<Child, Vec<Instant>>,
}

/// The root supervisor.
#[derive(Debug, Default)]
pub struct Root;

impl Root {
    async fn spawn_child(
        &self,
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let a = &state.args;
        let cell: ActorCell = match &child {
            Child::Broker => match self.spawn_broker(myself, state).await? {
                Some(cell) => cell,
                None => return Ok(()),
            },
            Child::Endpoint => {
                let args = EndpointArgs {
                    udp: Arc::clone(&a.udp),
                    tcp: Some(Arc::clone(&a.tcp)),
                    tls: a.tls.clone(),
                    tls_clients: Arc::clone(&a.tls_clients),
                    timers: Timers {
                        t1: a.config.sip.t1,
                        t2: a.config.sip.t2,
                        t4: a.config.sip.t4,
                    },
                    supervisor: a.supervisor.clone(),
                    user_agent: a.config.sip.user_agent.clone(),
                    config: Arc::clone(&a.config),
                    guard: Arc::clone(&a.sip_guard),
                };
                let (ep, _) = Actor::spawn_linked(None, Endpoint, args, myself.get_cell()).await?;
                state.endpoint = Some(ep.clone());
                let _ = a.endpoint_tx.send(Some(ep.clone()));
                ep.get_cell()
            }
            Child::Trunk(i) => {
                let t = a.config.trunks[*i].clone();
                let Some(endpoint) = state.endpoint.clone() else {
                    return Ok(());
                };
                let transport = sip_transport(t.transport);
                let contact =
                    crate::sip_contact::contact_uri(transport, a.sip_addr, a.sip_tls_addr);
                let name = t.name.clone();
                let args = TrunkArgs {
                    config: t,
                    endpoint,
                    status: Arc::clone(&a.trunk_senders[*i]),
                    via_host: match transport {
                        switchboard_sip::transport::Transport::Tls => {
                            a.sip_tls_addr.unwrap_or(a.sip_addr)
                        }
                        _ => a.sip_addr,
                    }
                    .to_string(),
                    contact,
                    user_agent: a.config.sip.user_agent.clone(),
                };
                let (tr, _) = Actor::spawn_linked(None, Trunk, args, myself.get_cell()).await?;
                state.trunks.insert(name, tr.clone());
                tr.get_cell()
            }
        };
        state.children.insert(cell.get_id(), child);
        Ok(())
    }

    async fn spawn_broker(
        &self,
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
    ) -> Result<Option<ActorCell>, ActorProcessingErr> {
        let a = &state.args;
        let Some(devices) = a.devices.clone() else {
            return Ok(None);
        };
        let Some(listener) = a.mqtt_listener.clone() else {
            if a.config.mqtt.mode != switchboard_config::MqttMode::External {
                return Ok(None);
            }
            let args = ExternalArgs {
                mqtt: a.config.mqtt.clone(),
                devices: devices.clone(),
            };
            let (b, _) = Actor::spawn_linked(None, ExternalBroker, args, myself.get_cell()).await?;
            let _ = devices.send_message(DeviceSupervisorMsg::SetBroker(b.clone()));
            let _ = a.broker_tx.send(Some(b.clone()));
            return Ok(Some(b.get_cell()));
        };
        let max_packet = a.config.mqtt.max_packet_bytes;
        let limits = switchboard_mqtt::broker::Limits {
            max_packet,
            max_clients: a.config.mqtt.max_connections,
            // Claimants get a tenth of the table; the rest is for devices
            // (docs/decisions.md 13.1).
            max_claimants: (a.config.mqtt.max_connections / 10).max(1),
            ..Default::default()
        };
        let args = BrokerArgs {
            listener,
            limits,
            store: Arc::clone(&a.store),
            devices: devices.clone(),
            max_packet,
            tls: a.mqtt_tls.clone(),
        };
        let (b, _) = Actor::spawn_linked(None, BrokerActor, args, myself.get_cell()).await?;
        let _ = devices.send_message(DeviceSupervisorMsg::SetBroker(b.clone()));
        let _ = a.broker_tx.send(Some(b.clone()));
        Ok(Some(b.get_cell()))
    }
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        _: ActorRef<RootMsg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        Ok(RootState {
            args,
            children: HashMap::new(),
            endpoint: None,
            trunks: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<RootMsg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        self.spawn_child(&myself, state, Child::Endpoint).await?;
        for i in 0..state.args.config.trunks.len() {
            self.spawn_child(&myself, state, Child::Trunk(i)).await?;
        }
        self.spawn_child(&myself, state, Child::Broker).await?;
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Trunks(reply) => {
                let _ = reply.send(state.trunks.clone());
            }
            RootMsg::Reload(config) => {
                if let Some(ep) = &state.endpoint {
                    let _ = ep.send_message(EndpointMsg::Reload(Arc::clone(&config)));
                }
                state.args.config = config;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failed) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(actor = ?cell.get_id(), %err, "child actor failed");
                (cell, true)
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, false),
            _ => return Ok(()),
        };
        let is_devices = state
            .args
            .devices
            .as_ref()
            .is_some_and(|d| d.get_id() == cell.get_id());
        if cell.get_id() == state.args.supervisor.get_id() || is_devices {
            tracing::error!("a supervisor stopped; shutting down");
            myself.stop(Some("call supervisor stopped".into()));
            return Ok(());
        }
        let Some(child) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        if !failed {
            return Ok(());
        }
        let now = Instant::now();
        let history = state.restarts.entry(child.clone()).or_default();
        history.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if history.len() >= MAX_RESTARTS {
            tracing::error!(?child, "restart intensity exceeded; stopping the gateway");
            myself.stop(Some("restart intensity exceeded".into()));
            return Ok(());
        }
        history.push(now);
        metrics::counter!("switchboard_actor_restarts_total").increment(1);
        self.spawn_child(&myself, state, child).await
    }
}
