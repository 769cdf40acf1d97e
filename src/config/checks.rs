//! From a check as layered in the file (`[checks]`, then the service's or the pair's `check`,
//! then the instance's) to the [`Check`] a monitor runs, with the built-in defaults for what
//! no layer sets. A new check kind touches this file and `probe/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{CheckKindName, CheckSection, FileConfig, SipStatus};
use super::rules::{Invalid, at_least_one, positive};
use crate::domain::health::Schedule;
use crate::probe::exec::ExecCheck;
use crate::probe::http::HttpCheck;
use crate::probe::https::{HttpsCheck, TlsClient, TlsOptions};
use crate::probe::sip::{DEFAULT_UP, SipCheck, StatusMatch, Transport};
use crate::probe::{Check, CheckKind};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RISE: u32 = 2;
pub(super) const DEFAULT_FALL: u32 = 3;
const DEFAULT_JITTER: f64 = 0.1;
const MAX_JITTER: f64 = 0.5;

impl FileConfig {
    /// Makes the relative paths of every check's files (`ca_file`, `client_certificate`,
    /// `client_key`) relative to `base`, the configuration file's directory, as the
    /// `[tls]` files are.
    pub fn rebase_check_files(&mut self, base: &Path) {
        let mut sections: Vec<&mut CheckSection> = vec![&mut self.checks];
        for service in &mut self.services {
            let pair = service.config_server.as_mut();
            let instances = [service.primary.as_mut(), service.backup.as_mut()];
            sections.extend(service.check.as_mut());
            sections.extend(
                instances
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.check.as_mut()),
            );
            if let Some(pair) = pair {
                sections.extend(pair.check.as_mut());
                let instances = [Some(&mut pair.primary), pair.backup.as_mut()];
                sections.extend(
                    instances
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i.check.as_mut()),
                );
            }
            if let Some(cassandra) = service.cassandra.as_mut() {
                sections.extend(cassandra.check.as_mut());
            }
        }
        for section in sections {
            for file in [
                &mut section.ca_file,
                &mut section.client_certificate,
                &mut section.client_key,
            ]
            .into_iter()
            .flatten()
            {
                *file = base.join(&*file).to_string_lossy().into_owned();
            }
        }
    }
}

impl CheckSection {
    /// This check with every key it leaves unset taken from `under`.
    pub fn over(&self, under: &CheckSection) -> CheckSection {
        CheckSection {
            kind: self.kind.or(under.kind),
            interval: self.interval.or(under.interval),
            timeout: self.timeout.or(under.timeout),
            rise: self.rise.or(under.rise),
            fall: self.fall.or(under.fall),
            fast_interval: self.fast_interval.or(under.fast_interval),
            down_interval: self.down_interval.or(under.down_interval),
            jitter: self.jitter.or(under.jitter),
            method: self.method.clone().or_else(|| under.method.clone()),
            path: self.path.clone().or_else(|| under.path.clone()),
            expect_status: self
                .expect_status
                .clone()
                .or_else(|| under.expect_status.clone()),
            expect_body: self
                .expect_body
                .clone()
                .or_else(|| under.expect_body.clone()),
            command: self.command.clone().or_else(|| under.command.clone()),
            watch: self.watch.or(under.watch),
            server_name: self
                .server_name
                .clone()
                .or_else(|| under.server_name.clone()),
            ca_file: self.ca_file.clone().or_else(|| under.ca_file.clone()),
            client_certificate: self
                .client_certificate
                .clone()
                .or_else(|| under.client_certificate.clone()),
            client_key: self.client_key.clone().or_else(|| under.client_key.clone()),
            tls_skip_verify: self.tls_skip_verify.or(under.tls_skip_verify),
            certificate_min_days: self.certificate_min_days.or(under.certificate_min_days),
            transport: self.transport.clone().or_else(|| under.transport.clone()),
            up: self.up.clone().or_else(|| under.up.clone()),
            degraded: self.degraded.clone().or_else(|| under.degraded.clone()),
        }
    }

    /// The TLS client of an `https` check or a `sip` one over TLS: its files read, built.
    fn tls_client(&self) -> Result<TlsClient, Invalid> {
        let path = |p: &Option<String>| p.as_ref().map(PathBuf::from);
        TlsClient::load(TlsOptions {
            server_name: self.server_name.clone(),
            ca_file: path(&self.ca_file),
            client_certificate: path(&self.client_certificate),
            client_key: path(&self.client_key),
            skip_verify: self.tls_skip_verify.unwrap_or(false),
        })
        .map_err(|(key, why)| (key.to_string(), why))
    }

    /// A `sip` check: its transport (the TLS keys apply over TLS only) and the answers it
    /// counts as up and degraded.
    fn sip(&self) -> Result<SipCheck, Invalid> {
        let transport = match self.transport.as_deref().unwrap_or("udp") {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls(Box::new(self.tls_client()?)),
            other => {
                return Err((
                    "transport".into(),
                    format!("\"{other}\" is not a SIP transport: \"udp\", \"tcp\" or \"tls\""),
                ));
            }
        };
        if !matches!(transport, Transport::Tls(_)) {
            for (key, present) in [
                ("server_name", self.server_name.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("client_certificate", self.client_certificate.is_some()),
                ("client_key", self.client_key.is_some()),
                ("tls_skip_verify", self.tls_skip_verify.is_some()),
            ] {
                if present {
                    return Err((
                        key.into(),
                        "applies to a sip check with transport = \"tls\" only".into(),
                    ));
                }
            }
        }
        if transport == Transport::Udp && self.watch == Some(true) {
            return Err((
                "watch".into(),
                "a sip check over udp has no connection to watch: set transport = \"tcp\", or leave watch off".into(),
            ));
        }
        let statuses = |key: &str, given: &Option<Vec<SipStatus>>, default: &[StatusMatch]| {
            let Some(given) = given else {
                return Ok(default.to_vec());
            };
            given
                .iter()
                .map(|entry| StatusMatch::parse(&entry.0).map_err(|why| (key.to_string(), why)))
                .collect::<Result<Vec<_>, Invalid>>()
        };
        Ok(SipCheck {
            transport,
            up: statuses("up", &self.up, &DEFAULT_UP)?,
            degraded: statuses("degraded", &self.degraded, &[])?,
        })
    }

    /// The TLS side of an `https` check: its files read, its client built.
    fn https(&self, http: HttpCheck) -> Result<HttpsCheck, Invalid> {
        let min_days = match self.certificate_min_days {
            Some(days) if !(days.is_finite() && days >= 0.0) => {
                return Err((
                    "certificate_min_days".into(),
                    format!("must be a number of days, 0 or more, such as 14, not {days}"),
                ));
            }
            days => days,
        };
        let tls = self.tls_client()?;
        Ok(HttpsCheck {
            http,
            tls,
            min_days,
        })
    }

    /// Turns a fully layered check section into a `Check`, with built-in defaults for the rest.
    pub fn resolve(&self, default_kind: CheckKindName) -> Result<Check, Invalid> {
        let c = self;
        let interval = positive("interval", c.interval, DEFAULT_INTERVAL)?;
        let timeout = positive("timeout", c.timeout, DEFAULT_TIMEOUT)?;
        let fast_interval = positive(
            "fast_interval",
            c.fast_interval,
            (interval / 2).max(Duration::from_millis(10)),
        )?;
        let down_interval = positive("down_interval", c.down_interval, interval)?;
        let jitter = c.jitter.unwrap_or(DEFAULT_JITTER);
        if !(0.0..=MAX_JITTER).contains(&jitter) {
            return Err((
                "jitter".into(),
                format!("must be a fraction between 0 and {MAX_JITTER}, such as 0.1, not {jitter}"),
            ));
        }
        let rise = at_least_one("rise", c.rise, DEFAULT_RISE)?;
        let fall = at_least_one("fall", c.fall, DEFAULT_FALL)?;
        let kind_name = c.kind.unwrap_or(default_kind);
        let refuse_unless = |applies: bool, key: &str, present: bool| {
            if present && !applies {
                Err((
                    key.to_string(),
                    format!("does not apply to a {:?} check", kind_name).to_lowercase(),
                ))
            } else {
                Ok(())
            }
        };
        let is_http = matches!(kind_name, CheckKindName::Http | CheckKindName::Https);
        refuse_unless(is_http, "method", c.method.is_some())?;
        refuse_unless(is_http, "path", c.path.is_some())?;
        refuse_unless(is_http, "expect_status", c.expect_status.is_some())?;
        refuse_unless(is_http, "expect_body", c.expect_body.is_some())?;
        let is_https = kind_name == CheckKindName::Https;
        let is_sip = kind_name == CheckKindName::Sip;
        // `sip` refuses the TLS keys itself unless its transport is TLS.
        for (key, present) in [
            ("server_name", c.server_name.is_some()),
            ("ca_file", c.ca_file.is_some()),
            ("client_certificate", c.client_certificate.is_some()),
            ("client_key", c.client_key.is_some()),
            ("tls_skip_verify", c.tls_skip_verify.is_some()),
        ] {
            refuse_unless(is_https || is_sip, key, present)?;
        }
        refuse_unless(
            is_https,
            "certificate_min_days",
            c.certificate_min_days.is_some(),
        )?;
        refuse_unless(is_sip, "transport", c.transport.is_some())?;
        refuse_unless(is_sip, "up", c.up.is_some())?;
        refuse_unless(is_sip, "degraded", c.degraded.is_some())?;
        refuse_unless(
            kind_name == CheckKindName::Exec,
            "command",
            c.command.is_some(),
        )?;
        let kind = match kind_name {
            CheckKindName::Tcp => CheckKind::Tcp,
            CheckKindName::Cql => CheckKind::Cql,
            CheckKindName::Http | CheckKindName::Https => {
                let method = c.method.clone().unwrap_or_else(|| "GET".into());
                if method.is_empty() || !method.chars().all(|ch| ch.is_ascii_uppercase()) {
                    return Err((
                        "method".into(),
                        format!("\"{method}\" is not an HTTP method such as \"GET\" or \"HEAD\""),
                    ));
                }
                let path = c.path.clone().unwrap_or_else(|| "/".into());
                if !path.starts_with('/')
                    || path.chars().any(|ch| ch.is_whitespace() || ch.is_control())
                {
                    return Err((
                        "path".into(),
                        format!("\"{path}\" must start with / and hold no spaces"),
                    ));
                }
                let expect_status = c.expect_status.clone().unwrap_or_default();
                if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                    return Err((
                        "expect_status".into(),
                        format!("{bad} is not an HTTP status (100-599)"),
                    ));
                }
                let http = HttpCheck {
                    method,
                    path,
                    expect_status,
                    expect_body: c.expect_body.clone(),
                };
                if is_https {
                    CheckKind::Https(self.https(http)?)
                } else {
                    CheckKind::Http(http)
                }
            }
            CheckKindName::Exec => {
                let command = c.command.clone().unwrap_or_default();
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err((
                        "command".into(),
                        "an exec check needs command = [\"/path/to/program\", \"arg\", ...]".into(),
                    ));
                }
                CheckKind::Exec(ExecCheck { command })
            }
            CheckKindName::Sip => CheckKind::Sip(self.sip()?),
        };
        Ok(Check {
            kind,
            watch: c.watch.unwrap_or(false),
            timeout,
            rise,
            fall,
            schedule: Schedule {
                interval,
                fast_interval,
                down_interval,
                jitter,
            },
        })
    }
}
