//! The service resource on the wire: the JSON object the Services API serves and that
//! notifications carry. Domain types stay out of JSON; this module converts.
//!
//! Attribute order is fixed (`id`, `name`, `type`, `state`, then what servicewatch adds, then
//! the operator's attributes) so that answers are byte-for-byte stable.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::config::services::ServiceSpec;
use crate::domain::maintenance::Window;
use crate::domain::roles::Source;
use crate::domain::state::Assessment;

/// Attributes servicewatch adds to the GWS ones. A GWS client ignores attributes it does not
/// know; these tell an operator which instance serves and since when the state holds.
pub const SERVING_INSTANCE: &str = "servingInstance";
/// See [`SERVING_INSTANCE`].
pub const STATE_SINCE: &str = "stateSince";
/// For a service whose instances are asked their roles: `role` when the serving instance
/// is the one that says it is primary, `health` when none does and it is inferred.
pub const SERVING_INSTANCE_SOURCE: &str = "servingInstanceSource";
/// `true` while both instances say they are primary (absent otherwise).
pub const ROLE_CONFLICT: &str = "roleConflict";
/// The maintenance windows holding for the service or its instances (absent when none):
/// a wallboard shows work under way instead of an outage.
pub const MAINTENANCE: &str = "maintenance";
/// The attributes servicewatch may put in a resource, in wire order; `fields` and filters
/// accept each of them even when no resource has it at the moment.
pub const CORE_ATTRIBUTES: [&str; 9] = [
    "id",
    "name",
    "type",
    "state",
    SERVING_INSTANCE,
    STATE_SINCE,
    SERVING_INSTANCE_SOURCE,
    ROLE_CONFLICT,
    MAINTENANCE,
];

/// Builds the resource of `spec` assessed as `status`, whose state has held since `since`,
/// under the maintenance `windows` holding now.
pub fn render(
    spec: &ServiceSpec,
    status: &Assessment,
    since: SystemTime,
    windows: &[Window],
) -> Map<String, Value> {
    let mut map = Map::with_capacity(CORE_ATTRIBUTES.len() + spec.attributes.len());
    map.insert("id".into(), Value::from(spec.id.as_str()));
    map.insert("name".into(), Value::from(spec.name.as_str()));
    map.insert("type".into(), Value::from(spec.service_type.as_str()));
    map.insert("state".into(), Value::from(status.state.as_str()));
    if let Some(role) = status.serving {
        map.insert(SERVING_INSTANCE.into(), Value::from(role.as_str()));
    }
    map.insert(STATE_SINCE.into(), Value::from(timestamp(since)));
    if status.serving.is_some()
        && let Some(source) = status.source.wire_name()
    {
        map.insert(SERVING_INSTANCE_SOURCE.into(), Value::from(source));
    }
    if status.source == Source::Conflict {
        map.insert(ROLE_CONFLICT.into(), Value::from(true));
    }
    if !windows.is_empty() {
        map.insert(
            MAINTENANCE.into(),
            Value::from(windows.iter().map(window).collect::<Vec<_>>()),
        );
    }
    for (key, value) in &spec.attributes {
        map.insert(key.clone(), value.clone());
    }
    map
}

/// One maintenance window as the resource shows it; without `instance`, the whole service.
fn window(w: &Window) -> Value {
    let mut map = Map::new();
    if let Some(instance) = &w.instance {
        map.insert("instance".into(), Value::from(instance.as_str()));
    }
    map.insert("reason".into(), Value::from(w.reason.as_str()));
    map.insert("by".into(), Value::from(w.by.as_str()));
    map.insert("since".into(), Value::from(timestamp(w.since)));
    if let Some(until) = w.until {
        map.insert("until".into(), Value::from(timestamp(until)));
    }
    Value::Object(map)
}

/// A time as the resource writes it: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// A time as a client may write it: any RFC 3339 time, with `Z` or an offset
/// (`2026-11-28T06:00:00+01:00`), fractions of a second optional.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let nanos = at.unix_timestamp_nanos();
    let magnitude = nanos.unsigned_abs();
    let magnitude = std::time::Duration::new(
        u64::try_from(magnitude / 1_000_000_000).ok()?,
        (magnitude % 1_000_000_000) as u32,
    );
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// The GWS notification of a change to a service, as a Bayeux message on the services
/// topic, from the resource already serialized: `data` is the root of every GWS
/// notification, and `service` the whole resource after the change.
pub fn state_change_message(resource_json: &[u8]) -> Vec<u8> {
    state_change_message_at(resource_json, None)
}

/// [`state_change_message`], tagged in its `ext` with the etcd revision that made the change
/// (on a cluster node), so that a client can tell where it is in the sequence every node
/// publishes, and resume from there on another node.
pub fn state_change_message_at(resource_json: &[u8], revision: Option<i64>) -> Vec<u8> {
    let ext = revision.map(|revision| format!(r#"{{"revision":{revision}}}"#));
    state_change_message_with(resource_json, ext.as_deref())
}

/// [`state_change_message_at`], marked `"gap":true`: sent to a client resuming from a
/// revision whose changes the node no longer holds, this is the service's current state,
/// and changes of it before this one were missed.
pub fn state_change_message_after_gap(resource_json: &[u8], revision: i64) -> Vec<u8> {
    state_change_message_with(
        resource_json,
        Some(&format!(r#"{{"revision":{revision},"gap":true}}"#)),
    )
}

/// The message with `ext` (a JSON object), if any.
fn state_change_message_with(resource_json: &[u8], ext: Option<&str>) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"channel":"/notifications/services","data":{"messageType":"ServiceStateChangeMessage","service":"#;
    let mut message = Vec::with_capacity(HEAD.len() + resource_json.len() + 2);
    message.extend_from_slice(HEAD);
    message.extend_from_slice(resource_json);
    message.push(b'}');
    if let Some(ext) = ext {
        message.extend_from_slice(br#","ext":"#);
        message.extend_from_slice(ext.as_bytes());
    }
    message.push(b'}');
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::services::{InstanceSpec, PairSpec};
    use crate::domain::health::Schedule;
    use crate::domain::pairing::Failback;
    use crate::domain::service::{Role, ServiceState, ServiceType};
    use crate::probe::{Check, CheckKind, Target};
    use std::time::Duration;

    fn voice_spec() -> ServiceSpec {
        let instance = InstanceSpec {
            name: None,
            target: Target {
                host: "127.0.0.1".into(),
                port: 5001,
            },
            check: Check {
                kind: CheckKind::Tcp,
                watch: false,
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
                schedule: Schedule {
                    interval: Duration::from_secs(1),
                    fast_interval: Duration::from_secs(1),
                    down_interval: Duration::from_secs(1),
                    jitter: 0.0,
                },
            },
            role: None,
        };
        let mut attributes = Map::new();
        attributes.insert("sipPort".into(), Value::from(5060));
        ServiceSpec {
            id: "sips1".into(),
            name: "SIPS1".into(),
            service_type: ServiceType::Voice,
            feature: "api-voice".into(),
            attributes,
            pair: PairSpec {
                primary: instance.clone(),
                backup: Some(instance),
                failback: Failback::Stay,
            },
            cassandra: None,
        }
    }

    #[test]
    fn renders_in_wire_order() {
        let status = Assessment {
            state: ServiceState::Active,
            serving: Some(Role::Backup),
            source: Source::Health,
        };
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_300_000_123);
        let json = serde_json::to_string(&render(&voice_spec(), &status, since, &[])).unwrap();
        assert_eq!(
            json,
            r#"{"id":"sips1","name":"SIPS1","type":"Voice","state":"Active","servingInstance":"backup","stateSince":"2025-11-28T03:20:00.123Z","sipPort":5060}"#
        );
    }

    #[test]
    fn a_service_with_a_role_check_says_what_its_serving_instance_rests_on() {
        let since = SystemTime::UNIX_EPOCH;
        let status = |source| Assessment {
            state: ServiceState::Active,
            serving: Some(Role::Primary),
            source,
        };
        let conflict = render(&voice_spec(), &status(Source::Conflict), since, &[]);
        assert_eq!(conflict[SERVING_INSTANCE_SOURCE], "role");
        assert_eq!(conflict[ROLE_CONFLICT], true);
        let fallback = render(&voice_spec(), &status(Source::Fallback), since, &[]);
        assert_eq!(fallback[SERVING_INSTANCE_SOURCE], "health");
        assert!(!fallback.contains_key(ROLE_CONFLICT));
        let plain = render(&voice_spec(), &status(Source::Health), since, &[]);
        assert!(!plain.contains_key(SERVING_INSTANCE_SOURCE));
    }

    #[test]
    fn reads_rfc_3339_times_with_any_offset() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            parse_timestamp("2026-11-28T03:20:00Z"),
            Some(at(1_795_836_000))
        );
        assert_eq!(
            parse_timestamp(" 2026-11-28T06:50:00.000+03:30 "),
            Some(at(1_795_836_000))
        );
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59Z"),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(1))
        );
        assert!(
            parse_timestamp("1124-04-15T05:03:26.3Z").is_some(),
            "long ago"
        );
        assert_eq!(parse_timestamp("2026-11-28 03:20"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn omits_the_serving_instance_when_none_serves() {
        let map = render(
            &voice_spec(),
            &Assessment::INITIAL,
            SystemTime::UNIX_EPOCH,
            &[],
        );
        assert!(!map.contains_key(SERVING_INSTANCE));
        assert_eq!(map["state"], "Inactive");
    }

    #[test]
    fn state_change_message_wraps_the_resource() {
        let m = state_change_message(br#"{"id":"a","state":"Active"}"#);
        assert_eq!(
            &m[..],
            br#"{"channel":"/notifications/services","data":{"messageType":"ServiceStateChangeMessage","service":{"id":"a","state":"Active"}}}"#
        );
        let parsed: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(parsed["data"]["service"]["state"], "Active");
    }
}
