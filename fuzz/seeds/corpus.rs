//! Reading a fuzz target's seed corpus (`fuzz/corpus/<target>/`) from a crate's tests, so that
//! `cargo test` checks the seeds still decode. Included by path (`#[path]`) from the
//! `fuzz_seeds` tests of the crates whose targets have seeds.

use std::fs;
use std::path::{Path, PathBuf};

/// The corpus directory of `target`, from the including crate's directory.
pub fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The seeds of `target` whose file name starts with `prefix` and ends with `suffix`, sorted by
/// name; at least one.
pub fn seeds(target: &str, prefix: &str, suffix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            (name.starts_with(prefix) && name.ends_with(suffix))
                .then(|| (name, fs::read(&p).expect("seed readable")))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {prefix}*{suffix} seed for {target}");
    out
}
