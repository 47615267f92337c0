//! `switchboard`: the gateway binary. `run` starts it; `check-config`
//! validates a configuration file; `calls`, `trunks` and `cdrs` read the
//! admin API of a running gateway.

mod admin;
mod backup;
mod cli;
mod fds;
mod reload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard_config::Config;
use switchboard_storage::{SledStore, Store};

// SIP handling allocates many short-lived strings; mimalloc halves the time
// glibc's allocator took under load (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Telephony and device gateway: SIP B2BUA with RTP relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults when no config file is given).
    Run {
        /// TOML configuration file.
        #[arg(short, long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and report every error with its key.
    CheckConfig {
        /// TOML configuration file.
        file: PathBuf,
    },
    /// Active calls, like `core show channels`.
    Calls(cli::ApiArgs),
    /// The gateway at a glance: calls, trunks, devices, faxes, streams, bans.
    Status(cli::ApiArgs),
    /// Live media streams: app, fork and ingest WebSockets.
    Streams(cli::ApiArgs),
    /// Trunks and their state.
    Trunks(cli::ApiArgs),
    /// Drain the gateway, as SIGTERM does: new calls get 503, calls in progress go on for up to
    /// `[sip] drain_secs`, then the process exits.
    Drain(cli::ApiArgs),
    /// Devices: online, last seen, firmware, counters.
    Devices(cli::ApiArgs),
    /// One device: `device reset ID` (re-provisioning: it may be claimed again).
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Admin API keys: `keys create --name N --scope S`, `keys list`, `keys revoke ID`.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Send a fax: `fax send TO FILE` (TIFF or PDF).
    Fax {
        #[command(subcommand)]
        action: FaxAction,
    },
    /// Fax jobs (or received faxes with --inbound), newest first.
    Faxes {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// Received faxes instead of outbound jobs.
        #[arg(long)]
        inbound: bool,
    },
    /// Back up the store and the fax spool: from a running gateway's admin API, or a
    /// stopped one's directory with --store.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new store directory (offline).
    Restore(backup::RestoreArgs),
    /// Recent call detail records.
    Cdrs {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key; it is printed once and never again. Online through the admin API, or
    /// offline with `--store PATH` (the gateway stopped), for a lost admin key.
    Create {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// Write the key straight into the store in this data directory (`[storage] path`)
        /// instead of asking the admin API; only while the gateway is stopped.
        #[arg(long)]
        store: Option<PathBuf>,
        /// A label.
        #[arg(long)]
        name: String,
        /// A scope (repeat for more): admin, calls:read, calls:write, fax:send, fax:read,
        /// devices:read, devices:write, credits:read, credits:write, metrics:read, or FAMILY:*.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in seconds (default: until revoked).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List keys (never their secrets).
    List(cli::ApiArgs),
    /// Revoke a key by id.
    Revoke {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// The key id (the 16 hex digits after `sbk_`).
        id: String,
    },
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Delete the device's credential, close its connections and fail its
    /// pending commands, so that it may be claimed again.
    Reset {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// The device id.
        id: String,
    },
}

#[derive(Subcommand)]
enum FaxAction {
    /// Queue a fax job.
    Send {
        #[command(flatten)]
        api: cli::ApiArgs,
        /// Destination number.
        to: String,
        /// TIFF or PDF file.
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { file } => check_config(&file),
        Command::Calls(api) => cli::calls(&api),
        Command::Streams(api) => cli::streams(&api),
        Command::Status(api) => cli::status(&api),
        Command::Trunks(api) => cli::trunks(&api),
        Command::Drain(api) => cli::drain(&api),
        Command::Devices(api) => cli::devices(&api),
        Command::Device {
            action: DeviceAction::Reset { api, id },
        } => cli::device_reset(&api, &id),
        Command::Cdrs { api, limit } => cli::cdrs(&api, limit),
        Command::Backup(args) => backup::backup_cmd(&args),
        Command::Restore(args) => backup::restore_cmd(&args),
        Command::Fax {
            action: FaxAction::Send { api, to, file },
        } => cli::fax_send(&api, &to, &file),
        Command::Faxes { api, inbound } => cli::faxes(&api, inbound),
        Command::Keys { action } => match action {
            KeysAction::Create {
                api,
                store: Some(path),
                name,
                scopes,
                expires_in,
            } => cli::keys_create_offline(&api, &path, &name, &scopes, expires_in),
            KeysAction::Create {
                api,
                store: None,
                name,
                scopes,
                expires_in,
            } => cli::keys_create(&api, &name, &scopes, expires_in),
            KeysAction::List(api) => cli::keys_list(&api),
            KeysAction::Revoke { api, id } => cli::keys_revoke(&api, &id),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let name = file.display().to_string();
    match switchboard_config::load(Some(file)) {
        Ok(c) => {
            println!(
                "{name}: OK ({} trunks, {} routes)",
                c.trunks.len(),
                c.routes.len()
            );
            Ok(())
        }
        Err(errors) => {
            // A file that cannot be read: that one line, naming it once.
            if let Some(e) = errors
                .0
                .iter()
                .find(|e| matches!(e.kind, switchboard_config::ConfigErrorKind::Io { .. }))
            {
                anyhow::bail!("{}", e.kind);
            }
            println!("{}", errors.render(&name));
            anyhow::bail!("{} error(s) in {name}", errors.0.len())
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = switchboard_config::load(config_path.as_deref()).map_err(|e| {
        let name = config_path
            .as_deref()
            .map_or_else(|| "environment".to_string(), |p| p.display().to_string());
        anyhow::anyhow!("invalid configuration:\n{}", e.render(&name))
    })?;
    init_logging(&config);
    if config_path.is_none() {
        tracing::info!("no config file given: running on embedded defaults");
    }
    // Before any socket or file is opened: every cap must fit under the descriptor limit.
    let limit = fds::raise_nofile().context("raising the open-files limit (RLIMIT_NOFILE)")?;
    fds::check_budget(&config, limit).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(Arc::new(config), config_path))
}

async fn serve(config: Arc<Config>, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let store_path = config.storage.path.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || SledStore::open(&store_path))
            .await?
            .with_context(|| format!("opening the store at {}", config.storage.path.display()))?,
    );
    let gateway =
        switchboard_actors::Gateway::start(Arc::clone(&config), Arc::clone(&store)).await?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let (keys, first) =
        admin::auth::Keys::load(Arc::clone(&store), config.admin.bootstrap_key.as_ref())
            .context("loading the API keys")?;
    if let admin::auth::FirstStart::Generated(made) = first {
        cli::show_first_key(&made.key, &config.storage.path);
    }
    let reloader = reload::Reloader::new(config_path, Arc::clone(&config), gateway.clone());
    reloader.on_sighup();
    let state = admin::AdminState {
        ledger: gateway.ledger.clone(),
        reloader,
        gateway: gateway.clone(),
        store: Arc::clone(&store),
        metrics,
        test_hooks: config.admin.test_hooks,
        config: Arc::clone(&config),
        guard: admin::auth::Guard::new(keys, &config.admin),
    };
    let listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin.listen))?;
    let app = admin::router(state);
    let root_cell = gateway.root.get_cell();
    let tls = match (&config.admin.tls_cert, &config.admin.tls_key) {
        (Some(cert), Some(key)) => Some(
            switchboard_actors::tls::acceptor(cert, key)
                .context("the admin API's TLS certificate")?,
        ),
        _ => None,
    };
    tracing::info!(
        listen = %config.admin.listen,
        https = tls.is_some(),
        "admin API listening"
    );
    // Uploads nobody used expire (`[fax] upload_ttl_secs`).
    admin::spawn_upload_sweeper(Arc::clone(&config));
    // The admin API keeps serving through the drain (readiness, status); it stops last.
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_config = config.admin.clone();
    let mut server = tokio::spawn(async move {
        admin::serve::run(listener, tls, app, &admin_config, async {
            let _ = admin_stopped.await;
        })
        .await
    });
    tokio::spawn(signals(gateway.clone()));
    let mut stage = gateway.drain.subscribe();
    tokio::select! {
        _ = stage.wait_for(|s| *s != switchboard_actors::drain::Stage::Running) => {}
        _ = &mut server => anyhow::bail!("the admin API stopped"),
        _ = wait_stopped(root_cell.clone()) => anyhow::bail!("the actor tree stopped"),
    }
    let report = tokio::select! {
        r = gateway.shutdown() => r,
        _ = wait_stopped(root_cell) => anyhow::bail!("the actor tree stopped during the drain"),
    };
    let _ = stop_admin.send(());
    let _ = server.await;
    tracing::info!(
        hung_up = report.hung_up,
        devices = report.devices,
        fax_jobs = report.fax_jobs,
        "drained; flushing the store"
    );
    store.flush().context("flushing the store")?;
    if report.lost > 0 {
        anyhow::bail!(
            "{} call(s) did not end in time; their CDRs are lost",
            report.lost
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM or SIGINT: the first starts a drain, the next skips its wait (calls are hung up at
/// once). A drain started by the admin API counts as no signal.
async fn signals(gateway: switchboard_actors::Gateway) {
    let mut seen = 0;
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(%err, "cannot listen for SIGTERM/SIGINT");
            return;
        }
    };
    loop {
        signals.next().await;
        seen += 1;
        if seen == 1 {
            tracing::info!("signal: draining (send it again to hang up calls now)");
            gateway.start_drain();
        } else {
            tracing::warn!("second signal: hanging up every call now");
            gateway.drain.now();
        }
    }
}

async fn wait_stopped(cell: ractor::ActorCell) {
    // Polled: ractor offers no future for an actor's end.
    loop {
        if matches!(
            cell.get_status(),
            ractor::ActorStatus::Stopped | ractor::ActorStatus::Stopping
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// SIGTERM and SIGINT, registered once so that none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
