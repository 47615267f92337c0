//! The `Call` actor: one per B2BUA call (RFC 3261 §6 "back-to-back user agent"), a thin
//! driver of [`switchboard_call::CallCore`], which holds both legs' SIP state, the relay
//! rules (provisionals, finals, CANCEL, BYE, re-INVITE/UPDATE/INFO, RFC 4028 session
//! timers) and the call timers.
//!
//! The actor owns what does IO: the endpoint it sends SIP through, the RTP relay and its
//! ports, the ledger (admission, reservation, settlement), the crash journal, the fork app
//! and the CDR. It reads the clock once per message and passes that instant to the core.
//! The route is decided by the supervisor and arrives in [`CallArgs::routing`].

pub(crate) mod build;
pub(crate) mod charge;
pub(crate) mod flow;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use switchboard_call::{CallConfig, CallCore, CallFailure};
use switchboard_config::{RouteConfig, TrunkConfig};
use switchboard_sip::message::MessageExt;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::{now_unix_ms, Disposition};

use crate::context::CallContext;
use crate::endpoint::{EndpointMsg, Owner, SipEvent};
use crate::media::{MediaSnapshot, Relay, RelayStats, Side};

pub use build::{calling, dialed};
pub use charge::{ChargeEvent, ChargeView};

/// How long we wait for the far side to answer our BYE before giving up.
const BYE_GUARD: Duration = Duration::from_secs(32);
/// Digest retries toward a trunk before the call fails.
const MAX_AUTH_TRIES: u8 = 2;
/// The hang-up cause of calls ended by the drain deadline (issue 12).
pub const SHUTDOWN_CAUSE: &str = "shutdown";

/// A call's id: 16 hex digits, also the CDR id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()))
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Messages of a call actor.
#[derive(Debug)]
pub enum CallMsg {
    /// A SIP transaction event for one of our Call-IDs.
    Sip(SipEvent),
    /// Our single timer fired (generation).
    Timer(u64),
    /// Hang up on operator request.
    Hangup,
    /// Hang up with this cause (an app or device went away).
    End(&'static str),
    /// Answer a call that is ringing for a local target (a device took the call).
    Answer,
    /// Refuse a call that is ringing for a local target, with this SIP status.
    Reject(u16),
    /// What the credits ledger answered (admission, reservation).
    Charge(ChargeEvent),
    /// Test hook: panic on purpose, so supervision can be exercised.
    Crash,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// INVITE sent to the trunk, nothing back yet.
    Trying,
    /// The callee is ringing (or early media).
    Ringing,
    /// Answered.
    Answered,
    /// Being torn down.
    Ending,
}

/// One leg as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    /// Which leg.
    pub side: Side,
    /// Its Call-ID.
    pub call_id: String,
    /// Signalling peer.
    pub peer: String,
    /// Transport.
    pub transport: &'static str,
    /// Our media port facing it.
    pub rtp_port: Option<u16>,
    /// Where we send its media (from SDP, before latching).
    pub remote_media: Option<String>,
}

/// Everything the supervisor needs to show a call and to tear it down if
/// the actor crashes.
#[derive(Debug, Clone, Serialize)]
pub struct CallSnapshot {
    /// Call id.
    pub id: CallId,
    /// Phase.
    pub state: Phase,
    /// Calling number.
    pub src: String,
    /// Dialed number.
    pub dst: String,
    /// Start (RFC 3339).
    pub start: String,
    /// Answer time (RFC 3339).
    pub answer: Option<String>,
    /// Inbound trunk.
    pub trunk_in: Option<String>,
    /// Outbound trunk.
    pub trunk_out: Option<String>,
    /// Negotiated audio codec.
    pub codec: Option<String>,
    /// Both legs.
    pub legs: Vec<LegView>,
    /// Media counters (filled when read).
    pub media: MediaSnapshot,
    /// Who pays and at what price, for a rated call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<ChargeView>,
    #[serde(skip)]
    pub(crate) start_ms: u64,
    #[serde(skip)]
    pub(crate) answer_ms: Option<u64>,
    #[serde(skip)]
    pub(crate) stats: Option<Arc<RelayStats>>,
    #[serde(skip)]
    pub(crate) teardown: Teardown,
}

impl CallSnapshot {
    /// Seconds since the call started (`now_ms` in Unix ms), as a CDR's `duration` would be.
    pub fn duration_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.start_ms) / 1000
    }

    /// Seconds since the call was answered, as a CDR's `billsec` would be (0 before).
    pub fn billsec(&self, now_ms: u64) -> u64 {
        self.answer_ms
            .map_or(0, |a| now_ms.saturating_sub(a) / 1000)
    }

    /// The CDR of this call ending now (by the system clock: for cleanup outside the call,
    /// the supervisor's crash path and the journal; the call actors use [`Self::cdr_at`]).
    pub(crate) fn cdr(
        &self,
        disposition: Disposition,
        cause: &str,
        code: Option<u16>,
    ) -> switchboard_storage::Cdr {
        self.cdr_at(now_unix_ms(), disposition, cause, code)
    }

    /// The CDR of this call ending at `end` (ms since the epoch, from the call's clock).
    pub(crate) fn cdr_at(
        &self,
        end: u64,
        disposition: Disposition,
        cause: &str,
        code: Option<u16>,
    ) -> switchboard_storage::Cdr {
        switchboard_storage::Cdr {
            v: 1,
            id: self.id.0.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
            start: switchboard_storage::rfc3339(self.start_ms),
            answer: self.answer_ms.map(switchboard_storage::rfc3339),
            end: switchboard_storage::rfc3339(end),
            duration: end.saturating_sub(self.start_ms) / 1000,
            billsec: self
                .answer_ms
                .map(|a| end.saturating_sub(a) / 1000)
                .unwrap_or(0),
            disposition,
            hangup_cause: cause.to_string(),
            sip_code: code,
            trunk_in: self.trunk_in.clone(),
            trunk_out: self.trunk_out.clone(),
            codec: self.codec.clone(),
            end_unix_ms: end,
            account: None,
            cost: None,
        }
    }
}

/// What it takes to end both legs from outside the actor: the core's snapshot, kept by the
/// supervisor for crash cleanup (one-leg calls fill the A or B side only).
pub(crate) use switchboard_call::Teardown;

/// Where the supervisor decided a call goes (once, in its new-call path).
#[derive(Debug, Clone)]
pub enum Routing {
    /// Out through a trunk that is configured and up.
    Trunk {
        /// The matching route.
        route: Box<RouteConfig>,
        /// Its trunk.
        trunk: Box<TrunkConfig>,
        /// The number to dial (the route's rewrite applied).
        number: String,
    },
    /// Refused before dialling (no route, unknown trunk, trunk down).
    Refused(CallFailure),
}

/// Arguments of a new call.
#[derive(Debug)]
pub struct CallArgs {
    /// The id chosen by the supervisor.
    pub id: CallId,
    /// Server transaction of the caller's INVITE.
    pub key: TransactionKey,
    /// The caller's INVITE.
    pub invite: rsip::Request,
    /// Where it came from.
    pub peer: Peer,
    /// Shared context.
    pub ctx: Arc<CallContext>,
    /// The `[[sip_user]]` that authenticated the INVITE, if any (the payer's identity).
    pub user: Option<String>,
    /// The route decided by the supervisor.
    pub routing: Routing,
}

/// State of a call actor.
pub struct CallState {
    id: CallId,
    myself: ActorRef<CallMsg>,
    ctx: Arc<CallContext>,
    core: CallCore,
    /// The route, until the call is set up.
    routing: Option<Routing>,
    trunk: Option<TrunkConfig>,
    relay: Option<Relay>,
    /// Fork mode: the app that gets a copy of the call's audio (route `fork`), and its
    /// stream once the call is answered.
    fork_app: Option<(
        switchboard_config::AppConfig,
        std::collections::BTreeMap<String, String>,
    )>,
    fork: Option<crate::audio::app::AppStream>,
    /// A rated call's dealings with the ledger.
    charging: Option<charge::Charging>,
    /// The call's crash-journal record, once answered (issue 12).
    journal: Option<crate::journal::JournalTicket>,
    /// The authenticated `[[sip_user]]`, if any.
    user: Option<String>,
    src: String,
    dst: String,
    trunk_in: Option<String>,
    start_ms: u64,
    answer_ms: Option<u64>,
    timer: crate::timer::Deadline,
    /// What was last sent to the supervisor (to skip identical updates).
    published: Option<(Phase, bool, bool, bool, usize)>,
}

/// The call actor.
#[derive(Debug, Default)]
pub struct Call;

impl Actor for Call {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = CallArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CallMsg>,
        args: CallArgs,
    ) -> Result<CallState, ActorProcessingErr> {
        let now = args.ctx.clock.now();
        let call_id = args.invite.call_id().unwrap_or_default();
        args.ctx.endpoint.send_message(EndpointMsg::Register {
            call_id,
            owner: Owner::Call(myself.clone()),
        })?;
        let ctx = args.ctx;
        let trunk_in = ctx
            .config
            .trunk_for_source(args.peer.addr.ip())
            .map(|t| t.name.clone());
        let src = build::calling(&args.invite);
        let dst = build::dialed(&args.invite).unwrap_or_default();
        let a = CallCore::caller_leg(
            args.peer,
            ctx.via_host(args.peer.transport),
            ctx.contact(args.peer.transport),
            args.key,
            args.invite,
        );
        let config = CallConfig {
            no_answer: ctx.config.sip.no_answer_timeout,
            t1: ctx.config.sip.t1,
            max_call: ctx.config.sip.max_call,
            rtp_timeout: ctx.config.media.rtp_timeout,
            bye_guard: BYE_GUARD,
            max_auth_tries: MAX_AUTH_TRIES,
        };
        let policy = crate::media::policy(&ctx);
        let core = CallCore::new(
            now,
            a,
            config,
            ctx.media_ip,
            Box::new(move |ip, port| {
                policy.check(ip, port).map(|t| t.addr()).map_err(|err| {
                    metrics::counter!("switchboard_sdp_refused_total").increment(1);
                    tracing::info!(%err, "SDP media address refused");
                    switchboard_call::MediaRefused
                })
            }),
        );
        let start_ms = ctx.clock.unix_ms();
        Ok(CallState {
            src,
            dst,
            id: args.id,
            myself: myself.clone(),
            ctx,
            core,
            routing: Some(args.routing),
            trunk: None,
            relay: None,
            fork_app: None,
            fork: None,
            charging: None,
            journal: None,
            user: args.user,
            trunk_in,
            start_ms,
            answer_ms: None,
            timer: crate::timer::Deadline::default(),
            published: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        state.setup(state.ctx.clock.now());
        state.after(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        // The clock is read once per message; the core gets this instant.
        let now = state.ctx.clock.now();
        match msg {
            CallMsg::Sip(ev) => state.core.handle_sip(now, flow::sip_event(ev)),
            CallMsg::Timer(gen) => {
                if state.timer.fired(gen) {
                    let last = state.relay.as_ref().and_then(|r| r.stats().last_activity());
                    state.core.note_media_activity(last);
                    state.core.handle_timeout(now);
                }
            }
            CallMsg::Hangup => state.command(now, Command::Hangup(HangupCause::Operator)),
            CallMsg::End(cause) => {
                let cause = HangupCause::parse(cause).unwrap_or_else(|| {
                    tracing::warn!(call = %state.id, cause, "unknown hang-up cause; ending as operator");
                    HangupCause::Operator
                });
                state.command(now, Command::Hangup(cause))
            }
            // Only calls answered by the gateway itself are answered or refused on request.
            CallMsg::Answer | CallMsg::Reject(_) => {}
            CallMsg::Charge(ev) => state.on_charge(now, ev),
            CallMsg::Crash => panic!("call {} crashed on purpose (test hook)", state.id),
        }
        state.after(&myself).await;
        Ok(())
    }
}

use switchboard_call::{Command, HangupCause};
