//! Scenario tests of the transaction layer on a virtual clock: single layers driven directly,
//! and a UAC layer talking to a UAS layer over a seeded lossy, reordering network.

use super::*;
use crate::message::{make_cancel, new_branch, parse};
use crate::transport::Transport;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::net::SocketAddr;

const MS: Duration = Duration::from_millis(1);

fn peer(port: u16, transport: Transport) -> Peer {
    Peer {
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
        transport,
    }
}

fn request(method: &str, branch: &str, cseq: u32, transport: Transport) -> Request {
    let text = format!(
        "{method} sip:bob@biloxi.example SIP/2.0\r\n\
Via: SIP/2.0/{} pc33.atlanta.example:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example>\r\n\
From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n",
        transport.as_str()
    );
    match parse(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad template: {other:?}"),
    }
}

fn first_line(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(data);
    s.lines().next().unwrap_or_default().to_string()
}

fn parse_tx(t: &Transmit) -> SipMessage {
    parse(&t.data).expect("layer sent an unparseable message")
}

fn drain(layer: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| layer.poll_transmit()).collect()
}

fn events(layer: &mut TransactionLayer) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

/// Runs one layer alone until `until`, recording (offset, first line) of each transmit and
/// (offset, event) of each event.
#[allow(clippy::type_complexity)]
fn run_alone(
    layer: &mut TransactionLayer,
    base: Instant,
    until: Duration,
) -> (Vec<(Duration, String)>, Vec<(Duration, TransactionEvent)>) {
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    loop {
        for t in drain(layer) {
            sent.push((Duration::ZERO, first_line(&t.data)));
        }
        let Some(next) = layer.poll_timeout() else {
            break;
        };
        if next > base + until {
            break;
        }
        layer.handle_timeout(next);
        for t in drain(layer) {
            sent.push((next - base, first_line(&t.data)));
        }
        for e in events(layer) {
            evs.push((next - base, e));
        }
    }
    (sent, evs)
}

#[test]
fn timer_a_doubles_and_b_fires_at_64_t1() {
    let base = Instant::now();
    let mut uac = TransactionLayer::new(Timers::default());
    let p = peer(5060, Transport::Udp);
    uac.send_request(base, p, request("INVITE", &new_branch(), 1, Transport::Udp));
    let first = drain(&mut uac);
    assert_eq!(first.len(), 1);
    let (sent, evs) = run_alone(&mut uac, base, Duration::from_secs(100));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: intervals 0.5, 1, 2, 4, 8, 16.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, l)| l.starts_with("INVITE ")));
    assert_eq!(evs.len(), 1);
    assert!(matches!(evs[0], (t, TransactionEvent::Timeout { .. }) if t == 64 * 500 * MS));
    assert!(uac.is_empty());
}

#[test]
fn timer_e_capped_at_t2_and_f_fires() {
    let base = Instant::now();
    let mut uac = TransactionLayer::new(Timers::default());
    let p = peer(5060, Transport::Udp);
    uac.send_request(
        base,
        p,
        request("OPTIONS", &new_branch(), 1, Transport::Udp),
    );
    drain(&mut uac);
    let (sent, evs) = run_alone(&mut uac, base, Duration::from_secs(100));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(matches!(evs[..], [(t, TransactionEvent::Timeout { .. })] if t == 32_000 * MS));
    assert!(uac.is_empty());

    // In Proceeding, retransmissions go every T2.
    let mut uac = TransactionLayer::new(Timers::default());
    let req = request("OPTIONS", &new_branch(), 1, Transport::Udp);
    uac.send_request(base, p, req.clone());
    drain(&mut uac);
    uac.handle_message(base + 100 * MS, p, make_response(&req, 100, None).into());
    let (sent, _) = run_alone(&mut uac, base, Duration::from_secs(10));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 4500, 8500]);
}

#[test]
fn client_invite_acks_non_2xx_and_absorbs_retransmissions() {
    let base = Instant::now();
    let mut uac = TransactionLayer::new(Timers::default());
    let p = peer(5060, Transport::Udp);
    let invite = request("INVITE", &new_branch(), 7, Transport::Udp);
    let key = uac.send_request(base, p, invite.clone());
    drain(&mut uac);
    let busy = make_response(&invite, 486, Some("bobtag"));
    uac.handle_message(base + 50 * MS, p, busy.clone().into());
    let tx = drain(&mut uac);
    assert_eq!(tx.len(), 1);
    let ack = match parse_tx(&tx[0]) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("expected ACK"),
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.top_via_branch(), invite.top_via_branch());
    assert_eq!(ack.to_tag().as_deref(), Some("bobtag"));
    assert!(
        matches!(&events(&mut uac)[..], [TransactionEvent::Response { key: k, .. }] if *k == key)
    );
    // Retransmitted 486: the ACK is re-sent, nothing reaches the TU.
    uac.handle_message(base + 600 * MS, p, busy.into());
    assert_eq!(drain(&mut uac).len(), 1);
    assert!(events(&mut uac).is_empty());
    // Timer D (32 s) ends it.
    uac.handle_timeout(base + 50 * MS + Duration::from_secs(32) - MS);
    assert_eq!(uac.len(), 1);
    uac.handle_timeout(base + 50 * MS + Duration::from_secs(32));
    assert!(uac.is_empty());
}

#[test]
fn server_non_2xx_retransmits_on_g_until_ack_then_i() {
    let base = Instant::now();
    let p = peer(5070, Transport::Udp);
    let invite = request("INVITE", &new_branch(), 1, Transport::Udp);

    // No ACK: G retransmits (0.5, 1, 2, 4, 4, ...) and H gives up at 64*T1.
    let mut uas = TransactionLayer::new(Timers::default());
    uas.handle_message(base, p, invite.clone().into());
    assert_eq!(first_line(&drain(&mut uas)[0].data), "SIP/2.0 100 Trying");
    let key = match &events(&mut uas)[..] {
        [TransactionEvent::Request { key: Some(k), .. }] => k.clone(),
        other => panic!("{other:?}"),
    };
    uas.send_response(base, &key, make_response(&invite, 486, Some("t1")))
        .unwrap();
    assert_eq!(drain(&mut uas).len(), 1);
    let (sent, evs) = run_alone(&mut uas, base, Duration::from_secs(40));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(
        matches!(&evs[..], [(t, TransactionEvent::AckTimeout { key: k })] if *k == key && *t == 32_000 * MS)
    );
    assert!(uas.is_empty());

    // The ACK generated by a client layer stops G and is absorbed.
    let mut uas = TransactionLayer::new(Timers::default());
    let mut uac = TransactionLayer::new(Timers::default());
    uac.send_request(base, p, invite.clone());
    drain(&mut uac);
    uas.handle_message(base, p, invite.clone().into());
    drain(&mut uas);
    events(&mut uas);
    let resp = make_response(&invite, 486, Some("t1"));
    uas.send_response(base, &key, resp.clone()).unwrap();
    drain(&mut uas);
    uas.handle_timeout(base + 500 * MS);
    assert_eq!(drain(&mut uas).len(), 1, "one G retransmission");
    uac.handle_message(base + 600 * MS, p, resp.into());
    let ack = drain(&mut uac).remove(0);
    uas.handle_message(base + 700 * MS, p, parse_tx(&ack));
    assert!(events(&mut uas).is_empty(), "non-2xx ACK is absorbed");
    uas.handle_message(base + 800 * MS, p, parse_tx(&ack));
    assert!(events(&mut uas).is_empty(), "retransmitted ACK is absorbed");
    let (sent, evs) = run_alone(&mut uas, base + 700 * MS, Duration::from_secs(40));
    assert!(sent.is_empty(), "G stopped: {sent:?}");
    assert!(evs.is_empty());
    assert!(uas.is_empty(), "Timer I ended it");
}

#[test]
fn server_2xx_retransmitted_until_ack_or_l() {
    let base = Instant::now();
    let p = peer(5070, Transport::Udp);
    let invite = request("INVITE", &new_branch(), 3, Transport::Udp);

    let mut uas = TransactionLayer::new(Timers::default());
    uas.handle_message(base, p, invite.clone().into());
    drain(&mut uas);
    let Some(TransactionEvent::Request { key: Some(key), .. }) = uas.poll_event() else {
        panic!("no request");
    };
    uas.send_response(base, &key, make_response(&invite, 200, Some("b")))
        .unwrap();
    assert_eq!(drain(&mut uas).len(), 1);
    let (sent, evs) = run_alone(&mut uas, base, Duration::from_secs(40));
    let times: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(sent.iter().all(|(_, l)| l == "SIP/2.0 200 OK"));
    assert!(
        matches!(&evs[..], [(t, TransactionEvent::AckTimeout { key: k })] if *k == key && *t == 32_000 * MS)
    );
    assert!(uas.is_empty());

    // With an ACK (new branch, same Call-ID and CSeq) at 2 s: passed up once, then quiet.
    let mut uas = TransactionLayer::new(Timers::default());
    uas.handle_message(base, p, invite.clone().into());
    drain(&mut uas);
    events(&mut uas);
    uas.send_response(base, &key, make_response(&invite, 200, Some("b")))
        .unwrap();
    // A retransmitted INVITE in Accepted gets the 2xx again, and is not passed up.
    uas.handle_message(base + 100 * MS, p, invite.clone().into());
    assert_eq!(drain(&mut uas).len(), 2);
    assert!(events(&mut uas).is_empty());
    uas.handle_timeout(base + 500 * MS);
    uas.handle_timeout(base + 1500 * MS);
    assert_eq!(
        drain(&mut uas).len(),
        2,
        "retransmissions at 0.5 s and 1.5 s"
    );
    let ack = request("ACK", &new_branch(), 3, Transport::Udp);
    uas.handle_message(base + 2000 * MS, p, ack.clone().into());
    assert!(matches!(
        &events(&mut uas)[..],
        [TransactionEvent::Request { key: None, request, .. }] if request.method == Method::Ack
    ));
    uas.handle_message(base + 2100 * MS, p, ack.into());
    assert!(events(&mut uas).is_empty(), "second ACK absorbed");
    let (sent, evs) = run_alone(&mut uas, base + 2000 * MS, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(evs.is_empty(), "no AckTimeout after the ACK: {evs:?}");
    assert!(uas.is_empty());
    // After the transaction is gone, an ACK is passed up statelessly.
    uas.handle_message(
        base + Duration::from_secs(50),
        p,
        request("ACK", &new_branch(), 3, Transport::Udp).into(),
    );
    assert!(matches!(
        &events(&mut uas)[..],
        [TransactionEvent::Request { key: None, .. }]
    ));
}

#[test]
fn retransmitted_requests_get_the_last_response() {
    let base = Instant::now();
    let p = peer(5070, Transport::Udp);
    let mut uas = TransactionLayer::new(Timers::default());
    let invite = request("INVITE", &new_branch(), 1, Transport::Udp);
    uas.handle_message(base, p, invite.clone().into());
    assert_eq!(drain(&mut uas).len(), 1);
    let Some(TransactionEvent::Request { key: Some(key), .. }) = uas.poll_event() else {
        panic!("no request");
    };
    uas.handle_message(base + 500 * MS, p, invite.clone().into());
    let tx = drain(&mut uas);
    assert_eq!(tx.len(), 1);
    assert_eq!(first_line(&tx[0].data), "SIP/2.0 100 Trying");
    assert_eq!(tx[0].peer, p);
    assert!(events(&mut uas).is_empty());
    uas.send_response(base, &key, make_response(&invite, 180, Some("x")))
        .unwrap();
    drain(&mut uas);
    uas.handle_message(base + 1500 * MS, p, invite.into());
    assert_eq!(first_line(&drain(&mut uas)[0].data), "SIP/2.0 180 Ringing");
    assert_eq!(uas.len(), 1);

    // Non-INVITE: absorbed silently in Trying, answered in Completed.
    let options = request("OPTIONS", &new_branch(), 2, Transport::Udp);
    uas.handle_message(base, p, options.clone().into());
    let Some(TransactionEvent::Request {
        key: Some(okey), ..
    }) = uas.poll_event()
    else {
        panic!("no request");
    };
    uas.handle_message(base + 500 * MS, p, options.clone().into());
    assert!(drain(&mut uas).is_empty());
    uas.send_response(
        base + 600 * MS,
        &okey,
        make_response(&options, 200, Some("y")),
    )
    .unwrap();
    assert_eq!(drain(&mut uas).len(), 1);
    uas.handle_message(base + 700 * MS, p, options.clone().into());
    assert_eq!(first_line(&drain(&mut uas)[0].data), "SIP/2.0 200 OK");
    assert!(events(&mut uas).is_empty());
    assert!(matches!(
        uas.send_response(base, &okey, make_response(&options, 200, None)),
        Err(TransactionError::InvalidState { code: 200, .. })
    ));
    // Timer J ends it at 64*T1 after the final response.
    uas.handle_timeout(base + 600 * MS + Duration::from_secs(32));
    assert_eq!(uas.len(), 1, "only the INVITE is left");
}

#[test]
fn cancel_matches_invite_and_unknown_cancel_gets_481() {
    let base = Instant::now();
    let p = peer(5070, Transport::Udp);
    let mut uac = TransactionLayer::new(Timers::default());
    let mut uas = TransactionLayer::new(Timers::default());
    let invite = request("INVITE", &new_branch(), 1, Transport::Udp);
    let ckey = uac.send_request(base, p, invite.clone());
    uas.handle_message(base, p, parse_tx(&drain(&mut uac)[0]));
    drain(&mut uas);
    let Some(TransactionEvent::Request {
        key: Some(skey), ..
    }) = uas.poll_event()
    else {
        panic!("no request");
    };
    let cancel = make_cancel(&invite);
    let cancel_key = uac.send_request(base + 100 * MS, p, cancel);
    assert_eq!(uac.len(), 2);
    uas.handle_message(base + 100 * MS, p, parse_tx(&drain(&mut uac)[0]));
    let tx = drain(&mut uas);
    assert_eq!(tx.len(), 1);
    let ok = parse_tx(&tx[0]);
    assert_eq!(first_line(&tx[0].data), "SIP/2.0 200 OK");
    assert!(matches!(
        &events(&mut uas)[..],
        [TransactionEvent::Cancelled { invite, .. }] if *invite == skey
    ));
    // The TU answers 487; the client layer delivers both finals and ACKs the 487 itself.
    uas.send_response(
        base + 110 * MS,
        &skey,
        make_response(&invite, 487, Some("z")),
    )
    .unwrap();
    let r487 = parse_tx(&drain(&mut uas)[0]);
    uac.handle_message(base + 120 * MS, p, ok);
    uac.handle_message(base + 130 * MS, p, r487);
    let evs = events(&mut uac);
    assert!(matches!(&evs[0], TransactionEvent::Response { key, .. } if *key == cancel_key));
    assert!(
        matches!(&evs[1], TransactionEvent::Response { key, response } if *key == ckey && response.status_code.code() == 487)
    );
    let ack = drain(&mut uac).remove(0);
    uas.handle_message(base + 140 * MS, p, parse_tx(&ack));
    assert!(events(&mut uas).is_empty());
    // A retransmitted CANCEL gets the same 200, no second Cancelled.
    uas.handle_message(base + 150 * MS, p, make_cancel(&invite).into());
    assert_eq!(first_line(&drain(&mut uas)[0].data), "SIP/2.0 200 OK");
    assert!(events(&mut uas).is_empty());

    // Unknown CANCEL.
    let stray = make_cancel(&request("INVITE", &new_branch(), 9, Transport::Udp));
    uas.handle_message(base + 200 * MS, p, stray.into());
    let tx = drain(&mut uas);
    assert_eq!(tx.len(), 1);
    assert_eq!(
        first_line(&tx[0].data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(events(&mut uas).is_empty());
}

#[test]
fn reliable_transport_no_retransmissions_and_zero_timers() {
    let base = Instant::now();
    let p = peer(5061, Transport::Tcp);
    // Client INVITE: one send, B still guards.
    let mut uac = TransactionLayer::new(Timers::default());
    let invite = request("INVITE", &new_branch(), 1, Transport::Tcp);
    uac.send_request(base, p, invite.clone());
    assert_eq!(drain(&mut uac).len(), 1);
    let (sent, evs) = run_alone(&mut uac, base, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(matches!(&evs[..], [(t, TransactionEvent::Timeout { .. })] if *t == 32_000 * MS));

    // Client INVITE non-2xx: ACK sent, Timer D zero.
    uac.send_request(base, p, invite.clone());
    drain(&mut uac);
    uac.handle_message(base, p, make_response(&invite, 503, Some("q")).into());
    assert_eq!(drain(&mut uac).len(), 1, "the ACK");
    assert!(uac.is_empty(), "Timer D is zero over TCP");

    // Client non-INVITE: no E; Timer K zero.
    let opt = request("OPTIONS", &new_branch(), 2, Transport::Tcp);
    uac.send_request(base, p, opt.clone());
    drain(&mut uac);
    uac.handle_timeout(base + Duration::from_secs(5));
    assert!(drain(&mut uac).is_empty());
    uac.handle_message(base, p, make_response(&opt, 200, Some("q")).into());
    assert!(uac.is_empty(), "Timer K is zero over TCP");

    // Server non-INVITE: Timer J zero. Server INVITE non-2xx: no G, Timer I zero.
    let mut uas = TransactionLayer::new(Timers::default());
    uas.handle_message(base, p, opt.clone().into());
    let Some(TransactionEvent::Request { key: Some(k), .. }) = uas.poll_event() else {
        panic!("no request");
    };
    uas.send_response(base, &k, make_response(&opt, 200, Some("r")))
        .unwrap();
    assert!(uas.is_empty(), "Timer J is zero over TCP");
    uas.handle_message(base, p, invite.clone().into());
    let Some(TransactionEvent::Request { key: Some(k), .. }) = uas.poll_event() else {
        panic!("no request");
    };
    uas.send_response(base, &k, make_response(&invite, 486, Some("r")))
        .unwrap();
    drain(&mut uas);
    uas.handle_timeout(base + Duration::from_secs(10));
    assert!(drain(&mut uas).is_empty(), "no Timer G over TCP");
    let ack = crate::message::make_non2xx_ack(&invite, &make_response(&invite, 486, Some("r")));
    uas.handle_message(base + Duration::from_secs(10), p, ack.into());
    assert!(uas.is_empty(), "Timer I is zero over TCP");
}

#[test]
fn transport_error_times_out_client_transaction() {
    let base = Instant::now();
    let p = peer(5061, Transport::Tcp);
    let mut uac = TransactionLayer::new(Timers::default());
    let key = uac.send_request(
        base,
        p,
        request("OPTIONS", &new_branch(), 1, Transport::Tcp),
    );
    uac.transport_error(&key);
    assert!(matches!(&events(&mut uac)[..], [TransactionEvent::Timeout { key: k }] if *k == key));
    assert!(uac.is_empty());
    assert!(matches!(
        uac.send_response(
            base,
            &key,
            make_response(
                &request("OPTIONS", "z9hG4bKx", 1, Transport::Tcp),
                200,
                None
            )
        ),
        Err(TransactionError::NoSuchTransaction)
    ));
}

/// A packet in flight on the simulated network.
struct Flight {
    at: Instant,
    to_uas: bool,
    data: Bytes,
}

/// Runs INVITE/180/200/ACK then BYE/200 between two layers over a network losing `loss` of
/// the packets and delaying each by 0-80 ms (so packets reorder). Returns true on completion.
fn lossy_call(seed: u64, loss: f64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = Instant::now();
    let mut now = base;
    let uac_addr = peer(5060, Transport::Udp);
    let uas_addr = peer(5070, Transport::Udp);
    let mut uac = TransactionLayer::new(Timers::default());
    let mut uas = TransactionLayer::new(Timers::default());
    let mut net: Vec<Flight> = Vec::new();

    let invite = request("INVITE", &new_branch(), 1, Transport::Udp);
    let invite_key = uac.send_request(now, uas_addr, invite.clone());
    let mut got_200 = false;
    let mut bye_key: Option<TransactionKey> = None;
    let mut bye_done = false;
    let mut uas_got_ack = false;
    let mut pending_200: Option<(Instant, TransactionKey, Request)> = None;

    while now < base + Duration::from_secs(120) {
        // Move transmits to the network.
        for (layer, to_uas) in [(&mut uac, true), (&mut uas, false)] {
            while let Some(t) = layer.poll_transmit() {
                if rng.gen_bool(loss) {
                    continue;
                }
                let delay = Duration::from_millis(rng.gen_range(0..80));
                net.push(Flight {
                    at: now + delay,
                    to_uas,
                    data: t.data,
                });
            }
        }
        // Next instant: earliest of timers, deliveries and the TU's delayed 200.
        let next = [
            uac.poll_timeout(),
            uas.poll_timeout(),
            net.iter().map(|f| f.at).min(),
            pending_200.as_ref().map(|p| p.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        now = next.max(now);
        // Deliver due packets in arrival order.
        net.sort_by_key(|f| f.at);
        let due: Vec<Flight> = {
            let split = net.iter().position(|f| f.at > now).unwrap_or(net.len());
            net.drain(..split).collect()
        };
        for f in due {
            let msg = parse(&f.data).expect("layers only send valid SIP");
            if f.to_uas {
                uas.handle_message(now, uac_addr, msg);
            } else {
                uac.handle_message(now, uas_addr, msg);
            }
        }
        uac.handle_timeout(now);
        uas.handle_timeout(now);
        if let Some((at, key, req)) = pending_200.take() {
            if at <= now {
                uas.send_response(now, &key, make_response(&req, 200, Some("uas")))
                    .expect("200 in Proceeding");
            } else {
                pending_200 = Some((at, key, req));
            }
        }
        // UAS TU.
        while let Some(ev) = uas.poll_event() {
            match ev {
                TransactionEvent::Request {
                    key: Some(key),
                    request,
                    ..
                } => {
                    if request.method == Method::Invite {
                        uas.send_response(now, &key, make_response(&request, 180, Some("uas")))
                            .expect("180");
                        pending_200 = Some((now + 200 * MS, key, request));
                    } else {
                        uas.send_response(now, &key, make_response(&request, 200, Some("uas")))
                            .expect("200 to BYE");
                    }
                }
                TransactionEvent::Request {
                    key: None, request, ..
                } => {
                    assert_eq!(request.method, Method::Ack);
                    uas_got_ack = true;
                }
                TransactionEvent::AckTimeout { .. } => return false,
                _ => {}
            }
        }
        // UAC TU: ACK every 2xx (first and retransmitted), then BYE once.
        while let Some(ev) = uac.poll_event() {
            let resp = match ev {
                TransactionEvent::Response { response, .. } => response,
                TransactionEvent::StrayResponse { response, .. } => response,
                TransactionEvent::Timeout { .. } => return false,
                _ => continue,
            };
            let code = resp.status_code.code();
            match resp.cseq() {
                Some((1, Method::Invite)) if (200..300).contains(&code) => {
                    let mut ack = request("ACK", &new_branch(), 1, Transport::Udp);
                    ack.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
                    if let Some(to) = resp
                        .headers
                        .iter()
                        .find(|h| matches!(h, rsip::Header::To(_)))
                    {
                        ack.headers.push(to.clone());
                    }
                    uac.send_stateless(uas_addr, ack.into());
                    if !got_200 {
                        got_200 = true;
                        let bye = request("BYE", &new_branch(), 2, Transport::Udp);
                        bye_key = Some(uac.send_request(now, uas_addr, bye));
                    }
                }
                Some((2, Method::Bye)) if code == 200 => bye_done = true,
                _ => {}
            }
        }
        if bye_done && uas_got_ack && uac.is_empty() && uas.is_empty() {
            break;
        }
    }
    let _ = (invite_key, bye_key);
    got_200 && bye_done && uas_got_ack && uac.is_empty() && uas.is_empty()
}

#[test]
fn lossy_reordering_network_completes_call_and_bye() {
    assert!(lossy_call(1, 0.0), "lossless run");
    for seed in 0..10 {
        assert!(lossy_call(seed, 0.3), "seed {seed} failed");
    }
}
