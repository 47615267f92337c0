//! `FaxJob`: one actor per outbound fax job. The job's record in the store
//! is the source of truth: every state change is written (and flushed)
//! before anything else learns of it, so a crash or restart resumes the job
//! from the store: a job that was `in_progress` counts that attempt as
//! interrupted and is retried per policy; a `succeeded` job is never sent
//! again.
//!
//! An attempt places a call through the call supervisor (a `UaCall` that
//! switches to T.38), runs the T.30 transfer when T.38 is up, and hangs up.
//! Busy, no answer, congestion and failed transfers are retried after
//! `[fax] retry_delay_secs`, up to `max_attempts`; a refused T.38, a missing
//! route or a document error fail the job at once.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use switchboard_config::Config;
use switchboard_storage::{
    get_fax_job, now_unix_ms, put_fax_job, rfc3339, FaxJobRecord, FaxStatus, Store,
};

use super::session::{self, SessionEvent, TransferResult};
use crate::call_msg::CallId;
use crate::store_io::on_store;
use crate::supervisor_msg::SupervisorMsg;
use crate::ua_event::{UaEvent, UaOutcome};
use switchboard_call::FaxCode;

/// Messages of a fax job.
#[derive(Debug)]
pub enum FaxJobMsg {
    /// Time for the next attempt (generation).
    Attempt(u64),
    /// An event of the attempt's call.
    Call(UaEvent),
    /// An event of the T.30 transfer.
    Session(SessionEvent),
    /// The call ended with the transfer still running; settle now (generation).
    Settle(u64),
    /// Shutdown: answer whether the job still waits to record its call's end (true: ask
    /// again). Everything the job handled before this is on disk.
    Sync(ractor::RpcReplyPort<bool>),
}

/// Start-up arguments.
pub struct FaxJobArgs {
    /// The job id (its record is in the store).
    pub id: String,
    /// Store.
    pub store: Arc<dyn Store>,
    /// Configuration.
    pub config: Arc<Config>,
    /// The call supervisor, to place calls.
    pub calls: ActorRef<SupervisorMsg>,
    /// The credits ledger, for rated jobs.
    pub ledger: Option<ActorRef<crate::ledger::LedgerMsg>>,
    /// The drain flag: set, no new attempt starts (the job stays queued on disk).
    pub drain: Arc<crate::drain::Drain>,
}

impl std::fmt::Debug for FaxJobArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaxJobArgs")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// State of a fax job.
pub struct FaxJobState {
    args: FaxJobArgs,
    job: FaxJobRecord,
    call: Option<CallId>,
    result: Option<TransferResult>,
    session: Option<session::Handle>,
    /// The call's end, held while the transfer may still report its result.
    ended: Option<UaOutcome>,
    gen: u64,
}

/// Errors a job retries after `retry_delay` (the typed [`FaxCode::retryable`]).
fn retryable(error: &str) -> bool {
    FaxCode::parse(error).is_some_and(FaxCode::retryable)
}

/// The fax job actor.
#[derive(Debug, Default)]
pub struct FaxJob;

impl Actor for FaxJob {
    type Msg = FaxJobMsg;
    type State = FaxJobState;
    type Arguments = FaxJobArgs;

    async fn pre_start(
        &self,
        _: ActorRef<FaxJobMsg>,
        args: FaxJobArgs,
    ) -> Result<FaxJobState, ActorProcessingErr> {
        let job = get_fax_job(args.store.as_ref(), &args.id)?
            .ok_or_else(|| format!("fax job {} is not in the store", args.id))?;
        Ok(FaxJobState {
            args,
            job,
            call: None,
            result: None,
            session: None,
            ended: None,
            gen: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<FaxJobMsg>,
        state: &mut FaxJobState,
    ) -> Result<(), ActorProcessingErr> {
        match state.job.status {
            FaxStatus::Succeeded | FaxStatus::Failed => {
                // Finished before a restart, but not yet charged: settle now.
                if state.settle().await {
                    state.save().await?;
                }
                myself.stop(None)
            }
            FaxStatus::InProgress => {
                // The gateway (or this actor) died during an attempt.
                tracing::warn!(job = %state.job.id, "fax job was interrupted; applying the retry policy");
                state
                    .attempt_failed(
                        &myself,
                        "INTERRUPTED",
                        "the attempt was interrupted by a restart",
                    )
                    .await?;
            }
            FaxStatus::Queued => state.schedule(&myself),
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<FaxJobMsg>,
        msg: FaxJobMsg,
        state: &mut FaxJobState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FaxJobMsg::Attempt(gen) if gen == state.gen => state.attempt(&myself).await?,
            FaxJobMsg::Attempt(_) => {}
            FaxJobMsg::Call(UaEvent::T38(_)) if state.session.is_some() => {}
            FaxJobMsg::Call(UaEvent::T38(media)) => {
                let pages = state.job.file.clone();
                let me = myself.clone();
                let notify = Arc::new(move |ev| {
                    let _ = me.send_message(FaxJobMsg::Session(ev));
                });
                match session::start_send(media, &pages, &state.args.config, notify) {
                    Ok(h) => state.session = Some(h),
                    Err(err) => {
                        tracing::error!(job = %state.job.id, %err, "cannot start the T.30 transfer");
                        state.result = Some(TransferResult::failed("DOCUMENT", err.to_string()));
                        state.hang_up();
                    }
                }
            }
            FaxJobMsg::Call(UaEvent::Ended(outcome)) => {
                if state.session.is_some() && state.result.is_none() {
                    // DCN and BYE may cross: give the transfer a moment to report.
                    state.ended = Some(outcome);
                    let gen = state.gen;
                    myself.send_after(Duration::from_secs(3), move || FaxJobMsg::Settle(gen));
                } else {
                    state.call_ended(&myself, outcome).await?;
                }
            }
            FaxJobMsg::Settle(gen) if gen == state.gen => {
                if let Some(outcome) = state.ended.take() {
                    state.call_ended(&myself, outcome).await?;
                }
            }
            FaxJobMsg::Settle(_) => {}
            FaxJobMsg::Sync(reply) => {
                let _ = reply.send(state.ended.is_some());
            }
            FaxJobMsg::Call(_) => {}
            FaxJobMsg::Session(SessionEvent::PageSent(n)) => {
                state.job.pages_sent = n;
                state.save().await?;
            }
            FaxJobMsg::Session(SessionEvent::Done(result)) => {
                state.result = Some(result);
                match state.ended.take() {
                    Some(outcome) => state.call_ended(&myself, outcome).await?,
                    None => state.hang_up(),
                }
            }
        }
        Ok(())
    }
}

impl FaxJobState {
    /// Write the job's record, flushed, off the async workers.
    async fn save(&mut self) -> Result<(), ActorProcessingErr> {
        self.job.updated_at = rfc3339(now_unix_ms());
        let job = self.job.clone();
        on_store(&self.args.store, move |s| put_fax_job(s, &job)).await?;
        Ok(())
    }

    fn schedule(&mut self, myself: &ActorRef<FaxJobMsg>) {
        self.gen += 1;
        let gen = self.gen;
        let wait = self
            .job
            .next_attempt_unix_ms
            .map_or(0, |at| at.saturating_sub(now_unix_ms()));
        myself.send_after(Duration::from_millis(wait), move || FaxJobMsg::Attempt(gen));
    }

    async fn attempt(&mut self, myself: &ActorRef<FaxJobMsg>) -> Result<(), ActorProcessingErr> {
        if self.args.drain.is_draining() {
            // The job stays as stored (queued, its next attempt time kept): the next start
            // resumes it.
            tracing::info!(job = %self.job.id, "draining: fax attempt not started");
            return Ok(());
        }
        let id = CallId::new();
        self.job.attempts += 1;
        self.job.status = FaxStatus::InProgress;
        self.job.call_id = Some(id.0.clone());
        self.job.next_attempt_unix_ms = None;
        self.job.pages_sent = 0;
        self.result = None;
        // On disk before the call starts: a crash now counts as an attempt.
        self.save().await?;
        metrics::counter!("switchboard_fax_attempts_total").increment(1);
        tracing::info!(job = %self.job.id, attempt = self.job.attempts, "fax attempt");
        let me = myself.clone();
        let listener = crate::ua_event::Listener::new(move |ev| {
            let _ = me.send_message(FaxJobMsg::Call(ev));
        });
        let placed = ractor::call_t!(
            self.args.calls,
            |reply| SupervisorMsg::Originate {
                id: id.clone(),
                to: self.job.to.clone(),
                src: caller_id(&self.args.config),
                listener,
                mode: crate::ua_event::UaMode::Fax,
                reply,
            },
            5_000
        );
        match placed {
            Ok(true) => {
                self.call = Some(id);
                Ok(())
            }
            _ => {
                self.attempt_failed(myself, "CONGESTION", "no call could be started")
                    .await
            }
        }
    }

    /// Charge a finished rated job for the pages the far end confirmed (the reservation was
    /// for every page): post that, or void the reservation when none went through. Returns
    /// whether the record changed. When the ledger cannot be reached the job stays unsettled
    /// and is settled at the next start.
    async fn settle(&mut self) -> bool {
        let (Some(reserved), Some(ledger)) = (self.job.reserved, self.args.ledger.as_ref()) else {
            return false;
        };
        if !self.job.unsettled() {
            return false;
        }
        let pages = u64::from(self.job.pages.max(1));
        let sent = u64::from(self.job.pages_sent).min(pages);
        let cost = reserved / pages * sent;
        let pending = super::pending_id(&self.job.id);
        match crate::billing::settle(ledger, &pending, cost, &self.job.id).await {
            Ok(()) => {
                self.job.cost = Some(cost);
                metrics::counter!("switchboard_fax_credits_charged_total").increment(cost);
                true
            }
            Err(err) => {
                tracing::warn!(job = %self.job.id, err, "could not settle the fax job's reservation; retrying at the next start");
                false
            }
        }
    }

    fn hang_up(&mut self) {
        self.session = None;
        if let Some(id) = &self.call {
            let (tx, _rx) = ractor::concurrency::oneshot();
            let _ = self
                .args
                .calls
                .send_message(SupervisorMsg::Hangup(id.clone(), tx.into()));
        }
    }

    async fn call_ended(
        &mut self,
        myself: &ActorRef<FaxJobMsg>,
        outcome: UaOutcome,
    ) -> Result<(), ActorProcessingErr> {
        self.call = None;
        self.session = None;
        if let Some(r) = self.result.take() {
            self.job.bitrate = r.bit_rate;
            self.job.ecm = r.ecm;
            self.job.remote_station = r.remote_ident.clone();
            self.job.pages_sent = r.pages;
            if r.ok {
                self.job.status = FaxStatus::Succeeded;
                self.job.error = None;
                self.job.error_text = None;
                self.settle().await;
                self.save().await?;
                super::webhook::notify(&self.args.config.fax, super::event("fax.job", &self.job));
                metrics::counter!("switchboard_fax_jobs_total", "status" => "succeeded")
                    .increment(1);
                metrics::counter!("switchboard_fax_pages_sent_total").increment(u64::from(r.pages));
                tracing::info!(job = %self.job.id, pages = r.pages, "fax sent");
                myself.stop(None);
                return Ok(());
            }
            let error = r.error.unwrap_or("TRANSFER_FAILED");
            return self
                .attempt_failed(myself, error, &r.error_text.unwrap_or_default())
                .await;
        }
        let error = outcome.error().unwrap_or(if outcome.answered {
            FaxCode::CallDropped
        } else {
            FaxCode::Rejected
        });
        let text = match outcome.code {
            Some(code) => format!("{} (SIP {code})", outcome.cause()),
            None => outcome.cause().to_string(),
        };
        self.attempt_failed(myself, error.as_str(), &text).await
    }

    /// Record a failed attempt; queue a retry or fail the job.
    async fn attempt_failed(
        &mut self,
        myself: &ActorRef<FaxJobMsg>,
        error: &str,
        text: &str,
    ) -> Result<(), ActorProcessingErr> {
        self.job.error = Some(error.to_string());
        self.job.error_text = Some(text.to_string());
        let max = self.job.max_attempts;
        if retryable(error) && self.job.attempts < max {
            let delay = self.args.config.fax.retry_delay();
            self.job.status = FaxStatus::Queued;
            self.job.next_attempt_unix_ms = Some(now_unix_ms() + delay.as_millis() as u64);
            self.save().await?;
            tracing::info!(job = %self.job.id, error, attempt = self.job.attempts, max, "fax attempt failed; retrying");
            self.schedule(myself);
        } else {
            self.job.status = FaxStatus::Failed;
            self.settle().await;
            self.save().await?;
            super::webhook::notify(&self.args.config.fax, super::event("fax.job", &self.job));
            metrics::counter!("switchboard_fax_jobs_total", "status" => "failed").increment(1);
            tracing::info!(job = %self.job.id, error, attempts = self.job.attempts, "fax job failed");
            myself.stop(None);
        }
        Ok(())
    }
}

/// Our calling number for fax calls: the digits of `[fax] ident`, else "fax".
pub(super) fn caller_id(config: &Config) -> String {
    let digits: String = config
        .fax
        .ident
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    if digits.is_empty() {
        "fax".to_string()
    } else {
        digits
    }
}
