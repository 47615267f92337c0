//! The rule of decisions 16.3 (issue 13), checked: no integration test synchronises with a bare
//! sleep. Waiting is `common::wait_until` / `poll_until` (poll with a deadline, fail naming
//! what was awaited) or `common::quiet_for` (absence, when no later event can prove it); the
//! poll interval in `tests/common/wait.rs` is their only sleep. Any other `sleep(` in tests/
//! paces traffic on purpose and says so in a `// pacing:` comment on its line or the line above.

use std::path::{Path, PathBuf};

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `file:line: text` of every sleep in `text` that is neither a comment nor marked pacing.
fn bare_sleeps(name: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") || !code.contains("sleep(") {
            continue;
        }
        let marked = lines[i.saturating_sub(1)..=i]
            .iter()
            .any(|l| l.contains("// pacing:"));
        if !marked {
            found.push(format!("{name}:{}: {}", i + 1, code));
        }
    }
    found
}

#[test]
fn every_sleep_in_tests_is_a_poll_interval_or_marked_pacing() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    rust_files(&tests, &mut files);
    assert!(files.len() > 20, "found only {files:?}");
    let this = Path::new(file!()).file_name().unwrap();
    let mut bare = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&tests).unwrap().display().to_string();
        if name == "common/wait.rs" || file.file_name() == Some(this) {
            continue;
        }
        bare.extend(bare_sleeps(&name, &std::fs::read_to_string(file).unwrap()));
    }
    assert!(
        bare.is_empty(),
        "bare sleeps in tests/ (wait with common::wait_until, or mark deliberate pacing with \
         `// pacing:`):\n{}",
        bare.join("\n")
    );
}

#[test]
fn the_check_finds_an_unmarked_sleep_and_accepts_a_marked_one() {
    let text = "fn t() {\n    std::thread::sleep(d);\n    // pacing: one frame every 20 ms.\n    std::thread::sleep(d);\n    // sleep(d) in a comment\n}\n";
    assert_eq!(
        bare_sleeps("x.rs", text),
        vec!["x.rs:2: std::thread::sleep(d);".to_string()]
    );
}
