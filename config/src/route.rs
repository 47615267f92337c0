//! The dial plan: `[[route]]` entries matching dialed digits by exact number, prefix (`0044*`)
//! or catch-all (`*`), chosen like Asterisk: exact first, then longest prefix, then `*`.

use std::collections::BTreeMap;
use std::fmt;

/// Which dialed numbers a route takes (TOML key `match`; digits, `+`, `#`, `*` only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoutePattern {
    /// Exactly this number.
    Exact(String),
    /// Numbers starting with this (written with a trailing `*`, e.g. `0044*`).
    Prefix(String),
    /// Everything (written `*`).
    Any,
}

impl RoutePattern {
    /// Whether `dialed` is taken by this pattern.
    pub fn matches(&self, dialed: &str) -> bool {
        match self {
            RoutePattern::Exact(n) => dialed == n,
            RoutePattern::Prefix(p) => dialed.starts_with(p.as_str()),
            RoutePattern::Any => true,
        }
    }

    /// Parse `*`, `PREFIX*` or `NUMBER`; `None` if empty or with other characters.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if !is_dial_string(s) || s.is_empty() {
            return None;
        }
        Some(match s.strip_suffix('*') {
            Some("") => RoutePattern::Any,
            Some(prefix) => RoutePattern::Prefix(prefix.to_string()),
            None => RoutePattern::Exact(s.to_string()),
        })
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePattern::Exact(n) => f.write_str(n),
            RoutePattern::Prefix(p) => write!(f, "{p}*"),
            RoutePattern::Any => f.write_str("*"),
        }
    }
}

/// Where a route sends the call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Out through a configured trunk (written `trunk:NAME`).
    Trunk(String),
    /// Answered as a fax and received into the fax spool (written `fax`); needs no trunk.
    Fax,
    /// Answered and streamed to a configured `[[app]]` over a WebSocket (written `app:NAME`).
    App(String),
    /// Rung on a claimed device (written `device:ID`, ID `[A-Za-z0-9_-]{1,64}`, the device id
    /// rule of the MQTT topics).
    Device(String),
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::Trunk(name) => write!(f, "trunk:{name}"),
            RouteTarget::Fax => f.write_str("fax"),
            RouteTarget::App(name) => write!(f, "app:{name}"),
            RouteTarget::Device(id) => write!(f, "device:{id}"),
        }
    }
}

/// How a target string failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// A known kind this version cannot route to yet.
    Unsupported,
    /// Not a target at all.
    Invalid,
    /// `device:ID` with an ID outside `[A-Za-z0-9_-]{1,64}`.
    BadDeviceId,
}

impl RouteTarget {
    /// Parse `trunk:NAME`, `fax`, `app:NAME` or `device:ID`. Whether a trunk or app NAME exists
    /// is checked by the caller; a device ID must be `[A-Za-z0-9_-]{1,64}`.
    pub(crate) fn parse(s: &str) -> Result<Self, TargetError> {
        if s == "fax" {
            return Ok(RouteTarget::Fax);
        }
        let named = |name: &str, make: fn(String) -> RouteTarget| {
            if name.is_empty() {
                Err(TargetError::Invalid)
            } else {
                Ok(make(name.to_string()))
            }
        };
        if let Some(name) = s.strip_prefix("trunk:") {
            return named(name, RouteTarget::Trunk);
        }
        if let Some(name) = s.strip_prefix("app:") {
            return named(name, RouteTarget::App);
        }
        if let Some(id) = s.strip_prefix("device:") {
            return if crate::validate::valid_name(id) {
                Ok(RouteTarget::Device(id.to_string()))
            } else {
                Err(TargetError::BadDeviceId)
            };
        }
        let kind = s.split_once(':').map_or(s, |(k, _)| k);
        match kind {
            "queue" | "ivr" => Err(TargetError::Unsupported),
            _ => Err(TargetError::Invalid),
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Numbers this route takes.
    pub pattern: RoutePattern,
    /// Where they go.
    pub to: RouteTarget,
    /// Characters to strip from the front of the dialed number (default 0, 0..=64).
    pub strip: usize,
    /// Prepended after stripping (default "", up to 64 of digits, `+`, `#`, `*`).
    pub prepend: String,
    /// Custom parameters passed to the app in the stream `start` message; on an `app:NAME`
    /// route they override the app's own `parameters` of the same name. At most 32 entries,
    /// names 1 to 64 of `[A-Za-z0-9_.-]`, values at most 256 bytes (default empty).
    pub parameters: BTreeMap<String, String>,
    /// An `[[app]]` that receives a copy of the audio of a bridged trunk call ("fork mode");
    /// only on `trunk:NAME` routes (default none).
    pub fork: Option<String>,
    /// Price per minute of calls on this route, in credit units; overrides the trunk's
    /// (key `price_per_minute`, only on `trunk:NAME` routes; default: the trunk's).
    pub price_per_minute: Option<u64>,
    /// Who pays for rated calls on this route (key `account`: `caller` or an account id);
    /// overrides the inbound trunk's and `[billing] account`.
    pub account: Option<crate::billing::AccountRule>,
}

impl RouteConfig {
    /// A route with no rewriting, parameters or fork; set the other fields afterwards.
    pub fn new(pattern: RoutePattern, to: RouteTarget) -> Self {
        Self {
            pattern,
            to,
            strip: 0,
            prepend: String::new(),
            parameters: BTreeMap::new(),
            fork: None,
            price_per_minute: None,
            account: None,
        }
    }

    /// The number to send: `dialed` without its first `strip` characters (all of them if it is
    /// shorter), with `prepend` in front.
    pub fn rewrite(&self, dialed: &str) -> String {
        let rest = dialed
            .char_indices()
            .nth(self.strip)
            .map_or("", |(i, _)| &dialed[i..]);
        format!("{}{rest}", self.prepend)
    }
}

/// Digits, `+`, `#` and `*` only.
pub(crate) fn is_dial_string(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '#' | '*'))
}

/// Pick the route for `dialed`: exact match, else longest prefix, else `*`; ties go to the
/// first in file order.
pub(crate) fn select<'a>(routes: &'a [RouteConfig], dialed: &str) -> Option<&'a RouteConfig> {
    let mut best: Option<(&RouteConfig, usize)> = None;
    for r in routes.iter().filter(|r| r.pattern.matches(dialed)) {
        // Rank: exact beats any prefix, a longer prefix beats a shorter, any prefix beats `*`.
        let rank = match &r.pattern {
            RoutePattern::Exact(_) => usize::MAX,
            RoutePattern::Prefix(p) => p.len() + 1,
            RoutePattern::Any => 0,
        };
        if best.is_none_or(|(_, b)| rank > b) {
            best = Some((r, rank));
        }
    }
    best.map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &str, trunk: &str) -> RouteConfig {
        RouteConfig::new(
            RoutePattern::parse(pattern).unwrap(),
            RouteTarget::Trunk(trunk.into()),
        )
    }

    #[test]
    fn parse_patterns() {
        assert_eq!(RoutePattern::parse("*"), Some(RoutePattern::Any));
        assert_eq!(
            RoutePattern::parse("0044*"),
            Some(RoutePattern::Prefix("0044".into()))
        );
        assert_eq!(
            RoutePattern::parse("*67*"),
            Some(RoutePattern::Prefix("*67".into()))
        );
        assert_eq!(
            RoutePattern::parse("+4420#"),
            Some(RoutePattern::Exact("+4420#".into()))
        );
        assert_eq!(RoutePattern::parse(""), None);
        assert_eq!(RoutePattern::parse("00x4"), None);
        assert_eq!(RoutePattern::parse("00 44"), None);
        for p in ["*", "0044*", "123"] {
            assert_eq!(RoutePattern::parse(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn parse_targets() {
        assert_eq!(
            RouteTarget::parse("trunk:a-1"),
            Ok(RouteTarget::Trunk("a-1".into()))
        );
        assert_eq!(RouteTarget::parse("trunk:"), Err(TargetError::Invalid));
        assert_eq!(RouteTarget::parse("fax"), Ok(RouteTarget::Fax));
        assert_eq!(RouteTarget::Fax.to_string(), "fax");
        for s in ["fax:", "fax:x", "FAX", " fax"] {
            assert_eq!(RouteTarget::parse(s), Err(TargetError::Invalid), "{s}");
        }
        assert_eq!(RouteTarget::parse("queue"), Err(TargetError::Unsupported));
        assert_eq!(RouteTarget::parse("ivr"), Err(TargetError::Unsupported));
        assert_eq!(
            RouteTarget::parse("queue:sales"),
            Err(TargetError::Unsupported)
        );
        for t in [
            RouteTarget::Fax,
            RouteTarget::Trunk("a-1".into()),
            RouteTarget::App("ivr".into()),
            RouteTarget::Device("esp32_Kitchen-1".into()),
        ] {
            assert_eq!(RouteTarget::parse(&t.to_string()), Ok(t));
        }
        assert_eq!(
            RouteTarget::parse("app:ivr"),
            Ok(RouteTarget::App("ivr".into()))
        );
        assert_eq!(RouteTarget::App("bot".into()).to_string(), "app:bot");
        assert_eq!(RouteTarget::parse("app:"), Err(TargetError::Invalid));
        assert_eq!(
            RouteTarget::parse("device:esp1"),
            Ok(RouteTarget::Device("esp1".into()))
        );
        assert_eq!(RouteTarget::Device("d".into()).to_string(), "device:d");
        let long = format!("device:{}", "x".repeat(65));
        for bad in ["device:", "device:a b", "device:a.b", "device:a/b", &long] {
            assert_eq!(
                RouteTarget::parse(bad),
                Err(TargetError::BadDeviceId),
                "{bad}"
            );
        }
        let longest = format!("device:{}", "x".repeat(64));
        assert!(RouteTarget::parse(&longest).is_ok());
        for s in ["App:x", "apps:x", "dev:x"] {
            assert_eq!(RouteTarget::parse(s), Err(TargetError::Invalid), "{s}");
        }
        assert_eq!(RouteTarget::parse("sip:x@y"), Err(TargetError::Invalid));
        assert_eq!(RouteTarget::Trunk("x".into()).to_string(), "trunk:x");
    }

    #[test]
    fn selection_order() {
        let routes = vec![
            route("*", "any"),
            route("00*", "short"),
            route("0044*", "uk"),
            route("0044*", "uk-second"),
            route("004420*", "london"),
            route("00442071234567", "exact"),
            route("*", "any-second"),
        ];
        let pick = |d: &str| match select(&routes, d).map(|r| &r.to) {
            Some(RouteTarget::Trunk(n)) => n.as_str(),
            Some(RouteTarget::Fax) => "fax",
            Some(RouteTarget::App(_) | RouteTarget::Device(_)) => "local",
            None => "none",
        };
        assert_eq!(pick("00442071234567"), "exact");
        assert_eq!(pick("00442071234568"), "london");
        assert_eq!(pick("0044161"), "uk");
        assert_eq!(pick("0033"), "short");
        assert_eq!(pick("911"), "any");
        assert_eq!(pick(""), "any");
        assert_eq!(select(&routes[1..3], "911"), None);
    }

    #[test]
    fn rewrite_strips_and_prepends() {
        let mut r = route("00*", "t");
        assert_eq!(r.rewrite("0044207"), "0044207");
        r.strip = 2;
        r.prepend = "+".into();
        assert_eq!(r.rewrite("0044207"), "+44207");
        r.strip = 10;
        assert_eq!(r.rewrite("0044"), "+");
    }
}
