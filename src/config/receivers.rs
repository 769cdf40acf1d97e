//! `[[alerts.receiver]]`: where alerts go (a webhook, Alertmanager, a program, e-mail),
//! as written and as checked.
//!
//! Every receiver has `name` (letters, digits, `-`, `_`, `.`; unique), `kind` and, all
//! optional, `timeout` (one attempt, default 10s), `attempts` (before a notification is
//! given up, default 10) and `queue` (notifications waiting, default 1000). Each kind takes
//! its own keys, and a key of another kind is refused by name rather than ignored:
//!
//! - `webhook`: `url` (http or https), `secret_file` (signs each body with HMAC-SHA256),
//!   `username` with `password_file` (HTTP Basic), `ca_file`;
//! - `alertmanager`: `urls` (one or more instances of one Alertmanager cluster, each told
//!   every alert), `username` with `password_file`, `ca_file`;
//! - `exec`: `command`, the program (an absolute path: no shell, no `PATH` lookup) then its
//!   arguments;
//! - `email`: `smtp` (`host:port`), `security` (`starttls`, the default, `tls` or `none`),
//!   `username` with `password_file`, `from`, `to` (one or more), `ca_file`.
//!
//! `ca_file` names the PEM CA certificates a server's certificate must chain to instead of
//! the system's. Files are read here, so that `servicewatch check-config` refuses a
//! missing, unreadable or empty one with its key instead of the first delivery failing,
//! and a reload that finds one changed changes its receiver. A password is never sent in
//! clear to another machine: `username` over `http://` or `security = "none"` is refused
//! unless the server is on the loopback interface.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;
use url::Url;

use super::duration::HumanDuration;
use super::rules::{Invalid, at_least_one, positive};

pub(crate) mod files;
#[cfg(test)]
mod tests;

pub use files::{CaCertificates, Login, Secret};

/// How long one delivery attempt may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a notification is given up (counted, logged) by default.
pub const DEFAULT_ATTEMPTS: u32 = 10;
/// Notifications waiting for one receiver before the oldest is dropped, by default.
pub const DEFAULT_QUEUE: usize = 1000;
/// Where an Alertmanager takes alerts, below each configured URL.
pub const ALERTMANAGER_PATH: &str = "/api/v2/alerts";

/// One `[[alerts.receiver]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSection {
    pub name: String,
    /// `webhook`, `alertmanager`, `exec`, `email`.
    pub kind: String,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub secret_file: Option<String>,
    pub command: Option<Vec<String>>,
    pub smtp: Option<String>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub ca_file: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub attempts: Option<u32>,
    pub queue: Option<usize>,
}

impl ReceiverSection {
    /// Makes its relative file paths (`secret_file`, `password_file`, `ca_file`) relative
    /// to `base`, the configuration file's directory, as the other files of the
    /// configuration are; to be called before [`validate_receivers`] reads them.
    pub fn rebase(&mut self, base: &Path) {
        for file in [
            &mut self.secret_file,
            &mut self.password_file,
            &mut self.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            *file = base.join(&*file).to_string_lossy().into_owned();
        }
    }

    /// Each key that only some kinds take, and whether it is set.
    fn kind_keys(&self) -> [(&'static str, bool); 11] {
        [
            ("url", self.url.is_some()),
            ("urls", self.urls.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("command", self.command.is_some()),
            ("smtp", self.smtp.is_some()),
            ("security", self.security.is_some()),
            ("username", self.username.is_some()),
            ("password_file", self.password_file.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ]
    }
}

/// A receiver, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverSpec {
    /// Unique among receivers; routes, logs and metrics name the receiver by it.
    pub name: String,
    /// What it is, with its kind's settings.
    pub kind: ReceiverKind,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts before a notification is given up.
    pub attempts: u32,
    /// Notifications waiting before the oldest is dropped.
    pub queue: usize,
}

/// What a receiver is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverKind {
    /// `webhook`.
    Webhook(WebhookSpec),
    /// `alertmanager`.
    Alertmanager(AlertmanagerSpec),
    /// `exec`.
    Exec(ExecSpec),
    /// `email`.
    Email(EmailSpec),
}

impl ReceiverKind {
    /// The kind's name, as `kind` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ReceiverKind::Webhook(_) => "webhook",
            ReceiverKind::Alertmanager(_) => "alertmanager",
            ReceiverKind::Exec(_) => "exec",
            ReceiverKind::Email(_) => "email",
        }
    }
}

/// A `webhook`: the notification's JSON, posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// Where the notification is posted (http or https).
    pub url: Url,
    /// The HMAC-SHA256 key the body is signed with.
    pub secret: Option<Secret>,
    /// HTTP Basic credentials.
    pub login: Option<Login>,
    /// The CA certificates the server's must chain to, instead of the system's.
    pub ca: Option<CaCertificates>,
}

/// An `alertmanager`: its v2 API, on every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerSpec {
    /// Each instance's alerts endpoint (the configured URL with [`ALERTMANAGER_PATH`]).
    pub urls: Vec<Url>,
    /// HTTP Basic credentials, for every instance.
    pub login: Option<Login>,
    /// The CA certificates the instances' must chain to, instead of the system's.
    pub ca: Option<CaCertificates>,
}

/// An `exec`: a program run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// An absolute path.
    pub program: PathBuf,
    /// Its arguments, as written (no shell expands them).
    pub args: Vec<String>,
}

/// An `email`: a message through an SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSpec {
    /// The relay's name or address (an IPv6 address without brackets).
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// SMTP authentication (`AUTH`).
    pub login: Option<Login>,
    /// The CA certificates the relay's must chain to, instead of the system's.
    pub ca: Option<CaCertificates>,
    /// The sender, in `From` and the envelope.
    pub from: Mailbox,
    /// The recipients, at least one.
    pub to: Vec<Mailbox>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain at first, then `STARTTLS`, which the relay must offer (never skipped).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Neither: for a relay on this machine.
    None,
}

/// Checks every receiver; keys are relative to `[alerts]` (`receiver[0].url`).
pub(super) fn validate_receivers(
    sections: &[ReceiverSection],
) -> Result<Vec<ReceiverSpec>, Invalid> {
    let mut specs: Vec<ReceiverSpec> = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let spec = validate_receiver(section)
            .map_err(|(key, message)| (format!("receiver[{i}].{key}"), message))?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err((
                format!("receiver[{i}].name"),
                format!(
                    "duplicate receiver \"{}\"; names must be unique (routes refer to them)",
                    spec.name
                ),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// One receiver; keys are relative to it (`url`).
fn validate_receiver(r: &ReceiverSection) -> Result<ReceiverSpec, Invalid> {
    name(&r.name)?;
    let Some(&(kind, keys)) = KINDS.iter().find(|(kind, _)| *kind == r.kind) else {
        return Err((
            "kind".into(),
            format!(
                "unknown kind \"{}\"; expected webhook, alertmanager, exec or email",
                r.kind
            ),
        ));
    };
    if let Some((key, _)) = r
        .kind_keys()
        .into_iter()
        .find(|(key, set)| *set && !keys.contains(key))
    {
        return Err((
            key.into(),
            format!(
                "does not belong to a {kind} receiver, whose keys are {}",
                keys.join(", ")
            ),
        ));
    }
    let kind = match kind {
        "webhook" => ReceiverKind::Webhook(webhook(r)?),
        "alertmanager" => ReceiverKind::Alertmanager(alertmanager(r)?),
        "exec" => ReceiverKind::Exec(exec(r)?),
        _ => ReceiverKind::Email(email(r)?),
    };
    Ok(ReceiverSpec {
        name: r.name.clone(),
        kind,
        timeout: positive("timeout", r.timeout, DEFAULT_TIMEOUT)?,
        attempts: at_least_one("attempts", r.attempts, DEFAULT_ATTEMPTS)?,
        queue: at_least_one("queue", r.queue, DEFAULT_QUEUE)?,
    })
}

/// Each kind, and the keys it takes besides `name`, `kind`, `timeout`, `attempts` and
/// `queue`.
const KINDS: &[(&str, &[&str])] = &[
    (
        "webhook",
        &["url", "secret_file", "username", "password_file", "ca_file"],
    ),
    (
        "alertmanager",
        &["urls", "username", "password_file", "ca_file"],
    ),
    ("exec", &["command"]),
    (
        "email",
        &[
            "smtp",
            "security",
            "username",
            "password_file",
            "from",
            "to",
            "ca_file",
        ],
    ),
];

/// A name fit for logs, metric labels and routes.
fn name(name: &str) -> Result<(), Invalid> {
    let fit = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || !name.chars().all(fit) {
        return Err((
            "name".into(),
            format!("\"{name}\" is not a receiver name; use letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

fn webhook(r: &ReceiverSection) -> Result<WebhookSpec, Invalid> {
    let url = r.url.as_deref().ok_or_else(|| required("url"))?;
    let url = http_url("url", url)?;
    let secret = r
        .secret_file
        .as_deref()
        .map(|file| files::secret("secret_file", file))
        .transpose()?;
    let https = url.scheme() == "https";
    Ok(WebhookSpec {
        login: login(r, [&url])?,
        ca: ca(r, https, "an https:// url")?,
        url,
        secret,
    })
}

fn alertmanager(r: &ReceiverSection) -> Result<AlertmanagerSpec, Invalid> {
    let written = r.urls.as_deref().unwrap_or_default();
    if written.is_empty() {
        return Err((
            "urls".into(),
            "names no Alertmanager; list every instance of the cluster, such as [\"http://am1:9093\", \"http://am2:9093\"]".into(),
        ));
    }
    let mut urls = Vec::with_capacity(written.len());
    for text in written {
        let url = alerts_endpoint(http_url("urls", text)?)?;
        if urls.contains(&url) {
            return Err(("urls".into(), format!("names {url} twice")));
        }
        urls.push(url);
    }
    let https = urls.iter().any(|u| u.scheme() == "https");
    Ok(AlertmanagerSpec {
        login: login(r, &urls)?,
        ca: ca(r, https, "an https:// url")?,
        urls,
    })
}

/// The alerts endpoint below an Alertmanager's base URL (kept when already written).
fn alerts_endpoint(mut url: Url) -> Result<Url, Invalid> {
    if url.query().is_some() || url.fragment().is_some() {
        return Err((
            "urls".into(),
            format!(
                "\"{url}\" is not a base URL; write the instance's address, such as http://am1:9093"
            ),
        ));
    }
    let path = url.path().trim_end_matches('/');
    if !path.ends_with(ALERTMANAGER_PATH) {
        let path = format!("{path}{ALERTMANAGER_PATH}");
        url.set_path(&path);
    }
    Ok(url)
}

fn exec(r: &ReceiverSection) -> Result<ExecSpec, Invalid> {
    let command = r.command.as_deref().unwrap_or_default();
    let Some((program, args)) = command.split_first() else {
        return Err((
            "command".into(),
            "names no program; write the program then its arguments, such as [\"/usr/local/bin/notify\", \"--page\"]".into(),
        ));
    };
    let path = PathBuf::from(program);
    if !path.is_absolute() {
        return Err((
            "command".into(),
            format!(
                "\"{program}\" is not an absolute path; the program is run without a shell or PATH, so name it in full, such as /usr/local/bin/notify"
            ),
        ));
    }
    let metadata =
        std::fs::metadata(&path).map_err(|e| ("command".to_string(), format!("{program}: {e}")))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        return Err((
            "command".into(),
            format!("{program} is not an executable file"),
        ));
    }
    Ok(ExecSpec {
        program: path,
        args: args.to_vec(),
    })
}

fn email(r: &ReceiverSection) -> Result<EmailSpec, Invalid> {
    let smtp = r.smtp.as_deref().ok_or_else(|| required("smtp"))?;
    let (host, port) = smtp_address(smtp)?;
    let security = match r.security.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        other => {
            return Err((
                "security".into(),
                format!("unknown security \"{other}\"; expected starttls, tls or none"),
            ));
        }
    };
    let login = files::login(r)?;
    if login.is_some() && security == SmtpSecurity::None && !is_loopback(&host) {
        return Err(("security".into(), clear_password(smtp)));
    }
    let from = r.from.as_deref().ok_or_else(|| required("from"))?;
    let to = r.to.as_deref().unwrap_or_default();
    if to.is_empty() {
        return Err((
            "to".into(),
            "names no recipient; list one or more addresses, such as [\"oncall@example.com\"]"
                .into(),
        ));
    }
    Ok(EmailSpec {
        ca: ca(
            r,
            security != SmtpSecurity::None,
            "security = \"starttls\" or \"tls\"",
        )?,
        from: mailbox("from", from)?,
        to: to
            .iter()
            .map(|a| mailbox("to", a))
            .collect::<Result<_, _>>()?,
        host,
        port,
        security,
        login,
    })
}

/// `host:port` (`[address]:port` for IPv6).
fn smtp_address(text: &str) -> Result<(String, u16), Invalid> {
    let split = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => text
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':')),
    };
    let fit = |host: &str| {
        !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || matches!(c, '/' | '@'))
    };
    match split {
        Some((host, port)) if fit(host) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok((host.to_string(), port)),
            _ => Err(("smtp".into(), format!("\"{port}\" is not a port"))),
        },
        _ => Err((
            "smtp".into(),
            format!("\"{text}\" is not host:port; write the relay such as mail.example.com:587"),
        )),
    }
}

fn mailbox(key: &str, text: &str) -> Result<Mailbox, Invalid> {
    text.parse::<Mailbox>().map_err(|e| {
        (
            key.to_string(),
            format!(
                "\"{text}\" is not an address ({e}); write it as alerts@example.com or \"Name <alerts@example.com>\""
            ),
        )
    })
}

/// An `http` or `https` URL with a host and no credentials in it.
fn http_url(key: &str, text: &str) -> Result<Url, Invalid> {
    let url = Url::parse(text).map_err(|e| {
        (
            key.to_string(),
            format!("\"{text}\" is not a URL ({e}); write it such as https://host:port/path"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            key.to_string(),
            format!("\"{text}\" is not an http:// or https:// URL"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err((key.to_string(), format!("\"{text}\" names no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the text holds a password.
        return Err((
            key.to_string(),
            "holds credentials, which would show wherever the URL does; set username and password_file instead".into(),
        ));
    }
    Ok(url)
}

/// `username` and `password_file`, for servers none of which gets them in clear.
fn login<'a>(
    r: &ReceiverSection,
    urls: impl IntoIterator<Item = &'a Url>,
) -> Result<Option<Login>, Invalid> {
    let login = files::login(r)?;
    if login.is_some() {
        let clear = urls
            .into_iter()
            .find(|u| u.scheme() == "http" && !u.host_str().is_some_and(is_loopback));
        if let Some(url) = clear {
            return Err((
                "username".into(),
                clear_password(&url.origin().ascii_serialization()),
            ));
        }
    }
    Ok(login)
}

/// `ca_file`, refused when no connection of the receiver would use TLS (`tls` false).
fn ca(r: &ReceiverSection, tls: bool, needs: &str) -> Result<Option<CaCertificates>, Invalid> {
    match &r.ca_file {
        None => Ok(None),
        Some(_) if !tls => Err((
            "ca_file".into(),
            format!("is only used over TLS, which needs {needs}"),
        )),
        Some(file) => files::ca("ca_file", file).map(Some),
    }
}

fn required(key: &str) -> Invalid {
    (key.into(), "is required for this kind".into())
}

fn clear_password(server: &str) -> String {
    format!(
        "would send the password in clear to {server}; use TLS (https://, security = \"starttls\" or \"tls\"), or a server on this machine"
    )
}

/// Whether `host` is this machine, so that a password in clear stays on it.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
