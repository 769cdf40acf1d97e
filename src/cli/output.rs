//! Tables for people: columns aligned, a service state coloured when the output is a
//! terminal and plain when it is piped (`std::io::IsTerminal`), so that `grep` and `awk`
//! see the same text a person reads.

use std::io::IsTerminal;

use serde_json::Value;

/// Spaces between two columns.
const GAP: usize = 2;

/// One cell: its text, and the colour it is shown in on a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    colour: Option<&'static str>,
}

impl Cell {
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            colour: None,
        }
    }

    /// A service state or a health, in its colour: green Active/up, yellow
    /// ReadOnly/degraded, red Inactive/down.
    pub fn state(text: &str) -> Cell {
        let colour = match text {
            "Active" | "up" => Some(GREEN),
            "ReadOnly" | "degraded" | "warning" => Some(YELLOW),
            "Inactive" | "down" | "critical" => Some(RED),
            _ => None,
        };
        Cell {
            text: text.to_string(),
            colour,
        }
    }
}

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Whether standard output is a terminal (colours on).
pub fn on_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// `rows` under `headers`, each column as wide as its widest cell; coloured when `colour`.
pub fn table(headers: &[&str], rows: &[Vec<Cell>], colour: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<Cell> = headers.iter().map(|h| Cell::plain(*h)).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let pad = if last {
                0
            } else {
                widths[i] - cell.text.chars().count() + GAP
            };
            match (colour, cell.colour) {
                (true, Some(c)) => line.push_str(&format!("{c}{}{RESET}", cell.text)),
                _ => line.push_str(&cell.text),
            }
            line.push_str(&" ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The list at `key` of `value` (an answer's `history`, `audit`...), empty when absent.
pub fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The string at `key` of `value`, or `-`.
pub fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_plain_when_piped() {
        let rows = vec![
            vec![Cell::plain("sips1"), Cell::state("Active")],
            vec![Cell::plain("stat-long-name"), Cell::state("Inactive")],
        ];
        let out = table(&["SERVICE", "STATE"], &rows, false);
        assert_eq!(
            out,
            "SERVICE         STATE\nsips1           Active\nstat-long-name  Inactive\n"
        );
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn states_are_coloured_on_a_terminal() {
        let rows = vec![vec![Cell::state("Inactive"), Cell::plain("x")]];
        let out = table(&["STATE", "X"], &rows, true);
        assert!(out.contains("\x1b[31mInactive\x1b[0m  x"), "{out:?}");
    }

    #[test]
    fn missing_values_read_as_a_dash() {
        let v = serde_json::json!({"a": "x", "b": null, "c": 3});
        assert_eq!(text(&v, "a"), "x");
        assert_eq!(text(&v, "b"), "-");
        assert_eq!(text(&v, "c"), "3");
        assert_eq!(text(&v, "d"), "-");
    }
}
