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

/// Dates written `YYYY-MM-DD` in `text`, in order.
fn dates(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(9))
        .filter(|&i| {
            let d = |k: usize| b[i + k].is_ascii_digit();
            d(0) && d(1)
                && d(2)
                && d(3)
                && b[i + 4] == b'-'
                && d(5)
                && d(6)
                && b[i + 7] == b'-'
                && d(8)
                && d(9)
                && (i == 0 || !b[i - 1].is_ascii_digit())
        })
        .map(|i| &text[i..i + 10])
        .collect()
}

/// The figures in bold (`**…**`) of `text` that are numbers such as `2,200` or `1.22–1.57`,
/// split into single numbers.
fn bold_numbers(text: &str) -> Vec<String> {
    text.split("**")
        .skip(1)
        .step_by(2)
        .flat_map(|bold| {
            bold.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
                .map(|n| n.trim_matches(|c| c == ',' || c == '.').to_string())
                .filter(|n| n.chars().any(|c| c.is_ascii_digit()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_performance_headline_matches_the_latest_measurements() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/performance.md")).unwrap();
    let (headline, body) = doc
        .split_once("\n## ")
        .expect("a headline before the first section");
    // The call-setup part of the document (MQTT, fax and streams have their own sections).
    let calls = body.split("\n## MQTT").next().unwrap();
    let newest = dates(calls).into_iter().max().expect("dated runs");
    assert!(
        headline.contains(newest),
        "the headline must quote the newest run ({newest}):\n{headline}"
    );
    // Every figure the headline puts in bold is in the section of that run.
    let section = calls
        .split("\n#")
        .find(|s| s.contains(newest))
        .expect("the newest run's section");
    for n in bold_numbers(headline) {
        assert!(
            section.contains(&n),
            "headline figure {n} is not in the {newest} run's section:\n{section}"
        );
    }
}
