//! The immutable view of every service that HTTP handlers read.
//!
//! The registry builds a new snapshot on each change and swaps it in; a handler loads the
//! current one with one atomic operation and never waits on the registry. Each resource is
//! serialized once per change, and the body of `GET /services?fields=*` once per snapshot,
//! so the hot path of the API copies bytes instead of serializing.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, OnceLock};

use actix_web::web::Bytes;
use serde_json::{Map, Value};

use std::time::SystemTime;

use crate::bayeux;
use crate::config::services::ServiceSpec;
use crate::domain::maintenance::Window;
use crate::domain::service::Role;
use crate::domain::service::ServiceState;
use crate::domain::state::Assessment;
use crate::instances::Instances;
use crate::resource::{self, CORE_ATTRIBUTES};

/// One service as published.
#[derive(Debug, Clone)]
pub struct PublishedService {
    pub id: String,
    /// The contact-center feature that makes it visible.
    pub feature: String,
    pub state: ServiceState,
    pub resource: Map<String, Value>,
    /// `resource` serialized.
    pub json: Bytes,
    /// The `ServiceStateChangeMessage` carrying `resource`, framed as a batch of one
    /// ([`bayeux::frame`]): rendered once, whether it goes out as a change or as part of
    /// a subscriber's snapshot.
    pub notification: Bytes,
    /// Which instance of the pair serves.
    pub serving: Option<Role>,
    /// The servers behind it, as their monitors last saw them (read when asked, not
    /// copied into the snapshot).
    pub instances: Arc<Instances>,
}

impl PublishedService {
    /// `spec` assessed as `assessment`, its state holding since `since`, served by the
    /// servers `instances`.
    pub fn of(
        spec: &ServiceSpec,
        assessment: &Assessment,
        since: SystemTime,
        windows: &[Window],
        instances: Arc<Instances>,
    ) -> Self {
        PublishedService {
            serving: assessment.serving,
            instances,
            ..PublishedService::new(
                &spec.feature,
                assessment.state,
                resource::render(spec, assessment, since, windows),
            )
        }
    }

    /// The same service, its notification tagged with the etcd revision that made it.
    pub fn at_revision(mut self, revision: i64) -> Self {
        self.notification = bayeux::frame(&resource::state_change_message_at(
            &self.json,
            Some(revision),
        ));
        self
    }

    /// Serializes `resource` and its notification once.
    pub fn new(feature: &str, state: ServiceState, resource: Map<String, Value>) -> Self {
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let json = Bytes::from(serde_json::to_vec(&resource).unwrap_or_default());
        let notification = bayeux::frame(&resource::state_change_message(&json));
        PublishedService {
            id,
            feature: feature.to_string(),
            state,
            resource,
            json,
            notification,
            serving: None,
            instances: Arc::default(),
        }
    }
}

/// A service whose servers have not all been probed since servicewatch started (or since
/// a reload added it): its state is not known yet, so it is held back from lists and
/// notifications, and asking for it alone gets 503 with `Retry-After`.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What it will be published as (its state still the initial one): its id, its
    /// feature and its attribute names are known already.
    pub service: Arc<PublishedService>,
    /// When asking again is worth it: its slowest check's timeout, rounded up.
    pub retry_after_secs: u64,
}

/// Every service whose state is known, in configuration order, and those still pending.
#[derive(Debug, Default)]
pub struct Snapshot {
    services: Vec<Arc<PublishedService>>,
    by_id: HashMap<String, usize>,
    /// Services not probed yet, by id.
    pending: HashMap<String, Pending>,
    /// Attribute names that `fields` and filters accept.
    attributes: BTreeSet<String>,
    /// The body of `GET /services?fields=*`.
    all_body: Bytes,
    /// `all_body` gzipped, made by the first request that accepts it: once per snapshot,
    /// and never for a snapshot nobody asks for compressed.
    all_body_gzip: OnceLock<Bytes>,
    /// Services in each state, in the order of [`ServiceState::ALL`].
    by_state: [usize; ServiceState::ALL.len()],
    /// Why the node serves no state at all yet, if so (a cluster node that has not read
    /// etcd since it started): its lists would be empty for a reason a client must hear.
    unavailable: Option<String>,
    /// Differs from every other snapshot's of this process and, with high probability,
    /// of earlier processes: what `ETag`s are made of.
    tag: u64,
}

impl Snapshot {
    /// Builds a snapshot and pre-renders the full list.
    pub fn new(services: Vec<Arc<PublishedService>>) -> Self {
        let by_id = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut attributes: BTreeSet<String> =
            CORE_ATTRIBUTES.iter().map(|a| a.to_string()).collect();
        let mut by_state = [0; ServiceState::ALL.len()];
        for service in &services {
            attributes.extend(service.resource.keys().cloned());
            if let Some(i) = ServiceState::ALL.iter().position(|s| *s == service.state) {
                by_state[i] += 1;
            }
        }
        let all_body = list_body(services.iter().map(|s| &**s));
        Snapshot {
            services,
            by_id,
            pending: HashMap::new(),
            attributes,
            all_body,
            all_body_gzip: OnceLock::new(),
            by_state,
            unavailable: None,
            tag: 0,
        }
    }

    /// This snapshot, serving nothing yet, for `reason`.
    pub fn unavailable_because(mut self, reason: String) -> Self {
        self.unavailable = Some(reason);
        self
    }

    /// Why the node serves no state yet, if it does not.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// This snapshot, tagged `tag` (see [`Snapshot::tag`]).
    pub fn tagged(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    /// This snapshot with services whose state is not known yet; their attribute names are
    /// accepted by `fields` and filters already.
    pub fn with_pending(mut self, pending: Vec<Pending>) -> Self {
        for p in &pending {
            self.attributes.extend(p.service.resource.keys().cloned());
        }
        self.pending = pending
            .into_iter()
            .map(|p| (p.service.id.clone(), p))
            .collect();
        self
    }

    /// A service not probed yet, by id.
    pub fn pending(&self, id: &str) -> Option<&Pending> {
        self.pending.get(id)
    }

    /// Every service not probed yet, in no particular order.
    pub fn all_pending(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// Changes whenever the registry publishes, so an answer's validator can be made of it
    /// without hashing the answer.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Every service, in configuration order.
    pub fn services(&self) -> &[Arc<PublishedService>] {
        &self.services
    }

    /// One service by id.
    pub fn get(&self, id: &str) -> Option<&PublishedService> {
        self.by_id.get(id).map(|&i| &*self.services[i])
    }

    /// Attribute names of every service (and the core ones), which `fields` and filters
    /// accept from a caller who sees every service.
    pub fn attributes(&self) -> &BTreeSet<String> {
        &self.attributes
    }

    /// Attribute names of the given services (and the core ones), for a caller who sees
    /// only those: names used only by hidden services are not revealed.
    pub fn attributes_of<'a>(
        services: impl Iterator<Item = &'a PublishedService>,
    ) -> BTreeSet<String> {
        let mut attributes: BTreeSet<String> =
            CORE_ATTRIBUTES.iter().map(|a| a.to_string()).collect();
        for service in services {
            attributes.extend(service.resource.keys().cloned());
        }
        attributes
    }

    /// One line for people: `12 services: 10 Active, 1 ReadOnly, 1 Inactive`, and how many
    /// are not probed yet.
    pub fn summary(&self) -> String {
        let count = |state| {
            ServiceState::ALL
                .iter()
                .position(|s| *s == state)
                .map_or(0, |i| self.by_state[i])
        };
        let total = self.services.len() + self.pending.len();
        let noun = if total == 1 { "service" } else { "services" };
        let mut parts: Vec<String> = [
            ServiceState::Active,
            ServiceState::ReadOnly,
            ServiceState::Inactive,
        ]
        .into_iter()
        .map(|state| (state, count(state)))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
        if !self.pending.is_empty() {
            parts.push(format!("{} not probed yet", self.pending.len()));
        }
        if parts.is_empty() {
            format!("0 {noun}")
        } else {
            format!("{total} {noun}: {}", parts.join(", "))
        }
    }

    /// The pre-rendered body of the unfiltered full list.
    pub fn all_body(&self) -> Bytes {
        self.all_body.clone()
    }

    /// [`Snapshot::all_body`] gzipped; compressed on the first call, shared after.
    pub fn all_body_gzip(&self) -> Bytes {
        self.all_body_gzip
            .get_or_init(|| {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.all_body.len() / 4),
                    flate2::Compression::default(),
                );
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(&self.all_body);
                Bytes::from(encoder.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// `{"statusCode":0,"services":[...]}` from pre-serialized resources.
pub fn list_body<'a>(services: impl Iterator<Item = &'a PublishedService>) -> Bytes {
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(br#"{"statusCode":0,"services":["#);
    for (i, service) in services.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&service.json);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: &str, extra: Option<(&str, Value)>) -> Arc<PublishedService> {
        let mut map = Map::new();
        map.insert("id".into(), Value::from(id));
        map.insert("state".into(), Value::from("Active"));
        if let Some((k, v)) = extra {
            map.insert(k.into(), v);
        }
        Arc::new(PublishedService::new(
            "api-voice",
            ServiceState::Active,
            map,
        ))
    }

    #[test]
    fn renders_the_full_list_once() {
        let snap = Snapshot::new(vec![
            service("a", None),
            service("b", Some(("sipPort", Value::from(5060)))),
        ]);
        assert_eq!(
            &snap.all_body()[..],
            br#"{"statusCode":0,"services":[{"id":"a","state":"Active"},{"id":"b","state":"Active","sipPort":5060}]}"#
        );
        assert_eq!(snap.get("b").unwrap().id, "b");
        assert!(snap.get("c").is_none());
        assert!(snap.attributes().contains("sipPort"));
        assert!(
            snap.attributes().contains("servingInstance"),
            "core attributes are known even if absent"
        );
        assert!(!snap.attributes().contains("bogus"));
        assert_eq!(
            &snap.get("a").unwrap().notification[..],
            br#"[{"channel":"/notifications/services","data":{"messageType":"ServiceStateChangeMessage","service":{"id":"a","state":"Active"}}}]"#
        );
    }

    #[test]
    fn the_full_list_gzipped_once() {
        use std::io::Read;
        let snap = Snapshot::new(vec![service("a", None), service("b", None)]);
        let gzipped = snap.all_body_gzip();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, snap.all_body());
        assert_eq!(snap.all_body_gzip().as_ptr(), gzipped.as_ptr(), "made once");
    }

    #[test]
    fn summary_counts_states() {
        let mut inactive = Map::new();
        inactive.insert("id".into(), Value::from("c"));
        let inactive = Arc::new(PublishedService::new(
            "api-voice",
            ServiceState::Inactive,
            inactive,
        ));
        let snap = Snapshot::new(vec![service("a", None), service("b", None), inactive]);
        assert_eq!(snap.summary(), "3 services: 2 Active, 1 Inactive");
        assert_eq!(
            Snapshot::new(vec![service("a", None)]).summary(),
            "1 service: 1 Active"
        );
        assert_eq!(Snapshot::new(vec![]).summary(), "0 services");
    }

    #[test]
    fn pending_services_are_counted_and_found_but_not_listed() {
        let mut resource = Map::new();
        resource.insert("id".into(), Value::from("late"));
        resource.insert("sipPort".into(), Value::from(5060));
        let late = Arc::new(PublishedService::new(
            "api-voice",
            ServiceState::Inactive,
            resource,
        ));
        let snap = Snapshot::new(vec![service("a", None)]).with_pending(vec![Pending {
            service: late,
            retry_after_secs: 2,
        }]);
        assert_eq!(snap.summary(), "2 services: 1 Active, 1 not probed yet");
        assert!(
            snap.get("late").is_none(),
            "not served as if its state were known"
        );
        assert_eq!(snap.pending("late").unwrap().retry_after_secs, 2);
        assert!(snap.pending("a").is_none());
        assert_eq!(
            &snap.all_body()[..],
            br#"{"statusCode":0,"services":[{"id":"a","state":"Active"}]}"#
        );
        assert!(
            snap.attributes().contains("sipPort"),
            "its attributes may be asked for already"
        );
    }

    #[test]
    fn empty_list() {
        assert_eq!(
            &Snapshot::new(vec![]).all_body()[..],
            br#"{"statusCode":0,"services":[]}"#
        );
    }
}
