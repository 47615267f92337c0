//! The guard on a virtual clock: digest checks (source, lifetime, qop, uri, nonce counts),
//! failures only on our nonces, bans and rate limits by IPv4 address or IPv6 /64, and the
//! caps of every map.

use super::*;
use switchboard_sip::digest::{self, Algorithm, Challenge};

const URI: &str = "sip:4930555@192.0.2.1:5060";
const NOW: u64 = 1_800_000_000;

fn config() -> Config {
    switchboard_config::load_from_str(
        "[sip]\nban_after = 3\nrate_limit_per_source = 5\n\n[[sip_user]]\nusername = \"alice\"\npassword = \"correct horse\"\n",
        &[],
    )
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An `Authorization` for `nonce`, `nc` and `uri`, with or without qop.
fn answer_with(nonce: &str, user: &str, pass: &str, uri: &str, nc: u32, qop: bool) -> String {
    let mut ch = Challenge::parse(&digest::challenge_header(
        "switchboard",
        nonce,
        Algorithm::Md5,
    ))
    .unwrap();
    if !qop {
        ch.qop.clear();
    }
    digest::authorization(&ch, user, pass, "INVITE", uri, nc, "c1")
}

fn answer(g: &SipGuard, user: &str, pass: &str, from: IpAddr, now: u64) -> String {
    answer_with(&g.nonce(from, now), user, pass, URI, 1, true)
}

fn verify(g: &SipGuard, c: &Config, auth: &str, from: IpAddr, now: u64) -> Verdict {
    g.verify(c, auth, "INVITE", URI, from, now)
}

fn rejected(r: Reject) -> Verdict {
    Verdict::Rejected(r)
}

#[test]
fn digest_checks_user_password_realm_nonce_and_source() {
    let (c, g) = (config(), SipGuard::default());
    let a = ip("192.0.2.7");
    let good = answer(&g, "alice", "correct horse", a, NOW);
    let ok = verify(&g, &c, &good, a, NOW);
    assert_eq!(ok.username(), Some("alice"));
    let fresh = answer(&g, "alice", "correct horse", a, NOW);
    assert_eq!(
        g.verify(&c, &fresh, "REGISTER", URI, a, NOW),
        rejected(Reject::WrongCredentials),
        "method is hashed"
    );
    let fresh = answer(&g, "alice", "correct horse", a, NOW);
    assert_eq!(
        verify(&g, &c, &fresh, ip("192.0.2.8"), NOW),
        rejected(Reject::Foreign),
        "nonce bound to the source it was issued to"
    );
    let wrong = answer(&g, "alice", "wrong", a, NOW);
    assert_eq!(
        verify(&g, &c, &wrong, a, NOW),
        rejected(Reject::WrongCredentials)
    );
    let mallory = answer(&g, "mallory", "correct horse", a, NOW);
    assert_eq!(
        verify(&g, &c, &mallory, a, NOW),
        rejected(Reject::WrongCredentials),
        "unknown users look like wrong passwords"
    );
    assert_eq!(
        verify(&g, &c, "Digest garbage", a, NOW),
        rejected(Reject::Foreign)
    );
    // Junk: a nonce we never issued, however well-formed the rest.
    for junk in [
        "deadbeef",
        "1.2.3",
        "6b49d200.1.000000000000000000000000",
        "",
    ] {
        let h = answer_with(junk, "alice", "correct horse", URI, 1, true);
        assert_eq!(
            verify(&g, &c, &h, a, NOW),
            rejected(Reject::Foreign),
            "{junk}"
        );
    }
    // A nonce with a sign or too many digits is not ours either.
    let n = g.nonce(a, NOW);
    let signed = format!("+{n}");
    let h = answer_with(&signed, "alice", "correct horse", URI, 1, true);
    assert_eq!(verify(&g, &c, &h, a, NOW), rejected(Reject::Foreign));
    let other_realm = answer(&g, "alice", "correct horse", a, NOW)
        .replace("realm=\"switchboard\"", "realm=\"elsewhere\"");
    assert_eq!(
        verify(&g, &c, &other_realm, a, NOW),
        rejected(Reject::Mismatch)
    );
}

#[test]
fn nonces_expire_as_stale_and_ipv4_mapped_sources_are_one() {
    let (c, g) = (config(), SipGuard::default());
    let a = ip("192.0.2.7");
    let lifetime = u64::from(c.sip.nonce_lifetime_secs);
    let h = answer(&g, "alice", "correct horse", a, NOW);
    assert_eq!(
        verify(&g, &c, &h, a, NOW + lifetime + 1),
        rejected(Reject::Stale)
    );
    assert!(Reject::Stale.stale() && !Reject::Stale.counts());
    // Even a wrong password with an expired nonce is only stale (never counted).
    let wrong = answer(&g, "alice", "nope", a, NOW);
    assert_eq!(
        verify(&g, &c, &wrong, a, NOW + lifetime + 1),
        rejected(Reject::Stale)
    );
    // A nonce from the future (the clock went back) is stale too.
    let h = answer(&g, "alice", "correct horse", a, NOW + 10);
    assert_eq!(verify(&g, &c, &h, a, NOW), rejected(Reject::Stale));
    // At the edge of its lifetime it still works; from the IPv4-mapped form of the source too.
    let h = answer(&g, "alice", "correct horse", a, NOW);
    let mapped = ip("::ffff:192.0.2.7");
    assert!(matches!(
        verify(&g, &c, &h, mapped, NOW + lifetime),
        Verdict::Authenticated { .. }
    ));
}

#[test]
fn replays_need_qop_the_request_uri_and_a_rising_nonce_count() {
    let (c, g) = (config(), SipGuard::default());
    let a = ip("192.0.2.7");
    let nonce = g.nonce(a, NOW);
    let pw = "correct horse";
    // Without qop (RFC 2069), even with the right password: refused, not counted.
    let no_qop = answer_with(&nonce, "alice", pw, URI, 1, false);
    assert_eq!(verify(&g, &c, &no_qop, a, NOW), rejected(Reject::Mismatch));
    assert!(!Reject::Mismatch.counts() && !Reject::Mismatch.stale());
    // qop=auth with nc=0 is not a count.
    let zero = answer_with(&nonce, "alice", pw, URI, 0, true);
    assert_eq!(verify(&g, &c, &zero, a, NOW), rejected(Reject::Mismatch));
    // Credentials for another Request-URI.
    let other = answer_with(&nonce, "alice", pw, "sip:900@192.0.2.1:5060", 1, true);
    assert_eq!(verify(&g, &c, &other, a, NOW), rejected(Reject::Mismatch));
    // None of that used the nonce up: nc 1 passes, once.
    let one = answer_with(&nonce, "alice", pw, URI, 1, true);
    assert!(matches!(
        verify(&g, &c, &one, a, NOW),
        Verdict::Authenticated { .. }
    ));
    assert_eq!(verify(&g, &c, &one, a, NOW), rejected(Reject::Replayed));
    assert!(Reject::Replayed.stale() && !Reject::Replayed.counts());
    // A higher count passes; going back does not.
    let three = answer_with(&nonce, "alice", pw, URI, 3, true);
    assert!(matches!(
        verify(&g, &c, &three, a, NOW),
        Verdict::Authenticated { .. }
    ));
    let two = answer_with(&nonce, "alice", pw, URI, 2, true);
    assert_eq!(verify(&g, &c, &two, a, NOW), rejected(Reject::Replayed));
    // A wrong password with a used count is still a wrong password (counted).
    let wrong = answer_with(&nonce, "alice", "guess", URI, 3, true);
    assert_eq!(
        verify(&g, &c, &wrong, a, NOW),
        rejected(Reject::WrongCredentials)
    );
}

#[test]
fn forgotten_nonce_counts_make_their_nonces_stale() {
    let c = config();
    let g = SipGuard::with_caps(Caps {
        nonces: 2,
        ..Caps::default()
    });
    let a = ip("192.0.2.7");
    let pw = "correct horse";
    let nonces: Vec<String> = (0..4).map(|_| g.nonce(a, NOW)).collect();
    assert_eq!(
        nonces
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4,
        "one nonce per challenge"
    );
    // Use nonces 0, 1 and 2: the count of 0 is forgotten.
    for n in &nonces[..3] {
        let h = answer_with(n, "alice", pw, URI, 1, true);
        assert!(matches!(
            verify(&g, &c, &h, a, NOW),
            Verdict::Authenticated { .. }
        ));
    }
    let again = answer_with(&nonces[0], "alice", pw, URI, 1, true);
    assert_eq!(
        verify(&g, &c, &again, a, NOW),
        rejected(Reject::Stale),
        "a forgotten nonce may have been used: stale, never accepted again"
    );
    // A newer nonce never used is still fine, and the map stays at its cap.
    let h = answer_with(&nonces[3], "alice", pw, URI, 1, true);
    assert!(matches!(
        verify(&g, &c, &h, a, NOW),
        Verdict::Authenticated { .. }
    ));
    assert_eq!(g.state.lock().unwrap().nonce_counts.len(), 2);
}

#[test]
fn failures_ban_and_bans_drop_until_lifted_and_rates_are_capped() {
    let (c, g) = (config(), SipGuard::default());
    let a = ip("198.51.100.1");
    let t = Instant::now();
    assert!(!g.failure(&c, a, t, 0));
    assert!(!g.failure(&c, a, t, 0));
    assert!(g.failure(&c, a, t, 0), "third failure bans");
    assert_eq!(g.admit(&c, a, t), Admit::Banned);
    assert_eq!(g.bans(t).len(), 1);
    assert_eq!(g.bans(t)[0].prefix_len, 32);
    // The ban ends by itself.
    let later = t + Duration::from_secs(u64::from(c.sip.ban_secs) + 1);
    assert_eq!(g.admit(&c, a, later), Admit::Yes);
    assert!(g.bans(later).is_empty());
    assert!(!g.failure(&c, a, later, 0));
    assert!(!g.failure(&c, a, later, 0));
    assert!(g.failure(&c, a, later, 0));
    assert!(g.unban(a));
    assert!(!g.unban(a));
    // Burst of twice the rate, then refused, then refilled.
    let b = ip("198.51.100.9");
    let n = (0..20).filter(|_| g.admit(&c, b, t) == Admit::Yes).count();
    assert_eq!(n, 10);
    assert_eq!(g.admit(&c, b, t), Admit::RateLimited);
    assert_eq!(g.admit(&c, b, t + Duration::from_secs(1)), Admit::Yes);
    // Trusted sources are never limited.
    let trusted =
        switchboard_config::load_from_str("[sip]\ntrusted = [\"10.0.0.0/8\"]\n", &[]).unwrap();
    for _ in 0..1000 {
        assert_eq!(g.admit(&trusted, ip("10.1.2.3"), t), Admit::Yes);
    }
}

#[test]
fn failures_spread_wider_than_the_window_never_ban() {
    let (c, g) = (config(), SipGuard::default());
    let a = ip("198.51.100.2");
    let t = Instant::now();
    let window = Duration::from_secs(u64::from(c.sip.ban_window_secs) + 1);
    for i in 0..10 {
        assert!(!g.failure(&c, a, t + window * i, 0), "failure {i}");
        assert!(!g.failure(&c, a, t + window * i, 0), "failure {i}");
    }
}

#[test]
fn ipv6_sources_are_their_64() {
    let (c, g) = (config(), SipGuard::default());
    assert_eq!(
        source_bucket(ip("2001:db8:1:2:aaaa::1")),
        ip("2001:db8:1:2::")
    );
    assert_eq!(source_bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    assert_eq!(source_bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    let t = Instant::now();
    // Three addresses of one /64 share one failure count: the third bans the /64.
    assert!(!g.failure(&c, ip("2001:db8:1:2::1"), t, 0));
    assert!(!g.failure(&c, ip("2001:db8:1:2::2"), t, 0));
    assert!(g.failure(&c, ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), t, 0));
    assert_eq!(g.admit(&c, ip("2001:db8:1:2::99"), t), Admit::Banned);
    assert_eq!(
        g.admit(&c, ip("2001:db8:1:3::1"), t),
        Admit::Yes,
        "next /64 is not banned"
    );
    let bans = g.bans(t);
    assert_eq!(
        (bans[0].ip.as_str(), bans[0].prefix_len),
        ("2001:db8:1:2::", 64)
    );
    // Lifting it by any address in it.
    assert!(g.unban(ip("2001:db8:1:2::abc")));
    assert_eq!(g.admit(&c, ip("2001:db8:1:2::1"), t), Admit::Yes);
    // One /64's addresses share one rate bucket: 10 new addresses cannot refill it.
    let t2 = t + Duration::from_secs(5);
    let n = (0..20u16)
        .filter(|i| g.admit(&c, ip(&format!("2001:db8:9:9::{i:x}")), t2) == Admit::Yes)
        .count();
    assert_eq!(n, 10);
    // Nonces stay bound to the exact address, not the /64.
    let h = answer(&g, "alice", "correct horse", ip("2001:db8:1:2::1"), NOW);
    assert_eq!(
        verify(&g, &c, &h, ip("2001:db8:1:2::2"), NOW),
        rejected(Reject::Foreign)
    );
}

#[test]
fn maps_are_capped_least_recently_used_first() {
    let c = config();
    let g = SipGuard::with_caps(Caps {
        bans: 3,
        sources: 4,
        nonces: 4,
    });
    let t = Instant::now();
    let src = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + i));
    // Ban five sources with a cap of three: the two least recently active are forgotten.
    for i in 0..5 {
        if i == 3 {
            // Source 0 stays active (its packets keep its ban fresh).
            assert_eq!(g.admit(&c, src(0), t), Admit::Banned);
        }
        for _ in 0..3 {
            g.failure(&c, src(i), t, 0);
        }
    }
    let banned: Vec<String> = g.bans(t).into_iter().map(|b| b.ip).collect();
    assert_eq!(banned, ["198.51.100.0", "198.51.100.3", "198.51.100.4"]);
    {
        let st = g.state.lock().unwrap();
        assert_eq!(st.bans.len(), 3);
    }
    // Failure windows and rate buckets stay at their caps under a spray of sources.
    for i in 100..10_100 {
        g.failure(&c, src(i), t, 0);
        g.admit(&c, src(i), t);
    }
    let st = g.state.lock().unwrap();
    assert_eq!(st.failures.len(), 4);
    assert_eq!(st.buckets.len(), 4);
    assert_eq!(st.bans.len(), 3);
}
