//! The dispatcher's look at certificates, every [`LOOK_EVERY`]: each instance's certificate
//! as its monitor last saw it, against `[alerts] certificate_days`
//! ([`crate::alerts::certificates`]). Told once when it starts to expire (kept in the
//! outbox, so that a restart does not tell it again), resolved when renewed.

use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tracing::error;

use super::Dispatcher;
use crate::alerts::certificates::{ALERT, Seen, alert, event, expiring};
use crate::alerts::event::{AlertStatus, Event, ServiceRef};
use crate::probe::https::days_left;

/// How often certificates are looked at: their days pass slowly, and the look costs a lock
/// per instance.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(5);

impl Dispatcher {
    pub(super) fn look_at_certificates(&mut self, ctx: &mut Context<Self>) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let snapshot = snapshot.load();
        let threshold = self.settings.certificate_days;
        let now = SystemTime::now();
        let mut told: Vec<(
            ServiceRef,
            std::collections::BTreeMap<String, String>,
            Event,
        )> = Vec::new();
        for (id, known) in &self.known {
            let Some(service) = snapshot.get(id) else {
                continue;
            };
            for record in &service.instances.records {
                let Some(not_after) = record.seen().certificate_not_after else {
                    continue;
                };
                let seen = Seen {
                    service: &known.observed.service,
                    attributes: &known.observed.attributes,
                    instance: record.part.metric_label(),
                    not_after,
                    days_left: days_left(not_after, now),
                };
                let key = (id.clone(), seen.instance.clone());
                let firing_key = (id.clone(), format!("{ALERT}/{}", seen.instance));
                if expiring(seen.days_left, threshold) {
                    let since = match self.certificates.get(&key) {
                        Some(since) => *since,
                        None => {
                            self.certificates.insert(key.clone(), now);
                            if let Err(e) =
                                self.outbox.put_certificate(id, &seen.instance, Some(now))
                            {
                                error!(service = %id, error = %e, "cannot keep an expiring certificate in the alerts' outbox");
                            }
                            told.push((
                                seen.service.clone(),
                                seen.attributes.clone(),
                                event(&seen, now),
                            ));
                            now
                        }
                    };
                    self.firing.insert(firing_key, alert(&seen, since));
                } else if self.certificates.remove(&key).is_some() {
                    if let Err(e) = self.outbox.put_certificate(id, &seen.instance, None) {
                        error!(service = %id, error = %e, "cannot forget a renewed certificate in the alerts' outbox");
                    }
                    if let Some(mut resolved) = self.firing.remove(&firing_key) {
                        resolved.status = AlertStatus::Resolved;
                        resolved.ends_at = Some(now);
                        self.resolved.push(resolved);
                    }
                }
            }
        }
        self.metrics.alerts.firing.set(self.firing.len() as i64);
        for (service, attributes, event) in told {
            self.route((&service, &attributes), vec![event], None, ctx);
        }
    }
}
