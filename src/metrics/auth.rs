//! The metrics of logins: the Argon2 work done, the refusals and lockouts, the display
//! tokens' logins and refusals, and the memory password checks hold (bounded by the
//! verifier's slots), and how directory logins (`[ldap]`) end.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// How a directory login ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LdapOutcomeLabels {
    /// `accepted`, `rejected` (wrong name or password), `unmapped` (no single contact
    /// center) or `unreachable`.
    pub outcome: String,
}

/// The login metrics.
#[derive(Default)]
pub struct AuthMetrics {
    /// Argon2 verifications run (logins not found in the login cache, decoys included).
    pub password_verifications: Counter,
    /// Basic logins refused for a wrong name or password.
    pub login_failures: Counter,
    /// Times an address was locked out after repeated failed logins (passwords and display
    /// tokens alike).
    pub login_lockouts: Counter,
    /// Requests that logged in with a display token.
    pub display_logins: Counter,
    /// Display tokens refused as unknown or revoked.
    pub display_login_failures: Counter,
    /// Argon2 working memory held for password checks.
    pub password_memory_bytes: Gauge,
    /// 1 when the last exchange with the directory reached it, 0 when it did not (and
    /// before the first).
    pub ldap_up: Gauge,
    /// Directory logins asked of the directory (cached ones are not), by how they ended.
    pub ldap_requests: Family<LdapOutcomeLabels, Counter>,
}

impl AuthMetrics {
    /// Counts a directory login that ended with `outcome`.
    pub fn ldap_outcome(&self, outcome: &str) {
        self.ldap_requests
            .get_or_create(&LdapOutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "password_verifications",
            "Argon2 verifications run (logins not found in the login cache, decoys included)",
            self.password_verifications.clone(),
        );
        registry.register(
            "login_failures",
            "Basic logins refused for a wrong name or password",
            self.login_failures.clone(),
        );
        registry.register(
            "login_lockouts",
            "Times an address was locked out after repeated failed logins",
            self.login_lockouts.clone(),
        );
        registry.register(
            "display_logins",
            "Requests that logged in with a display token (Authorization: Bearer swd_...)",
            self.display_logins.clone(),
        );
        registry.register(
            "display_login_failures",
            "Display tokens refused as unknown or revoked",
            self.display_login_failures.clone(),
        );
        registry.register(
            "password_check_memory_bytes",
            "Argon2 working memory held for password checks (bounded: one buffer per check slot)",
            self.password_memory_bytes.clone(),
        );
        registry.register(
            "ldap_up",
            "1 when the last exchange with the directory ([ldap]) reached it, 0 when it did not or before the first",
            self.ldap_up.clone(),
        );
        registry.register(
            "ldap_requests",
            "Directory logins asked of the directory, by outcome (accepted, rejected, unmapped, unreachable)",
            self.ldap_requests.clone(),
        );
    }
}
