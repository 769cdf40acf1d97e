//! Search filters with a login name (or a DN) in them, escaped per RFC 4515 so that what a
//! caller types is always a value, never filter syntax: a name of `*` must not match every
//! user, nor `alice)(uid=*` widen the search. Pure; no I/O.

/// `value` escaped as an RFC 4515 assertion value: `*`, `(`, `)`, `\` and NUL become `\XX`
/// (two hex digits of the byte). Everything else, UTF-8 included, passes as it is.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// `filter` with every `placeholder` replaced by `value`, escaped.
pub fn with_value(filter: &str, placeholder: &str, value: &str) -> String {
    filter.replace(placeholder, &escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_syntax_becomes_a_value() {
        assert_eq!(escape("*"), "\\2a");
        assert_eq!(escape("a(b)c"), "a\\28b\\29c");
        assert_eq!(escape("back\\slash"), "back\\5cslash");
        assert_eq!(escape("nul\0byte"), "nul\\00byte");
        assert_eq!(escape("*()\\\0"), "\\2a\\28\\29\\5c\\00");
    }

    #[test]
    fn ordinary_names_pass_unchanged() {
        for name in [
            "alice",
            "j.doe",
            "Zoë",
            "o'brien",
            "user@example.com",
            "a=b,c",
        ] {
            assert_eq!(escape(name), name);
        }
    }

    #[test]
    fn an_injection_stays_inside_its_assertion() {
        assert_eq!(
            with_value("(&(objectClass=person)(uid={user}))", "{user}", "x)(uid=*"),
            "(&(objectClass=person)(uid=x\\29\\28uid=\\2a))"
        );
        assert_eq!(
            with_value("(|(uid={user})(mail={user}))", "{user}", "*"),
            "(|(uid=\\2a)(mail=\\2a))"
        );
    }
}
