//! `[fax]`: T.30 / T.38 fax jobs (dial attempts, station identity, rates, spool, uploads and the
//! job webhook), and the per-trunk `t38` policy, validated from the raw file plus
//! `SWITCHBOARD_FAX_*` overrides.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::types::Secret;
use crate::validate::Checker;

/// Whether a trunk may carry fax as T.38 (trunk key `t38`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum T38Policy {
    /// Switch to T.38 when both ends can (written `prefer`). The default.
    #[default]
    Prefer,
    /// Never offer or accept T.38 on this trunk; fax stays G.711 pass-through (`never`).
    Never,
}

impl T38Policy {
    /// The name as written in the file: `prefer` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            T38Policy::Prefer => "prefer",
            T38Policy::Never => "never",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "prefer" => Some(T38Policy::Prefer),
            "never" => Some(T38Policy::Never),
            _ => None,
        }
    }
}

impl fmt::Display for T38Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[fax]`: fax jobs. Its `Debug` hides credentials and the query of `webhook_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct FaxConfig {
    /// Dial attempts per outbound job (1..=10, default 3).
    pub max_attempts: u32,
    /// Seconds to wait between attempts (1..=86400, default 60); see [`FaxConfig::retry_delay`].
    pub retry_delay_secs: u32,
    /// Where fax files live; `None` = `<storage.path>/fax` (see [`FaxConfig::spool_dir`]).
    pub spool: Option<PathBuf>,
    /// Our T.30 station identity (TSI/CSI): up to 20 of digits, space and `+`; empty = none
    /// (the default).
    pub ident: String,
    /// T.30 error correction mode (default true).
    pub ecm: bool,
    /// Highest signalling rate in bit/s: 2400, 4800, 7200, 9600, 12000 or 14400 (default).
    pub max_rate: u32,
    /// T.38 version offered (0..=3, default 0).
    pub t38_version: u8,
    /// Most pages per job (1..=1000, default 200).
    pub max_pages: u32,
    /// Largest upload in bytes (1 KiB..=100 MiB, default 20 MiB).
    pub max_file_bytes: u64,
    /// Job status webhook, `http://` or `https://`, at most 2048 characters.
    pub webhook_url: Option<String>,
    /// Webhook signing secret, at least 16 bytes (best from `SWITCHBOARD_FAX_WEBHOOK_SECRET`).
    pub webhook_secret: Option<Secret>,
    /// Seconds to wait after answer for the far end's T.38 re-INVITE before sending ours
    /// (1..=60, default 5).
    pub t38_switch_timeout_secs: u32,
    /// Ghostscript binary used to render PDF input (default "gs").
    pub gs: String,
    /// Ghostscript is killed past this many seconds on one document (key `gs_timeout_secs`,
    /// 1..=3600, default 60).
    pub gs_timeout_secs: u32,
    /// Uploads (`POST /api/v1/files`) not used by a job within this many seconds are deleted
    /// (key `upload_ttl_secs`, 1..=604800, default 3600).
    pub upload_ttl_secs: u32,
    /// Most bytes the spool directory may hold (uploads, job documents, received faxes);
    /// uploads and jobs that would pass it are refused with 507 (key `spool_max_bytes`,
    /// 1 MiB..=1 TiB, default 1 GiB).
    pub spool_max_bytes: u64,
}

impl fmt::Debug for FaxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaxConfig")
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay_secs", &self.retry_delay_secs)
            .field("spool", &self.spool)
            .field("ident", &self.ident)
            .field("ecm", &self.ecm)
            .field("max_rate", &self.max_rate)
            .field("t38_version", &self.t38_version)
            .field("max_pages", &self.max_pages)
            .field("max_file_bytes", &self.max_file_bytes)
            .field(
                "webhook_url",
                &self.webhook_url.as_deref().map(crate::apps::redact_url),
            )
            .field("webhook_secret", &self.webhook_secret)
            .field("t38_switch_timeout_secs", &self.t38_switch_timeout_secs)
            .field("gs", &self.gs)
            .field("gs_timeout_secs", &self.gs_timeout_secs)
            .field("upload_ttl_secs", &self.upload_ttl_secs)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

impl FaxConfig {
    /// `retry_delay_secs` as a duration.
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs(u64::from(self.retry_delay_secs))
    }

    /// The spool directory: `spool`, else `<storage_path>/fax`.
    pub fn spool_dir(&self, storage_path: &Path) -> PathBuf {
        self.spool
            .clone()
            .unwrap_or_else(|| storage_path.join("fax"))
    }
}

impl Default for FaxConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_delay_secs: 60,
            spool: None,
            ident: String::new(),
            ecm: true,
            max_rate: 14_400,
            t38_version: 0,
            max_pages: 200,
            max_file_bytes: 20 * 1024 * 1024,
            webhook_url: None,
            webhook_secret: None,
            t38_switch_timeout_secs: 5,
            gs: "gs".into(),
            gs_timeout_secs: 60,
            upload_ttl_secs: 3600,
            spool_max_bytes: 1 << 30,
        }
    }
}

/// `[fax]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFax {
    pub max_attempts: Option<u64>,
    pub retry_delay_secs: Option<u64>,
    pub spool: Option<String>,
    pub ident: Option<String>,
    pub ecm: Option<bool>,
    pub max_rate: Option<u64>,
    pub t38_version: Option<u64>,
    pub max_pages: Option<u64>,
    pub max_file_bytes: Option<u64>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub t38_switch_timeout_secs: Option<u64>,
    pub gs: Option<String>,
    pub gs_timeout_secs: Option<u64>,
    pub upload_ttl_secs: Option<u64>,
    pub spool_max_bytes: Option<u64>,
}

/// Signalling rates T.30 knows (V.27 ter, V.29, V.17).
const RATES: [u32; 6] = [2400, 4800, 7200, 9600, 12_000, 14_400];
/// Longest T.30 identity (TSI/CSI is 20 characters, T.30 §5.3.6.2.4).
const MAX_IDENT: usize = 20;
/// Longest webhook URL.
const MAX_URL: usize = 2048;
/// Shortest webhook secret accepted, in bytes.
const MIN_WEBHOOK_SECRET: usize = 16;

/// Validate `[fax]`.
pub(crate) fn fax(c: &mut Checker, raw: RawFax) -> FaxConfig {
    let d = FaxConfig::default();
    let num = |c: &mut Checker, key: &str, v: Option<u64>, def: u32, min: u64, max: u64| {
        let n = c.ranged(key, v, u64::from(def), min, max);
        u32::try_from(n).unwrap_or(def)
    };
    let max_attempts = num(
        c,
        "fax.max_attempts",
        raw.max_attempts,
        d.max_attempts,
        1,
        10,
    );
    let retry_delay_secs = num(
        c,
        "fax.retry_delay_secs",
        raw.retry_delay_secs,
        d.retry_delay_secs,
        1,
        86_400,
    );
    let max_pages = num(c, "fax.max_pages", raw.max_pages, d.max_pages, 1, 1000);
    let t38_switch_timeout_secs = num(
        c,
        "fax.t38_switch_timeout_secs",
        raw.t38_switch_timeout_secs,
        d.t38_switch_timeout_secs,
        1,
        60,
    );
    let t38_version = u8::try_from(c.ranged(
        "fax.t38_version",
        raw.t38_version,
        u64::from(d.t38_version),
        0,
        3,
    ))
    .unwrap_or(d.t38_version);
    let max_file_bytes = c.ranged(
        "fax.max_file_bytes",
        raw.max_file_bytes,
        d.max_file_bytes,
        1024,
        100 * 1024 * 1024,
    );
    let max_rate = match raw.max_rate {
        None => d.max_rate,
        Some(r) => match RATES.iter().copied().find(|&ok| u64::from(ok) == r) {
            Some(ok) => ok,
            None => {
                c.invalid(
                    "fax.max_rate",
                    &r.to_string(),
                    "one of 2400, 4800, 7200, 9600, 12000, 14400",
                );
                d.max_rate
            }
        },
    };
    let spool = raw.spool.filter(|p| !p.is_empty()).and_then(|p| {
        if p.trim().is_empty() || p.chars().any(char::is_control) {
            c.invalid("fax.spool", &p, "a directory path");
            None
        } else {
            Some(PathBuf::from(p))
        }
    });
    let ident = match raw.ident {
        None => d.ident,
        Some(id)
            if id.chars().count() <= MAX_IDENT
                && id
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || matches!(ch, ' ' | '+')) =>
        {
            id
        }
        Some(id) => {
            c.invalid(
                "fax.ident",
                &id,
                "up to 20 of digits, space and + (a T.30 station identity)",
            );
            d.ident
        }
    };
    let webhook_url = raw.webhook_url.filter(|u| !u.is_empty()).and_then(|u| {
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        let ok = u.len() <= MAX_URL
            && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
            && !u.chars().any(|ch| ch.is_whitespace() || ch.is_control());
        if ok {
            Some(u)
        } else {
            c.invalid(
                "fax.webhook_url",
                &u,
                "an http:// or https:// URL of at most 2048 characters",
            );
            None
        }
    });
    let webhook_secret = raw.webhook_secret.and_then(|s| {
        if s.len() >= MIN_WEBHOOK_SECRET {
            Some(Secret::new(s))
        } else {
            // Never echo the secret itself.
            c.invalid(
                "fax.webhook_secret",
                "***",
                &format!(
                    "a secret of at least {MIN_WEBHOOK_SECRET} bytes (got {})",
                    s.len()
                ),
            );
            None
        }
    });
    FaxConfig {
        max_attempts,
        retry_delay_secs,
        spool,
        ident,
        ecm: raw.ecm.unwrap_or(d.ecm),
        max_rate,
        t38_version,
        max_pages,
        max_file_bytes,
        webhook_url,
        webhook_secret,
        t38_switch_timeout_secs,
        gs: c.text("fax.gs", raw.gs, &d.gs),
        gs_timeout_secs: num(
            c,
            "fax.gs_timeout_secs",
            raw.gs_timeout_secs,
            d.gs_timeout_secs,
            1,
            3600,
        ),
        upload_ttl_secs: num(
            c,
            "fax.upload_ttl_secs",
            raw.upload_ttl_secs,
            d.upload_ttl_secs,
            1,
            604_800,
        ),
        spool_max_bytes: c.ranged(
            "fax.spool_max_bytes",
            raw.spool_max_bytes,
            d.spool_max_bytes,
            1 << 20,
            1 << 40,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConfigErrorKind;
    use crate::{load_from_str, ConfigErrors, RouteTarget};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn errs(toml: &str) -> ConfigErrors {
        load_from_str(toml, &[]).expect_err("expected errors")
    }

    #[test]
    fn debug_hides_webhook_credentials_and_secret() {
        let c = load_from_str(
            "[fax]\nwebhook_url = \"https://user:pw-123@hooks.example/fax?token=tok-456\"\nwebhook_secret = \"0123456789abcdef-secret\"\n",
            &[],
        )
        .unwrap();
        let shown = format!("{:?}", c.fax);
        for secret in ["pw-123", "tok-456", "0123456789abcdef-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("hooks.example/fax"), "{shown}");
        // The URL itself is used unchanged.
        assert_eq!(
            c.fax.webhook_url.as_deref(),
            Some("https://user:pw-123@hooks.example/fax?token=tok-456")
        );
    }

    #[test]
    fn defaults_without_a_file() {
        let c = load_from_str("", &[]).unwrap();
        let f = &c.fax;
        assert_eq!(f, &FaxConfig::default());
        assert_eq!((f.max_attempts, f.retry_delay_secs), (3, 60));
        assert_eq!(f.retry_delay(), Duration::from_secs(60));
        assert_eq!(f.spool, None);
        assert_eq!(
            f.spool_dir(&c.storage.path),
            Path::new("./data").join("fax")
        );
        assert_eq!(f.ident, "");
        assert!(f.ecm);
        assert_eq!((f.max_rate, f.t38_version, f.max_pages), (14_400, 0, 200));
        assert_eq!(f.max_file_bytes, 20 * 1024 * 1024);
        assert_eq!(
            (f.webhook_url.as_ref(), f.webhook_secret.as_ref()),
            (None, None)
        );
        assert_eq!(f.t38_switch_timeout_secs, 5);
        assert_eq!(f.gs, "gs");
    }

    #[test]
    fn typed_values_from_the_file() {
        let c = load_from_str(
            r#"
            [fax]
            max_attempts = 10
            retry_delay_secs = 86400
            spool = "/var/spool/fax"
            ident = "+49 30 5550001"
            ecm = false
            max_rate = 9600
            t38_version = 3
            max_pages = 1
            max_file_bytes = 1024
            webhook_url = "https://app.example/hook?x=1"
            webhook_secret = "0123456789abcdef"
            t38_switch_timeout_secs = 60
            gs = "/usr/bin/gs"
            [[trunk]]
            name = "a"
            address = "192.0.2.1"
            t38 = "never"
            [[trunk]]
            name = "b"
            address = "192.0.2.2"
            t38 = "prefer"
            [[trunk]]
            name = "c"
            address = "192.0.2.3"
            [[route]]
            match = "+4930555000"
            to = "fax"
            [[route]]
            match = "*"
            to = "trunk:a"
            "#,
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = &c.fax;
        assert_eq!((f.max_attempts, f.retry_delay_secs), (10, 86_400));
        assert_eq!(f.retry_delay(), Duration::from_secs(86_400));
        assert_eq!(f.spool, Some(PathBuf::from("/var/spool/fax")));
        assert_eq!(
            f.spool_dir(Path::new("/elsewhere")),
            PathBuf::from("/var/spool/fax")
        );
        assert_eq!(f.ident, "+49 30 5550001");
        assert!(!f.ecm);
        assert_eq!((f.max_rate, f.t38_version, f.max_pages), (9600, 3, 1));
        assert_eq!(f.max_file_bytes, 1024);
        assert_eq!(
            f.webhook_url.as_deref(),
            Some("https://app.example/hook?x=1")
        );
        assert_eq!(
            f.webhook_secret.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert!(
            !format!("{f:?}").contains("0123456789abcdef"),
            "secret leaked"
        );
        assert_eq!(f.t38_switch_timeout_secs, 60);
        assert_eq!(f.gs, "/usr/bin/gs");
        let t38: Vec<_> = c.trunks.iter().map(|t| t.t38).collect();
        assert_eq!(
            t38,
            [T38Policy::Never, T38Policy::Prefer, T38Policy::Prefer]
        );
        // A fax route needs no trunk and round-trips through Display.
        let (r, number) = c.dial("+4930555000").unwrap();
        assert_eq!(r.to, RouteTarget::Fax);
        assert_eq!(
            (r.to.to_string().as_str(), number.as_str()),
            ("fax", "+4930555000")
        );
        let only_fax = load_from_str("[[route]]\nmatch = \"*\"\nto = \"fax\"\n", &[]).unwrap();
        assert_eq!(only_fax.routes[0].to, RouteTarget::Fax);
        assert!(only_fax.trunks.is_empty());
        // Every rate T.30 knows is accepted.
        for rate in RATES {
            let c = load_from_str(&format!("[fax]\nmax_rate = {rate}"), &[]).unwrap();
            assert_eq!(c.fax.max_rate, rate);
        }
    }

    #[test]
    fn every_error_at_its_key() {
        use ConfigErrorKind as K;
        let secret = "fifteen-bytes!!"; // one short of the minimum
        assert_eq!(secret.len(), 15);
        let e = errs(&format!(
            r#"
            [fax]
            max_attempts = 0
            retry_delay_secs = 86401
            spool = " "
            ident = "ABC-123"
            ecm = "yes"
            max_rate = 28800
            t38_version = 4
            max_pages = 1001
            max_file_bytes = 1023
            webhook_url = "ftp://x"
            webhook_secret = "{secret}"
            t38_switch_timeout_secs = 0
            gs = ""
            colour = "red"
            [[trunk]]
            name = "a"
            address = "192.0.2.1"
            t38 = "always"
            [[route]]
            match = "1"
            to = "fax:inbox"
            "#
        ));
        let at = |k: &str| e.at(k).unwrap_or_else(|| panic!("no error at {k}:\n{e}"));
        assert_eq!(
            at("fax.max_attempts"),
            &K::OutOfRange {
                value: 0,
                min: 1,
                max: 10
            }
        );
        assert!(matches!(at("fax.retry_delay_secs"), K::OutOfRange { .. }));
        assert!(matches!(at("fax.spool"), K::Invalid { .. }));
        assert!(matches!(at("fax.ident"), K::Invalid { value, .. } if value == "ABC-123"));
        assert!(matches!(at("fax.ecm"), K::Invalid { .. }));
        assert!(matches!(
            at("fax.max_rate"),
            K::Invalid { value, expected } if value == "28800" && expected.contains("14400")
        ));
        assert_eq!(
            at("fax.t38_version"),
            &K::OutOfRange {
                value: 4,
                min: 0,
                max: 3
            }
        );
        assert!(matches!(at("fax.max_pages"), K::OutOfRange { .. }));
        assert_eq!(
            at("fax.max_file_bytes"),
            &K::OutOfRange {
                value: 1023,
                min: 1024,
                max: 104_857_600
            }
        );
        assert!(matches!(at("fax.webhook_url"), K::Invalid { value, .. } if value == "ftp://x"));
        match at("fax.webhook_secret") {
            K::Invalid { value, expected } => {
                assert_eq!(value, "***");
                assert!(expected.contains("got 15"), "{expected}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains(secret), "secret leaked:\n{e}");
        assert!(matches!(
            at("fax.t38_switch_timeout_secs"),
            K::OutOfRange { .. }
        ));
        assert!(matches!(at("fax.gs"), K::Invalid { .. }));
        assert!(matches!(at("fax.colour"), K::UnknownKey { .. }));
        assert!(matches!(at("trunk[0].t38"), K::Invalid { value, .. } if value == "always"));
        assert!(matches!(at("route[0].to"), K::Invalid { .. }));
    }

    #[test]
    fn ident_and_webhook_url_rules() {
        for good in ["", "+49 30 555000", "12345678901234567890", "+"] {
            let c = load_from_str(&format!("[fax]\nident = \"{good}\""), &[]).unwrap();
            assert_eq!(c.fax.ident, good);
        }
        for bad in ["123456789012345678901", "switchboard", "+49-30", "12\t3"] {
            let e = errs(&format!("[fax]\nident = \"{bad}\""));
            assert!(e.at("fax.ident").is_some(), "{bad} accepted");
        }
        for good in ["http://10.0.0.1:8080/fax", "https://app.example"] {
            let c = load_from_str(&format!("[fax]\nwebhook_url = \"{good}\""), &[]).unwrap();
            assert_eq!(c.fax.webhook_url.as_deref(), Some(good));
        }
        let long = format!("https://a.example/{}", "x".repeat(2048));
        for bad in [
            "app.example",
            "https://",
            "http:///x",
            "https://a b",
            long.as_str(),
        ] {
            let e = errs(&format!("[fax]\nwebhook_url = \"{bad}\""));
            assert!(e.at("fax.webhook_url").is_some(), "{bad} accepted");
        }
        // Empty means unset.
        assert_eq!(
            load_from_str("[fax]\nwebhook_url = \"\"", &[])
                .unwrap()
                .fax
                .webhook_url,
            None
        );
    }

    #[test]
    fn env_overrides() {
        let c = load_from_str(
            "[fax]\nmax_attempts = 5\nmax_pages = 50\ngs = \"gs9\"\n",
            &env(&[
                ("SWITCHBOARD_FAX_MAX_ATTEMPTS", "7"),
                ("SWITCHBOARD_FAX_RETRY_DELAY_SECS", "120"),
                ("SWITCHBOARD_FAX_SPOOL", "/srv/fax"),
                ("SWITCHBOARD_FAX_IDENT", "+1 555 0100"),
                ("SWITCHBOARD_FAX_ECM", "off"),
                ("SWITCHBOARD_FAX_MAX_RATE", "9600"),
                ("SWITCHBOARD_FAX_T38_VERSION", "2"),
                ("SWITCHBOARD_FAX_MAX_FILE_BYTES", "2048"),
                ("SWITCHBOARD_FAX_WEBHOOK_URL", "https://hooks.example/f"),
                ("SWITCHBOARD_FAX_WEBHOOK_SECRET", "an-env-webhook-secret"),
                ("SWITCHBOARD_FAX_T38_SWITCH_TIMEOUT_SECS", "9"),
                ("SWITCHBOARD_FAX_GS", ""),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = &c.fax;
        assert_eq!(
            (f.max_attempts, f.max_pages),
            (7, 50),
            "env wins, file kept"
        );
        assert_eq!(f.retry_delay(), Duration::from_secs(120));
        assert_eq!(f.spool_dir(Path::new("./data")), PathBuf::from("/srv/fax"));
        assert_eq!(f.ident, "+1 555 0100");
        assert!(!f.ecm);
        assert_eq!((f.max_rate, f.t38_version), (9600, 2));
        assert_eq!(f.max_file_bytes, 2048);
        assert_eq!(f.webhook_url.as_deref(), Some("https://hooks.example/f"));
        assert_eq!(
            f.webhook_secret.as_ref().map(Secret::expose),
            Some("an-env-webhook-secret")
        );
        assert_eq!(f.t38_switch_timeout_secs, 9);
        assert_eq!(f.gs, "gs", "empty env clears the file value");
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = load_from_str(
            "",
            &env(&[
                ("SWITCHBOARD_FAX_MAX_RATE", "33600"),
                ("SWITCHBOARD_FAX_ECM", "sometimes"),
                ("SWITCHBOARD_FAX_IDENT", "ACME"),
                ("SWITCHBOARD_FAX_WEBHOOK_SECRET", "tiny-secret"),
                ("SWITCHBOARD_FAX_MAX_ATTEMPTS", "many"),
            ]),
        )
        .unwrap_err();
        let mut keys: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "SWITCHBOARD_FAX_ECM",
                "SWITCHBOARD_FAX_IDENT",
                "SWITCHBOARD_FAX_MAX_ATTEMPTS",
                "SWITCHBOARD_FAX_MAX_RATE",
                "SWITCHBOARD_FAX_WEBHOOK_SECRET",
            ]
        );
        assert!(!e.to_string().contains("tiny-secret"), "secret leaked");
    }

    #[test]
    fn t38_policy_names_round_trip() {
        for p in [T38Policy::Prefer, T38Policy::Never] {
            assert_eq!(T38Policy::parse(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(T38Policy::default(), T38Policy::Prefer);
        assert_eq!(T38Policy::parse("Prefer"), None);
    }
}
