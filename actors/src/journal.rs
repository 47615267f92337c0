//! The call journal's writer and crash recovery (issue 12).
//!
//! Every answered call, B2BUA or one-leg (device dial, ingest `call:`, app), hands a
//! [`JournalEntry`] to one writer thread when it answers ([`JournalSink::answered`]); the
//! thread writes whatever is queued in one batch and one flush (group commit) and tells each
//! call when its record is on disk ([`JournalTicket`]). Every `[sip] journal_checkpoint_secs`
//! the same thread moves every record's checkpoint to "now" in one batch and one flush
//! ([`checkpoint_journal`]): the cost of a tick is one fsync whatever the number of calls.
//! A record leaves the journal in the batch that writes its call's CDR
//! ([`switchboard_storage::put_cdrs`]); a call waits for its ticket before handing over its
//! CDR, so the CDR's removal can never run before the record's write.
//!
//! At start, before any listener accepts, [`recover`] turns every record left over (the calls
//! a `kill -9` or power loss cut) into a CDR with cause `crash` lasting until its last
//! checkpoint, and settles its reservation for that duration at its rate. [`plan`] is the
//! pure part (records and a time in, CDRs and settlements out); the ledger writes use fixed
//! transfer ids, so a crash during recovery never charges twice.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use switchboard_storage::ledger::{
    Ledger, LedgerError, PendingState, TransferKind, TransferRequest,
};
use switchboard_storage::{
    checkpoint_journal, journal_entries, now_unix_ms, put_cdrs, put_journal, rfc3339, Cdr,
    Disposition, JournalCharge, JournalEntry, Store, StoreError,
};

use crate::billing::{Rating, Tariff};

/// Most answered calls waiting to be journaled.
pub const JOURNAL_QUEUE: usize = 65_536;
/// Most records in one write.
const BATCH: usize = 512;
/// Longest a call waits for its record to be written before handing over its CDR.
const TICKET_WAIT: Duration = Duration::from_secs(5);
/// The CDR cause of a call recovered from the journal.
pub const CRASH_CAUSE: &str = "crash";

/// What can go wrong recovering the journal (a store that cannot be read or written; a
/// refused charge is logged, not an error).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The store failed.
    #[error("call journal: {0}")]
    Store(#[from] StoreError),
    /// The ledger could not write a settlement.
    #[error("call journal: settling a crashed call: {0}")]
    Ledger(#[from] LedgerError),
    /// The writer thread could not start.
    #[error("cannot start the call journal writer: {0}")]
    Thread(std::io::Error),
}

struct Answered {
    entry: JournalEntry,
    done: tokio::sync::oneshot::Sender<()>,
}

/// What the writer thread is sent.
enum Msg {
    Answered(Answered),
    /// Write what came before, then stop.
    Close,
}

/// Sending side of the journal writer.
#[derive(Debug, Clone)]
pub struct JournalSink {
    tx: SyncSender<Msg>,
}

/// The writer thread, for closing it at shutdown.
#[derive(Debug)]
pub struct JournalWriter {
    tx: SyncSender<Msg>,
    handle: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl JournalWriter {
    /// Queue the end marker behind every record already sent and wait (blocking) until the
    /// thread has written them and exited: the last step of a shutdown, once every call has
    /// ended and its CDR (which removes its record) is written. A second call returns at once.
    pub fn close(&self) {
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        let Some(handle) = handle else {
            return;
        };
        let _ = self.tx.send(Msg::Close);
        if handle.join().is_err() {
            tracing::error!("the call journal's writer thread panicked");
        }
    }
}

/// Resolves once a call's journal record is on disk (or its write failed).
#[derive(Debug)]
pub struct JournalTicket(tokio::sync::oneshot::Receiver<()>);

impl JournalTicket {
    /// Wait (at most a few seconds) until the record is written, so the CDR that removes it
    /// cannot be written first.
    pub async fn written(self) {
        let _ = tokio::time::timeout(TICKET_WAIT, self.0).await;
    }
}

/// Wait for `ticket`, if any: the end-of-call hook, before the CDR is submitted.
pub async fn before_cdr(ticket: Option<JournalTicket>) {
    if let Some(t) = ticket {
        t.written().await;
    }
}

impl JournalSink {
    /// Journal a call answered now: `cdr` is its CDR as of the answer, `start_ms` and
    /// `answered_ms` its start and answer (unix ms), `rating` who pays for a rated call. The
    /// answer hook; never blocks (a full queue is logged and the call goes unjournaled).
    pub fn answered(
        &self,
        cdr: Cdr,
        start_ms: u64,
        answered_ms: u64,
        rating: Option<&Rating>,
    ) -> Option<JournalTicket> {
        let charge = rating.map(|r| JournalCharge {
            account: r.account.clone(),
            pending_id: crate::call_msg::CallId(cdr.id.clone()).pending_id(),
            price_per_minute: r.tariff.price_per_minute,
            initial_secs: r.tariff.initial_secs,
            increment_secs: r.tariff.increment_secs,
        });
        let entry = JournalEntry {
            v: JournalEntry::VERSION,
            cdr,
            start_ms,
            answered_ms,
            checkpoint_ms: answered_ms,
            charge,
        };
        let (done, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Msg::Answered(Answered { entry, done })) {
            Ok(()) => Some(JournalTicket(rx)),
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                metrics::counter!("switchboard_journal_write_errors_total").increment(1);
                if let Msg::Answered(a) = m {
                    tracing::error!(call = %a.entry.cdr.id, "call journal unavailable; this call is not protected against a crash");
                }
                None
            }
        }
    }
}

/// Start the writer thread, checkpointing every `every`.
pub fn start(
    store: Arc<dyn Store>,
    every: Duration,
) -> Result<(JournalSink, JournalWriter), JournalError> {
    let (tx, rx) = sync_channel(JOURNAL_QUEUE);
    let handle = std::thread::Builder::new()
        .name("call-journal".into())
        .spawn(move || writer(rx, store, every))
        .map_err(JournalError::Thread)?;
    let writer = JournalWriter {
        tx: tx.clone(),
        handle: std::sync::Mutex::new(Some(handle)),
    };
    Ok((JournalSink { tx }, writer))
}

fn writer(rx: Receiver<Msg>, store: Arc<dyn Store>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    let mut next = Instant::now() + every;
    loop {
        if Instant::now() >= next {
            match checkpoint_journal(store.as_ref(), now_unix_ms()) {
                Ok(n) => {
                    metrics::gauge!("switchboard_journal_calls").set(n as f64);
                    metrics::counter!("switchboard_journal_checkpoints_total").increment(1);
                }
                Err(err) => {
                    metrics::counter!("switchboard_journal_write_errors_total").increment(1);
                    tracing::error!(%err, "call journal checkpoint failed");
                }
            }
            // A fixed rate, so checkpoints stay `every` apart however long a tick takes (a
            // crashed call is billed at most one interval short); skip ticks missed entirely.
            next += every;
            let now = Instant::now();
            if next <= now {
                next = now + every;
            }
        }
        let first = match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(Msg::Answered(a)) => a,
            Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => continue,
        };
        let mut batch = vec![first];
        let mut closing = false;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Msg::Answered(a)) => batch.push(a),
                Ok(Msg::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let entries: Vec<JournalEntry> = batch.iter().map(|a| a.entry.clone()).collect();
        match put_journal(store.as_ref(), &entries) {
            Ok(()) => {
                metrics::counter!("switchboard_journal_writes_total")
                    .increment(entries.len() as u64);
            }
            Err(err) => {
                metrics::counter!("switchboard_journal_write_errors_total").increment(1);
                tracing::error!(%err, count = entries.len(), "writing the call journal failed");
            }
        }
        for a in batch {
            let _ = a.done.send(());
        }
        if closing {
            return;
        }
    }
}

/// A crashed call's charge, as [`plan`] computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation (pending transfer) to settle.
    pub pending_id: String,
    /// What the duration costs at the call's rate (before capping at the reservation).
    pub cost: u64,
}

/// One recovered call: its CDR (cost not yet filled in) and, if rated, what to settle.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The CDR, cause [`CRASH_CAUSE`], ending at the last checkpoint.
    pub cdr: Cdr,
    /// The settlement, for a rated call.
    pub settlement: Option<Settlement>,
}

/// The pure part of recovery: each journal record becomes a CDR ending at its last
/// checkpoint (never before its answer, never after `now_ms`, in case the clock was set back)
/// and, for a rated call, the cost of that duration at its rate.
pub fn plan(entries: &[JournalEntry], now_ms: u64) -> Vec<Recovered> {
    entries
        .iter()
        .map(|e| {
            let end = e.checkpoint_ms.min(now_ms).max(e.answered_ms);
            let talk_ms = end - e.answered_ms;
            let mut cdr = e.cdr.clone();
            cdr.answer = Some(rfc3339(e.answered_ms));
            cdr.end = rfc3339(end);
            cdr.end_unix_ms = end;
            cdr.duration = end.saturating_sub(e.start_ms) / 1000;
            cdr.billsec = talk_ms / 1000;
            cdr.disposition = Disposition::Answered;
            cdr.hangup_cause = CRASH_CAUSE.to_string();
            cdr.account = e.charge.as_ref().map(|c| c.account.clone());
            cdr.cost = None;
            let settlement = e.charge.as_ref().map(|c| Settlement {
                pending_id: c.pending_id.clone(),
                cost: tariff(c).cost(talk_ms),
            });
            Recovered { cdr, settlement }
        })
        .collect()
}

fn tariff(c: &JournalCharge) -> Tariff {
    Tariff {
        price_per_minute: c.price_per_minute,
        initial_secs: c.initial_secs,
        increment_secs: c.increment_secs,
        max_call_secs: u32::MAX,
    }
}

/// Settle one crashed call's reservation; what was charged. Fixed transfer ids (the same
/// `…:post`/`…:void` a normal hangup uses, `…:crash` when the reservation lapsed meanwhile),
/// so running this twice charges once. A call whose hangup was settled before the crash keeps
/// that settlement.
fn settle(
    ledger: &Ledger<'_>,
    call: &str,
    s: &Settlement,
    now_ms: u64,
) -> Result<u64, JournalError> {
    let Some(pending) = ledger.transfer(&s.pending_id)? else {
        return Ok(0); // no reservation was made: nothing was reserved, nothing is charged
    };
    let cost = s.cost.min(pending.amount);
    let (suffix, kind) = if cost == 0 {
        ("void", TransferKind::VoidPending)
    } else {
        ("post", TransferKind::PostPending)
    };
    let req = TransferRequest {
        id: format!("{}:{suffix}", s.pending_id),
        debit_account: String::new(),
        credit_account: String::new(),
        amount: cost,
        kind,
        pending_id: Some(s.pending_id.clone()),
        timeout_secs: 0,
        reference: Some(call.to_string()),
    };
    match ledger.apply(&req, now_ms) {
        Ok(_) => Ok(cost),
        Err(LedgerError::PendingNotPending {
            state: PendingState::Expired,
            ..
        }) if cost > 0 => {
            // The reservation lapsed while the gateway was down: charge the same amount as
            // a plain transfer (refused if the balance no longer covers it).
            let req = TransferRequest {
                id: format!("{}:crash", s.pending_id),
                debit_account: pending.debit_account.clone(),
                credit_account: pending.credit_account.clone(),
                amount: cost,
                kind: TransferKind::Single,
                pending_id: None,
                timeout_secs: 0,
                reference: Some(call.to_string()),
            };
            match ledger.apply(&req, now_ms) {
                Ok(_) => Ok(cost),
                Err(e @ (LedgerError::Store(_) | LedgerError::NotDurable)) => Err(e.into()),
                Err(err) => {
                    tracing::warn!(call, %err, "crashed call's lapsed reservation could not be charged");
                    Ok(0)
                }
            }
        }
        Err(LedgerError::PendingNotPending { .. })
        | Err(LedgerError::ExistsWithDifferentFields(_)) => {
            // Settled by the call's own hangup before the crash: keep what it posted.
            let posted = ledger.transfer(&format!("{}:post", s.pending_id))?;
            Ok(posted.map(|t| t.amount).unwrap_or(0))
        }
        Err(e @ (LedgerError::Store(_) | LedgerError::NotDurable)) => Err(e.into()),
        Err(err) => {
            tracing::warn!(call, %err, "crashed call's reservation could not be settled");
            Ok(0)
        }
    }
}

/// Recover the journal: every record left over becomes a CDR with cause `crash` and its
/// reservation is settled; how many calls. Run at start, before any listener accepts and
/// before the ledger actor starts (this writes the ledger directly). Idempotent.
pub fn recover(store: &dyn Store, now_ms: u64) -> Result<usize, JournalError> {
    let mut entries = Vec::new();
    for e in journal_entries(store)? {
        match e {
            Ok(e) => entries.push(e),
            Err(err) => tracing::error!(%err, "unreadable call journal record left in place"),
        }
    }
    if entries.is_empty() {
        return Ok(0);
    }
    let ledger = Ledger::deferred(store);
    let mut cdrs = Vec::with_capacity(entries.len());
    let mut charged_total = 0u64;
    for r in plan(&entries, now_ms) {
        let mut cdr = r.cdr;
        if let Some(s) = &r.settlement {
            let charged = settle(&ledger, &cdr.id, s, now_ms)?;
            charged_total = charged_total.saturating_add(charged);
            cdr.cost = Some(charged);
        }
        cdrs.push(cdr);
    }
    // Settlements on disk before the CDRs that remove the records: a crash in between
    // replays the same (idempotent) settlements.
    store.flush()?;
    put_cdrs(store, &cdrs)?;
    let n = cdrs.len();
    metrics::counter!("switchboard_crash_cdrs_total").increment(n as u64);
    metrics::counter!("switchboard_call_credits_charged_total").increment(charged_total);
    tracing::warn!(
        calls = n,
        charged = charged_total,
        "recovered calls cut by a crash from the call journal: CDRs written with cause \"crash\""
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_storage::ledger::Ledger;
    use switchboard_storage::{recent_cdrs, SledStore, Tree};

    const T0: u64 = 1_800_000_000_000;

    fn entry(id: &str, answered_ms: u64, checkpoint_ms: u64, rated: bool) -> JournalEntry {
        JournalEntry {
            v: JournalEntry::VERSION,
            cdr: Cdr {
                v: Cdr::VERSION,
                id: id.into(),
                src: "+4411".into(),
                dst: "0049301".into(),
                start: rfc3339(answered_ms - 3_000),
                answer: Some(rfc3339(answered_ms)),
                end: rfc3339(answered_ms),
                duration: 3,
                billsec: 0,
                disposition: Disposition::Answered,
                hangup_cause: "normal".into(),
                sip_code: None,
                trunk_in: None,
                trunk_out: Some("carrier".into()),
                codec: Some("PCMU".into()),
                end_unix_ms: answered_ms,
                account: None,
                cost: None,
            },
            start_ms: answered_ms - 3_000,
            answered_ms,
            checkpoint_ms,
            charge: rated.then(|| JournalCharge {
                account: "acme".into(),
                pending_id: format!("call:{id}"),
                price_per_minute: 60, // one unit a second
                initial_secs: 1,
                increment_secs: 1,
            }),
        }
    }

    #[test]
    fn plan_ends_at_the_last_checkpoint() {
        let p = plan(
            &[
                entry("a", T0, T0 + 12_400, true),
                entry("b", T0, T0, false),
                // A checkpoint "in the future" (clock set back): capped at now.
                entry("c", T0, T0 + 99_000, true),
            ],
            T0 + 20_000,
        );
        assert_eq!(p.len(), 3);
        let a = &p[0];
        assert_eq!(a.cdr.hangup_cause, "crash");
        assert_eq!(a.cdr.disposition, Disposition::Answered);
        assert_eq!(a.cdr.billsec, 12);
        assert_eq!(a.cdr.duration, 15);
        assert_eq!(a.cdr.end_unix_ms, T0 + 12_400);
        assert_eq!(a.cdr.end, rfc3339(T0 + 12_400));
        assert_eq!(a.cdr.account.as_deref(), Some("acme"));
        assert_eq!(
            a.settlement,
            Some(Settlement {
                pending_id: "call:a".into(),
                cost: 13 // 12.4 s rounds up to 13 one-second blocks
            })
        );
        assert_eq!(p[1].cdr.billsec, 0);
        assert_eq!(p[1].settlement, None);
        assert_eq!(p[1].cdr.account, None);
        assert_eq!(p[2].cdr.billsec, 20);
        assert_eq!(p[2].settlement.as_ref().unwrap().cost, 20);
        assert!(plan(&[], T0).is_empty());
    }

    fn ledger_with_reservation(s: &SledStore, id: &str, amount: u64, timeout_secs: u64) {
        let l = Ledger::new(s);
        l.create_account("acme", true, T0).unwrap();
        l.create_account("@topup", false, T0).unwrap();
        l.create_account("@calls", false, T0).unwrap();
        let t = |id: &str, kind, amount, debit: &str, credit: &str, timeout_secs| TransferRequest {
            id: id.into(),
            debit_account: debit.into(),
            credit_account: credit.into(),
            amount,
            kind,
            pending_id: None,
            timeout_secs,
            reference: None,
        };
        l.apply(
            &t("top", TransferKind::Single, 1_000, "@topup", "acme", 0),
            T0,
        )
        .unwrap();
        l.apply(
            &t(
                &format!("call:{id}"),
                TransferKind::Pending,
                amount,
                "acme",
                "@calls",
                timeout_secs,
            ),
            T0,
        )
        .unwrap();
    }

    #[test]
    fn recover_posts_writes_crash_cdrs_and_is_idempotent() {
        let s = SledStore::temporary().unwrap();
        ledger_with_reservation(&s, "a", 300, 0);
        switchboard_storage::put_journal(
            &s,
            &[
                entry("a", T0, T0 + 30_000, true),
                entry("b", T0, T0 + 5_000, false),
            ],
        )
        .unwrap();
        assert_eq!(recover(&s, T0 + 60_000).unwrap(), 2);
        let cdrs = recent_cdrs(&s, 10).unwrap();
        assert_eq!(cdrs.len(), 2);
        let a = cdrs.iter().find(|c| c.id == "a").unwrap();
        assert_eq!(
            (a.billsec, a.cost, a.hangup_cause.as_str()),
            (30, Some(30), "crash")
        );
        let acme = Ledger::new(&s).account("acme").unwrap().unwrap();
        assert_eq!(acme.debits_posted, 30);
        assert_eq!(acme.debits_pending, 0);
        assert_eq!(s.count(Tree::CallJournal).unwrap(), 0);
        // Nothing left: a second run does nothing.
        assert_eq!(recover(&s, T0 + 70_000).unwrap(), 0);

        // A crash between the settlement and the CDR write: the record is still there, the
        // replay posts nothing more.
        let s = SledStore::temporary().unwrap();
        ledger_with_reservation(&s, "a", 300, 0);
        switchboard_storage::put_journal(&s, &[entry("a", T0, T0 + 30_000, true)]).unwrap();
        let l = Ledger::new(&s);
        let s1 = plan(&[entry("a", T0, T0 + 30_000, true)], T0 + 60_000)[0]
            .settlement
            .clone()
            .unwrap();
        assert_eq!(settle(&l, "a", &s1, T0 + 60_000).unwrap(), 30);
        assert_eq!(recover(&s, T0 + 90_000).unwrap(), 1);
        let acme = Ledger::new(&s).account("acme").unwrap().unwrap();
        assert_eq!((acme.debits_posted, acme.debits_pending), (30, 0));
        assert_eq!(recent_cdrs(&s, 10).unwrap()[0].cost, Some(30));
    }

    #[test]
    fn recover_caps_at_reservation_and_charges_a_lapsed_one() {
        // Cost above the reservation: capped.
        let s = SledStore::temporary().unwrap();
        ledger_with_reservation(&s, "a", 20, 0);
        switchboard_storage::put_journal(&s, &[entry("a", T0, T0 + 30_000, true)]).unwrap();
        recover(&s, T0 + 40_000).unwrap();
        assert_eq!(recent_cdrs(&s, 1).unwrap()[0].cost, Some(20));
        // The reservation lapsed while the gateway was down: charged as a plain transfer.
        let s = SledStore::temporary().unwrap();
        ledger_with_reservation(&s, "a", 300, 60);
        switchboard_storage::put_journal(&s, &[entry("a", T0, T0 + 30_000, true)]).unwrap();
        recover(&s, T0 + 3_600_000).unwrap();
        assert_eq!(recent_cdrs(&s, 1).unwrap()[0].cost, Some(30));
        let acme = Ledger::new(&s).account("acme").unwrap().unwrap();
        assert_eq!((acme.debits_posted, acme.debits_pending), (30, 0));
        // No reservation was ever made: a CDR, no charge.
        let s = SledStore::temporary().unwrap();
        switchboard_storage::put_journal(&s, &[entry("z", T0, T0 + 30_000, true)]).unwrap();
        recover(&s, T0 + 40_000).unwrap();
        assert_eq!(recent_cdrs(&s, 1).unwrap()[0].cost, Some(0));
    }

    #[test]
    fn hangup_settled_before_the_crash_keeps_its_charge() {
        let s = SledStore::temporary().unwrap();
        ledger_with_reservation(&s, "a", 300, 0);
        let l = Ledger::new(&s);
        l.apply(
            &TransferRequest {
                id: "call:a:post".into(),
                debit_account: String::new(),
                credit_account: String::new(),
                amount: 25,
                kind: TransferKind::PostPending,
                pending_id: Some("call:a".into()),
                timeout_secs: 0,
                reference: Some("a".into()),
            },
            T0 + 25_000,
        )
        .unwrap();
        switchboard_storage::put_journal(&s, &[entry("a", T0, T0 + 20_000, true)]).unwrap();
        recover(&s, T0 + 40_000).unwrap();
        assert_eq!(recent_cdrs(&s, 1).unwrap()[0].cost, Some(25));
        let acme = Ledger::new(&s).account("acme").unwrap().unwrap();
        assert_eq!((acme.debits_posted, acme.debits_pending), (25, 0));
    }

    #[tokio::test]
    async fn writer_journals_checkpoints_and_cdr_removes() {
        let s: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let (sink, _h) = start(Arc::clone(&s), Duration::from_millis(100)).unwrap();
        let now = now_unix_ms();
        let e = entry("w", now, now, false);
        let ticket = sink.answered(e.cdr.clone(), e.start_ms, now, None).unwrap();
        ticket.written().await;
        assert_eq!(s.count(Tree::CallJournal).unwrap(), 1);
        // A checkpoint moves it forward (poll with a deadline).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = journal_entries(s.as_ref()).unwrap();
            if got[0].as_ref().unwrap().checkpoint_ms > now {
                break;
            }
            assert!(Instant::now() < deadline, "no checkpoint");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        put_cdrs(s.as_ref(), &[e.cdr]).unwrap();
        assert_eq!(s.count(Tree::CallJournal).unwrap(), 0);
    }
}
