//! Stateless answers to strangers, before the transaction layer sees a request (RFC 3261
//! §8.2.7 stateless UAS behaviour; what Kamailio does with `www_challenge` and `sl_send_reply`).
//!
//! Over UDP a source address is whatever the sender writes, so every answer to a stranger is
//! a reflection toward someone who may never have sent anything. A new INVITE creates a
//! server transaction that sends 100 Trying and retransmits its final response (Timer G) up
//! to ten times: one spoofed packet, a dozen answers. So, before a request reaches the layer:
//! - an out-of-dialog INVITE or REGISTER from a source that is neither a trunk nor trusted
//!   gets exactly one 401 unless it carries valid credentials ([`SipGuard::verify`]); no 100,
//!   no transaction, nothing retransmitted. Its retransmission gets another 401, and its ACK
//!   matches nothing and is dropped;
//! - an in-dialog INVITE (To tag) for a Call-ID nobody owns gets one 481, from anyone.
//!
//! Retransmissions of requests that already have a server transaction (an authenticated
//! INVITE the caller repeats) go to the layer, which absorbs them. Other strangers' requests
//! (OPTIONS, BYE or CANCEL for unknown dialogs, REGISTER with a To tag) get one answer from a
//! non-INVITE server transaction, which never retransmits on its own: never more answers
//! than requests.

use std::time::Instant;

use rsip::{Method, SipMessage};
use sha2::{Digest as _, Sha256};
use switchboard_sip::digest::{challenge_header_stale, Algorithm};
use switchboard_sip::message::{make_response, MessageExt};
use switchboard_sip::transport::Peer;

use super::{add_server_header, EndpointState};
use crate::sip_guard::{Reject, SipGuard, Verdict};

/// What to do with a request before the transaction layer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Screen {
    /// Hand it to the transaction layer; `user` is the `[[sip_user]]` that authenticated it.
    Pass {
        /// The authenticated user, for a stranger's INVITE or REGISTER.
        user: Option<String>,
    },
    /// Answered statelessly: nothing more to do, nothing kept.
    Answered,
}

/// Screens a request from `peer` (which the rate limit and bans already admitted).
pub(super) fn screen(
    state: &mut EndpointState,
    peer: Peer,
    req: &rsip::Request,
    now: Instant,
) -> Screen {
    let pass = Screen::Pass { user: None };
    if !matches!(req.method, Method::Invite | Method::Register) {
        return pass;
    }
    // Cheapest checks first: a trusted caller's new INVITE and a known dialog's re-INVITE
    // (the hot paths) never build a transaction key here.
    if req.to_tag().is_some() {
        let owned = req.call_id().is_some_and(|c| state.routes.contains_key(&c));
        if req.method == Method::Invite && !owned && !state.layer.has_server_transaction(req) {
            reply(state, peer, req, 481, None);
            return Screen::Answered;
        }
        return pass;
    }
    if SipGuard::trusted(&state.config, peer.addr.ip()) || state.layer.has_server_transaction(req) {
        return pass;
    }
    let now_ms = switchboard_storage::now_unix_ms();
    let now_unix = now_ms / 1000;
    let credentials = req
        .header_value("Authorization")
        .or_else(|| req.header_value("Proxy-Authorization"));
    let verdict = match credentials {
        Some(a) => state.guard.verify(
            &state.config,
            &a,
            req.method.to_string().as_str(),
            &req.uri.to_string(),
            peer.addr.ip(),
            now_unix,
        ),
        None => Verdict::Rejected(Reject::Foreign),
    };
    match verdict {
        Verdict::Authenticated { username } => Screen::Pass {
            user: Some(username),
        },
        Verdict::Rejected(why) => {
            if why.counts() {
                state
                    .guard
                    .failure(&state.config, peer.addr.ip(), now, now_ms);
            }
            // No enumeration: whatever the user or extension, a failure is a fresh challenge.
            let nonce = state.guard.nonce(peer.addr.ip(), now_unix);
            let www = challenge_header_stale(
                &state.config.sip.realm,
                &nonce,
                Algorithm::Md5,
                why.stale(),
            );
            reply(state, peer, req, 401, Some(www));
            metrics::counter!("switchboard_sip_stateless_challenges_total").increment(1);
            tracing::debug!(from = %peer.addr, method = %req.method, reason = why.label(), "stateless challenge");
            Screen::Answered
        }
    }
}

/// A To tag derived from the request, so a retransmission gets the same one (§8.2.7).
fn stateless_tag(req: &rsip::Request) -> String {
    let mut h = Sha256::new();
    for part in [req.call_id(), req.from_tag(), req.top_via_branch()] {
        h.update(part.unwrap_or_default().as_bytes());
        h.update([0]);
    }
    format!("sl{}", &hex::encode(h.finalize())[..12])
}

/// Queue `code` (with a `WWW-Authenticate` value) outside any transaction.
fn reply(
    state: &mut EndpointState,
    peer: Peer,
    req: &rsip::Request,
    code: u16,
    www_authenticate: Option<String>,
) {
    let mut resp = make_response(req, code, Some(&stateless_tag(req)));
    if let Some(v) = www_authenticate {
        resp.headers
            .push(rsip::Header::Other("WWW-Authenticate".into(), v));
    }
    add_server_header(&mut resp, &state.user_agent);
    metrics::counter!("switchboard_sip_responses_total", "code" => code.to_string(), "direction" => "out").increment(1);
    state.layer.send_stateless(peer, SipMessage::Response(resp));
}
