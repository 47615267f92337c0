//! `[billing]`: how calls and faxes are rated against the credits ledger, and who pays.
//!
//! Prices are whole credit units (the ledger's unit): a trunk or a route sets
//! `price_per_minute` (the route's wins), `[billing] price_per_page` prices fax pages. The payer is
//! an account rule: a fixed ledger account id, or `caller` (the calling number). A route's
//! `account` wins over the caller's own (the inbound trunk's, or the authenticated
//! `[[sip_user]]`'s `account`), which wins over `[billing] account`. `caller` names a payer
//! only for calls that came in from a trunk, which asserts the number; From from anyone else
//! names nobody (issue 11; see the actors' `billing::payer`).

use serde::Deserialize;

use crate::validate::Checker;

/// Who pays for a rated call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountRule {
    /// The calling number (From user), e.g. `+441234567890` (written `caller`); honoured
    /// only for calls from a `[[trunk]]`, which asserts the number.
    Caller,
    /// This ledger account.
    Fixed(String),
}

impl AccountRule {
    /// Parse `caller` or a ledger account id (1 to 64 of `A-Z a-z 0-9 _ . : @ + -`, not
    /// starting with `@`, which marks the gateway's own accounts).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if s == "caller" {
            return Some(AccountRule::Caller);
        }
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('@')
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'+' | b'-')
            });
        ok.then(|| AccountRule::Fixed(s.to_string()))
    }

    /// The account for a call from `caller`.
    pub fn account(&self, caller: &str) -> String {
        match self {
            AccountRule::Caller => caller.to_string(),
            AccountRule::Fixed(id) => id.clone(),
        }
    }
}

impl std::fmt::Display for AccountRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountRule::Caller => f.write_str("caller"),
            AccountRule::Fixed(id) => f.write_str(id),
        }
    }
}

/// `[billing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingConfig {
    /// SIP status for a rated call whose account cannot pay for its first billing block, or
    /// has no account: 402 (Payment Required, the default) or 403 (Forbidden).
    pub reject_status: u16,
    /// The first block charged on an answered call, in seconds (1..=3600, default 60).
    pub initial_secs: u32,
    /// Every later block, in seconds (1..=3600, default 60): "60/60" bills whole minutes,
    /// "1/1" bills by the second.
    pub increment_secs: u32,
    /// The longest a rated call may last, whatever the balance (60..=86400 seconds, default
    /// 14400): the reservation on answer is never larger than this costs.
    pub max_call_secs: u32,
    /// Default payer for rated calls; `None`: the route or inbound trunk must name one.
    pub account: Option<AccountRule>,
    /// Price of one fax page, sent or received (default 0: faxes are free).
    pub price_per_page: u64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            reject_status: 402,
            initial_secs: 60,
            increment_secs: 60,
            max_call_secs: 14_400,
            account: None,
            price_per_page: 0,
        }
    }
}

/// `[billing]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBilling {
    pub reject_status: Option<u64>,
    pub initial_secs: Option<u64>,
    pub increment_secs: Option<u64>,
    pub max_call_secs: Option<u64>,
    pub account: Option<String>,
    pub price_per_page: Option<u64>,
}

/// Largest price accepted (per minute or per page), so costs never overflow.
pub(crate) const MAX_PRICE: u64 = 1_000_000_000;

/// Validate `[billing]`.
pub(crate) fn billing(c: &mut Checker, raw: RawBilling) -> BillingConfig {
    let d = BillingConfig::default();
    let reject_status = match raw.reject_status {
        None => d.reject_status,
        Some(s @ (402 | 403)) => s as u16,
        Some(s) => {
            c.invalid("billing.reject_status", &s.to_string(), "402 or 403");
            d.reject_status
        }
    };
    let secs = |c: &mut Checker, key: &str, v: Option<u64>, def: u32, min: u64, max: u64| {
        u32::try_from(c.ranged(key, v, u64::from(def), min, max)).unwrap_or(def)
    };
    BillingConfig {
        reject_status,
        initial_secs: secs(
            c,
            "billing.initial_secs",
            raw.initial_secs,
            d.initial_secs,
            1,
            3600,
        ),
        increment_secs: secs(
            c,
            "billing.increment_secs",
            raw.increment_secs,
            d.increment_secs,
            1,
            3600,
        ),
        max_call_secs: secs(
            c,
            "billing.max_call_secs",
            raw.max_call_secs,
            d.max_call_secs,
            60,
            86_400,
        ),
        account: account_rule(c, "billing.account", raw.account),
        price_per_page: c.ranged(
            "billing.price_per_page",
            raw.price_per_page,
            0,
            0,
            MAX_PRICE,
        ),
    }
}

/// Check an `account` key.
pub(crate) fn account_rule(c: &mut Checker, key: &str, v: Option<String>) -> Option<AccountRule> {
    let s = v?;
    let rule = AccountRule::parse(&s);
    if rule.is_none() {
        c.invalid(
            key,
            &s,
            "caller, or an account id of 1 to 64 of A-Z a-z 0-9 _ . : @ + - (not starting with @)",
        );
    }
    rule
}

/// Check a `price_per_minute` key (0 = not rated).
pub(crate) fn price(c: &mut Checker, key: &str, v: Option<u64>) -> u64 {
    c.ranged(key, v, 0, 0, MAX_PRICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_rules() {
        assert_eq!(AccountRule::parse("caller"), Some(AccountRule::Caller));
        assert_eq!(
            AccountRule::parse("acme-1"),
            Some(AccountRule::Fixed("acme-1".into()))
        );
        assert_eq!(
            AccountRule::parse("+4412"),
            Some(AccountRule::Fixed("+4412".into()))
        );
        for bad in ["", "@calls", "a b", "x/y", &"x".repeat(65)] {
            assert_eq!(AccountRule::parse(bad), None, "{bad}");
        }
        assert_eq!(AccountRule::Caller.account("+4412"), "+4412");
        assert_eq!(AccountRule::Fixed("acme".into()).account("+4412"), "acme");
        assert_eq!(AccountRule::Caller.to_string(), "caller");
    }

    const TRUNK: &str = "[[trunk]]\nname = \"t\"\naddress = \"127.0.0.1:5070\"\n";

    fn keys(toml: &str, env: &[(&str, &str)]) -> Vec<String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match crate::load_from_str(toml, &env) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.key.clone()).collect(),
        }
    }

    #[test]
    fn billing_keys_parse_and_apply() {
        let toml = format!(
            "[billing]\nreject_status = 403\ninitial_secs = 30\nincrement_secs = 6\naccount = \"caller\"\nprice_per_page = 2\n\n\
             {TRUNK}price_per_minute = 10\naccount = \"acme\"\n\n\
             [[route]]\nmatch = \"00*\"\nto = \"trunk:t\"\nprice_per_minute = 3\naccount = \"+4412\"\n"
        );
        let c = crate::load_from_str(&toml, &[]).unwrap();
        assert_eq!(c.billing.reject_status, 403);
        assert_eq!((c.billing.initial_secs, c.billing.increment_secs), (30, 6));
        assert_eq!(c.billing.account, Some(AccountRule::Caller));
        assert_eq!(c.billing.price_per_page, 2);
        assert_eq!(c.trunks[0].price_per_minute, 10);
        assert_eq!(c.trunks[0].account, Some(AccountRule::Fixed("acme".into())));
        assert_eq!(c.routes[0].price_per_minute, Some(3));
        assert_eq!(
            c.routes[0].account,
            Some(AccountRule::Fixed("+4412".into()))
        );
        // Defaults: nothing rated, 60/60, 402.
        let d = crate::load_from_str("", &[]).unwrap();
        assert_eq!(d.billing, BillingConfig::default());
        // Env overrides.
        let e = crate::load_from_str(
            "",
            &[("SWITCHBOARD_BILLING_REJECT_STATUS".into(), "403".into())],
        )
        .unwrap();
        assert_eq!(e.billing.reject_status, 403);
    }

    #[test]
    fn bad_billing_keys_are_named() {
        assert_eq!(
            keys("[billing]\nreject_status = 404\n", &[]),
            ["billing.reject_status"]
        );
        assert_eq!(
            keys("[billing]\nincrement_secs = 0\n", &[]),
            ["billing.increment_secs"]
        );
        assert_eq!(
            keys("[billing]\naccount = \"@calls\"\n", &[]),
            ["billing.account"]
        );
        assert_eq!(keys("[billing]\nbogus = 1\n", &[]), ["billing.bogus"]);
        assert_eq!(
            keys(&format!("{TRUNK}price_per_minute = 2000000000\n"), &[]),
            ["trunk[0].price_per_minute"]
        );
        assert_eq!(
            keys(
                "[[route]]\nmatch = \"1\"\nto = \"fax\"\nprice_per_minute = 1\n",
                &[]
            ),
            ["route[0].price_per_minute"]
        );
        assert_eq!(
            keys(
                &format!(
                    "{TRUNK}\n[[route]]\nmatch = \"1\"\nto = \"trunk:t\"\naccount = \"a b\"\n"
                ),
                &[]
            ),
            ["route[0].account"]
        );
        assert_eq!(
            keys("", &[("SWITCHBOARD_BILLING_REJECT_STATUS", "500")]),
            ["SWITCHBOARD_BILLING_REJECT_STATUS"]
        );
    }
}
