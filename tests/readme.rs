//! README.md runs as written: `scripts/readme-check` extracts the tour's and the ledger's
//! shell blocks (marked `<!-- readme-test: … -->`) and runs them, in order, against the
//! gateway the tour itself starts, with `switchboard` and `cargo run --release --` standing
//! for this test build's binary (see the script's header for every stand-in and how
//! long-lived commands are treated). It fails on any non-zero exit, error output or missing
//! expected output.

use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_tour_and_ledger_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/readme-check"))
        .args([
            "--bin",
            env!("CARGO_BIN_EXE_switchboard"),
            "--timeout",
            "240",
        ])
        .current_dir(root)
        .output()
        .expect("run scripts/readme-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/readme-check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("every block ran as written"),
        "{stdout}\n{stderr}"
    );
    // The tour's calls went through and its trunk is not probed.
    assert!(stdout.contains("ANSWERED"), "{stdout}");
    assert!(stdout.contains("unmonitored"), "{stdout}");
}
