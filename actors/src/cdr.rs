//! CDR writer: group commit of finished calls' records into the store.
//!
//! Calls hand their CDR to a bounded queue; one thread writes whatever is
//! queued in a single batch and flushes it to disk before taking more, so a
//! CDR is durable within one fsync of the call ending and a burst of hangups
//! costs one flush, not one each.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use switchboard_storage::{put_cdrs, Cdr, Store};

/// Most CDRs waiting to be written.
pub const CDR_QUEUE: usize = 65_536;
/// Most CDRs in one batch.
const BATCH: usize = 512;

/// Sending side of the CDR writer.
#[derive(Debug, Clone)]
pub struct CdrSink {
    tx: SyncSender<Cdr>,
}

impl CdrSink {
    /// Queue a CDR. When the queue is full the caller blocks on a blocking
    /// thread rather than lose the record.
    pub async fn submit(&self, cdr: Cdr) {
        match self.tx.try_send(cdr) {
            Ok(()) => {}
            Err(TrySendError::Full(cdr)) => {
                let tx = self.tx.clone();
                let _ = tokio::task::spawn_blocking(move || tx.send(cdr).is_ok()).await;
            }
            Err(TrySendError::Disconnected(cdr)) => {
                tracing::error!(id = %cdr.id, "CDR writer gone; record lost");
            }
        }
    }
}

/// Start the writer thread.
pub fn start(store: Arc<dyn Store>) -> std::io::Result<(CdrSink, JoinHandle<()>)> {
    let (tx, rx) = sync_channel(CDR_QUEUE);
    let handle = std::thread::Builder::new()
        .name("cdr-writer".into())
        .spawn(move || writer(rx, store))?;
    Ok((CdrSink { tx }, handle))
}

fn writer(rx: Receiver<Cdr>, store: Arc<dyn Store>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        // put_cdrs writes the batch atomically and flushes it once.
        let result = put_cdrs(store.as_ref(), &batch);
        match result {
            Ok(()) => {
                metrics::counter!("switchboard_cdrs_written_total").increment(batch.len() as u64)
            }
            Err(err) => {
                metrics::counter!("switchboard_cdr_write_errors_total").increment(1);
                tracing::error!(%err, count = batch.len(), "writing CDRs failed");
            }
        }
    }
}
