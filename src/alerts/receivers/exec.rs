//! The `exec` receiver: a program run without a shell, told the notification in its
//! environment (for a script in the manner of keepalived's notify scripts or Genesys SCS
//! alarm reactions) and as JSON on its standard input (the webhook's body). Exit 0 is a
//! success; any other exit, a signal or the timeout a failure.
//!
//! The environment: the daemon's own, without its service manager's variables
//! (`NOTIFY_SOCKET`, `LISTEN_FDS`, ...) and without any `SERVICEWATCH_*` it was started
//! with, so that a script sees only these:
//!
//! | Variable | Value |
//! |---|---|
//! | `SERVICEWATCH_RECEIVER` | the receiver's name |
//! | `SERVICEWATCH_KEY` | the notification's key (the same on every attempt) |
//! | `SERVICEWATCH_STATUS` | `firing` or `resolved` |
//! | `SERVICEWATCH_SUMMARY` | one line for a human |
//! | `SERVICEWATCH_NODE` | the node that sent it |
//! | `SERVICEWATCH_REPEAT` | `true` when it repeats alerts still firing, else `false` |
//! | `SERVICEWATCH_EVENTS` | how many events it carries |
//! | `SERVICEWATCH_ALERTS` | how many alerts it carries |
//!
//! and, when it carries exactly one event, that event's: `SERVICEWATCH_EVENT_KEY`,
//! `SERVICEWATCH_EVENT_KIND` (`stateChanged`, `switchover`, ...), `SERVICEWATCH_EVENT_AT`
//! (RFC 3339), `SERVICEWATCH_REVISION`, `SERVICEWATCH_SEVERITY`, `SERVICEWATCH_REASON`,
//! and those it has of `SERVICEWATCH_SERVICE` (the id), `SERVICEWATCH_SERVICE_NAME`,
//! `SERVICEWATCH_SERVICE_TYPE`, `SERVICEWATCH_STATE`, `SERVICEWATCH_PREVIOUS_STATE`,
//! `SERVICEWATCH_SERVING_INSTANCE`, `SERVICEWATCH_PREVIOUS_SERVING_INSTANCE` and
//! `SERVICEWATCH_PLANNED` (`true`, `false`); one it lacks is unset, not empty.
//!
//! The program runs in its own process group, killed at the timeout, and when the program
//! exits (what it left running would otherwise pile up one delivery at a time), and if the
//! attempt is abandoned. Its output is read while it runs, the first
//! [`OUTPUT_KEPT_BYTES`] kept for the error.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{DeliveryError, excerpt};
use crate::alerts::notification::Notification;
use crate::config::receivers::ExecSpec;
use crate::probe::exec::{kill_group, read_bounded};
use crate::resource::timestamp;

/// Output kept from the program, stdout and stderr each.
pub const OUTPUT_KEPT_BYTES: usize = 4096;

/// Variables of the service manager, which belong to the daemon and not to its programs.
const SERVICE_MANAGER_VARIABLES: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// A program, set up.
pub struct Exec {
    program: PathBuf,
    args: Vec<String>,
}

impl Exec {
    pub fn new(spec: &ExecSpec) -> Exec {
        Exec {
            program: spec.program.clone(),
            args: spec.args.clone(),
        }
    }

    /// Runs the program to its end, or kills it at `timeout`.
    pub async fn deliver(&self, n: &Notification, timeout: Duration) -> Result<(), DeliveryError> {
        let program = self.program.display().to_string();
        let json = serde_json::to_vec(n).map_err(|e| DeliveryError::Encode(e.to_string()))?;
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(|n| n.starts_with("SERVICEWATCH_"))
            {
                command.env_remove(name);
            }
        }
        for name in SERVICE_MANAGER_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command
            .envs(environment(n))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DeliveryError::Spawn {
                program: program.clone(),
                reason: e.to_string(),
            })?;
        let group = ProcessGroup(Cell::new(child.id()));
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let run = async {
            let exited = async {
                let status = child.wait().await;
                // What it left running ends with it: otherwise one more stays behind on
                // every delivery, and one holding the pipes open holds this attempt.
                group.kill();
                status
            };
            let (_, out, err, status) = tokio::join!(
                feed(stdin, &json),
                read_bounded(stdout, OUTPUT_KEPT_BYTES),
                read_bounded(stderr, OUTPUT_KEPT_BYTES),
                exited
            );
            (status, out, err)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok((Ok(status), out, err)) => judge(&program, status, &out, &err),
            Ok((Err(e), _, _)) => Err(DeliveryError::Spawn {
                program,
                reason: format!("cannot wait for it: {e}"),
            }),
            Err(_) => {
                group.kill();
                // `kill` also waits, so the child is reaped here and not left a zombie.
                let _ = child.kill().await;
                Err(DeliveryError::Killed { program, timeout })
            }
        }
    }
}

/// The variables the program is given (see the module's documentation).
pub fn environment(n: &Notification) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("SERVICEWATCH_RECEIVER", n.receiver.clone()),
        ("SERVICEWATCH_KEY", n.key.clone()),
        ("SERVICEWATCH_STATUS", n.status.as_str().to_string()),
        ("SERVICEWATCH_SUMMARY", n.summary()),
        ("SERVICEWATCH_NODE", n.node.clone()),
        ("SERVICEWATCH_REPEAT", n.repeat.to_string()),
        ("SERVICEWATCH_EVENTS", n.events.len().to_string()),
        ("SERVICEWATCH_ALERTS", n.alerts.len().to_string()),
    ];
    if let [e] = n.events.as_slice() {
        vars.extend([
            ("SERVICEWATCH_EVENT_KEY", e.key.clone()),
            ("SERVICEWATCH_EVENT_KIND", e.kind.as_str().to_string()),
            ("SERVICEWATCH_EVENT_AT", timestamp(e.at)),
            ("SERVICEWATCH_REVISION", e.revision.to_string()),
            ("SERVICEWATCH_SEVERITY", e.severity.as_str().to_string()),
            ("SERVICEWATCH_REASON", e.reason.clone()),
        ]);
        let service = e.service.as_ref();
        let optional = [
            ("SERVICEWATCH_SERVICE", service.map(|s| s.id.clone())),
            ("SERVICEWATCH_SERVICE_NAME", service.map(|s| s.name.clone())),
            (
                "SERVICEWATCH_SERVICE_TYPE",
                service.map(|s| s.service_type.clone()),
            ),
            ("SERVICEWATCH_STATE", e.state.clone()),
            ("SERVICEWATCH_PREVIOUS_STATE", e.previous_state.clone()),
            ("SERVICEWATCH_SERVING_INSTANCE", e.serving_instance.clone()),
            (
                "SERVICEWATCH_PREVIOUS_SERVING_INSTANCE",
                e.previous_serving_instance.clone(),
            ),
            ("SERVICEWATCH_PLANNED", e.planned.map(|p| p.to_string())),
        ];
        vars.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?))),
        );
    }
    // A NUL cannot be passed in a variable; no value should hold one, but none may stop
    // the program from running.
    for (_, value) in &mut vars {
        if value.contains('\0') {
            *value = value.replace('\0', "");
        }
    }
    vars
}

/// The process group the program leads (`process_group(0)`), killed when dropped so that
/// an abandoned attempt leaves nothing running.
struct ProcessGroup(Cell<Option<u32>>);

impl ProcessGroup {
    /// Sends SIGKILL to every process of the group, once: its id may be reused after.
    fn kill(&self) {
        kill_group(self.0.take());
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes the JSON to the program's stdin and closes it; a program that does not read it
/// (the write fails when it exits) is no failure.
async fn feed(stdin: Option<tokio::process::ChildStdin>, json: &[u8]) {
    if let Some(mut stdin) = stdin {
        let _ = stdin.write_all(json).await;
    }
}

/// Exit 0 is a success; else the failure, with what the program said on stderr (or, when
/// it said nothing there, on stdout).
fn judge(program: &str, status: ExitStatus, out: &[u8], err: &[u8]) -> Result<(), DeliveryError> {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(0), _) => return Ok(()),
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended: {status}"),
    };
    let said = if err.iter().all(u8::is_ascii_whitespace) {
        out
    } else {
        err
    };
    Err(DeliveryError::Exited {
        program: program.to_string(),
        how,
        output: excerpt(said),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::event::{AlertStatus, Event, EventKind, ServiceRef, Severity};
    use std::collections::HashMap;
    use std::os::unix::process::ExitStatusExt;
    use std::time::UNIX_EPOCH;

    fn event(service: &str) -> Event {
        Event {
            key: format!("{service}/7/switchover"),
            kind: EventKind::Switchover,
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            revision: 7,
            service: Some(ServiceRef {
                id: service.into(),
                name: service.to_uppercase(),
                service_type: "Voice".into(),
            }),
            state: Some("Active".into()),
            previous_state: None,
            serving_instance: Some("backup".into()),
            previous_serving_instance: Some("primary".into()),
            planned: Some(false),
            severity: Severity::Warning,
            summary: format!("{service} switched over to its backup"),
            reason: "primary: connection refused\0".into(),
        }
    }

    fn notification(events: Vec<Event>) -> Notification {
        Notification {
            version: crate::alerts::notification::VERSION,
            key: "n-1".into(),
            receiver: "pager".into(),
            status: AlertStatus::Resolved,
            node: "node-a".into(),
            created_at: UNIX_EPOCH,
            events,
            alerts: vec![],
            repeat: false,
        }
    }

    #[test]
    fn one_event_is_told_in_full() {
        let vars: HashMap<_, _> = environment(&notification(vec![event("sips1")]))
            .into_iter()
            .collect();
        let expected = [
            ("SERVICEWATCH_RECEIVER", "pager"),
            ("SERVICEWATCH_KEY", "n-1"),
            ("SERVICEWATCH_STATUS", "resolved"),
            ("SERVICEWATCH_SUMMARY", "sips1 switched over to its backup"),
            ("SERVICEWATCH_NODE", "node-a"),
            ("SERVICEWATCH_REPEAT", "false"),
            ("SERVICEWATCH_EVENTS", "1"),
            ("SERVICEWATCH_ALERTS", "0"),
            ("SERVICEWATCH_EVENT_KEY", "sips1/7/switchover"),
            ("SERVICEWATCH_EVENT_KIND", "switchover"),
            ("SERVICEWATCH_EVENT_AT", "2023-11-14T22:13:20.000Z"),
            ("SERVICEWATCH_REVISION", "7"),
            ("SERVICEWATCH_SEVERITY", "warning"),
            ("SERVICEWATCH_REASON", "primary: connection refused"),
            ("SERVICEWATCH_SERVICE", "sips1"),
            ("SERVICEWATCH_SERVICE_NAME", "SIPS1"),
            ("SERVICEWATCH_SERVICE_TYPE", "Voice"),
            ("SERVICEWATCH_STATE", "Active"),
            ("SERVICEWATCH_SERVING_INSTANCE", "backup"),
            ("SERVICEWATCH_PREVIOUS_SERVING_INSTANCE", "primary"),
            ("SERVICEWATCH_PLANNED", "false"),
        ];
        let expected: HashMap<_, _> = expected
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        assert_eq!(vars, expected, "SERVICEWATCH_PREVIOUS_STATE is unset");
    }

    #[test]
    fn several_events_are_counted_only() {
        let vars = environment(&notification(vec![event("sips1"), event("stat1")]));
        let names: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "SERVICEWATCH_RECEIVER",
                "SERVICEWATCH_KEY",
                "SERVICEWATCH_STATUS",
                "SERVICEWATCH_SUMMARY",
                "SERVICEWATCH_NODE",
                "SERVICEWATCH_REPEAT",
                "SERVICEWATCH_EVENTS",
                "SERVICEWATCH_ALERTS",
            ]
        );
        assert_eq!(vars[6].1, "2");
        assert_eq!(vars[3].1, "2 events on 2 services");
    }

    #[test]
    fn failures_say_how_and_what() {
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        assert!(judge("/x", exit(0), b"", b"").is_ok());
        assert_eq!(
            judge("/x", exit(3), b"ignored", b"no route to pager\n")
                .unwrap_err()
                .to_string(),
            "/x exited 3: no route to pager"
        );
        assert_eq!(
            judge("/x", exit(2), b"said on stdout", b" \n")
                .unwrap_err()
                .to_string(),
            "/x exited 2: said on stdout"
        );
        assert_eq!(
            judge("/x", ExitStatus::from_raw(9), b"", b"")
                .unwrap_err()
                .to_string(),
            "/x was killed by signal 9: (nothing)"
        );
    }
}
