//! Fuzz target for the config loader (`switchboard_config::load_from_str`,
//! TOML v1.0 + the typed validation) with an empty environment: arbitrary
//! text never panics; a rejected config reports at least one error and its
//! errors render; an accepted config loads again to the same value, also
//! after its TOML is re-written by the `toml` serializer (what `check-config`
//! accepted does not depend on formatting).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_config::load_from_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_from_str(text, &[]) {
        Ok(cfg) => {
            let again = load_from_str(text, &[]).expect("an accepted config is accepted again");
            assert_eq!(again, cfg, "loading is deterministic");
            let table: toml::Table = toml::from_str(text).expect("an accepted config is TOML");
            let rewritten = toml::to_string(&table).expect("a TOML table serializes");
            match load_from_str(&rewritten, &[]) {
                Ok(cfg2) => assert_eq!(cfg2, cfg, "re-written TOML loads to another config"),
                Err(e) => panic!("re-written TOML rejected: {e}\n---\n{rewritten}"),
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a rejection without an error");
            let _ = errors.render("fuzz.toml");
        }
    }
});
