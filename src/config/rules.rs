//! Rules several sections share, written once: a duration that must be positive, a count
//! that must be at least 1, an address. Each names the key it refuses.

use std::net::SocketAddr;
use std::time::Duration;

use super::duration::HumanDuration;

/// A refused key and why: the key as the file spells it, relative to where it was checked
/// (callers prefix the table), and a sentence.
pub type Invalid = (String, String);

/// `value` (or `default` when unset), which must be longer than 0.
pub fn positive(
    key: &str,
    value: Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, Invalid> {
    let value = value.map_or(default, |d| d.0);
    if value.is_zero() {
        Err((key.to_string(), "must be longer than 0".to_string()))
    } else {
        Ok(value)
    }
}

/// `value` (or `default` when unset), which must be at least 1.
pub fn at_least_one<T: Copy + PartialEq + From<u8>>(
    key: &str,
    value: Option<T>,
    default: T,
) -> Result<T, Invalid> {
    let value = value.unwrap_or(default);
    if value == T::from(0) {
        Err((key.to_string(), "must be at least 1".to_string()))
    } else {
        Ok(value)
    }
}

/// `text` as `IP:port`; the refusal shows `example`.
pub fn address(key: &str, text: &str, example: &str) -> Result<SocketAddr, Invalid> {
    text.parse::<SocketAddr>().map_err(|_| {
        (
            key.to_string(),
            format!("\"{text}\" is not an address; expected IP:port such as {example}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_its_key() {
        let two = Some(HumanDuration(Duration::from_secs(2)));
        let zero = Some(HumanDuration(Duration::ZERO));
        assert_eq!(
            positive("a.t", two, Duration::ZERO),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            positive("a.t", None, Duration::from_secs(1)),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            positive("a.t", zero, Duration::from_secs(1)),
            Err(("a.t".into(), "must be longer than 0".into()))
        );
        assert_eq!(at_least_one("n", None, 5usize), Ok(5));
        assert_eq!(
            at_least_one("rise", Some(0u32), 2),
            Err(("rise".into(), "must be at least 1".into()))
        );
        assert!(address("x.listen", "127.0.0.1:80", "\"127.0.0.1:8080\"").is_ok());
        assert_eq!(
            address("x.listen", "localhost:80", "\"127.0.0.1:8080\""),
            Err((
                "x.listen".into(),
                "\"localhost:80\" is not an address; expected IP:port such as \"127.0.0.1:8080\""
                    .into()
            ))
        );
    }
}
