//! The channels one client is subscribed to, with a bound on how many.

use std::collections::BTreeSet;

use super::channel;

/// Why a subscription was refused; `Display` is the message part of a Bayeux error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("invalid channel name")]
    Invalid,
    #[error("meta channels cannot be subscribed to")]
    Meta,
    #[error("too many subscriptions (at most {0} per client)")]
    TooMany(usize),
}

/// A client's subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    channels: BTreeSet<String>,
}

impl Subscriptions {
    /// Adds `name`, unless it is invalid, a meta channel, or one too many. Subscribing twice
    /// to the same channel is not an error.
    pub fn add(&mut self, name: &str, max: usize) -> Result<(), SubscribeError> {
        if !channel::is_valid(name) {
            return Err(SubscribeError::Invalid);
        }
        if channel::is_meta(name) {
            return Err(SubscribeError::Meta);
        }
        if !self.channels.contains(name) && self.channels.len() >= max {
            return Err(SubscribeError::TooMany(max));
        }
        self.channels.insert(name.to_string());
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.channels.remove(name)
    }

    /// Whether a message on `channel` reaches this client.
    pub fn matches(&self, channel: &str) -> bool {
        self.channels.iter().any(|p| channel::matches(p, channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_removes_and_matches() {
        let mut s = Subscriptions::default();
        assert_eq!(s.add("/notifications/*", 2), Ok(()));
        assert!(s.matches("/notifications/services"));
        assert_eq!(s.add("/notifications/*", 2), Ok(()), "twice is fine");
        assert_eq!(s.channels.len(), 1);
        assert_eq!(s.add("/other", 2), Ok(()));
        assert_eq!(s.add("/third", 2), Err(SubscribeError::TooMany(2)));
        assert!(s.remove("/notifications/*"));
        assert!(!s.matches("/notifications/services"));
        assert!(!s.remove("/notifications/*"));
    }

    #[test]
    fn refuses_bad_and_meta_channels() {
        let mut s = Subscriptions::default();
        assert_eq!(s.add("notifications", 5), Err(SubscribeError::Invalid));
        assert_eq!(s.add("/meta/connect", 5), Err(SubscribeError::Meta));
        assert!(s.channels.is_empty());
    }
}
