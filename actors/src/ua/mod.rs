//! `UaCall`: a call the gateway ends itself. One SIP dialog (RFC 3261 §12–15)
//! whose media stays in the gateway instead of being relayed.
//!
//! - [`UaMode::Fax`]: inbound calls routed to `fax`, and the calls that
//!   outbound fax jobs place through a trunk. The session starts as audio and
//!   switches to T.38 (RFC 3362, ITU-T T.38 Annex D) by re-INVITE: the far
//!   end's, or ours when the far end has not switched within
//!   `[fax] t38_switch_timeout_secs`. A far end that refuses T.38 (488 or a
//!   rejected image stream) ends the call with the result `T38_REFUSED`.
//! - [`UaMode::Audio`]: calls routed to an app (`app:NAME`) or a device
//!   (`device:ID`), and calls a device places. G.711 audio is negotiated and
//!   handed to the listener as [`UaEvent::Audio`]; T.38 offers are refused.
//!   With `ring_first`, an inbound call rings (180) until [`CallMsg::Answer`]
//!   or [`CallMsg::Reject`] comes from whoever the call is for.
//!
//! The actor speaks [`CallMsg`] so the call supervisor lists, hangs up and
//! tears it down like any other call; what happens on the call is reported
//! to a [`Listener`] (the fax job, or the fax supervisor for inbound faxes).
//!
//! The call itself is [`switchboard_call::EndpointCore`], the sans-IO one-leg
//! core built from the same legs as the B2BUA's; this actor routes and admits
//! outbound calls, owns the port and its socket, reads time from `ctx.clock`
//! and carries the core's outputs to the endpoint and the listener.

mod charge;
mod flow;
pub mod sdp;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use switchboard_call::{
    CallConfig, EndpointCommand, EndpointConfig, EndpointCore, EndpointMode, FaxConfig, HangupCause,
};
use switchboard_sip::message::MessageExt;
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;

use crate::call::{CallId, CallMsg, Phase};
use crate::context::CallContext;
use crate::endpoint::{EndpointMsg, Owner};
use crate::media::PortPair;

/// How long we wait, after answer, for T.38 to be up before giving up.
const T38_DEADLINE: Duration = Duration::from_secs(40);
/// How long an ending call waits for BYE answers and the INVITE's final.
const BYE_GUARD: Duration = Duration::from_secs(32);
/// Digest retries toward the trunk.
const MAX_AUTH_TRIES: u8 = 2;

pub use crate::ua_event::{Listener, T38Media, UaEvent, UaMode, UaOutcome};

/// Which way the call goes.
pub enum UaDirection {
    /// An INVITE routed to a local target: we answer.
    Inbound {
        /// Its server transaction.
        key: TransactionKey,
        /// The INVITE.
        invite: rsip::Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A call we place through a trunk.
    Outbound {
        /// The number to dial (routed by `[[route]]`).
        to: String,
        /// Our calling number.
        src: String,
    },
}

/// Arguments of a `UaCall`.
pub struct UaArgs {
    /// Call id.
    pub id: CallId,
    /// Shared context.
    pub ctx: Arc<CallContext>,
    /// Inbound or outbound.
    pub direction: UaDirection,
    /// Who hears about the call.
    pub listener: Listener,
    /// Fax or audio.
    pub mode: UaMode,
}

impl std::fmt::Debug for UaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaArgs")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// State of a `UaCall`.
pub struct UaState {
    id: CallId,
    myself: ActorRef<CallMsg>,
    /// A rated call's dealings with the ledger (calls we place: see [`charge`]).
    charging: Option<crate::call::charge::Charging>,
    /// The call's crash-journal record, once answered (issue 12).
    journal: Option<crate::journal::JournalTicket>,
    /// The ledger admitted the call (or it is not rated).
    admitted: bool,
    ctx: Arc<CallContext>,
    listener: Listener,
    mode: UaMode,
    /// The one-leg call.
    core: EndpointCore,
    /// The trunk an outbound call goes through.
    trunk: Option<String>,
    /// Until the route is known: where an outbound call's snapshot points.
    placeholder: Peer,
    call_id: String,
    src: String,
    dst: String,
    ports: Option<PortPair>,
    socket: Option<Arc<tokio::net::UdpSocket>>,
    /// Packets accepted from the far end, stamped by the leg or the fax session.
    activity: Arc<crate::media::Activity>,
    start_ms: u64,
    answer_ms: Option<u64>,
    timer: crate::timer::Deadline,
    published: Option<(Phase, bool, bool)>,
}

/// The core's settings from the config.
fn endpoint_config(ctx: &CallContext, mode: UaMode, inbound: bool) -> EndpointConfig {
    let cfg = &ctx.config;
    let (version, rate) = (cfg.fax.t38_version, cfg.fax.max_rate);
    let fax = (mode == UaMode::Fax).then(|| FaxConfig {
        switch_after: Duration::from_secs(u64::from(cfg.fax.t38_switch_timeout_secs)),
        deadline: T38_DEADLINE,
        offer: sdp::offer(version, rate),
        answer: Box::new(move |theirs| sdp::answer(theirs, version, rate)),
    });
    let no_answer = if inbound {
        Duration::from_secs(u64::from(cfg.devices.ring_timeout_secs))
    } else {
        cfg.sip.no_answer_timeout
    };
    EndpointConfig {
        mode: match mode {
            UaMode::Fax => EndpointMode::Fax,
            UaMode::Audio { ring_first } => EndpointMode::Audio { ring_first },
        },
        timing: CallConfig {
            no_answer,
            t1: cfg.sip.t1,
            max_call: cfg.sip.max_call,
            rtp_timeout: cfg.media.rtp_timeout,
            bye_guard: BYE_GUARD,
            max_auth_tries: MAX_AUTH_TRIES,
        },
        media_ip: ctx.media_ip,
        sdp_session: u64::from(rand::random::<u32>()),
        fax,
    }
}

/// The media-address policy as the core takes it (refusals counted and logged).
fn media_policy(ctx: &CallContext, id: &CallId) -> switchboard_call::MediaPolicy {
    let policy = crate::media::policy(ctx);
    let id = id.clone();
    Box::new(move |ip, port| {
        policy.check(ip, port).map(|t| t.addr()).map_err(|err| {
            metrics::counter!("switchboard_sdp_refused_total").increment(1);
            tracing::info!(call = %id, %err, "SDP media address refused");
            switchboard_call::MediaRefused
        })
    })
}

/// The actor.
#[derive(Debug, Default)]
pub struct UaCall;

impl Actor for UaCall {
    type Msg = CallMsg;
    type State = UaState;
    type Arguments = UaArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CallMsg>,
        args: UaArgs,
    ) -> Result<UaState, ActorProcessingErr> {
        let ctx = args.ctx;
        let now = ctx.clock.now();
        let inbound = matches!(args.direction, UaDirection::Inbound { .. });
        let config = endpoint_config(&ctx, args.mode, inbound);
        let policy = media_policy(&ctx, &args.id);
        // A placeholder until the route is known.
        let mut placeholder = Peer {
            addr: ctx.sip_addr,
            transport: switchboard_sip::transport::Transport::Udp,
        };
        let (core, call_id, src, dst) = match args.direction {
            UaDirection::Inbound { key, invite, peer } => {
                let call_id = invite.call_id().unwrap_or_default();
                let src = crate::call::calling(&invite);
                let dst = crate::call::dialed(&invite).unwrap_or_default();
                placeholder = peer;
                let leg = EndpointCore::callee_leg(
                    peer,
                    ctx.via_host(peer.transport),
                    ctx.contact(peer.transport),
                    key,
                    invite,
                );
                (
                    EndpointCore::inbound(now, leg, config, policy),
                    call_id,
                    src,
                    dst,
                )
            }
            UaDirection::Outbound { to, src } => {
                let call_id = format!("{}@{}", args.id, ctx.sip_addr.ip());
                (
                    EndpointCore::outbound(now, config, policy),
                    call_id,
                    src,
                    to,
                )
            }
        };
        ctx.endpoint.send_message(EndpointMsg::Register {
            call_id: call_id.clone(),
            owner: Owner::Call(myself.clone()),
        })?;
        Ok(UaState {
            id: args.id,
            myself: myself.clone(),
            charging: None,
            journal: None,
            admitted: false,
            listener: args.listener,
            mode: args.mode,
            core,
            trunk: None,
            placeholder,
            call_id,
            src,
            dst,
            ports: None,
            socket: None,
            activity: Arc::default(),
            start_ms: ctx.clock.unix_ms(),
            answer_ms: None,
            timer: crate::timer::Deadline::default(),
            published: None,
            ctx,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut UaState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.ctx.clock.now();
        if !state.core.is_inbound() {
            state.dial(now);
        }
        state.drain(now);
        state.after(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut UaState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.ctx.clock.now();
        match msg {
            CallMsg::Sip(ev) => state.core.handle_sip(now, ev),
            CallMsg::Timer(gen) => {
                if state.timer.fired(gen) {
                    state.core.note_media_activity(state.activity.last());
                    state.core.handle_timeout(now);
                }
            }
            CallMsg::Hangup => state.command(now, EndpointCommand::Hangup(HangupCause::Operator)),
            CallMsg::End(cause) => state.command(now, EndpointCommand::Hangup(cause)),
            CallMsg::Answer => state.answer(now),
            CallMsg::Reject(code) => state.command(now, EndpointCommand::Reject(code)),
            CallMsg::Charge(ev) => state.on_charge(now, ev),
            CallMsg::Crash => panic!("call {} crashed on purpose (test hook)", state.id),
        }
        state.drain(now);
        state.after(&myself).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_call::{CallFailure, FaxCode, Outcome};

    /// The (cause, error) pairs `UaCall` recorded before issue 13, from the typed outcome.
    #[test]
    fn outcomes_keep_the_strings_the_fax_job_and_cdrs_read() {
        let out = |outcome, answered, inbound| UaOutcome {
            answered,
            code: None,
            outcome,
            inbound,
        };
        let f = |f| Outcome::Failed(f);
        let e = |c| Outcome::Ended(c);
        let table: &[(UaOutcome, &str, Option<&str>)] = &[
            (
                out(f(CallFailure::NoRoute), false, false),
                "no route",
                Some("NO_ROUTE"),
            ),
            (
                out(f(CallFailure::UnknownTrunk), false, false),
                "unknown trunk",
                Some("NO_ROUTE"),
            ),
            (
                out(f(CallFailure::T38Disabled), false, false),
                "T.38 disabled on trunk",
                Some("T38_DISABLED"),
            ),
            (
                out(f(CallFailure::TrunkDown), false, false),
                "trunk down",
                Some("CONGESTION"),
            ),
            (
                out(f(CallFailure::NoMediaPorts), false, false),
                "no media ports",
                Some("CONGESTION"),
            ),
            (
                out(f(CallFailure::Internal), false, false),
                "internal",
                Some("REJECTED"),
            ),
            (
                out(f(CallFailure::from_status(486)), false, false),
                "busy",
                Some("BUSY"),
            ),
            (
                out(f(CallFailure::Timeout), false, false),
                "timeout",
                Some("NO_ANSWER"),
            ),
            (
                out(f(CallFailure::TrunkTimeout), false, false),
                "trunk timeout",
                Some("CONGESTION"),
            ),
            (
                out(f(CallFailure::BadAnswer), false, false),
                "bad answer",
                Some("REJECTED"),
            ),
            (
                out(f(CallFailure::NoAnswer { status: 408 }), false, false),
                "no answer",
                Some("NO_ANSWER"),
            ),
            (
                out(
                    f(CallFailure::Abandoned(HangupCause::Operator)),
                    false,
                    true,
                ),
                "operator",
                Some("NO_ANSWER"),
            ),
            (
                out(f(CallFailure::LedgerUnavailable), false, false),
                "ledger unavailable",
                Some("CONGESTION"),
            ),
            (
                out(f(CallFailure::NoAccount { status: 402 }), false, false),
                "no account",
                Some("REJECTED"),
            ),
            (
                out(f(CallFailure::TooManyHops), false, true),
                "too many hops",
                None,
            ),
            (
                out(f(CallFailure::NoSdpOffer), false, true),
                "no SDP offer",
                None,
            ),
            (
                out(f(CallFailure::NoAudioOffered), false, true),
                "no audio offered",
                None,
            ),
            (
                out(f(CallFailure::NoCommonMedia), false, true),
                "no common media",
                None,
            ),
            (
                out(f(CallFailure::Cancelled), false, true),
                "cancelled",
                None,
            ),
            (
                out(e(HangupCause::RemoteHangup), true, true),
                "remote hangup",
                None,
            ),
            (out(e(HangupCause::NoAck), true, true), "no ACK", None),
            (
                out(e(HangupCause::T38Refused), true, false),
                "T.38 refused",
                Some("T38_REFUSED"),
            ),
            (
                out(e(HangupCause::T38DialogGone), true, false),
                "dialog gone",
                Some("T38_REFUSED"),
            ),
            (
                out(e(HangupCause::T38ReinviteTimeout), true, false),
                "T.38 re-INVITE timed out",
                Some("T38_REFUSED"),
            ),
            (
                out(e(HangupCause::NoT38), true, true),
                "no T.38",
                Some("T38_REFUSED"),
            ),
            (
                out(e(HangupCause::MaxDuration), true, false),
                "max duration",
                Some("TIMEOUT"),
            ),
            (
                out(e(HangupCause::RtpTimeout), true, false),
                "rtp timeout",
                Some("TIMEOUT"),
            ),
            (
                out(e(HangupCause::CreditExhausted), true, false),
                "credit exhausted",
                None,
            ),
            (
                out(e(HangupCause::NoCredit), true, false),
                "no credit",
                Some("REJECTED"),
            ),
            (
                out(e(HangupCause::NoAudioInAnswer), true, false),
                "no audio in answer",
                Some("REJECTED"),
            ),
            (
                out(e(HangupCause::DeviceOffline), true, false),
                "device offline",
                None,
            ),
            (UaOutcome::ended(HangupCause::Crash), "crash", None),
            (
                UaOutcome::ended(HangupCause::StreamEnded),
                "stream ended",
                None,
            ),
        ];
        for (o, cause, error) in table {
            assert_eq!(o.cause(), *cause, "{o:?}");
            assert_eq!(o.error().map(FaxCode::as_str), *error, "{o:?}");
        }
    }
}
