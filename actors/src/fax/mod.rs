//! Fax over T.38: the fax supervisor, one `FaxJob` actor per outbound job,
//! and the record of inbound faxes.
//!
//! The supervisor accepts jobs (the document is already in the spool and
//! the record flushed before the API answers 202), resumes unfinished jobs
//! at start, restarts a crashed job from its stored state (at most
//! `MAX_RESTARTS` a minute per job), and records inbound faxes, one record
//! per call (the id derives from the SIP Call-ID, so a repeated event never
//! makes a second record).

pub mod document;
pub mod job;
pub mod session;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use switchboard_config::Config;
use switchboard_storage::{
    get_inbound_fax, new_fax_id, now_unix_ms, put_fax_job, put_inbound_fax, rfc3339,
    unfinished_fax_jobs, FaxJobRecord, FaxStatus, InboundFaxRecord, Store, StoreError,
};

use crate::call_msg::CallId;
use crate::store_io::on_store;
use crate::supervisor_msg::SupervisorMsg;
use crate::ua_event::UaEvent;
pub use job::{FaxJob, FaxJobArgs, FaxJobMsg};

/// Restarts allowed per job within a minute.
const MAX_RESTARTS: usize = 3;

/// A job to accept.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Job id (the document was spooled under it).
    pub id: String,
    /// Destination number.
    pub to: String,
    /// The spooled TIFF.
    pub file: String,
    /// Pages.
    pub pages: u32,
    /// The upload's file name.
    pub source_name: Option<String>,
    /// Who pays for the pages (rated jobs; default `[billing] account`).
    pub account: Option<String>,
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Pages are priced and no account pays for them.
    #[error("fax pages are priced: name an account")]
    NoAccount,
    /// The account does not exist.
    #[error("no such account")]
    UnknownAccount,
    /// The account cannot pay for every page.
    #[error("the account cannot pay for every page")]
    NoCredit,
    /// The account id is malformed.
    #[error("invalid account id")]
    BadAccount,
    /// The store or the ledger failed.
    #[error("{0}")]
    Unavailable(String),
}

/// The id of a rated job's reservation.
pub(crate) fn pending_id(job: &str) -> String {
    format!("fax:{job}")
}

/// Messages of the fax supervisor.
#[derive(Debug)]
pub enum FaxMsg {
    /// Accept a job: store it (flushed), start its actor, answer with the record.
    Submit(NewJob, RpcReplyPort<Result<FaxJobRecord, SubmitError>>),
    /// An event of an inbound fax call.
    Inbound {
        /// Our call id.
        call: CallId,
        /// Calling number.
        from: String,
        /// Dialed number.
        to: String,
        /// The SIP Call-ID (the record's identity).
        sip_call_id: String,
        /// What happened.
        event: UaEvent,
    },
    /// An inbound call ended while its transfer was still running: give up on it.
    Abandon {
        /// Our call id.
        call: CallId,
        /// The SIP Call-ID.
        sip_call_id: String,
        /// The call's result code.
        error: &'static str,
    },
    /// Shutdown: wait (bounded) until every job has recorded what its call told it; the
    /// answer is how many jobs were live.
    Sync(RpcReplyPort<usize>),
    /// The transfer of an inbound fax ended.
    Received {
        /// Our call id.
        call: CallId,
        /// The SIP Call-ID.
        sip_call_id: String,
        /// How it went.
        result: session::TransferResult,
    },
}

/// Start-up arguments.
pub struct FaxArgs {
    /// Configuration.
    pub config: Arc<Config>,
    /// Store.
    pub store: Arc<dyn Store>,
    /// The call supervisor.
    pub calls: ActorRef<SupervisorMsg>,
    /// The credits ledger (None: fax pages are never charged).
    pub ledger: Option<ActorRef<crate::ledger::LedgerMsg>>,
    /// The drain flag (no new attempts while set).
    pub drain: Arc<crate::drain::Drain>,
}

impl std::fmt::Debug for FaxArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaxArgs").finish_non_exhaustive()
    }
}

/// A running inbound transfer.
struct Receiving {
    _session: session::Handle,
}

struct JobEntry {
    actor: ActorRef<job::FaxJobMsg>,
    id: String,
    restarts: Vec<Instant>,
}

/// State of the fax supervisor.
pub struct FaxState {
    args: FaxArgs,
    jobs: HashMap<ActorId, JobEntry>,
    receiving: HashMap<CallId, Receiving>,
}

/// The fax supervisor.
#[derive(Debug, Default)]
pub struct FaxSupervisor;

/// The inbound fax id of a SIP call.
pub fn inbound_id(sip_call_id: &str) -> String {
    // FNV-1a: stable across restarts and versions, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sip_call_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("in{h:016x}")
}

impl Actor for FaxSupervisor {
    type Msg = FaxMsg;
    type State = FaxState;
    type Arguments = FaxArgs;

    async fn pre_start(
        &self,
        _: ActorRef<FaxMsg>,
        args: FaxArgs,
    ) -> Result<FaxState, ActorProcessingErr> {
        Ok(FaxState {
            args,
            jobs: HashMap::new(),
            receiving: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<FaxMsg>,
        state: &mut FaxState,
    ) -> Result<(), ActorProcessingErr> {
        let open = unfinished_fax_jobs(state.args.store.as_ref())?;
        if !open.is_empty() {
            tracing::info!(jobs = open.len(), "resuming unfinished fax jobs");
        }
        for job in open {
            state.spawn(&myself, job.id, Vec::new()).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<FaxMsg>,
        msg: FaxMsg,
        state: &mut FaxState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FaxMsg::Submit(new, reply) => {
                let result = state.submit(new).await;
                if let Ok(job) = &result {
                    metrics::counter!("switchboard_fax_jobs_submitted_total").increment(1);
                    state.spawn(&myself, job.id.clone(), Vec::new()).await;
                }
                let _ = reply.send(result);
            }
            FaxMsg::Inbound {
                call,
                from,
                to,
                sip_call_id,
                event,
            } => {
                if let UaEvent::T38(media) = &event {
                    state.start_receiving(&myself, &call, &sip_call_id, media.clone());
                }
                if let (UaEvent::Ended(o), true) = (&event, state.receiving.contains_key(&call)) {
                    // The transfer may still be finishing (DCN and BYE cross):
                    // give it a moment before calling the fax lost.
                    let (c, s, e) = (
                        call.clone(),
                        sip_call_id.clone(),
                        o.error()
                            .map_or("NO_FAX", switchboard_call::FaxCode::as_str),
                    );
                    myself.send_after(Duration::from_secs(3), move || FaxMsg::Abandon {
                        call: c,
                        sip_call_id: s,
                        error: e,
                    });
                    return Ok(());
                }
                if let Err(err) = state.inbound(&call, from, to, &sip_call_id, event).await {
                    tracing::error!(%err, call = %call, "cannot record an inbound fax");
                }
            }
            FaxMsg::Abandon {
                call,
                sip_call_id,
                error,
            } => {
                if state.receiving.remove(&call).is_some() {
                    let r = session::TransferResult::failed(
                        error,
                        "the call ended during the transfer".into(),
                    );
                    if let Err(err) = state.received(&sip_call_id, r).await {
                        tracing::error!(%err, call = %call, "cannot record a lost fax");
                    }
                }
            }
            FaxMsg::Sync(reply) => {
                let jobs: Vec<_> = state.jobs.values().map(|e| e.actor.clone()).collect();
                tokio::spawn(sync_jobs(jobs, reply));
            }
            FaxMsg::Received {
                call,
                sip_call_id,
                result,
            } => {
                state.receiving.remove(&call);
                if let Err(err) = state.received(&sip_call_id, result).await {
                    tracing::error!(%err, call = %call, "cannot record a received fax");
                }
                // The transfer is over: hang up (the far end usually does first).
                let (tx, _rx) = ractor::concurrency::oneshot();
                let _ = state
                    .args
                    .calls
                    .send_message(SupervisorMsg::Hangup(call, tx.into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<FaxMsg>,
        evt: SupervisionEvent,
        state: &mut FaxState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.jobs.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(mut entry) = state.jobs.remove(&cell.get_id()) else {
                    return Ok(());
                };
                metrics::counter!("switchboard_fax_job_crashes_total").increment(1);
                let now = Instant::now();
                entry
                    .restarts
                    .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                if entry.restarts.len() >= MAX_RESTARTS {
                    tracing::error!(job = %entry.id, %err, "fax job keeps crashing; failing it");
                    state.fail_job(&entry.id, "crashed repeatedly").await?;
                } else {
                    tracing::error!(job = %entry.id, %err, "fax job crashed; restarting from the store");
                    entry.restarts.push(now);
                    state.spawn(&myself, entry.id, entry.restarts).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl FaxState {
    /// Reserve every page's price (rated jobs), then store the job (flushed).
    async fn submit(&mut self, new: NewJob) -> Result<FaxJobRecord, SubmitError> {
        let (account, reserved) = self.reserve(&new).await?;
        let now = rfc3339(now_unix_ms());
        let job = FaxJobRecord {
            v: FaxJobRecord::VERSION,
            id: new.id,
            to: new.to,
            status: FaxStatus::Queued,
            pages: new.pages,
            pages_sent: 0,
            attempts: 0,
            max_attempts: self.args.config.fax.max_attempts,
            error: None,
            error_text: None,
            bitrate: None,
            ecm: None,
            remote_station: None,
            file: new.file,
            source_name: new.source_name,
            call_id: None,
            created_at: now.clone(),
            updated_at: now,
            next_attempt_unix_ms: None,
            account,
            reserved,
            cost: None,
        };
        let record = job.clone();
        if let Err(e) = on_store(&self.args.store, move |s| put_fax_job(s, &record)).await {
            if let (Some(ledger), Some(_)) = (&self.args.ledger, reserved) {
                let _ = crate::billing::settle(ledger, &pending_id(&job.id), 0, &job.id).await;
            }
            return Err(SubmitError::Unavailable(e.to_string()));
        }
        Ok(job)
    }

    /// For a rated job: reserve `pages × [billing] price_per_page` on its account, with no
    /// timeout (the job always settles, after a restart too).
    async fn reserve(&self, new: &NewJob) -> Result<(Option<String>, Option<u64>), SubmitError> {
        use ractor::rpc::CallResult;
        use switchboard_storage::ledger::{LedgerError, TransferKind, TransferRequest};
        let config = &self.args.config;
        let price = config.billing.price_per_page;
        let Some(ledger) = self.args.ledger.as_ref().filter(|_| price > 0) else {
            return Ok((None, None));
        };
        let account = new
            .account
            .clone()
            .or_else(|| {
                let rule = config.billing.account.as_ref()?;
                Some(rule.account(&job::caller_id(config)))
            })
            .ok_or(SubmitError::NoAccount)?;
        let amount = u64::from(new.pages).saturating_mul(price);
        let req = TransferRequest {
            id: pending_id(&new.id),
            debit_account: account.clone(),
            credit_account: crate::billing::FAX_ACCOUNT.to_string(),
            amount,
            kind: TransferKind::Pending,
            pending_id: None,
            timeout_secs: 0,
            reference: Some(new.id.clone()),
        };
        let answer = ledger
            .call(
                |reply| crate::ledger::LedgerMsg::Apply(req, reply),
                Some(crate::billing::LEDGER_WAIT),
            )
            .await;
        match answer {
            Ok(CallResult::Success(Ok(_))) => Ok((Some(account), Some(amount))),
            Ok(CallResult::Success(Err(e))) => Err(match e {
                LedgerError::NoAccount(_) => SubmitError::UnknownAccount,
                LedgerError::ExceedsCredits(_) => SubmitError::NoCredit,
                LedgerError::BadId(_) | LedgerError::SameAccount => SubmitError::BadAccount,
                e => SubmitError::Unavailable(e.to_string()),
            }),
            _ => Err(SubmitError::Unavailable("the ledger did not answer".into())),
        }
    }

    async fn spawn(&mut self, myself: &ActorRef<FaxMsg>, id: String, restarts: Vec<Instant>) {
        let args = FaxJobArgs {
            id: id.clone(),
            store: Arc::clone(&self.args.store),
            config: Arc::clone(&self.args.config),
            calls: self.args.calls.clone(),
            ledger: self.args.ledger.clone(),
            drain: Arc::clone(&self.args.drain),
        };
        match Actor::spawn_linked(None, FaxJob, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.jobs.insert(
                    actor.get_id(),
                    JobEntry {
                        actor,
                        id,
                        restarts,
                    },
                );
            }
            Err(err) => {
                tracing::error!(job = %id, %err, "cannot start a fax job");
                let _ = self.fail_job(&id, "cannot start").await;
            }
        }
    }

    async fn fail_job(&mut self, id: &str, why: &str) -> Result<(), StoreError> {
        let (id, why) = (id.to_string(), why.to_string());
        on_store(&self.args.store, move |store| {
            if let Some(mut job) = switchboard_storage::get_fax_job(store, &id)? {
                if !job.status.is_final() {
                    job.status = FaxStatus::Failed;
                    job.error = Some("INTERNAL".into());
                    job.error_text = Some(why);
                    job.updated_at = rfc3339(now_unix_ms());
                    put_fax_job(store, &job)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Write an inbound fax's record, flushed, off the async workers.
    async fn save_inbound(&self, rec: &InboundFaxRecord) -> Result<(), StoreError> {
        let rec = rec.clone();
        on_store(&self.args.store, move |s| put_inbound_fax(s, &rec)).await
    }

    fn start_receiving(
        &mut self,
        myself: &ActorRef<FaxMsg>,
        call: &CallId,
        sip_call_id: &str,
        media: crate::ua_event::T38Media,
    ) {
        if self.receiving.contains_key(call) {
            return; // a re-negotiation of the same call
        }
        let spool = self
            .args
            .config
            .fax
            .spool_dir(&self.args.config.storage.path);
        let out = spool.join(format!("{}.tif", inbound_id(sip_call_id)));
        let me = myself.clone();
        let (call_c, sip_c) = (call.clone(), sip_call_id.to_string());
        let notify: session::Notify = Arc::new(move |ev| {
            if let session::SessionEvent::Done(result) = ev {
                let _ = me.send_message(FaxMsg::Received {
                    call: call_c.clone(),
                    sip_call_id: sip_c.clone(),
                    result,
                });
            }
        });
        let handle = session::start_receive(media, &self.args.config, out, notify);
        self.receiving
            .insert(call.clone(), Receiving { _session: handle });
    }

    /// Record the end of an inbound transfer (flushed), then notify.
    async fn received(
        &mut self,
        sip_call_id: &str,
        r: session::TransferResult,
    ) -> Result<(), StoreError> {
        let store = self.args.store.as_ref();
        let Some(mut rec) = get_inbound_fax(store, &inbound_id(sip_call_id))? else {
            return Ok(());
        };
        if rec.status != "receiving" {
            return Ok(()); // already final: one result per call
        }
        rec.pages = r.pages;
        rec.bitrate = r.bit_rate;
        rec.ecm = r.ecm;
        rec.remote_station = r.remote_ident;
        rec.file = r.file.map(|p| p.display().to_string());
        let ok = r.ok && rec.file.is_some();
        rec.status = if ok { "received" } else { "failed" }.into();
        rec.error = (!ok).then(|| r.error.unwrap_or("TRANSFER_FAILED").to_string());
        rec.updated_at = rfc3339(now_unix_ms());
        self.save_inbound(&rec).await?;
        metrics::counter!("switchboard_fax_inbound_total", "status" => rec.status.clone())
            .increment(1);
        metrics::counter!("switchboard_fax_pages_received_total").increment(u64::from(rec.pages));
        webhook::notify(&self.args.config.fax, self::event("fax.inbound", &rec));
        Ok(())
    }

    async fn inbound(
        &mut self,
        call: &CallId,
        from: String,
        to: String,
        sip_call_id: &str,
        event: UaEvent,
    ) -> Result<(), StoreError> {
        let store = self.args.store.as_ref();
        let id = inbound_id(sip_call_id);
        let now = rfc3339(now_unix_ms());
        let mut rec = get_inbound_fax(store, &id)?.unwrap_or(InboundFaxRecord {
            v: InboundFaxRecord::VERSION,
            id: id.clone(),
            from,
            to,
            status: "receiving".into(),
            pages: 0,
            error: None,
            bitrate: None,
            ecm: None,
            remote_station: None,
            file: None,
            call_id: call.0.clone(),
            created_at: now.clone(),
            updated_at: now.clone(),
        });
        match event {
            UaEvent::Answered | UaEvent::T38(_) | UaEvent::Audio(_) => {}
            UaEvent::Ended(outcome) => {
                if rec.status != "receiving" {
                    return Ok(()); // the transfer already recorded (and announced) its result
                }
                rec.status = "failed".into();
                rec.error = Some(
                    outcome
                        .error()
                        .map_or("NO_FAX", switchboard_call::FaxCode::as_str)
                        .to_string(),
                );
                metrics::counter!("switchboard_fax_inbound_total", "status" => "failed")
                    .increment(1);
                rec.updated_at = now;
                self.save_inbound(&rec).await?;
                webhook::notify(&self.args.config.fax, self::event("fax.inbound", &rec));
                return Ok(());
            }
            UaEvent::Ringing => return Ok(()),
        }
        rec.updated_at = now;
        self.save_inbound(&rec).await
    }
}

/// A record as a webhook event: everything but internal paths.
pub(crate) fn event<T: serde::Serialize>(kind: &str, record: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(record).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("v");
        o.remove("file");
    }
    serde_json::json!({"event": kind, "fax": v})
}

/// A fresh job id.
pub fn new_job_id() -> String {
    new_fax_id(now_unix_ms())
}

/// Ask every job until none waits to record its call's end (at most `SYNC_WAIT`).
async fn sync_jobs(jobs: Vec<ActorRef<job::FaxJobMsg>>, reply: RpcReplyPort<usize>) {
    const SYNC_WAIT: Duration = Duration::from_secs(8);
    let until = Instant::now() + SYNC_WAIT;
    let mut waiting = jobs.clone();
    while !waiting.is_empty() && Instant::now() < until {
        let mut still = Vec::new();
        for j in waiting {
            if let Ok(true) = ractor::call_t!(j, job::FaxJobMsg::Sync, 2_000) {
                still.push(j);
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = reply.send(jobs.len());
}
