//! The call scenarios of `tests/sip_calls.rs` against the core, on a virtual clock.

use super::*;
use crate::{CallFailure, HangupCause, Outcome, Phase, Side};

fn answered_script() -> Vec<(Duration, Act)> {
    vec![
        (10 * MS, Act::Respond(180, false)),
        (200 * MS, Act::Respond(200, true)),
    ]
}

#[test]
fn answered_call_ends_with_the_callers_bye() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.caller_at(5 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![200]);
    assert!(w.caller.saw("180 INVITE"));
    assert!(w.callee.saw("ACK"), "the gateway ACKs the callee's 200");
    assert!(w.caller.saw("200 BYE"));
    assert!(w.callee.saw("BYE"), "the BYE crosses to the callee");
    assert_eq!(
        w.gw.outcome,
        Some((Outcome::Ended(HangupCause::CallerHangup), None))
    );
    assert!(w.gw.saw(&Event::Answered));
    assert!(w.gw.saw(&Event::Phase(Phase::Answered)));
    // Both legs' media learnt from their SDP.
    assert!(w.gw.media.contains(&MediaCtl::Remote {
        side: Side::A,
        addr: Some("192.0.2.10:4000".parse().unwrap()),
    }));
    assert!(w.gw.media.contains(&MediaCtl::Remote {
        side: Side::B,
        addr: Some("198.51.100.20:5000".parse().unwrap()),
    }));
    let done = w.gw.done_at.expect("call done");
    assert!(done < 6 * SEC, "done at {done:?}");
}

#[test]
fn callee_bye_hangs_up_the_caller() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.callee_at(3 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    assert!(w.caller.saw("BYE"));
    assert!(w.callee.saw("200 BYE"));
    assert_eq!(w.cause(), "callee hangup");
}

/// Final failures from the callee: (status sent by the trunk, status the caller gets,
/// CDR cause, the status the CDR records).
#[test]
fn callee_failures_map_to_the_caller() {
    let table: &[(u16, u16, &str)] = &[
        (486, 486, "busy"),
        (600, 486, "busy"),
        (603, 603, "declined"),
        (404, 404, "unallocated number"),
        (480, 480, "no answer"),
        (503, 503, "congestion"),
        (500, 503, "congestion"),
        (403, 403, "rejected"),
        (488, 488, "rejected"),
    ];
    for &(sent, got, cause) in table {
        let mut w = World::clean();
        w.callee.script = vec![
            (10 * MS, Act::Respond(180, false)),
            (1500 * MS, Act::Respond(sent, false)),
        ];
        w.run(None, 60 * SEC);
        assert_eq!(w.caller.invite_finals(), vec![got], "{sent}");
        assert_eq!(w.cause(), cause, "{sent}");
        assert_eq!(w.gw.outcome.and_then(|o| o.1), Some(sent), "{sent}");
        assert!(w.gw.done_at.is_some(), "{sent}");
    }
}

#[test]
fn no_answer_cancels_the_callee_and_answers_408() {
    let mut w = World::clean();
    w.gw.config.no_answer = 10 * SEC;
    w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![408]);
    let cancel = w.callee.first("CANCEL").expect("callee CANCELled");
    assert!(cancel >= 10 * SEC && cancel < 11 * SEC, "{cancel:?}");
    assert_eq!(
        w.gw.outcome,
        Some((
            Outcome::Failed(CallFailure::NoAnswer { status: 408 }),
            Some(408)
        ))
    );
    assert!(w.gw.done_at.is_some());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut w = World::clean();
    // The trunk hears nothing before 1 s (the INVITE's first copies are lost), so its first
    // provisional (the 100 Trying of its transaction layer) answers the retransmission at
    // 1.5 s; the caller gives up at 0.2 s.
    w.callee.deaf_until = Some(w.base + SEC);
    w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
    w.caller_at(200 * MS, Act::Cancel);
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![487]);
    let answered = w.caller.first("487 INVITE").expect("487");
    assert!(
        answered < 300 * MS,
        "the caller is answered at once: {answered:?}"
    );
    let cancel = w.callee.first("CANCEL").expect("CANCEL sent once it rang");
    assert!(
        cancel > 1500 * MS,
        "CANCEL at {cancel:?} before any provisional (RFC 3261 §9.1)"
    );
    assert_eq!(w.cause(), "cancelled");
    assert!(w.gw.done_at.is_some());
}

#[test]
fn cancel_after_provisional_reaches_the_callee() {
    let mut w = World::clean();
    w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
    w.caller_at(SEC, Act::Cancel);
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![487]);
    let cancel = w.callee.first("CANCEL").expect("CANCEL");
    assert!(cancel < SEC + 10 * MS);
    assert_eq!(
        w.gw.outcome,
        Some((Outcome::Failed(CallFailure::Cancelled), Some(487)))
    );
    let done = w.gw.done_at.expect("done");
    assert!(done < 2 * SEC, "{done:?}");
}

#[test]
fn cancel_crossing_the_callees_200_ends_with_ack_and_bye() {
    let mut w = World::clean();
    // 1 ms each way: the gateway's CANCEL leaves before the 200 arrives and reaches the
    // callee after it answered.
    w.callee.script = vec![
        (10 * MS, Act::Respond(180, false)),
        (SEC, Act::Respond(200, true)),
    ];
    // The INVITE reaches the callee at 2 ms, so its 200 leaves at 1.002 s and reaches the
    // gateway at 1.003 s; the caller's CANCEL reaches the gateway at 1.0025 s.
    w.caller_at(SEC + Duration::from_micros(1500), Act::Cancel);
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![487]);
    assert!(
        w.callee.saw("ACK"),
        "the late 200 is ACKed: {:?} {:?} {:?}",
        w.callee.got,
        w.caller.got,
        w.gw.events
    );
    assert!(w.callee.saw("BYE"), "and hung up");
    assert_eq!(w.cause(), "cancelled");
    assert!(w.gw.done_at.is_some());
}

#[test]
fn crossed_byes_end_cleanly() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.caller_at(5 * SEC, Act::Bye);
    w.callee_at(5 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    assert!(w.caller.saw("200 BYE"));
    assert!(w.callee.saw("200 BYE") || w.callee.saw("481 BYE"));
    assert!(matches!(
        w.gw.outcome,
        Some((
            Outcome::Ended(HangupCause::CallerHangup | HangupCause::CalleeHangup),
            None
        ))
    ));
    let done = w.gw.done_at.expect("done");
    assert!(done < 6 * SEC, "{done:?}");
}

#[test]
fn requests_outside_a_dialog_get_481_and_merged_invites_482() {
    let mut w = World::clean();
    w.callee.script = vec![
        (10 * MS, Act::Respond(180, false)),
        (3 * SEC, Act::Respond(200, true)),
    ];
    w.caller_at(SEC, Act::StrayBye);
    w.caller_at(1500 * MS, Act::MergedInvite);
    w.caller_at(5 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    assert!(w.caller.saw("481 BYE"), "{:?}", w.caller.got);
    assert!(w.caller.saw("482 INVITE"), "{:?}", w.caller.got);
    // The call itself went on.
    assert!(w.caller.invite_finals().contains(&200));
    assert_eq!(w.cause(), "caller hangup");
}

#[test]
fn reinvite_is_relayed_with_anchored_sdp_and_hold_is_seen() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.caller_at(2 * SEC, Act::ReInvite("sendonly"));
    w.caller_at(3 * SEC, Act::Info);
    w.callee_at(4 * SEC, Act::ReInvite("sendrecv"));
    w.caller_at(6 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    assert!(
        w.callee.saw("INFO") && w.caller.saw("200 INFO"),
        "INFO relayed"
    );
    // The caller's hold (sendonly) was seen, and the callee's SDP in the re-INVITE reached
    // the caller anchored on the gateway.
    assert!(w.gw.media.contains(&MediaCtl::Remote {
        side: Side::A,
        addr: Some("192.0.2.10:4000".parse().unwrap()),
    }));
    let invites = w.callee.got.iter().filter(|(_, g)| g == "INVITE").count();
    assert_eq!(
        invites, 2,
        "initial + relayed re-INVITE: {:?}",
        w.callee.got
    );
    assert!(w.caller.saw("INVITE"), "the callee's re-INVITE relayed");
    let ok = w
        .caller
        .got
        .iter()
        .filter(|(_, g)| g == "200 INVITE")
        .count();
    assert_eq!(ok, 2, "{:?}", w.caller.got);
    assert!(w.callee.saw("200 INVITE"));
    let acks = w.callee.got.iter().filter(|(_, g)| g == "ACK").count();
    assert_eq!(acks, 2, "the gateway ACKs both 2xx on B");
    assert_eq!(w.cause(), "caller hangup");
}

#[test]
fn reinvite_glare_gets_491() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.caller_at(2 * SEC, Act::ReInvite("sendonly"));
    w.callee_at(2 * SEC, Act::ReInvite("sendonly"));
    w.caller_at(10 * SEC, Act::Bye);
    w.run(None, 120 * SEC);
    let glare = w.caller.saw("491 INVITE") || w.callee.saw("491 INVITE");
    assert!(glare, "caller {:?} callee {:?}", w.caller.got, w.callee.got);
    assert_eq!(w.cause(), "caller hangup");
}

#[test]
fn session_timer_refreshes_keep_the_call_and_expiry_ends_it() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.caller_at(45 * SEC, Act::ReInvite("sendrecv"));
    w.caller_at(90 * SEC, Act::ReInvite("sendrecv"));
    w.run(Some(90), 400 * SEC);
    // The last refresh at ~90 s: the session expires 90 s later.
    let done = w.gw.done_at.expect("done");
    assert!(done > 180 * SEC && done < 185 * SEC, "{done:?}");
    assert_eq!(w.cause(), "session expired");
    assert!(w.caller.saw("BYE") && w.callee.saw("BYE"));
    // RFC 4028 §9: the answer carries the interval; both refreshes were answered.
    assert_eq!(w.caller.invite_oks.len(), 3, "{:?}", w.caller.got);
    let answer = w.caller.invite_oks[0].to_string();
    assert!(answer.contains("Session-Expires: 90"), "{answer}");
}

#[test]
fn session_without_refresh_expires_after_its_interval() {
    let mut w = World::clean();
    w.callee.script = answered_script();
    w.run(Some(90), 400 * SEC);
    let done = w.gw.done_at.expect("done");
    assert!(done > 90 * SEC && done < 95 * SEC, "{done:?}");
    assert_eq!(w.cause(), "session expired");
    assert!(w.caller.saw("BYE") && w.callee.saw("BYE"));
}

#[test]
fn digest_challenge_is_answered_then_given_up_after_the_limit() {
    let mut w = World::clean();
    w.gw.credentials = Some(Credentials {
        user: "trunkuser".into(),
        password: "s3cret".into(),
    });
    w.callee.challenges = 1;
    w.callee.script = answered_script();
    w.caller_at(3 * SEC, Act::Bye);
    w.run(None, 60 * SEC);
    assert_eq!(w.callee.invites.len(), 2);
    assert!(w.callee.invites[1].header_value("Authorization").is_some());
    assert_eq!(w.caller.invite_finals(), vec![200]);

    let mut w = World::clean();
    w.gw.credentials = Some(Credentials {
        user: "trunkuser".into(),
        password: "wrong".into(),
    });
    w.callee.challenges = 10;
    w.run(None, 60 * SEC);
    assert_eq!(w.callee.invites.len(), 3, "first try + 2 retries");
    assert_eq!(w.caller.invite_finals(), vec![503]);
    assert_eq!(w.cause(), "trunk authentication failed");
}

#[test]
fn early_media_183_is_anchored_toward_the_caller() {
    let mut w = World::clean();
    w.callee.script = vec![
        (10 * MS, Act::Respond(183, true)),
        (SEC, Act::Respond(486, false)),
    ];
    w.run(None, 60 * SEC);
    assert!(w.caller.saw("183 INVITE"));
    assert!(w.gw.media.contains(&MediaCtl::Remote {
        side: Side::B,
        addr: Some("198.51.100.20:5000".parse().unwrap()),
    }));
    assert_eq!(w.caller.invite_finals(), vec![486]);
    assert_eq!(w.cause(), "busy");
}

#[test]
fn timer_b_marks_the_trunk_unreachable() {
    let mut w = World::clean();
    w.callee.mute = true;
    w.run(None, 120 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![503]);
    assert!(w.gw.saw(&Event::TrunkUnreachable));
    assert_eq!(
        w.gw.outcome,
        Some((Outcome::Failed(CallFailure::TrunkTimeout), Some(503)))
    );
    let done = w.gw.done_at.expect("done");
    assert!(done >= 32 * SEC && done < 33 * SEC, "{done:?}");
}

#[test]
fn timer_l_hangs_up_a_caller_that_never_acks() {
    let mut w = World::clean();
    w.caller.ack_2xx = false;
    w.callee.script = answered_script();
    w.run(None, 120 * SEC);
    assert_eq!(w.cause(), "no ACK");
    assert!(w.callee.saw("BYE"));
}

#[test]
fn callee_leaving_its_early_dialog_fails_the_call() {
    let mut w = World::clean();
    w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
    // The callee's early dialog: a BYE from the callee needs a dialog on its side.
    w.callee_at(SEC, Act::Bye);
    w.run(None, 60 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![480]);
    assert_eq!(w.cause(), "callee left early");
}

#[test]
fn policy_timers_end_answered_calls() {
    // (setup, expected cause)
    type Setup = fn(&mut World);
    let table: &[(Setup, &str)] = &[
        (|w| w.gw.config.max_call = 30 * SEC, "max duration"),
        (|w| w.gw.config.rtp_timeout = Some(20 * SEC), "rtp timeout"),
        (
            |w| w.command_at(2 * SEC, Command::Reserved(Ok(10 * SEC))),
            "credit exhausted",
        ),
        (
            |w| w.command_at(2 * SEC, Command::Reserved(Err(HangupCause::NoCredit))),
            "no credit",
        ),
        (
            |w| w.command_at(2 * SEC, Command::Hangup(HangupCause::Shutdown)),
            "shutdown",
        ),
    ];
    for (setup, cause) in table {
        let mut w = World::clean();
        w.callee.script = answered_script();
        setup(&mut w);
        w.run(None, 300 * SEC);
        assert_eq!(w.cause(), *cause);
        assert!(w.caller.saw("BYE") && w.callee.saw("BYE"), "{cause}");
    }
}

#[test]
fn operator_hangup_before_answer_is_480() {
    let mut w = World::clean();
    w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
    w.command_at(SEC, Command::Hangup(HangupCause::Operator));
    w.run(None, 60 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![480]);
    assert!(w.callee.saw("CANCEL"));
    assert_eq!(
        w.gw.outcome,
        Some((
            Outcome::Failed(CallFailure::Abandoned(HangupCause::Operator)),
            Some(480)
        ))
    );
}

#[test]
fn cancel_while_waiting_for_admission_never_dials() {
    let mut w = World::clean();
    w.gw.auto_dial = false;
    w.caller_at(SEC, Act::Cancel);
    let dial = w.gw.dial();
    w.command_at(2 * SEC, Command::Dial(Box::new(dial)));
    w.run(None, 60 * SEC);
    assert_eq!(w.caller.invite_finals(), vec![487]);
    assert!(w.callee.invites.is_empty());
    assert_eq!(w.cause(), "cancelled");
}

/// The same calls over a lossy, reordering network, on many seeds: every call reaches the
/// same outcome and the gateway always finishes.
#[test]
fn lossy_network_keeps_outcomes() {
    for seed in 1..=25u64 {
        let mut w = World::new(seed, 0.15, 30 * MS);
        w.callee.script = answered_script();
        w.caller_at(5 * SEC, Act::Bye);
        w.run(None, 200 * SEC);
        assert_eq!(
            w.cause(),
            "caller hangup",
            "seed {seed}: {:?}",
            w.caller.got
        );

        let mut w = World::new(seed, 0.15, 30 * MS);
        w.callee.script = vec![
            (10 * MS, Act::Respond(180, false)),
            (SEC, Act::Respond(486, false)),
        ];
        w.run(None, 200 * SEC);
        assert_eq!(w.cause(), "busy", "seed {seed}");
        assert!(
            w.caller.invite_finals().iter().all(|c| *c == 486),
            "seed {seed}"
        );

        let mut w = World::new(seed, 0.15, 30 * MS);
        w.callee.script = vec![(10 * MS, Act::Respond(180, false))];
        w.caller_at(2 * SEC, Act::Cancel);
        w.run(None, 200 * SEC);
        assert_eq!(w.cause(), "cancelled", "seed {seed}");
        assert!(w.gw.done_at.is_some(), "seed {seed}");
    }
}

#[test]
fn held_calls_are_exempt_from_the_rtp_timeout() {
    let mut w = World::clean();
    w.gw.config.rtp_timeout = Some(20 * SEC);
    w.gw.config.max_call = 100 * SEC;
    w.callee.script = answered_script();
    // The caller puts the call on hold at 5 s: no RTP is expected from then on.
    w.caller_at(5 * SEC, Act::ReInvite("sendonly"));
    w.run(None, 300 * SEC);
    assert_eq!(w.cause(), "max duration");
    assert!(!w.gw.saw(&Event::RtpTimeout));
}

#[test]
fn rtp_activity_postpones_the_rtp_timeout() {
    let mut w = World::clean();
    w.gw.config.rtp_timeout = Some(20 * SEC);
    w.callee.script = answered_script();
    // Media flowed until 30 s: the call ends 20 s later.
    w.gw.media_activity = Some(w.base + 30 * SEC);
    w.run(None, 300 * SEC);
    assert_eq!(w.cause(), "rtp timeout");
    let done = w.gw.done_at.expect("done");
    assert!(done >= 50 * SEC && done < 51 * SEC, "{done:?}");
}

#[test]
fn teardown_snapshot_follows_the_call() {
    let mut w = World::clean();
    w.callee.script = vec![
        (10 * MS, Act::Respond(180, false)),
        (2 * SEC, Act::Respond(200, true)),
    ];
    w.caller.invite(w.now, None);
    w.run_until(SEC);
    let t = w.gw.core.as_ref().expect("ringing").teardown();
    assert!(t.a_invite.is_some() && !t.a_final_sent && t.a_dialog.is_none());
    assert!(t.b_invite.is_some() && t.b_provisional && t.b_dialog.is_none());
    assert_eq!(t.call_ids.len(), 2);
    w.run_until(5 * SEC);
    let core = w.gw.core.as_ref().expect("answered");
    assert_eq!(core.phase(), Phase::Answered);
    let t = core.teardown();
    assert!(t.a_invite.is_none() && t.a_final_sent && t.a_dialog.is_some());
    assert!(t.b_invite.is_none() && t.b_dialog.is_some());
}

/// re-INVITEs and CANCEL races over a lossy network: retransmissions carry them through.
#[test]
fn lossy_network_relays_reinvites_and_cancel_races() {
    for seed in 100..=115u64 {
        let mut w = World::new(seed, 0.2, 40 * MS);
        w.callee.script = answered_script();
        w.caller_at(3 * SEC, Act::ReInvite("sendonly"));
        w.caller_at(20 * SEC, Act::Bye);
        w.run(None, 300 * SEC);
        assert_eq!(w.cause(), "caller hangup", "seed {seed}");
        assert!(w.callee.saw("INVITE") && w.callee.saw("BYE"), "seed {seed}");

        let mut w = World::new(seed, 0.2, 40 * MS);
        w.callee.script = vec![
            (10 * MS, Act::Respond(180, false)),
            (SEC, Act::Respond(200, true)),
        ];
        w.caller_at(SEC, Act::Cancel);
        w.caller_at(10 * SEC, Act::Bye);
        w.run(None, 300 * SEC);
        // Either the CANCEL won (487) or the 200 did (then the caller's BYE ends it); the
        // gateway always finishes and never leaves the callee's dialog up.
        assert!(
            matches!(w.cause(), "cancelled" | "caller hangup"),
            "seed {seed}: {}",
            w.cause()
        );
        assert!(w.gw.done_at.is_some(), "seed {seed}");
        if w.callee.saw("ACK") {
            assert!(
                w.callee.saw("BYE"),
                "seed {seed}: answered callee never hung up"
            );
        }
    }
}
