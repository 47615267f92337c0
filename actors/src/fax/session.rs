//! The T.30 transfer over UDPTL of one fax call: a task that owns the call's
//! UDPTL socket, the UDPTL framing and the sans-IO T.38 terminal, and
//! reports progress to its fax job (send) or to the fax supervisor
//! (receive). Packets never pass through an actor mailbox.

use std::path::Path;
use std::sync::Arc;

use switchboard_config::Config;

use crate::ua::T38Media;

/// The end of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferResult {
    /// All pages confirmed.
    pub ok: bool,
    /// Pages confirmed (sent) or received.
    pub pages: u32,
    /// Signalling rate, bit/s.
    pub bit_rate: Option<u32>,
    /// Whether ECM was used.
    pub ecm: Option<bool>,
    /// The far end's station identity.
    pub remote_ident: Option<String>,
    /// FAXERROR-like code when not ok.
    pub error: Option<&'static str>,
    /// Detail.
    pub error_text: Option<String>,
}

impl TransferResult {
    /// A transfer that failed before it started.
    pub fn failed(error: &'static str, text: String) -> Self {
        Self {
            ok: false,
            pages: 0,
            bit_rate: None,
            ecm: None,
            remote_ident: None,
            error: Some(error),
            error_text: Some(text),
        }
    }
}

/// Progress of a transfer.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// Pages confirmed so far.
    PageSent(u32),
    /// Finished.
    Done(TransferResult),
}

/// Why a transfer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The T.30 engine is not part of this build yet.
    #[error("the T.30 transfer over T.38 is not available in this build yet")]
    NotAvailable,
}

/// A running transfer; dropping it stops the task.
#[derive(Debug)]
pub struct Handle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Receives session events.
pub type Notify = Arc<dyn Fn(SessionEvent) + Send + Sync>;

/// Start sending the TIFF at `file` over `media`.
pub fn start_send(
    media: T38Media,
    file: &str,
    config: &Config,
    notify: Notify,
) -> Result<Handle, SessionError> {
    let _ = (media, Path::new(file), config, notify);
    Err(SessionError::NotAvailable)
}
