//! No import cycles inside actors/ (issue 13): the modules of `src/` (a top-level file or
//! directory each) must import each other as a graph without cycles, so each can be read,
//! tested and changed from the bottom up. An edge `a -> b` is a `crate::b` path in code of
//! `a` (or a `b` in `use crate::{..}`); comments, string and char literals and
//! `#[cfg(test)]` items (inline test modules and the files of `#[cfg(test)] mod x;`) make no
//! edge. The strongly connected components are found with Tarjan's algorithm; any with more
//! than one module fails the test, naming its modules and the files that make each edge.
//! `scc.py` in the tools of the issue-13 work is the same analysis in Python.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source with comments, string and char literals blanked (newlines kept).
fn strip(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let n = s.len();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let at = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, c)| s.get(i + k) == Some(&c))
    };
    while i < n {
        let c = s[i];
        let ident_before = i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_');
        if at(i, "//") {
            while i < n && s[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 1;
            i += 2;
            while i < n && depth > 0 {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                } else {
                    if s[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            out.push(' ');
        } else if !ident_before && (at(i, "r#") || at(i, "r\"") || at(i, "br")) {
            // A raw string: r"..", r#".."#, br#".."#.
            let mut j = i + if s[i] == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while j < n && s[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if j < n && s[j] == '"' {
                j += 1;
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while j < n && !at(j, &close) {
                    if s[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = (j + close.chars().count()).min(n);
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            let mut j = i + 1;
            while j < n && s[j] != '"' {
                if s[j] == '\n' {
                    out.push('\n');
                }
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let len = if s.get(i + 1) == Some(&'\\') {
                (i + 2..n.min(i + 12))
                    .find(|&k| s[k] == '\'')
                    .map(|k| k + 1 - i)
            } else if s.get(i + 2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(l) => {
                    out.push_str("' '");
                    i += l;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Code without its `#[cfg(test)]` items, and the names of `#[cfg(test)] mod x;` files.
fn drop_cfg_test(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(pos) = rest.find(ATTR) {
        out.push_str(&rest[..pos]);
        let item = &rest[pos + ATTR.len()..];
        let words: Vec<&str> = item
            .split(|c: char| c.is_whitespace() || c == ';' || c == '{')
            .filter(|w| !w.is_empty())
            .take(3)
            .collect();
        let is_mod = words.first() == Some(&"mod")
            || (words.first().is_some_and(|w| w.starts_with("pub"))
                && words.get(1) == Some(&"mod"));
        // The item ends at its first `;` outside braces, or where its first `{` closes.
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, ch) in item.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    if is_mod {
                        let name = if words[0] == "mod" {
                            words[1]
                        } else {
                            words[2]
                        };
                        test_mods.push(name.to_string());
                    }
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first-level names after `crate::` in code: `crate::x::..` and `use crate::{x, y::..}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("crate::") {
        let start = from + p;
        from = start + "crate::".len();
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue; // e.g. `$crate::` or `my_crate::`
        }
        let after = &code[from..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut name = String::new();
            let mut fresh = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        fresh = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 && fresh {
                    if is_ident(ch) {
                        name.push(ch);
                    } else if !name.is_empty() {
                        found.insert(std::mem::take(&mut name));
                        fresh = false;
                    }
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The module graph of the source tree `files` (paths relative to src/ and their text):
/// module -> module -> files making the edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph(files: &BTreeMap<PathBuf, String>) -> Graph {
    let top = |rel: &Path| -> String {
        let first = rel.components().next().expect("a path").as_os_str();
        let first = first.to_string_lossy();
        first.strip_suffix(".rs").unwrap_or(&first).to_string()
    };
    let mods: BTreeSet<String> = files
        .keys()
        .map(|p| top(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut codes = BTreeMap::new();
    let mut test_files: Vec<PathBuf> = Vec::new();
    for (rel, src) in files {
        let (code, test_mods) = drop_cfg_test(&strip(src));
        let file = rel.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let dir = rel.parent().unwrap_or(Path::new(""));
        let base = if matches!(file, "mod.rs" | "lib.rs" | "main.rs") {
            dir.to_path_buf()
        } else {
            dir.join(file.trim_end_matches(".rs"))
        };
        for m in test_mods {
            test_files.push(base.join(format!("{m}.rs")));
            test_files.push(base.join(&m)); // a directory module and all below it
        }
        codes.insert(rel.clone(), code);
    }
    let mut g = Graph::new();
    for (rel, code) in &codes {
        if test_files.iter().any(|t| rel.starts_with(t)) {
            continue;
        }
        let from = top(rel);
        if !mods.contains(&from) {
            continue;
        }
        for to in crate_paths(code) {
            if to != from && mods.contains(&to) {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    for m in mods {
        g.entry(m).or_default();
    }
    g
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

fn report(g: &Graph, comps: &[Vec<String>]) -> String {
    let mut s = String::new();
    for comp in comps {
        s.push_str(&format!("cycle of {} modules: {comp:?}\n", comp.len()));
        for a in comp {
            for (b, files) in &g[a] {
                if comp.contains(b) {
                    s.push_str(&format!("  {a} -> {b}  ({files:?})\n"));
                }
            }
        }
    }
    s
}

fn read_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("readable src/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                let rel = path.strip_prefix(root).expect("under src/").to_path_buf();
                files.insert(rel, text);
            }
        }
    }
    files
}

/// `ACTORS_SRC` points the check at another tree (e.g. an older commit's actors/src, to see
/// it fail there); by default it reads this crate's src/.
#[test]
fn actors_modules_import_each_other_without_cycles() {
    let root = std::env::var_os("ACTORS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let g = graph(&read_tree(&root));
    assert!(g.len() > 20, "the scan found the modules of src/");
    let comps = cycles(&g);
    assert!(
        comps.is_empty(),
        "modules of actors/src import each other:\n{}",
        report(&g, &comps)
    );
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect()
}

#[test]
fn a_cycle_through_three_modules_is_found_and_named() {
    let g = graph(&tree(&[
        ("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;"),
        ("a.rs", "use crate::b::B;"),
        ("b/mod.rs", "mod inner;"),
        ("b/inner.rs", "use crate::{c::C, d};"),
        ("c.rs", "fn f() { crate::a::g(); }"),
        ("d.rs", ""),
    ]));
    let comps = cycles(&g);
    assert_eq!(comps, vec![vec!["a", "b", "c"]]);
    let text = report(&g, &comps);
    assert!(
        text.contains("b -> c") && text.contains("b/inner.rs"),
        "{text}"
    );
}

#[test]
fn comments_literals_and_test_code_make_no_edge() {
    let g = graph(&tree(&[
        ("a.rs", "use crate::b::B;"),
        (
            "b.rs",
            concat!(
                "//! See [`crate::a`].\n",
                "/* crate::a /* nested */ crate::a */\n",
                "const S: &str = \"crate::a\";\n",
                "const R: &str = r#\"crate::a \"quoted\"\"#;\n",
                "const C: char = '\"'; fn f<'x>(_: &'x str) {}\n",
                "#[cfg(test)]\nmod tests { use crate::a::A; fn g() { crate::a::h(); } }\n",
                "#[cfg(test)]\nmod more;\n",
                "#[cfg(test)]\nuse crate::a::A;\n",
                "fn real() -> crate::c::C { todo!() }\n",
            ),
        ),
        ("b/more.rs", "use crate::a::A;"),
        ("c.rs", ""),
    ]));
    assert!(cycles(&g).is_empty(), "{g:?}");
    assert_eq!(g["b"].keys().collect::<Vec<_>>(), ["c"]);
}
