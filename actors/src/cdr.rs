//! CDR writer: group commit of finished calls' records into the store.
//!
//! Calls hand their CDR to a bounded queue; one thread writes whatever is
//! queued in a single batch and flushes it to disk before taking more, so a
//! CDR is durable within one fsync of the call ending and a burst of hangups
//! costs one flush, not one each.
//!
//! At shutdown [`CdrWriter::close`] queues an end marker behind every CDR already
//! submitted and joins the thread once it has written them all (issue 12).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use switchboard_storage::{put_cdrs, Cdr, Disposition, Store};

/// Most CDRs waiting to be written.
pub const CDR_QUEUE: usize = 65_536;
/// Most CDRs in one batch.
const BATCH: usize = 512;

/// The stored CDR disposition of a call outcome's ([`switchboard_call::Disposition`]).
pub fn disposition(d: switchboard_call::Disposition) -> Disposition {
    match d {
        switchboard_call::Disposition::Answered => Disposition::Answered,
        switchboard_call::Disposition::NoAnswer => Disposition::NoAnswer,
        switchboard_call::Disposition::Busy => Disposition::Busy,
        switchboard_call::Disposition::Failed => Disposition::Failed,
        switchboard_call::Disposition::Congestion => Disposition::Congestion,
    }
}

/// Sending side of the CDR writer.
#[derive(Debug, Clone)]
pub struct CdrSink {
    tx: SyncSender<Item>,
}

/// What the writer thread takes from its queue.
#[derive(Debug)]
enum Item {
    Cdr(Box<Cdr>),
    /// Write what came before, then stop.
    Close,
}

/// The writer thread, for closing it at shutdown.
#[derive(Debug)]
pub struct CdrWriter {
    tx: SyncSender<Item>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl CdrWriter {
    /// Queue the end marker behind every CDR already submitted and wait (blocking) until the
    /// thread has written them and exited. CDRs submitted afterwards are lost (logged), so
    /// call this once no call is left. A second call returns at once.
    pub fn close(&self) {
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        let Some(handle) = handle else {
            return;
        };
        let _ = self.tx.send(Item::Close);
        if handle.join().is_err() {
            tracing::error!("the CDR writer thread panicked");
        }
    }
}

impl CdrSink {
    /// Queue a CDR. When the queue is full the caller blocks on a blocking
    /// thread rather than lose the record.
    pub async fn submit(&self, cdr: Cdr) {
        match self.tx.try_send(Item::Cdr(Box::new(cdr))) {
            Ok(()) => {}
            Err(TrySendError::Full(item)) => {
                let tx = self.tx.clone();
                let _ = tokio::task::spawn_blocking(move || tx.send(item).is_ok()).await;
            }
            Err(TrySendError::Disconnected(Item::Cdr(cdr))) => {
                tracing::error!(id = %cdr.id, "CDR writer gone; record lost");
            }
            Err(TrySendError::Disconnected(Item::Close)) => {}
        }
    }
}

/// Start the writer thread.
pub fn start(store: Arc<dyn Store>) -> std::io::Result<(CdrSink, CdrWriter)> {
    let (tx, rx) = sync_channel(CDR_QUEUE);
    let handle = std::thread::Builder::new()
        .name("cdr-writer".into())
        .spawn(move || writer(rx, store))?;
    let writer = CdrWriter {
        tx: tx.clone(),
        handle: Mutex::new(Some(handle)),
    };
    Ok((CdrSink { tx }, writer))
}

fn writer(rx: Receiver<Item>, store: Arc<dyn Store>) {
    let mut closing = false;
    while !closing {
        let Ok(first) = rx.recv() else {
            break;
        };
        let mut batch = Vec::new();
        match first {
            Item::Cdr(c) => batch.push(*c),
            Item::Close => break,
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Item::Cdr(c)) => batch.push(*c),
                Ok(Item::Close) => {
                    closing = true;
                    break;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_storage::{recent_cdrs, Disposition, SledStore};

    fn cdr(n: u64) -> Cdr {
        Cdr {
            v: Cdr::VERSION,
            id: format!("c{n}"),
            src: "1".into(),
            dst: "2".into(),
            start: "2026-01-01T00:00:00.000Z".into(),
            answer: None,
            end: "2026-01-01T00:00:01.000Z".into(),
            duration: 1,
            billsec: 0,
            disposition: Disposition::NoAnswer,
            hangup_cause: "shutdown".into(),
            sip_code: None,
            trunk_in: None,
            trunk_out: None,
            codec: None,
            end_unix_ms: 1_000 + n,
            account: None,
            cost: None,
        }
    }

    #[tokio::test]
    async fn close_writes_everything_queued_before_it_and_joins() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let (sink, writer) = start(Arc::clone(&store)).unwrap();
        for n in 0..2_000 {
            sink.submit(cdr(n)).await;
        }
        writer.close();
        assert_eq!(recent_cdrs(store.as_ref(), 5_000).unwrap().len(), 2_000);
        // A second close returns at once; a CDR after the close is refused, not written.
        writer.close();
        sink.submit(cdr(9_999)).await;
        assert_eq!(recent_cdrs(store.as_ref(), 5_000).unwrap().len(), 2_000);
    }
}
