//! Rating: what a call costs and how long a balance lets it last, and who pays.
//!
//! Pure arithmetic on whole credit units, so the ledger actor can size a reservation and a
//! call can price its real duration with the same rules. A call's duration is rounded up to
//! whole seconds, then to the first block (`initial_secs`) and whole increments after it
//! (`increment_secs`); its cost is `ceil(billable_secs * price_per_minute / 60)`.
//!
//! **Who pays** comes from who the gateway knows placed the call ([`Origin`]), never from a
//! header the caller writes (issue 11): the route's fixed `account` first, then the
//! caller's own (the inbound trunk's `account`, or the authenticated `[[sip_user]]`'s),
//! then `[billing] account`. The rule `caller` (the calling number pays) is honoured only
//! for a call that came in from a `[[trunk]]`, which is trusted to assert the number; for
//! anyone else (a digest user, a `[sip] trusted` network, a device, an ingest stream) it
//! names nobody and the call is refused like one without an account.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde::Serialize;
use switchboard_config::{AccountRule, Config, RouteConfig, SipUser, TrunkConfig};
use switchboard_storage::ledger::{LedgerError, TransferKind, TransferRequest};

use crate::ledger::LedgerMsg;

pub use crate::tariff::{Tariff, CALLS_ACCOUNT, FAX_ACCOUNT};

/// A rated call: who pays and how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rating {
    /// The ledger account debited.
    pub account: String,
    /// The price.
    pub tariff: Tariff,
}

/// What the configuration says about charging a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Not rated: the route and trunk have no price.
    Free,
    /// Rated.
    Rated(Rating),
    /// Rated, but nobody is named to pay (refused like a call without credit).
    NoAccount,
}

/// Who placed a call, as far as the gateway can prove it: what a payer may be taken from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// It came in from this `[[trunk]]`'s source: the trunk asserts the calling number.
    Trunk(&'a TrunkConfig),
    /// A `[[sip_user]]` that passed the digest challenge.
    User(&'a SipUser),
    /// Nobody proven: a `[sip] trusted` network, a device's dial, an ingest stream, a call
    /// the gateway places itself. Its calling number is a claim, not an identity.
    Unproven,
}

/// The payer named by `rule` for a call from `origin` with calling number `caller`; `None`
/// when `rule` is `caller` and the origin cannot vouch for the number.
pub fn payer(rule: &AccountRule, origin: Origin<'_>, caller: &str) -> Option<String> {
    match (rule, origin) {
        (AccountRule::Fixed(id), _) => Some(id.clone()),
        (AccountRule::Caller, Origin::Trunk(_)) => Some(caller.to_string()),
        (AccountRule::Caller, _) => None,
    }
    .filter(|a| !a.is_empty())
}

/// Rate a call from `caller` (its calling number) placed by `origin` on `route`, out through
/// `trunk`. The route's price wins over the trunk's; the payer is the route's `account`, else
/// the origin's own (the inbound trunk's `account`, the `[[sip_user]]`'s), else
/// `[billing] account` (see [`payer`] for `caller`).
pub fn rate_call(
    config: &Config,
    route: &RouteConfig,
    trunk: &TrunkConfig,
    origin: Origin<'_>,
    caller: &str,
) -> Charge {
    let price = route.price_per_minute.unwrap_or(trunk.price_per_minute);
    if price == 0 {
        return Charge::Free;
    }
    let own = match origin {
        Origin::Trunk(t) => t.account.clone(),
        Origin::User(u) => u.account.clone().map(AccountRule::Fixed),
        Origin::Unproven => None,
    };
    let rule = route
        .account
        .clone()
        .or(own)
        .or_else(|| config.billing.account.clone());
    let Some(account) = rule.and_then(|rule| payer(&rule, origin, caller)) else {
        return Charge::NoAccount;
    };
    let b = &config.billing;
    Charge::Rated(Rating {
        account,
        tariff: Tariff {
            price_per_minute: price,
            initial_secs: b.initial_secs,
            increment_secs: b.increment_secs,
            max_call_secs: b.max_call_secs,
        },
    })
}

/// How long a call or fax job waits for the ledger before treating it as unavailable.
pub const LEDGER_WAIT: Duration = Duration::from_secs(5);

/// Settle the pending transfer `pending_id`: post `cost` of it (the rest is released), or
/// void it when `cost` is 0. Idempotent (the post or void has a fixed id), so a settlement
/// retried after a restart changes nothing. The error is the ledger's code.
pub async fn settle(
    ledger: &ActorRef<LedgerMsg>,
    pending_id: &str,
    cost: u64,
    reference: &str,
) -> Result<(), &'static str> {
    let (suffix, kind) = if cost == 0 {
        ("void", TransferKind::VoidPending)
    } else {
        ("post", TransferKind::PostPending)
    };
    let req = TransferRequest {
        id: format!("{pending_id}:{suffix}"),
        debit_account: String::new(),
        credit_account: String::new(),
        amount: cost,
        kind,
        pending_id: Some(pending_id.to_string()),
        timeout_secs: 0,
        reference: Some(reference.to_string()),
    };
    match ledger
        .call(|reply| LedgerMsg::Apply(req, reply), Some(LEDGER_WAIT))
        .await
    {
        Ok(CallResult::Success(Ok(_))) => Ok(()),
        Ok(CallResult::Success(Err(e))) => Err(e.code()),
        _ => Err("ledger unavailable"),
    }
}

/// A call or fax cause for a ledger refusal.
pub fn refusal(e: &LedgerError) -> &'static str {
    match e {
        LedgerError::NoAccount(_) => "no account",
        LedgerError::ExceedsCredits(_) => "no credit",
        _ => "ledger error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        switchboard_config::load_from_str(toml, &[]).unwrap()
    }

    fn account_of(c: &Config, origin: Origin<'_>, caller: &str) -> Option<String> {
        let (route, _) = c.dial("00491234").unwrap();
        match rate_call(c, route, &c.trunks[0], origin, caller) {
            Charge::Rated(r) => Some(r.account),
            Charge::NoAccount => None,
            Charge::Free => panic!("the route is priced"),
        }
    }

    const RATED: &str = "[[trunk]]\nname = \"out\"\naddress = \"127.0.0.1:5070\"\nprice_per_minute = 10\n\n\
        [[trunk]]\nname = \"in\"\naddress = \"192.0.2.1:5060\"\naccount = \"caller\"\n\n\
        [[trunk]]\nname = \"wholesale\"\naddress = \"192.0.2.2:5060\"\naccount = \"acme\"\n\n\
        [[sip_user]]\nusername = \"alice\"\npassword = \"correct horse\"\naccount = \"alice-co\"\n\n\
        [[sip_user]]\nusername = \"bob\"\npassword = \"correct horse\"\n\n\
        [[route]]\nmatch = \"00*\"\nto = \"trunk:out\"\n";

    #[test]
    fn the_payer_is_who_authenticated_never_the_from_header() {
        let c = config(&format!("[billing]\naccount = \"caller\"\n\n{RATED}"));
        let (alice, bob) = (&c.sip.users[0], &c.sip.users[1]);
        let trunk = |n: &str| c.trunk(n).unwrap();
        // A trunk asserts its callers' numbers: `caller` means the number.
        assert_eq!(
            account_of(&c, Origin::Trunk(trunk("in")), "+4930111").as_deref(),
            Some("+4930111")
        );
        // A trunk with a fixed account pays itself, whatever the From.
        assert_eq!(
            account_of(&c, Origin::Trunk(trunk("wholesale")), "+4930111").as_deref(),
            Some("acme")
        );
        // A digest user pays from its own account, whatever number it puts in From.
        assert_eq!(
            account_of(&c, Origin::User(alice), "+4930111").as_deref(),
            Some("alice-co")
        );
        // A user without an account, a trusted network, a device: From names nobody.
        assert_eq!(account_of(&c, Origin::User(bob), "+4930111"), None);
        assert_eq!(account_of(&c, Origin::Unproven, "+4930111"), None);
        // A fixed [billing] account pays for the unproven; a route's fixed account wins.
        let c = config(&format!("[billing]\naccount = \"house\"\n\n{RATED}"));
        assert_eq!(
            account_of(&c, Origin::Unproven, "+4930111").as_deref(),
            Some("house")
        );
        assert_eq!(
            account_of(&c, Origin::User(&c.sip.users[0]), "x").as_deref(),
            Some("alice-co")
        );
        let c = config(&RATED.replace(
            "to = \"trunk:out\"",
            "to = \"trunk:out\"\naccount = \"route-co\"",
        ));
        assert_eq!(
            account_of(&c, Origin::User(&c.sip.users[0]), "x").as_deref(),
            Some("route-co")
        );
        assert_eq!(
            account_of(&c, Origin::Unproven, "x").as_deref(),
            Some("route-co")
        );
    }

    fn tariff(price: u64, initial: u32, step: u32) -> Tariff {
        Tariff {
            price_per_minute: price,
            initial_secs: initial,
            increment_secs: step,
            max_call_secs: 14_400,
        }
    }

    #[test]
    fn billable_blocks() {
        let t = tariff(60, 60, 60);
        assert_eq!(t.billable_secs(0), 0);
        assert_eq!(t.billable_secs(1), 60);
        assert_eq!(t.billable_secs(60_000), 60);
        assert_eq!(t.billable_secs(60_001), 120);
        let t = tariff(60, 30, 6);
        assert_eq!(t.billable_secs(29_000), 30);
        assert_eq!(t.billable_secs(31_000), 36);
        assert_eq!(t.billable_secs(36_000), 36);
        assert_eq!(t.billable_secs(36_500), 42);
        let t = tariff(60, 1, 1);
        assert_eq!(t.billable_secs(4_200), 5);
    }

    #[test]
    fn costs_round_up() {
        let t = tariff(10, 1, 1);
        assert_eq!(t.cost(60_000), 10);
        assert_eq!(t.cost(6_000), 1);
        assert_eq!(t.cost(6_001), 2); // 7 s of 10/min = 1.17 -> 2
        assert_eq!(t.cost(0), 0);
        assert_eq!(tariff(u64::MAX, 1, 1).cost_of_secs(u64::MAX), u64::MAX);
    }

    #[test]
    fn max_secs_is_affordable_and_maximal() {
        for (price, initial, step) in [(10, 1, 1), (10, 60, 60), (7, 30, 6), (1000, 1, 1)] {
            let t = tariff(price, initial, step);
            for available in 0..200i128 {
                let secs = t.max_secs(available);
                if secs == 0 {
                    assert!(t.admission_cost() as i128 > available, "{t:?} {available}");
                    continue;
                }
                assert!(
                    t.cost_of_secs(secs) as i128 <= available,
                    "{t:?} {available}"
                );
                // The next block is not affordable (or past the cap).
                let next = secs + u64::from(step);
                assert!(
                    t.cost_of_secs(next) as i128 > available,
                    "{t:?} {available}"
                );
                assert_eq!(t.billable_secs(secs * 1000), secs);
            }
        }
        // A balance of exactly one minute at 10/min buys 60 s.
        assert_eq!(tariff(10, 1, 1).max_secs(10), 60);
        assert_eq!(tariff(10, 60, 60).max_secs(10), 60);
        assert_eq!(tariff(10, 60, 60).max_secs(9), 0);
        // Capped by max_call_secs.
        let mut t = tariff(1, 1, 1);
        t.max_call_secs = 120;
        assert_eq!(t.max_secs(1_000_000), 120);
        assert_eq!(t.max_secs(-5), 0);
        assert_eq!(t.max_secs(i128::MAX), 120);
    }
}
