//! File descriptors: the gateway raises its soft `RLIMIT_NOFILE` to the hard limit at start
//! (the usual soft default, 1024, is below the SIP connection cap alone), then refuses a
//! configuration whose connection caps, with the RTP port range and a reserve for the store,
//! the fax spool, logs and outbound connections, cannot fit under it. Running out at run time
//! would fail RTP binds, spool writes and the store, not just the listener that filled up.

use switchboard_config::{Config, MqttMode};

/// Descriptors kept for everything that is not a capped listener: the store's files, the fax
/// spool, Ghostscript's pipes, logs, outbound webhook and trunk connections, UDP sockets.
pub const RESERVE: u64 = 256;

/// Why the gateway may not start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    /// The limit could not be read or raised.
    #[error("RLIMIT_NOFILE: {0}")]
    Rlimit(#[from] std::io::Error),
    /// The caps need more descriptors than the process may open.
    #[error(
        "the configured caps need {need} open files ({parts}) but the open-files limit is \
         {limit}: raise the hard limit (systemd LimitNOFILE=, ulimit -Hn) or lower these caps"
    )]
    Budget {
        /// Descriptors needed.
        need: u64,
        /// The limit in force.
        limit: u64,
        /// What needs them, `key = n` each.
        parts: String,
    },
}

/// Raise the soft open-files limit to the hard one; the limit now in force.
pub fn raise_nofile() -> Result<u64, FdError> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft >= hard {
        return Ok(soft);
    }
    rlimit::Resource::NOFILE.set(hard, hard)?;
    tracing::info!(from = soft, to = hard, "open-files limit raised");
    Ok(hard)
}

/// What the configuration may hold open at once, by the key that caps it.
pub fn needs(config: &Config) -> Vec<(&'static str, u64)> {
    let rtp =
        u64::from(*config.media.rtp_ports.end()) - u64::from(*config.media.rtp_ports.start()) + 1;
    let mut v = vec![
        (
            "sip.max_tcp_connections",
            config.sip.max_tcp_connections as u64,
        ),
        ("admin.max_connections", config.admin.max_connections as u64),
        ("media.rtp_ports", rtp),
    ];
    if config.mqtt.mode == MqttMode::Embedded {
        v.push(("mqtt.max_connections", config.mqtt.max_connections as u64));
    }
    if config.media_ws.enabled {
        v.push((
            "media_ws.max_connections",
            config.media_ws.max_connections as u64,
        ));
    }
    v.push(("reserve", RESERVE));
    v
}

/// Refuse a configuration whose needs do not fit under `limit` descriptors.
pub fn check_budget(config: &Config, limit: u64) -> Result<(), FdError> {
    let needs = needs(config);
    let need = needs
        .iter()
        .map(|(_, n)| n)
        .fold(0u64, |a, n| a.saturating_add(*n));
    if need <= limit {
        return Ok(());
    }
    let parts = needs
        .iter()
        .map(|(k, n)| format!("{k} = {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(FdError::Budget { need, limit, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_a_common_hard_limit_and_big_caps_are_refused() {
        let c = Config::default();
        // 1024 SIP + 256 admin + 1000 RTP + 10000 MQTT + 256 reserve.
        assert!(check_budget(&c, 12_536).is_ok());
        let e = check_budget(&c, 4096).unwrap_err().to_string();
        assert!(e.contains("need 12536 open files"), "{e}");
        assert!(e.contains("mqtt.max_connections = 10000"), "{e}");
        assert!(e.contains("limit is 4096"), "{e}");
        let mut off = Config::default();
        off.mqtt.mode = MqttMode::Off;
        assert!(check_budget(&off, 2536).is_ok());
        assert!(check_budget(&off, 2535).is_err());
    }
}
