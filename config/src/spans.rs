//! Where each key of the file is written: an index from a key as errors name it
//! (`sip.listen`, `trunk[1].address`, `route[0]`) to its 1-based line and column, built from
//! the spans of toml's parser, so that every error (not only a syntax error) can point at
//! its line.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::Position;

/// Key paths of one document and where each is written.
#[derive(Debug, Default)]
pub(crate) struct Spans(HashMap<String, Position>);

impl Spans {
    /// Index `text`; a document that does not parse gives an empty index (its syntax error
    /// carries its own position).
    pub(crate) fn of(text: &str) -> Spans {
        let mut spans = Spans::default();
        if let Ok(doc) = DeTable::parse(text) {
            spans.walk(text, "", doc.get_ref());
        }
        spans
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.insert(&path, text, key.span().start);
            self.value(text, &path, value);
        }
    }

    fn value(&mut self, text: &str, path: &str, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.walk(text, path, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    self.insert(&at, text, item.span().start);
                    self.value(text, &at, item);
                }
            }
            _ => {}
        }
    }

    fn insert(&mut self, path: &str, text: &str, offset: usize) {
        self.0
            .entry(path.to_string())
            .or_insert_with(|| Position::of(text, offset));
    }

    /// Where `key` is written; for a key that is not (a missing one), where the nearest
    /// enclosing table is (`route[0].to` → `route[0]`).
    pub(crate) fn find(&self, key: &str) -> Option<Position> {
        let mut key = key;
        loop {
            if let Some(p) = self.0.get(key) {
                return Some(*p);
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }
}

/// The 1-based line and column of byte offset `at` in `text`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
