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

mod charge;
mod flow;
pub mod sdp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use switchboard_config::TrunkConfig;
use switchboard_sip::dialog::Dialog;
use switchboard_sip::message::{self, MessageExt};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::now_unix_ms;

use crate::call::{CallId, CallMsg, Phase};
use crate::context::CallContext;
use crate::endpoint::{EndpointMsg, Owner};
use crate::media::PortPair;
pub use crate::ua_event::{Listener, T38Media, UaEvent, UaMode, UaOutcome};

/// How long we wait, after answer, for T.38 to be up before giving up.
const T38_DEADLINE: Duration = Duration::from_secs(40);

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

/// The inbound side of our dialog (we are the UAS).
struct Uas {
    key: TransactionKey,
    invite: rsip::Request,
    tag: String,
    final_sent: bool,
    /// The offer held while ringing (`ring_first`).
    offer: Option<switchboard_sip::sdp::SessionDescription>,
}

/// The outbound side (we are the UAC).
struct Uac {
    invite: rsip::Request,
    trunk: TrunkConfig,
    auth_tries: u8,
    provisional: bool,
    invite_done: bool,
    cancel_sent: bool,
}

enum Role {
    Uas(Uas),
    /// An outbound call before its INVITE is built.
    Pending,
    Uac(Uac),
}

/// Where the T.38 switch is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum T38State {
    /// Audio; we will offer T.38 at `switch_at` unless the far end does.
    Audio,
    /// Our re-INVITE offering T.38 is out (its branch).
    Offered(String),
    /// UDPTL flows.
    Active,
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
    /// The negotiated audio codec name (audio mode), for the snapshot.
    codec: Option<String>,
    role: Role,
    peer: Peer,
    call_id: String,
    dialog: Option<Dialog>,
    phase: Phase,
    src: String,
    dst: String,
    ports: Option<PortPair>,
    socket: Option<Arc<tokio::net::UdpSocket>>,
    remote_media: Option<SocketAddr>,
    sdp_session: u64,
    sdp_version: u64,
    t38: T38State,
    t38_switch_at: Option<Instant>,
    t38_deadline: Option<Instant>,
    start_ms: u64,
    answer_ms: Option<u64>,
    no_answer_at: Option<Instant>,
    ack_wait_until: Option<Instant>,
    max_end_at: Option<Instant>,
    /// When to look at the media activity again (`[media] rtp_timeout_secs`).
    rtp_check_at: Option<Instant>,
    /// Since when media is expected: the answer, hold/resume, the switch to T.38.
    rtp_since: Instant,
    /// The far end's latest SDP puts the media on hold.
    held: bool,
    /// Packets accepted from the far end, stamped by the leg or the fax session.
    activity: Arc<crate::media::Activity>,
    end_at: Option<Instant>,
    /// ACKs of 2xx to our INVITEs, by CSeq, re-sent on retransmitted 2xx.
    acks: HashMap<u32, rsip::Request>,
    byes: Vec<String>,
    outcome: Option<UaOutcome>,
    timer: crate::timer::Deadline,
    published: Option<(Phase, bool, bool)>,
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
        let (role, peer, call_id, src, dst) = match args.direction {
            UaDirection::Inbound { key, invite, peer } => {
                let call_id = invite.call_id().unwrap_or_default();
                let src = crate::call::calling(&invite);
                let dst = crate::call::dialed(&invite).unwrap_or_default();
                let role = Role::Uas(Uas {
                    key,
                    invite,
                    tag: message::new_tag(),
                    final_sent: false,
                    offer: None,
                });
                (role, peer, call_id, src, dst)
            }
            UaDirection::Outbound { to, src } => {
                let call_id = format!("{}@{}", args.id, ctx.sip_addr.ip());
                // A placeholder until the route is known; `setup` replaces it.
                let peer = Peer {
                    addr: ctx.sip_addr,
                    transport: switchboard_sip::transport::Transport::Udp,
                };
                (Role::Pending, peer, call_id, src, to)
            }
        };
        ctx.endpoint.send_message(EndpointMsg::Register {
            call_id: call_id.clone(),
            owner: Owner::Call(myself.clone()),
        })?;
        let sdp_session = u64::from(rand::random::<u32>());
        Ok(UaState {
            id: args.id,
            myself: myself.clone(),
            charging: None,
            journal: None,
            admitted: false,
            listener: args.listener,
            mode: args.mode,
            codec: None,
            role,
            peer,
            call_id,
            dialog: None,
            phase: Phase::Trying,
            src,
            dst,
            ports: None,
            socket: None,
            remote_media: None,
            sdp_session,
            sdp_version: sdp_session,
            t38: T38State::Audio,
            t38_switch_at: None,
            t38_deadline: None,
            start_ms: now_unix_ms(),
            answer_ms: None,
            no_answer_at: None,
            ack_wait_until: None,
            max_end_at: None,
            rtp_check_at: None,
            rtp_since: Instant::now(),
            held: false,
            activity: Arc::default(),
            end_at: None,
            acks: HashMap::new(),
            byes: Vec::new(),
            outcome: None,
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
        match state.role {
            Role::Uas(_) => state.answer_inbound(),
            Role::Pending | Role::Uac(_) => state.dial(),
        }
        state.after(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut UaState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Sip(ev) => state.on_sip(ev),
            CallMsg::Timer(gen) => {
                if state.timer.fired(gen) {
                    state.on_timer(Instant::now());
                }
            }
            CallMsg::Hangup => state.hangup("operator", None),
            CallMsg::End(cause) => state.hangup(cause, None),
            CallMsg::Answer => state.answer_now(),
            CallMsg::Reject(code) => state.reject(code),
            CallMsg::Charge(ev) => state.on_charge(ev),
            CallMsg::Crash => panic!("call {} crashed on purpose (test hook)", state.id),
        }
        state.after(&myself).await;
        Ok(())
    }
}
