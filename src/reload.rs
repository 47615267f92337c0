//! Configuration reload without dropping calls (SIGHUP, `POST /api/v1/admin/reload`).
//!
//! The file is read and validated again; an invalid file is refused with every error and
//! the running configuration stays. What a reload applies: routes (`[[route]]`), apps
//! (`[[app]]`), SIP users (`[[sip_user]]`), the `[sip]` call policy (`trusted`, `realm`,
//! rate limits and bans, `max_calls`, `no_answer_timeout_secs`), `[billing]` and the trunks'
//! `price_per_minute` and `account`. New calls use it; calls in
//! progress finish under the configuration they started with. Anything else (listeners,
//! trunks, storage, MQTT, devices, fax, media, admin, logging) needs a restart: such a
//! change is refused, naming the section, and nothing is applied.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use switchboard_actors::Gateway;
use switchboard_config::Config;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not validate.
    #[error("invalid configuration")]
    Invalid(Vec<String>),
    /// A change that only a restart can apply.
    #[error("{section} changed: restart to apply it (nothing was reloaded)")]
    RestartNeeded {
        /// The section.
        section: &'static str,
    },
}

/// Reloads the configuration of a running gateway.
pub struct Reloader {
    path: Option<PathBuf>,
    current: Mutex<Arc<Config>>,
    gateway: Gateway,
}

/// The part of `old` a reload may not change, with `new`'s reloadable parts laid over it.
fn with_reloadable(old: &Config, new: &Config) -> Config {
    let mut c = old.clone();
    c.routes = new.routes.clone();
    c.apps = new.apps.clone();
    c.sip.users = new.sip.users.clone();
    c.sip.trusted = new.sip.trusted.clone();
    c.sip.realm = new.sip.realm.clone();
    c.sip.rate_limit_per_source = new.sip.rate_limit_per_source;
    c.sip.ban_after = new.sip.ban_after;
    c.sip.ban_window_secs = new.sip.ban_window_secs;
    c.sip.ban_secs = new.sip.ban_secs;
    c.sip.nonce_lifetime_secs = new.sip.nonce_lifetime_secs;
    c.sip.max_calls = new.sip.max_calls;
    c.sip.no_answer_timeout = new.sip.no_answer_timeout;
    c.billing = new.billing.clone();
    // Prices and payers of trunks that are still there (by name) apply to new calls too.
    for t in &mut c.trunks {
        if let Some(n) = new.trunks.iter().find(|n| n.name == t.name) {
            t.price_per_minute = n.price_per_minute;
            t.account = n.account.clone();
        }
    }
    c
}

/// The first section that differs between `a` and `b`.
fn changed_section(a: &Config, b: &Config) -> &'static str {
    if a.sip != b.sip {
        "[sip] (listen, tls_listen, advertise, timers or user_agent)"
    } else if a.media != b.media {
        "[media]"
    } else if a.admin != b.admin {
        "[admin]"
    } else if a.storage != b.storage {
        "[storage]"
    } else if a.trunks != b.trunks {
        "[[trunk]]"
    } else if a.log != b.log {
        "[log]"
    } else if a.mqtt != b.mqtt {
        "[mqtt]"
    } else if a.devices != b.devices {
        "[devices]"
    } else if a.fax != b.fax {
        "[fax]"
    } else if a.media_ws != b.media_ws {
        "[media_ws]"
    } else {
        "the configuration"
    }
}

impl Reloader {
    /// A reloader for the gateway started from `path` (none: embedded defaults and env).
    pub fn new(path: Option<PathBuf>, config: Arc<Config>, gateway: Gateway) -> Arc<Self> {
        Arc::new(Reloader {
            path,
            current: Mutex::new(config),
            gateway,
        })
    }

    /// Read, check and apply. Returns the numbers of routes and apps now in force.
    pub fn reload(&self) -> Result<(usize, usize), ReloadError> {
        let new = switchboard_config::load(self.path.as_deref()).map_err(|e| {
            metrics::counter!("switchboard_config_reloads_total", "result" => "invalid")
                .increment(1);
            ReloadError::Invalid(e.0.iter().map(ToString::to_string).collect())
        })?;
        let mut current = self
            .current
            .lock()
            .map_err(|_| ReloadError::RestartNeeded { section: "state" })?;
        let merged = with_reloadable(&current, &new);
        if merged != new {
            metrics::counter!("switchboard_config_reloads_total", "result" => "refused")
                .increment(1);
            return Err(ReloadError::RestartNeeded {
                section: changed_section(&merged, &new),
            });
        }
        let new = Arc::new(new);
        self.gateway.reload(Arc::clone(&new));
        let counts = (new.routes.len(), new.apps.len());
        *current = new;
        metrics::counter!("switchboard_config_reloads_total", "result" => "applied").increment(1);
        tracing::info!(routes = counts.0, apps = counts.1, "configuration reloaded");
        Ok(counts)
    }

    /// Reload on every SIGHUP, for as long as the process runs.
    pub fn on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let me = Arc::clone(&me);
                    let r = tokio::task::spawn_blocking(move || me.reload()).await;
                    match r {
                        Ok(Ok(_)) => {}
                        Ok(Err(ReloadError::Invalid(errors))) => tracing::error!(
                            errors = %errors.join("; "),
                            "SIGHUP: invalid configuration refused; the running one stays"
                        ),
                        Ok(Err(e)) => tracing::error!(err = %e, "SIGHUP: reload refused"),
                        Err(_) => {}
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(billing: &str, price: u32) -> Config {
        let toml = format!(
            "{billing}\n[[trunk]]\nname = \"t\"\naddress = \"127.0.0.1:5070\"\nprice_per_minute = {price}\n\n[[route]]\nmatch = \"*\"\nto = \"trunk:t\"\n"
        );
        switchboard_config::load_from_str(&toml, &[]).unwrap()
    }

    #[test]
    fn prices_and_billing_reload_but_trunk_addresses_do_not() {
        let old = config("", 1);
        // New prices, payer and blocks: all applied by a reload.
        let new = config("[billing]\naccount = \"caller\"\nincrement_secs = 6\n", 5);
        assert_eq!(with_reloadable(&old, &new), new);
        // A trunk's address is not reloadable.
        let mut moved = new.clone();
        moved.trunks[0].address = "127.0.0.1:5071".parse().unwrap();
        let merged = with_reloadable(&old, &moved);
        assert_ne!(merged, moved);
        assert_eq!(changed_section(&merged, &moved), "[[trunk]]");
    }
}
