//! Which receivers hear of an event: every route that matches it sends to its receivers
//! (each receiver once); with no route configured, every receiver hears of everything.

use std::collections::{BTreeMap, BTreeSet};

use super::event::{EventKind, ServiceRef};
use crate::config::alerts::Route;

/// The receivers (indexes into the configured list of `receivers` of them) that hear of
/// an event of `kind` about `service`.
pub fn receivers_for(
    routes: &[Route],
    receivers: usize,
    service: Option<&ServiceRef>,
    attributes: &BTreeMap<String, String>,
    kind: EventKind,
) -> BTreeSet<usize> {
    if routes.is_empty() {
        return (0..receivers).collect();
    }
    routes
        .iter()
        .filter(|r| matches(r, service, attributes, kind))
        .flat_map(|r| r.receivers.iter().copied())
        .collect()
}

fn matches(
    route: &Route,
    service: Option<&ServiceRef>,
    attributes: &BTreeMap<String, String>,
    kind: EventKind,
) -> bool {
    if !route.events.is_empty() && !route.events.contains(&kind) {
        return false;
    }
    let Some(service) = service else {
        // An event about no service (a test) matches a route that asks nothing of
        // services.
        return route.services.is_empty() && route.types.is_empty() && route.attributes.is_empty();
    };
    (route.services.is_empty() || route.services.iter().any(|p| glob(p, &service.id)))
        && (route.types.is_empty() || route.types.contains(&service.service_type))
        && route
            .attributes
            .iter()
            .all(|(k, v)| attributes.get(k) == Some(v))
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(receivers: &[usize]) -> Route {
        Route {
            receivers: receivers.to_vec(),
            services: Vec::new(),
            types: Vec::new(),
            events: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    fn sip() -> ServiceRef {
        ServiceRef {
            id: "sip-paris-1".into(),
            name: "SIP".into(),
            service_type: "Voice".into(),
        }
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("sip*", "sip-paris-1"));
        assert!(glob("*paris*", "sip-paris-1"));
        assert!(glob("sip-*-1", "sip-paris-1"));
        assert!(glob("sip-paris-1", "sip-paris-1"));
        assert!(!glob("sip", "sip-paris-1"));
        assert!(!glob("*-2", "sip-paris-1"));
        assert!(!glob("a*a", "a"));
        assert!(glob("*", ""));
    }

    #[test]
    fn no_route_sends_everything_everywhere() {
        let all = receivers_for(
            &[],
            3,
            Some(&sip()),
            &BTreeMap::new(),
            EventKind::Switchover,
        );
        assert_eq!(all, BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn every_matching_route_sends_each_receiver_once() {
        let mut voice = route(&[0, 1]);
        voice.types = vec!["Voice".into()];
        let mut paris_down = route(&[1, 2]);
        paris_down.attributes = BTreeMap::from([("site".to_string(), "paris".to_string())]);
        paris_down.events = vec![EventKind::StateChanged];
        let mut stat = route(&[3]);
        stat.services = vec!["stat*".into()];
        let routes = [voice, paris_down, stat];
        let paris = BTreeMap::from([("site".to_string(), "paris".to_string())]);
        let to = |kind, attributes: &BTreeMap<String, String>| {
            receivers_for(&routes, 4, Some(&sip()), attributes, kind)
        };
        assert_eq!(
            to(EventKind::StateChanged, &paris),
            BTreeSet::from([0, 1, 2])
        );
        assert_eq!(to(EventKind::Switchover, &paris), BTreeSet::from([0, 1]));
        assert_eq!(
            to(EventKind::StateChanged, &BTreeMap::new()),
            BTreeSet::from([0, 1])
        );
        let test = receivers_for(&routes, 4, None, &BTreeMap::new(), EventKind::Test);
        assert!(
            test.is_empty(),
            "every route here asks something of services"
        );
    }
}
