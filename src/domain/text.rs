//! Text that came from outside (a client's parameter, a backend's answer) made fit to be
//! echoed in an error answer, a log line or a metric label.

/// `text` on one line, at most `max_chars` characters: control characters (line breaks,
/// NUL, terminal escapes) written as escapes, so whoever sent it can neither break a line
/// nor colour an operator's terminal, and a longer text cut with an ellipsis, so a huge
/// input is not sent back or logged whole.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('\u{2026}');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(
            one_line("ok \x1b[31mred\r\nnext", 100),
            r"ok \u{1b}[31mred\r\nnext"
        );
        assert_eq!(one_line("a\0b", 10), r"a\u{0}b");
        assert_eq!(one_line("h\u{e9}llo", 3), "h\u{e9}l\u{2026}");
        assert_eq!(one_line("abc", 3), "abc");
    }
}
