//! Durations in the configuration file are strings with a unit ("2s", "500ms", "1m 30s"):
//! a bare number would leave the reader guessing whether it means seconds or milliseconds.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration read from a string such as `"2s"` or `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HumanVisitor;

        impl Visitor<'_> for HumanVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration with its unit, such as "2s" or "500ms""#)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(s.trim())
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            r#"invalid duration "{s}" ({e}); expected a number with its unit, such as "2s" or "500ms""#
                        ))
                    })
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    r#"a duration needs a unit: write "{n}s" or "{n}ms", not {n}"#
                )))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                self.visit_i64(n as i64)
            }
        }

        deserializer.deserialize_any(HumanVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        d: HumanDuration,
    }

    fn parse(text: &str) -> Result<Duration, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.d.0)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn reads_units() {
        assert_eq!(parse(r#"d = "2s""#), Ok(Duration::from_secs(2)));
        assert_eq!(parse(r#"d = "250ms""#), Ok(Duration::from_millis(250)));
        assert_eq!(parse(r#"d = "1m 30s""#), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn refuses_bare_numbers_and_nonsense() {
        assert!(parse("d = 2").unwrap_err().contains(r#"write "2s""#));
        assert!(
            parse(r#"d = "fast""#)
                .unwrap_err()
                .contains("invalid duration \"fast\"")
        );
    }
}
