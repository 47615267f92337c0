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
use switchboard_call::{CallConfig, CallCore};
use switchboard_config::TrunkConfig;
use switchboard_sip::message::MessageExt;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::context::CallContext;
use crate::endpoint::{EndpointMsg, Owner};
use crate::media::Relay;

pub use build::{calling, dialed};
pub use charge::{ChargeEvent, ChargeView};

/// How long we wait for the far side to answer our BYE before giving up.
const BYE_GUARD: Duration = Duration::from_secs(32);
/// Digest retries toward a trunk before the call fails.
const MAX_AUTH_TRIES: u8 = 2;

pub use crate::call_msg::{CallId, CallMsg, CallSnapshot, LegView, Phase, Routing};

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
            CallMsg::Sip(ev) => state.core.handle_sip(now, ev),
            CallMsg::Timer(gen) => {
                if state.timer.fired(gen) {
                    let last = state.relay.as_ref().and_then(|r| r.stats().last_activity());
                    state.core.note_media_activity(last);
                    state.core.handle_timeout(now);
                }
            }
            CallMsg::Hangup => state.command(now, Command::Hangup(HangupCause::Operator)),
            CallMsg::End(cause) => state.command(now, Command::Hangup(cause)),
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
