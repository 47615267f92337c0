//! Keeps the metrics reference in docs/operations.md honest: every metric the workspace's code
//! emits (`metrics::counter!`, `gauge!`, `histogram!` with a literal name) must have a row in
//! the "Metrics reference" tables with the right type, and every row must name a metric the
//! code still emits. No gateway is started: the source tree is the truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KINDS: [&str; 3] = ["counter", "gauge", "histogram"];

/// The workspace members' `src` directories, read from the root Cargo.toml.
fn source_dirs(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = ["))
        .expect("workspace members line");
    members
        .trim_end_matches(']')
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m).join("src"))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `name -> (kind, first place)` of every metric emitted in `text`. A macro whose name is not a
/// string literal is reported as an error (the reference could not be checked).
fn emitted_in(text: &str, file: &Path, out: &mut BTreeMap<String, (String, String)>) {
    for kind in KINDS {
        let pat = format!("{kind}!(");
        let mut from = 0;
        while let Some(at) = text[from..].find(&pat) {
            let start = from + at;
            from = start + pat.len();
            // A whole identifier: not `my_counter!(`.
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let line = text[..start].matches('\n').count() + 1;
            let rest = text[from..].trim_start();
            let Some(lit) = rest.strip_prefix('"') else {
                panic!(
                    "{}:{line}: {kind}! without a literal name; the metrics reference cannot be \
                     checked",
                    file.display()
                );
            };
            let name = &lit[..lit.find('"').unwrap()];
            out.entry(name.to_string())
                .or_insert_with(|| (kind.to_string(), format!("{}:{line}", file.display())));
        }
    }
}

/// `name -> kind` of every row of the doc's "Metrics reference" tables.
fn documented(doc: &str) -> BTreeMap<String, String> {
    let section = doc
        .split("\n## Metrics reference")
        .nth(1)
        .expect("docs/operations.md has a `## Metrics reference` section");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = BTreeMap::new();
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let name = &rest[..rest.find('`').unwrap()];
        let kind = line.split('|').nth(2).unwrap_or("").trim().to_string();
        assert!(
            rows.insert(name.to_string(), kind).is_none(),
            "{name} is documented twice"
        );
    }
    rows
}

#[test]
fn every_emitted_metric_is_documented_and_every_documented_one_emitted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in source_dirs(root) {
        rust_files(&dir, &mut files);
    }
    files.sort();
    let mut emitted = BTreeMap::new();
    for f in &files {
        emitted_in(&std::fs::read_to_string(f).unwrap(), f, &mut emitted);
    }
    assert!(
        emitted.len() > 50,
        "only {} metrics found: is the scan broken?",
        emitted.len()
    );
    let doc = std::fs::read_to_string(root.join("docs/operations.md"))
        .expect("docs/operations.md exists");
    let rows = documented(&doc);
    let mut problems = Vec::new();
    for (name, (kind, at)) in &emitted {
        match rows.get(name) {
            None => problems.push(format!(
                "{name} ({kind}, emitted at {at}) is missing from docs/operations.md"
            )),
            Some(k) if k != kind => {
                problems.push(format!("{name} is a {kind} ({at}) but documented as {k:?}"))
            }
            Some(_) => {}
        }
    }
    for name in rows.keys() {
        if !emitted.contains_key(name) {
            problems.push(format!(
                "{name} is documented in docs/operations.md but no code emits it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scanner_finds_names_across_lines_and_skips_lookalikes() {
    let src = "metrics::counter!(\n    \"a_total\", \"x\" => \"y\")\n.increment(1);\n\
               metrics::gauge!(\"b\").set(1.0);\nmy_counter!(\"c\");\nhistogram!( \"d\")";
    let mut out = BTreeMap::new();
    emitted_in(src, Path::new("x.rs"), &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|(n, (k, _))| (n.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        got,
        [("a_total", "counter"), ("b", "gauge"), ("d", "histogram")]
    );
    let doc = "# x\n\n## Metrics reference\n\n| Metric | Type |\n|---|---|\n| `a_total` | counter | | m |\n\n## Other\n| `z` | gauge |\n";
    let rows = documented(doc);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows["a_total"], "counter");
}
