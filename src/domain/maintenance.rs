//! Maintenance windows: an admin says that an instance, or a whole service, is being worked
//! on, with a reason and an optional end.
//!
//! An instance in maintenance is never chosen to serve: it counts as unhealthy for the
//! choice of the serving instance (its pair partner takes over at once if it served), and a
//! Cassandra node in maintenance does not count toward the quorum. A service in
//! maintenance keeps its true state; its resource says it is in maintenance, so that a
//! wallboard shows work under way instead of an outage and an alert can be held back. A
//! window whose end has passed is over, as if taken out.

use std::time::SystemTime;

use super::health::Health;

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub service: String,
    /// The instance (`primary`, `backup`, `cassandra-N`), or `None` for the whole service.
    pub instance: Option<String>,
    pub reason: String,
    /// When it ends by itself, if ever.
    pub until: Option<SystemTime>,
    /// Who set it.
    pub by: String,
    pub since: SystemTime,
}

impl Window {
    /// Whether the window holds at `now`.
    pub fn holds(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Every window, of every service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows(Vec<Window>);

impl From<Vec<Window>> for Windows {
    fn from(windows: Vec<Window>) -> Self {
        Windows(windows)
    }
}

impl Windows {
    pub fn all(&self) -> &[Window] {
        &self.0
    }

    /// Replaces every window of `service` with `windows`.
    pub fn set_service(&mut self, service: &str, windows: Vec<Window>) {
        self.0.retain(|w| w.service != service);
        self.0.extend(windows);
    }

    /// Removes the window of `service`'s `instance` (`None`: of the whole service);
    /// returns it, if there was one.
    pub fn remove(&mut self, service: &str, instance: Option<&str>) -> Option<Window> {
        let at = self
            .0
            .iter()
            .position(|w| w.service == service && w.instance.as_deref() == instance)?;
        Some(self.0.remove(at))
    }

    /// The windows of `service` that hold at `now` (copies, for the service to keep): the
    /// whole service's first, then its instances' in name order.
    pub fn of(&self, service: &str, now: SystemTime) -> Vec<Window> {
        let mut found: Vec<Window> = self
            .0
            .iter()
            .filter(|w| w.service == service && w.holds(now))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.instance.cmp(&b.instance));
        found
    }
}

/// An instance's health as the choice of the serving instance and the quorum see it: an
/// instance in maintenance counts as down (never as unknown, so that it cannot hold the
/// first assessment back once its probe has answered).
pub fn effective(health: Health, in_maintenance: bool) -> Health {
    match (health, in_maintenance) {
        (Health::Unknown, _) => Health::Unknown,
        (_, true) => Health::Down,
        (health, false) => health,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn window(service: &str, instance: Option<&str>, until: Option<u64>) -> Window {
        Window {
            service: service.into(),
            instance: instance.map(str::to_string),
            reason: "upgrade".into(),
            until: until.map(at),
            by: "ops".into(),
            since: at(0),
        }
    }

    #[test]
    fn a_window_holds_until_its_end() {
        assert!(window("a", None, None).holds(at(1_000_000)));
        assert!(window("a", None, Some(10)).holds(at(9)));
        assert!(!window("a", None, Some(10)).holds(at(10)));
    }

    #[test]
    fn windows_are_replaced_per_service_and_listed_per_service() {
        let mut all = Windows::default();
        all.set_service(
            "a",
            vec![
                window("a", Some("primary"), None),
                window("a", None, Some(10)),
            ],
        );
        all.set_service("b", vec![window("b", Some("backup"), None)]);
        let replaced = Window {
            reason: "longer upgrade".into(),
            ..window("a", Some("primary"), None)
        };
        all.set_service("a", vec![replaced.clone(), window("a", None, Some(10))]);
        assert_eq!(all.all().len(), 3);
        let of_a = all.of("a", at(5));
        assert_eq!(of_a.len(), 2);
        assert_eq!(of_a[0].instance, None, "the whole service first");
        assert_eq!(of_a[1], replaced.clone());
        assert_eq!(
            all.of("a", at(10)),
            vec![replaced],
            "the service's window ended"
        );
        assert!(all.remove("a", Some("primary")).is_some());
        assert!(all.remove("a", Some("primary")).is_none());
    }

    #[test]
    fn an_instance_in_maintenance_counts_as_down_once_probed() {
        assert_eq!(effective(Health::Up, true), Health::Down);
        assert_eq!(effective(Health::Unknown, true), Health::Unknown);
        assert_eq!(effective(Health::Degraded, false), Health::Degraded);
    }
}
