//! Drain: the gateway's way out (issue 12).
//!
//! A drain starts on SIGTERM/SIGINT, `POST /api/v1/admin/drain` or `switchboard drain`. From
//! then on readiness is false, new dialogue-creating INVITEs get 503 with `Retry-After`
//! (RFC 3261 §21.5.4, §20.33) so a dispatcher or trunk fails over, fax jobs start no new
//! attempt and originations (device dial, ingest, apps) are refused. Calls in progress go on
//! for up to `[sip] drain_secs`; at that deadline, or at once when a second signal asks for
//! it, every call is hung up with cause `shutdown`. [`Drain`] is the shared flag every
//! originator reads; the orderly exit itself is [`crate::Gateway::shutdown`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Where the gateway is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Serving normally.
    Running,
    /// Draining: no new work, calls in progress go on until the deadline.
    Draining,
    /// Hang up now (the deadline passed or a second signal came).
    Now,
}

/// The shared drain flag (one per gateway).
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    stage: watch::Sender<Stage>,
    started: std::sync::OnceLock<Instant>,
    window: Duration,
}

impl Drain {
    /// A gateway that is not draining; `window` is `[sip] drain_secs`.
    pub fn new(window: Duration) -> Self {
        Self {
            draining: AtomicBool::new(false),
            stage: watch::channel(Stage::Running).0,
            started: std::sync::OnceLock::new(),
            window,
        }
    }

    /// Start draining. Returns false when a drain was already under way.
    pub fn start(&self) -> bool {
        let first = !self.draining.swap(true, Ordering::SeqCst);
        if first {
            let _ = self.started.set(Instant::now());
            self.stage.send_if_modified(|s| {
                if *s == Stage::Running {
                    *s = Stage::Draining;
                    true
                } else {
                    false
                }
            });
            metrics::gauge!("switchboard_draining").set(1.0);
            tracing::warn!(
                drain_secs = self.window.as_secs(),
                "draining: new calls are refused, calls in progress may go on until the deadline"
            );
        }
        first
    }

    /// Skip the wait: calls in progress are hung up at once (a second signal).
    pub fn now(&self) {
        self.start();
        self.stage.send_if_modified(|s| {
            if *s == Stage::Now {
                false
            } else {
                *s = Stage::Now;
                true
            }
        });
    }

    /// Whether new work must be refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// Follow the stage.
    pub fn subscribe(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }

    /// `[sip] drain_secs`.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// When calls in progress will be hung up (None before a drain starts).
    pub fn deadline(&self) -> Option<Instant> {
        self.started.get().map(|t| *t + self.window)
    }

    /// The `Retry-After` value for refused INVITEs, in seconds: the drain window (at least 1),
    /// so a peer does not come back before this instance is gone or restarted.
    pub fn retry_after(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_once_then_now() {
        let d = Drain::new(Duration::from_secs(3));
        assert_eq!(d.stage(), Stage::Running);
        assert!(!d.is_draining());
        assert!(d.deadline().is_none());
        assert!(d.start());
        assert!(!d.start());
        assert!(d.is_draining());
        assert_eq!(d.stage(), Stage::Draining);
        assert!(d.deadline().is_some());
        d.now();
        assert_eq!(d.stage(), Stage::Now);
        assert_eq!(d.retry_after(), 3);
    }

    #[test]
    fn now_without_start_drains() {
        let d = Drain::new(Duration::ZERO);
        d.now();
        assert!(d.is_draining());
        assert_eq!(d.stage(), Stage::Now);
        assert_eq!(d.retry_after(), 1);
    }
}
