//! The `Call` actor: one per call, owning both legs of the B2BUA (RFC 3261
//! §6 "back-to-back user agent"), the media relay and the CDR.
//!
//! The A leg is the caller's dialog (we are its UAS); the B leg is a new
//! dialog toward a trunk (we are its UAC) with its own Call-ID, tags and an
//! SDP anchored on our media ports. Provisional and final responses are
//! relayed back, CANCEL and BYE cross from either side, in-dialog requests
//! (re-INVITE, UPDATE, INFO) are relayed to the other leg, and RFC 4028
//! session timers are passed through and watched.

pub(crate) mod build;
pub(crate) mod charge;
pub(crate) mod flow;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use switchboard_config::{RouteTarget, TrunkConfig};
use switchboard_sip::dialog::Dialog;
use switchboard_sip::message::{self, MessageExt};
use switchboard_sip::transaction::TransactionKey;
use switchboard_sip::transport::Peer;
use switchboard_storage::{now_unix_ms, Disposition};

use crate::context::{mask_number, CallContext};
use crate::endpoint::{EndpointMsg, Owner, SipEvent};
use crate::media::{MediaSnapshot, Relay, RelayStats, Side};

pub use build::{calling, dialed};
pub use charge::{ChargeEvent, ChargeView};

/// How long we wait for the far side to answer our BYE before giving up.
const BYE_GUARD: Duration = Duration::from_secs(32);
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

    /// The CDR of this call ending now.
    pub(crate) fn cdr(
        &self,
        disposition: Disposition,
        cause: &str,
        code: Option<u16>,
    ) -> switchboard_storage::Cdr {
        let end = now_unix_ms();
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

/// What it takes to end both legs from outside the actor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Teardown {
    pub a_peer: Option<Peer>,
    pub a_key: Option<TransactionKey>,
    pub a_invite: Option<rsip::Request>,
    pub a_tag: String,
    pub a_dialog: Option<Dialog>,
    pub a_final_sent: bool,
    pub b_peer: Option<Peer>,
    pub b_invite: Option<rsip::Request>,
    pub b_dialog: Option<Dialog>,
    pub b_provisional: bool,
    pub call_ids: Vec<String>,
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
}

struct ALeg {
    invite: rsip::Request,
    key: TransactionKey,
    peer: Peer,
    tag: String,
    call_id: String,
    dialog: Option<Dialog>,
    final_sent: bool,
    remote_media: Option<SocketAddr>,
    /// Its latest SDP puts the audio on hold (sendonly, inactive, 0.0.0.0 or no audio).
    held: bool,
}

struct BLeg {
    invite: Option<rsip::Request>,
    peer: Peer,
    call_id: String,
    dialog: Option<Dialog>,
    provisional: bool,
    auth_tries: u8,
    cancel_sent: bool,
    /// The INVITE transaction is over (final response or Timer B).
    invite_done: bool,
    remote_media: Option<SocketAddr>,
    /// Its latest SDP puts the audio on hold.
    held: bool,
}

/// A request relayed from one leg, waiting for the other leg's answer.
struct Relayed {
    from: Side,
    key: TransactionKey,
    request: rsip::Request,
}

struct Outcome {
    disposition: Disposition,
    cause: &'static str,
    code: Option<u16>,
}

/// State of a call actor.
pub struct CallState {
    id: CallId,
    myself: ActorRef<CallMsg>,
    ctx: Arc<CallContext>,
    phase: Phase,
    a: ALeg,
    b: Option<BLeg>,
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
    codec: Option<String>,
    start_ms: u64,
    answer_ms: Option<u64>,
    cancel_pending: bool,
    /// Requests relayed to the other leg, by the branch we sent them with.
    relayed: HashMap<String, Relayed>,
    /// ACKs we sent for 2xx responses, by leg and CSeq, re-sent when the
    /// 2xx is retransmitted.
    acks: HashMap<(Side, u32), rsip::Request>,
    /// Branches of BYEs we sent and still wait for.
    byes: Vec<String>,
    no_answer_at: Option<Instant>,
    /// Until when we wait for the caller's ACK of our 200 (64*T1, like Timer L).
    ack_wait_until: Option<Instant>,
    session_at: Option<Instant>,
    session_interval: Option<Duration>,
    end_at: Option<Instant>,
    /// When the answered call reaches `[sip] max_call_secs`.
    max_end_at: Option<Instant>,
    /// When to look at the relay's last packet again (`[media] rtp_timeout_secs`).
    rtp_check_at: Option<Instant>,
    /// Since when media is expected: the answer, or the last hold/unhold.
    rtp_since: Instant,
    timer: crate::timer::Deadline,
    outcome: Option<Outcome>,
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
        let call_id = args.invite.call_id().unwrap_or_default();
        args.ctx.endpoint.send_message(EndpointMsg::Register {
            call_id: call_id.clone(),
            owner: Owner::Call(myself.clone()),
        })?;
        let trunk_in = args
            .ctx
            .config
            .trunk_for_source(args.peer.addr.ip())
            .map(|t| t.name.clone());
        Ok(CallState {
            src: build::calling(&args.invite),
            dst: build::dialed(&args.invite).unwrap_or_default(),
            a: ALeg {
                invite: args.invite,
                key: args.key,
                peer: args.peer,
                tag: message::new_tag(),
                call_id,
                dialog: None,
                final_sent: false,
                remote_media: None,
                held: false,
            },
            id: args.id,
            myself: myself.clone(),
            ctx: args.ctx,
            phase: Phase::Trying,
            b: None,
            trunk: None,
            relay: None,
            fork_app: None,
            fork: None,
            charging: None,
            journal: None,
            user: args.user,
            trunk_in,
            codec: None,
            start_ms: now_unix_ms(),
            answer_ms: None,
            cancel_pending: false,
            relayed: HashMap::new(),
            acks: HashMap::new(),
            byes: Vec::new(),
            no_answer_at: None,
            ack_wait_until: None,
            session_at: None,
            session_interval: None,
            end_at: None,
            max_end_at: None,
            rtp_check_at: None,
            rtp_since: Instant::now(),
            timer: crate::timer::Deadline::default(),
            outcome: None,
            published: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        state.setup();
        state.after(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Sip(ev) => state.on_sip(ev),
            CallMsg::Timer(gen) => {
                if state.timer.fired(gen) {
                    state.on_timer(Instant::now());
                }
            }
            CallMsg::Hangup => state.hangup("operator", 480),
            CallMsg::End(cause) => state.hangup(cause, 480),
            // Only calls answered by the gateway itself are answered or refused on request.
            CallMsg::Answer | CallMsg::Reject(_) => {}
            CallMsg::Charge(ev) => state.on_charge(ev),
            CallMsg::Crash => panic!("call {} crashed on purpose (test hook)", state.id),
        }
        state.after(&myself).await;
        Ok(())
    }
}

impl CallState {
    fn send(&self, msg: EndpointMsg) {
        let _ = self.ctx.endpoint.send_message(msg);
    }

    fn respond_a(&mut self, code: u16, sdp: Option<Vec<u8>>) {
        if self.a.final_sent {
            return;
        }
        if code >= 200 {
            self.a.final_sent = true;
        }
        let contact = self.ctx.contact(self.a.peer.transport);
        let contact = (code < 300).then_some(contact.as_str());
        let mut resp = build::response_to(&self.a.invite, code, Some(&self.a.tag), contact, sdp);
        if code == 200 {
            if let Some(se) = self.session_interval {
                resp.headers.push(rsip::Header::Other(
                    "Session-Expires".into(),
                    format!("{};refresher=uac", se.as_secs()),
                ));
                resp.headers.push(rsip::Header::Require("timer".into()));
            }
        }
        self.send(EndpointMsg::SendResponse {
            key: self.a.key.clone(),
            response: resp,
        });
    }

    fn fail(&mut self, code: u16, disposition: Disposition, cause: &'static str) {
        self.respond_a(code, None);
        self.finish(disposition, cause, Some(code));
    }

    fn finish(&mut self, disposition: Disposition, cause: &'static str, code: Option<u16>) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome {
                disposition,
                cause,
                code,
            });
        }
        self.phase = Phase::Ending;
    }

    /// Route the call and send the INVITE to the trunk.
    fn setup(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        if build::max_forwards(&self.a.invite) == 0 {
            return self.fail(483, Disposition::Failed, "too many hops");
        }
        let Some((route, number)) = ctx.config.dial(&self.dst) else {
            tracing::info!(call = %self.id, dst = %mask_number(&self.dst), "no route");
            return self.fail(404, Disposition::Failed, "no route");
        };
        let trunk_name = match &route.to {
            RouteTarget::Trunk(name) => name.clone(),
            // The supervisor hands calls for local targets to a `UaCall`.
            RouteTarget::Fax | RouteTarget::App(_) | RouteTarget::Device(_) => {
                return self.fail(500, Disposition::Failed, "not a trunk route")
            }
        };
        let (Some(trunk), Some(handle)) =
            (ctx.config.trunk(&trunk_name), ctx.trunks.get(&trunk_name))
        else {
            return self.fail(503, Disposition::Congestion, "unknown trunk");
        };
        if handle.status.borrow().is_down() {
            return self.fail(503, Disposition::Congestion, "trunk down");
        }
        self.trunk = Some(trunk.clone());
        self.fork_app = route.fork.as_deref().and_then(|name| {
            ctx.config
                .app(name)
                .map(|app| (app.clone(), app.parameters_with(&route.parameters)))
        });
        let origin = match (
            self.trunk_in.as_deref().and_then(|n| ctx.config.trunk(n)),
            self.user
                .as_deref()
                .and_then(|u| ctx.config.sip.users.iter().find(|x| x.username == u)),
        ) {
            (Some(t), _) => crate::billing::Origin::Trunk(t),
            (None, Some(u)) => crate::billing::Origin::User(u),
            (None, None) => crate::billing::Origin::Unproven,
        };
        match crate::billing::rate_call(&ctx.config, route, trunk, origin, &self.src) {
            crate::billing::Charge::Free => self.dial(number),
            crate::billing::Charge::Rated(rating) => self.ask_admission(rating, number),
            crate::billing::Charge::NoAccount => {
                tracing::warn!(call = %self.id, route = %mask_number(&route.pattern.to_string()), "rated route without a payer: set a fixed account on the route, the inbound trunk, the sip_user or [billing] (caller names a payer only for calls from a trunk)");
                let code = ctx.config.billing.reject_status;
                self.fail(code, Disposition::Failed, "no account")
            }
        }
    }

    /// Anchor the media and send the INVITE to the trunk chosen by [`Self::setup`].
    fn dial(&mut self, number: String) {
        let ctx = Arc::clone(&self.ctx);
        let Some(trunk) = self.trunk.clone() else {
            return self.fail(500, Disposition::Failed, "internal");
        };
        if !build::has_sdp(&self.a.invite, &self.a.invite.body) {
            // Late offer is not supported yet: refuse clearly.
            return self.fail(488, Disposition::Failed, "no SDP offer");
        }
        let (Some(pa), Some(pb)) = (ctx.ports.allocate(), ctx.ports.allocate()) else {
            return self.fail(503, Disposition::Congestion, "no media ports");
        };
        let relay = Relay::start(
            pa,
            pb,
            Some(self.a.peer.addr.ip()),
            Some(trunk.address.ip()),
        );
        let anchored = match build::anchor(&self.a.invite.body, ctx.media_ip, relay.port(Side::B)) {
            Ok(a) => a,
            Err(err) => {
                tracing::info!(call = %self.id, %err, "bad SDP offer");
                return self.fail(488, Disposition::Failed, "bad SDP offer");
            }
        };
        if let Some(audio) = &anchored.audio {
            let target = match crate::media::policy(&ctx).check(audio.addr, audio.port) {
                Ok(t) => t,
                Err(err) => {
                    metrics::counter!("switchboard_sdp_refused_total").increment(1);
                    tracing::info!(call = %self.id, %err, "SDP offer refused");
                    return self.fail(488, Disposition::Failed, "media address refused");
                }
            };
            self.a.remote_media = target.addr();
            self.a.held = build::on_hold(audio);
            relay.set_remote(Side::A, self.a.remote_media);
            self.codec = audio.codecs.first().cloned();
        }
        self.relay = Some(relay);
        if let Some(se) = build::session_expires(&self.a.invite) {
            self.session_interval = Some(Duration::from_secs(u64::from(se)));
        }
        let peer = Peer {
            addr: trunk.address,
            transport: crate::context::sip_transport(trunk.transport),
        };
        let b_call_id = format!("{}@{}", self.id, ctx.sip_addr.ip());
        let from_tag = message::new_tag();
        let branch = message::new_branch();
        let uri = format!("sip:{}@{}", number, trunk.address);
        let from_domain = trunk
            .from_domain
            .clone()
            .unwrap_or_else(|| ctx.sip_addr.ip().to_string());
        let contact = ctx.contact(peer.transport);
        let via = ctx.via_host(peer.transport);
        let invite = build::outbound_invite(
            build::OutboundInvite {
                uri: &uri,
                src: &self.src,
                from_domain: &from_domain,
                from_tag: &from_tag,
                call_id: &b_call_id,
                cseq: 1,
                branch: &branch,
                via_host: &via,
                transport: peer.transport,
                contact: &contact,
                max_forwards: build::max_forwards(&self.a.invite)
                    .saturating_sub(1)
                    .min(70),
                user_agent: &ctx.config.sip.user_agent,
                body: anchored.body,
            },
            Some(&self.a.invite),
        );
        let invite = match invite {
            Ok(i) => i,
            Err(err) => {
                // rsip's error quotes its input (the dialled number): log only its kind.
                let err = switchboard_sip::message::SyntaxError::from(err);
                tracing::warn!(call = %self.id, %err, "cannot build INVITE to trunk");
                return self.fail(500, Disposition::Failed, "internal");
            }
        };
        tracing::debug!(call = %self.id, src = %mask_number(&self.src), dst = %mask_number(&self.dst), trunk = %trunk.name, "outbound INVITE");
        self.send(EndpointMsg::Register {
            call_id: b_call_id.clone(),
            owner: Owner::Call(self.myself.clone()),
        });
        self.send(EndpointMsg::SendRequest {
            peer,
            request: invite.clone(),
        });
        self.no_answer_at = Some(Instant::now() + ctx.config.sip.no_answer_timeout);
        self.b = Some(BLeg {
            invite: Some(invite),
            peer,
            call_id: b_call_id,
            dialog: None,
            provisional: false,
            auth_tries: 0,
            cancel_sent: false,
            invite_done: false,
            remote_media: None,
            held: false,
        });
    }
}
