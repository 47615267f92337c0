//! Scenario tests of [`EndpointCore`], the one-leg call, on the same virtual clock, lossy
//! network and scripted peer UAs as the B2BUA's: the gateway's transaction layer and the
//! core on one side, one peer (a caller calling in, or a trunk we call) on the other.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rsip::Method;
use switchboard_sip::message::parse;
use switchboard_sip::transaction::{Timers, TransactionEvent, TransactionLayer};

use super::{udp, Act, Net, Ua, CALLER, GW, MEDIA_IP, MS, SEC, TRUNK};
use crate::{
    CallFailure, Credentials, EndpointCommand, EndpointConfig, EndpointCore, EndpointDial,
    EndpointEvent, EndpointMode, EndpointOutput, FaxCode, FaxConfig, HangupCause, MediaRefused,
    Outcome, SipEvent, SipOutput, T38Failure,
};

const PORT: u16 = 31000;

fn config(mode: EndpointMode) -> EndpointConfig {
    EndpointConfig {
        mode,
        timing: crate::CallConfig::default(),
        media_ip: MEDIA_IP,
        sdp_session: 42,
        fax: (mode == EndpointMode::Fax).then(|| FaxConfig {
            switch_after: 3 * SEC,
            deadline: 40 * SEC,
            offer: vec!["T38FaxVersion:0".into(), "T38MaxBitRate:14400".into()],
            answer: Box::new(|_| vec!["T38FaxVersion:0".into()]),
        }),
    }
}

fn policy() -> crate::MediaPolicy {
    Box::new(|ip: IpAddr, port: u16| {
        if ip == IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66)) {
            Err(MediaRefused)
        } else if port == 0 || ip.is_unspecified() {
            Ok(None)
        } else {
            Ok(Some(SocketAddr::new(ip, port)))
        }
    })
}

/// The gateway, one peer, one clock, one network.
struct EWorld {
    now: Instant,
    base: Instant,
    net: Net,
    tl: TransactionLayer,
    core: Option<EndpointCore>,
    mode: EndpointMode,
    peer: Ua,
    events: Vec<(Duration, EndpointEvent)>,
    outcome: Option<(Outcome, Option<u16>)>,
    done_at: Option<Duration>,
    commands: Vec<(Instant, EndpointCommand)>,
    credentials: Option<Credentials>,
    /// Inbound: answer [`EndpointEvent::AnswerNow`] with a port.
    auto_answer: bool,
    /// `[media] rtp_timeout_secs` for the core.
    rtp_timeout: Option<Duration>,
    started: bool,
}

impl EWorld {
    fn new(seed: u64, loss: f64, jitter: Duration, mode: EndpointMode, inbound: bool) -> Self {
        let base = Instant::now();
        let peer = if inbound {
            Ua::new(CALLER, base, "caller1")
        } else {
            Ua::new(TRUNK, base, "callee1")
        };
        Self {
            now: base,
            base,
            net: Net {
                rng: StdRng::seed_from_u64(seed),
                loss,
                latency: MS,
                jitter,
                queue: Vec::new(),
                seq: 0,
            },
            tl: TransactionLayer::new(Timers::default()),
            core: None,
            mode,
            peer,
            events: Vec::new(),
            outcome: None,
            done_at: None,
            commands: Vec::new(),
            credentials: None,
            auto_answer: true,
            rtp_timeout: None,
            started: false,
        }
    }

    fn inbound(mode: EndpointMode) -> Self {
        Self::new(1, 0.0, Duration::ZERO, mode, true)
    }

    fn outbound(mode: EndpointMode) -> Self {
        Self::new(1, 0.0, Duration::ZERO, mode, false)
    }

    fn dial() -> EndpointDial {
        EndpointDial {
            peer: udp(TRUNK),
            via_host: "192.0.2.1:5060".into(),
            contact: "sip:gw@192.0.2.1".into(),
            uri: "sip:15551234567@198.51.100.20".into(),
            src: "alice".into(),
            from_domain: "192.0.2.1".into(),
            call_id: "ua-leg@192.0.2.1".into(),
            user_agent: "switchboard-test".into(),
            credentials: None,
            port: PORT,
        }
    }

    fn command_at(&mut self, at: Duration, cmd: EndpointCommand) {
        self.commands.push((self.base + at, cmd));
    }

    fn peer_at(&mut self, at: Duration, act: Act) {
        self.peer.acts.push((self.base + at, act));
    }

    fn on_event(&mut self, now: Instant, ev: TransactionEvent) {
        let sip = match ev {
            TransactionEvent::Request { key, request, peer } => {
                if self.core.is_none() {
                    if self.outcome.is_none() && request.method == Method::Invite {
                        let Some(key) = key else { return };
                        let leg = EndpointCore::callee_leg(
                            peer,
                            "192.0.2.1:5060".into(),
                            "sip:gw@192.0.2.1".into(),
                            key,
                            request,
                        );
                        let mut cfg = config(self.mode);
                        cfg.timing.rtp_timeout = self.rtp_timeout;
                        self.core = Some(EndpointCore::inbound(now, leg, cfg, policy()));
                    }
                    return;
                }
                SipEvent::Request { key, request, peer }
            }
            TransactionEvent::Cancelled { invite, .. } => SipEvent::Cancelled { invite },
            TransactionEvent::Response { response, .. }
            | TransactionEvent::StrayResponse { response, .. } => SipEvent::Response { response },
            TransactionEvent::Timeout { key } => SipEvent::Timeout {
                branch: key.branch().to_string(),
            },
            TransactionEvent::AckTimeout { .. } => return,
        };
        if let Some(core) = self.core.as_mut() {
            core.handle_sip(now, sip);
        }
    }

    fn drain(&mut self, now: Instant) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        while let Some(o) = core.poll_output() {
            match o {
                EndpointOutput::Sip(SipOutput::Request { peer, request }) => {
                    self.tl.send_request(now, peer, request);
                }
                EndpointOutput::Sip(SipOutput::Response { key, response }) => {
                    let _ = self.tl.send_response(now, &key, response);
                }
                EndpointOutput::Sip(SipOutput::Stateless { peer, request }) => {
                    self.tl.send_stateless(peer, request.into());
                }
                EndpointOutput::Event(e) => {
                    if e == EndpointEvent::AnswerNow && self.auto_answer {
                        core.handle_command(now, EndpointCommand::Answer { port: Some(PORT) });
                    }
                    self.events.push((now - self.base, e));
                }
            }
        }
        if core.is_done() {
            self.outcome = core.outcome();
            self.done_at = Some(now - self.base);
            self.core = None;
        }
    }

    fn pump(&mut self) {
        let now = self.now;
        for _ in 0..64 {
            let mut busy = false;
            while let Some(ev) = self.peer.tl.poll_event() {
                busy = true;
                if !self.peer.mute {
                    self.peer.on_event(now, ev);
                }
            }
            while let Some(ev) = self.tl.poll_event() {
                busy = true;
                self.on_event(now, ev);
            }
            self.drain(now);
            for (from, tl) in [(GW, &mut self.tl), (self.peer.addr, &mut self.peer.tl)] {
                while let Some(t) = tl.poll_transmit() {
                    busy = true;
                    self.net.send(now, from, t.peer.addr, t.data);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("no quiescence at one instant");
    }

    fn step(&mut self) {
        let now = self.now;
        for (from, to, data) in self.net.take_due(now) {
            let Ok(msg) = parse(&data) else {
                panic!("unparseable datagram {from} -> {to}");
            };
            if to == GW {
                self.tl.handle_message(now, udp(from), msg);
            } else if to == self.peer.addr
                && !self.peer.mute
                && self.peer.deaf_until.is_none_or(|t| now >= t)
            {
                self.peer.tl.handle_message(now, udp(from), msg);
            }
        }
        self.pump();
        self.tl.handle_timeout(now);
        self.peer.tl.handle_timeout(now);
        let due: Vec<Act> = self
            .peer
            .acts
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, a)| a.clone())
            .collect();
        self.peer.acts.retain(|(t, _)| *t > now);
        for a in due {
            self.peer.act(now, a);
        }
        let cmds: Vec<EndpointCommand> = self
            .commands
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, c)| c.clone())
            .collect();
        self.commands.retain(|(t, _)| *t > now);
        if let Some(core) = self.core.as_mut() {
            for c in cmds {
                core.handle_command(now, c);
            }
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now);
            }
        }
        self.pump();
    }

    fn next_at(&self) -> Option<Instant> {
        [
            self.net.next_at(),
            self.tl.poll_timeout(),
            self.peer.tl.poll_timeout(),
            self.core.as_ref().and_then(EndpointCore::poll_timeout),
            self.peer.acts.iter().map(|a| a.0).min(),
            self.commands.iter().map(|a| a.0).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Start (the caller's INVITE, or our dial) and run until `limit` after the start.
    fn run(&mut self, limit: Duration) {
        if !self.started {
            self.started = true;
            if self.peer.addr == CALLER {
                self.peer.invite(self.now, None);
            } else {
                let mut cfg = config(self.mode);
                cfg.timing.rtp_timeout = self.rtp_timeout;
                let mut core = EndpointCore::outbound(self.now, cfg, policy());
                let mut dial = Self::dial();
                dial.credentials = self.credentials.clone();
                core.handle_command(self.now, EndpointCommand::Dial(Box::new(dial)));
                self.core = Some(core);
            }
        }
        let end = self.base + limit;
        let mut steps = 0;
        loop {
            self.step();
            steps += 1;
            assert!(steps < 200_000, "runaway scenario");
            match self.next_at() {
                Some(t) if t <= end => self.now = t.max(self.now),
                _ => break,
            }
        }
    }

    fn outcome(&self) -> Outcome {
        self.outcome.expect("the call is done").0
    }

    fn status(&self) -> Option<u16> {
        self.outcome.expect("the call is done").1
    }

    fn saw(&self, pred: impl Fn(&EndpointEvent) -> bool) -> bool {
        self.events.iter().any(|(_, e)| pred(e))
    }
}

const AUDIO: EndpointMode = EndpointMode::Audio { ring_first: false };
const RING: EndpointMode = EndpointMode::Audio { ring_first: true };

fn answered_script() -> Vec<(Duration, Act)> {
    vec![
        (10 * MS, Act::Respond(180, false)),
        (SEC, Act::Respond(200, true)),
    ]
}

#[test]
fn outbound_call_is_answered_and_ends_with_the_trunks_bye() {
    let mut w = EWorld::outbound(AUDIO);
    w.peer.script = answered_script();
    w.peer_at(5 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));
    // The trunk's transaction layer sent 100 first: as before issue 13, Ringing is only
    // reported when the first provisional is above 100 (decisions 16.6).
    assert!(!w.saw(|e| *e == EndpointEvent::Ringing));
    assert!(w.saw(|e| *e == EndpointEvent::Answered));
    assert!(w.saw(|e| matches!(
        e,
        EndpointEvent::Audio { remote: Some(r), .. } if r.port() == 5000
    )));
    assert!(w.peer.saw("ACK"));
    assert!(w.peer.saw("200 BYE"));
    let offer = String::from_utf8_lossy(&w.peer.invites[0].body).to_string();
    assert!(
        offer.contains(&format!("m=audio {PORT} RTP/AVP")),
        "{offer}"
    );
}

#[test]
fn outbound_failures_keep_their_status_and_fax_code() {
    for (code, failure, fax) in [
        (486, CallFailure::Busy, FaxCode::Busy),
        (404, CallFailure::Unallocated, FaxCode::Unallocated),
        (503, CallFailure::Congestion, FaxCode::Congestion),
        (
            480,
            CallFailure::NoAnswer { status: 480 },
            FaxCode::NoAnswer,
        ),
    ] {
        let mut w = EWorld::outbound(EndpointMode::Fax);
        w.peer.script = vec![
            (10 * MS, Act::Respond(180, false)),
            (SEC, Act::Respond(code, false)),
        ];
        w.run(120 * SEC);
        assert_eq!(w.outcome(), Outcome::Failed(failure), "{code}");
        assert_eq!(w.status(), Some(code));
        assert_eq!(failure.fax_code(), fax);
    }
}

#[test]
fn outbound_no_answer_cancels_after_the_timeout() {
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.script = vec![(10 * MS, Act::Respond(180, false))];
    w.run(200 * SEC);
    assert_eq!(
        w.outcome(),
        Outcome::Failed(CallFailure::NoAnswer { status: 408 })
    );
    assert_eq!(w.status(), Some(408));
    let cancel = w.peer.first("CANCEL").expect("CANCEL sent");
    assert!(cancel >= 60 * SEC && cancel < 61 * SEC, "{cancel:?}");
}

#[test]
fn hangup_while_ringing_cancels_and_is_no_answer_for_the_fax_job() {
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.script = vec![(10 * MS, Act::Respond(180, false))];
    w.command_at(2 * SEC, EndpointCommand::Hangup(HangupCause::Operator));
    w.run(120 * SEC);
    let f = CallFailure::Abandoned(HangupCause::Operator);
    assert_eq!(w.outcome(), Outcome::Failed(f));
    assert_eq!(f.fax_code(), FaxCode::NoAnswer);
    assert!(w.peer.saw("CANCEL"));
    assert!(w.done_at.expect("done") < 3 * SEC);
}

#[test]
fn hangup_before_any_provisional_cancels_once_one_arrives() {
    let mut w = EWorld::outbound(AUDIO);
    w.peer.deaf_until = Some(w.base + SEC);
    w.peer.script = vec![(10 * MS, Act::Respond(180, false))];
    w.command_at(100 * MS, EndpointCommand::Hangup(HangupCause::DeviceHangup));
    w.run(120 * SEC);
    assert!(w.peer.saw("CANCEL"), "{:?}", w.peer.got);
    assert_eq!(
        w.outcome(),
        Outcome::Failed(CallFailure::Abandoned(HangupCause::DeviceHangup))
    );
}

#[test]
fn late_200_after_cancel_is_acked_and_byed() {
    let mut w = EWorld::outbound(AUDIO);
    w.peer.script = vec![
        (10 * MS, Act::Respond(180, false)),
        (SEC, Act::Respond(200, true)),
    ];
    // The CANCEL leaves at 1.0015 s and reaches the trunk after its 200 (sent at 1.002 s).
    w.command_at(
        SEC + Duration::from_micros(1500),
        EndpointCommand::Hangup(HangupCause::Operator),
    );
    w.run(120 * SEC);
    assert!(w.peer.saw("ACK"), "{:?}", w.peer.got);
    assert!(w.peer.saw("BYE"), "{:?}", w.peer.got);
    assert!(w.done_at.is_some());
    assert!(!w.saw(|e| *e == EndpointEvent::Answered));
}

#[test]
fn digest_challenge_is_answered() {
    let mut w = EWorld::outbound(AUDIO);
    w.credentials = Some(Credentials {
        user: "gw".into(),
        password: "secret".into(),
    });
    w.peer.challenges = 1;
    w.peer.script = answered_script();
    w.peer_at(5 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert_eq!(w.peer.invites.len(), 2);
    assert!(w.peer.invites[1]
        .headers
        .iter()
        .any(|h| matches!(h, rsip::Header::Authorization(_))));
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));

    // Without credentials the challenge is the failure.
    let mut w = EWorld::outbound(AUDIO);
    w.peer.challenges = 1;
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Failed(CallFailure::TrunkAuthFailed));
    assert_eq!(w.status(), Some(401));
}

#[test]
fn a_mute_trunk_is_unreachable_congestion() {
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.mute = true;
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Failed(CallFailure::TrunkTimeout));
    assert_eq!(w.status(), Some(503));
    assert!(w.saw(|e| *e == EndpointEvent::TrunkUnreachable));
    assert_eq!(CallFailure::TrunkTimeout.fax_code(), FaxCode::Congestion);
}

#[test]
fn our_bye_ends_an_answered_call() {
    let mut w = EWorld::outbound(AUDIO);
    w.peer.script = answered_script();
    w.command_at(5 * SEC, EndpointCommand::Hangup(HangupCause::AppGone));
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::AppGone));
    assert!(w.peer.saw("BYE"));
    assert!(w.done_at.expect("done") < 6 * SEC, "the BYE's 200 ends it");
}

#[test]
fn failed_dial_commands_end_an_outbound_call() {
    let now = Instant::now();
    let mut core = EndpointCore::outbound(now, config(EndpointMode::Fax), policy());
    core.handle_command(
        now,
        EndpointCommand::Fail {
            failure: CallFailure::T38Disabled,
            status: None,
        },
    );
    assert!(core.is_done());
    assert_eq!(
        core.outcome(),
        Some((Outcome::Failed(CallFailure::T38Disabled), None))
    );
    assert_eq!(CallFailure::T38Disabled.fax_code(), FaxCode::T38Disabled);
}

// ----- inbound -----

#[test]
fn inbound_audio_call_is_answered_at_once_and_ends_with_the_callers_bye() {
    let mut w = EWorld::inbound(AUDIO);
    w.peer_at(5 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert_eq!(w.peer.invite_finals(), vec![200]);
    assert!(
        w.saw(|e| matches!(e, EndpointEvent::Audio { remote: Some(r), .. } if r.port() == 4000))
    );
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));
}

#[test]
fn inbound_ringing_call_is_answered_or_rejected_by_command() {
    let mut w = EWorld::inbound(RING);
    w.command_at(3 * SEC, EndpointCommand::Answer { port: Some(PORT) });
    w.peer_at(6 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert!(w.peer.saw("180 INVITE"));
    let answered = w.peer.first("200 INVITE").expect("answered");
    assert!(answered >= 3 * SEC, "{answered:?}");
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));

    let mut w = EWorld::inbound(RING);
    w.command_at(3 * SEC, EndpointCommand::Reject(486));
    w.run(120 * SEC);
    assert_eq!(w.peer.invite_finals(), vec![486]);
    assert_eq!(w.outcome(), Outcome::Failed(CallFailure::Busy));
    assert_eq!(w.status(), Some(486));

    // Ringing too long: 480, recorded as no answer (408).
    let mut w = EWorld::inbound(RING);
    w.run(120 * SEC);
    assert_eq!(w.peer.invite_finals(), vec![480]);
    assert_eq!(
        w.outcome(),
        Outcome::Failed(CallFailure::NoAnswer { status: 408 })
    );
}

#[test]
fn inbound_cancel_while_ringing_is_487() {
    let mut w = EWorld::inbound(RING);
    w.peer_at(2 * SEC, Act::Cancel);
    w.run(120 * SEC);
    assert_eq!(w.peer.invite_finals(), vec![487]);
    assert_eq!(w.outcome(), Outcome::Failed(CallFailure::Cancelled));
    assert_eq!(w.status(), Some(487));
}

#[test]
fn inbound_without_a_port_is_503() {
    let mut w = EWorld::inbound(AUDIO);
    w.auto_answer = false;
    w.command_at(MS * 5, EndpointCommand::Answer { port: None });
    w.run(120 * SEC);
    assert_eq!(w.peer.invite_finals(), vec![503]);
    assert_eq!(w.outcome(), Outcome::Failed(CallFailure::NoMediaPorts));
}

#[test]
fn inbound_call_without_an_ack_is_hung_up() {
    let mut w = EWorld::inbound(AUDIO);
    w.peer.ack_2xx = false;
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::NoAck));
    assert!(w.peer.saw("BYE"));
}

// ----- T.38 -----

#[test]
fn fax_switches_to_t38_when_the_far_end_accepts_our_reinvite() {
    let mut w = EWorld::inbound(EndpointMode::Fax);
    w.peer.accept_t38 = true;
    w.peer_at(20 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert!(w.saw(|e| *e == EndpointEvent::OfferingT38));
    assert!(w.saw(|e| matches!(
        e,
        EndpointEvent::T38 { remote, renegotiated: false, .. } if remote.port() == 4100
    )));
    let (at, _) = w
        .events
        .iter()
        .find(|(_, e)| *e == EndpointEvent::OfferingT38)
        .expect("offered");
    assert!(*at >= 3 * SEC && *at < 4 * SEC, "{at:?}");
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));
    assert_eq!(HangupCause::RemoteHangup.fax_code(), None);
}

#[test]
fn fax_ends_t38_refused_when_the_far_end_refuses() {
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.script = answered_script();
    w.peer.reinvite_status = 488;
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::T38Refused));
    assert_eq!(w.status(), Some(488));
    assert!(w.saw(|e| *e == EndpointEvent::T38Failed(T38Failure::Refused)));
    assert!(w.peer.saw("BYE"));
    assert_eq!(
        HangupCause::T38Refused.fax_code(),
        Some(FaxCode::T38Refused)
    );

    // A 2xx answering our T.38 offer with audio is a refusal too.
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.script = answered_script();
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::T38Refused));
    assert_eq!(w.status(), Some(200));
}

#[test]
fn the_far_ends_t38_reinvite_is_accepted() {
    let mut w = EWorld::outbound(EndpointMode::Fax);
    w.peer.script = answered_script();
    w.peer_at(2 * SEC, Act::ReInviteT38);
    w.peer_at(10 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert!(w.saw(|e| matches!(e, EndpointEvent::T38 { remote, .. } if remote.port() == 4100)));
    assert!(
        !w.saw(|e| *e == EndpointEvent::OfferingT38),
        "no switch of ours"
    );
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));
}

#[test]
fn audio_calls_refuse_t38() {
    let mut w = EWorld::inbound(AUDIO);
    w.peer_at(2 * SEC, Act::ReInviteT38);
    w.peer_at(5 * SEC, Act::Bye);
    w.run(120 * SEC);
    assert!(w.peer.saw("488 INVITE"), "{:?}", w.peer.got);
    assert!(!w.saw(|e| matches!(e, EndpointEvent::T38 { .. })));
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RemoteHangup));
}

#[test]
fn glare_retries_until_the_t38_deadline() {
    let mut w = EWorld::inbound(EndpointMode::Fax);
    w.peer.reinvite_status = 491;
    w.run(120 * SEC);
    let offers = w
        .events
        .iter()
        .filter(|(_, e)| *e == EndpointEvent::OfferingT38)
        .count();
    assert!(offers >= 5, "{offers} offers");
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::NoT38));
    let done = w.done_at.expect("done");
    assert!(done >= 40 * SEC && done < 42 * SEC, "{done:?}");
    assert!(w.saw(|e| *e == EndpointEvent::T38Failed(T38Failure::Timeout)));
}

#[test]
fn lossy_network_keeps_one_leg_outcomes() {
    for seed in 1..=15u64 {
        let mut w = EWorld::new(seed, 0.15, 30 * MS, AUDIO, false);
        w.peer.script = answered_script();
        w.peer_at(5 * SEC, Act::Bye);
        w.run(200 * SEC);
        assert_eq!(
            w.outcome(),
            Outcome::Ended(HangupCause::RemoteHangup),
            "seed {seed}: {:?}",
            w.peer.got
        );

        let mut w = EWorld::new(seed, 0.15, 30 * MS, EndpointMode::Fax, true);
        w.peer.accept_t38 = true;
        w.peer_at(20 * SEC, Act::Bye);
        w.run(200 * SEC);
        assert!(
            w.saw(|e| matches!(e, EndpointEvent::T38 { .. })),
            "seed {seed}: {:?}",
            w.events
        );
        assert!(w.done_at.is_some(), "seed {seed}");

        let mut w = EWorld::new(seed, 0.15, 30 * MS, EndpointMode::Fax, false);
        w.peer.script = vec![
            (10 * MS, Act::Respond(180, false)),
            (SEC, Act::Respond(486, false)),
        ];
        w.run(200 * SEC);
        assert_eq!(
            w.outcome(),
            Outcome::Failed(CallFailure::Busy),
            "seed {seed}"
        );
    }
}

#[test]
fn the_credit_reservation_ends_an_answered_call() {
    let mut w = EWorld::outbound(AUDIO);
    w.peer.script = answered_script();
    w.command_at(2 * SEC, EndpointCommand::Reserved(Ok(30 * SEC)));
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::CreditExhausted));
    assert!(w.saw(|e| *e == EndpointEvent::CreditExhausted));
    // Answered at ~1 s: the credit lasts until ~31 s.
    let done = w.done_at.expect("done");
    assert!(done >= 31 * SEC && done < 32 * SEC, "{done:?}");

    let mut w = EWorld::outbound(AUDIO);
    w.peer.script = answered_script();
    w.command_at(
        2 * SEC,
        EndpointCommand::Reserved(Err(HangupCause::NoCredit)),
    );
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::NoCredit));
    assert_eq!(HangupCause::NoCredit.fax_code(), Some(FaxCode::Rejected));
}

#[test]
fn rtp_timeout_ends_silent_audio_but_spares_fax_before_t38() {
    // Audio: nothing ever arrives, so the call ends 20 s after answer.
    let mut w = EWorld::outbound(AUDIO);
    w.rtp_timeout = Some(20 * SEC);
    w.peer.script = answered_script();
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::RtpTimeout));
    assert!(w.saw(|e| *e == EndpointEvent::RtpTimeout));
    let done = w.done_at.expect("done");
    assert!(done >= 21 * SEC && done < 22 * SEC, "{done:?}");

    // Fax still on audio: exempt (the T.38 deadline ends it instead).
    let mut w = EWorld::inbound(EndpointMode::Fax);
    w.rtp_timeout = Some(20 * SEC);
    w.peer.reinvite_status = 491;
    w.run(120 * SEC);
    assert_eq!(w.outcome(), Outcome::Ended(HangupCause::NoT38));
}
