//! Channel names and patterns: `/notifications/services`, `/notifications/*` (one segment),
//! `/notifications/**` (any depth).

/// Whether `name` is a well-formed channel name or pattern: starts with `/`, no empty
/// segment, and wildcards only as the whole last segment.
pub fn is_valid(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, s)| {
        !s.is_empty() && (!s.contains('*') || (i == last && (*s == "*" || *s == "**")))
    })
}

/// Whether the channel `name` matches `pattern` (itself a name, or one ending in `*`/`**`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**") {
        return name.len() > prefix.len() + 1
            && name.starts_with(prefix)
            && name.as_bytes()[prefix.len()] == b'/';
    }
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|last| !last.is_empty() && !last.contains('/'));
    }
    pattern == name
}

/// The meta channels: the protocol itself.
pub const HANDSHAKE: &str = "/meta/handshake";
pub const CONNECT: &str = "/meta/connect";
pub const SUBSCRIBE: &str = "/meta/subscribe";
pub const UNSUBSCRIBE: &str = "/meta/unsubscribe";
pub const DISCONNECT: &str = "/meta/disconnect";
/// The channel of replies to messages that had no usable channel; CometD clients notify
/// their `/meta/unsuccessful` listeners of it.
pub const UNSUCCESSFUL: &str = "/meta/unsuccessful";

/// Meta channels (`/meta/...`) carry the protocol itself.
pub fn is_meta(name: &str) -> bool {
    name.starts_with("/meta/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        for ok in [
            "/notifications/services",
            "/notifications/*",
            "/**",
            "/a/b/**",
            "/a",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "notifications",
            "/",
            "/a//b",
            "/a/*/b",
            "/a/x*",
            "/a/***",
            "/a/",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn matches_patterns() {
        let c = "/notifications/services";
        assert!(matches(c, c));
        assert!(matches("/notifications/*", c));
        assert!(matches("/notifications/**", c));
        assert!(matches("/**", c));
        assert!(!matches("/*", c), "one segment only");
        assert!(!matches("/notifications/service", c));
        assert!(!matches("/notifications/*", "/notifications/a/b"));
        assert!(matches("/notifications/**", "/notifications/a/b"));
        assert!(!matches("/notifications/**", "/notifications"));
        assert!(!matches("/notif/**", c), "a prefix must end at a segment");
    }

    #[test]
    fn classifies() {
        assert!(is_meta("/meta/connect"));
        assert!(!is_meta("/metadata"));
    }
}
