//! The `exec` check: a command run without a shell; exit 0 means up, 1 degraded, anything
//! else (or a signal, or the timeout) down.
//!
//! The command runs in its own process group so that a timeout kills everything it started
//! (a wrapper script's children too), and it is always waited for, so no zombie is left.
//! Its output is read while it runs (a full pipe would block it) but only the first
//! [`MAX_OUTPUT_BYTES`] are kept, for the log line.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::Target;
use crate::domain::health::ProbeOutcome;

/// Output kept from a command, stdout and stderr each.
pub const MAX_OUTPUT_BYTES: usize = 4096;

/// The command to run. In each argument, `{host}` and `{port}` stand for the instance's;
/// the same values are in the environment as `SERVICEWATCH_HOST` and `SERVICEWATCH_PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCheck {
    pub command: Vec<String>,
}

/// Runs the command and judges its exit, killing it (and its process group) at `timeout`;
/// what it leaves running in its process group when it exits is killed too.
pub async fn probe(
    check: &ExecCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(ProbeOutcome, String), String> {
    let (status, out, err) = run(check, target, timeout).await?;
    Ok(judge(status, &out, &err))
}

/// Runs the command to its end (or kills it at `timeout`): how it exited, and the first
/// [`MAX_OUTPUT_BYTES`] of its stdout and stderr.
pub async fn run(
    check: &ExecCheck,
    target: &Target,
    timeout: Duration,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), String> {
    let argv: Vec<String> = check.command.iter().map(|a| expand(a, target)).collect();
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the exec check has an empty command".to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .env("SERVICEWATCH_HOST", &target.host)
        .env("SERVICEWATCH_PORT", target.port.to_string())
        // The service manager's channels belong to the daemon, not to its checks.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let finished = tokio::time::timeout(timeout, async {
        let exited = async {
            let status = child.wait().await;
            // What the command started and left behind ends with it: otherwise a check
            // that backgrounds a process leaves one more behind on every probe, and one that
            // keeps the output pipes open holds this probe until its timeout.
            kill_group(pid);
            status
        };
        let (out, err, status) = tokio::join!(
            read_bounded(stdout, MAX_OUTPUT_BYTES),
            read_bounded(stderr, MAX_OUTPUT_BYTES),
            exited
        );
        (status, out, err)
    })
    .await;
    match finished {
        Ok((Ok(status), out, err)) => Ok((status, out, err)),
        Ok((Err(e), _, _)) => Err(format!("waiting for {program} failed: {e}")),
        Err(_) => {
            kill_group(pid);
            // `kill` also waits, so the child is reaped here and not left a zombie.
            let _ = child.kill().await;
            Err(format!(
                "{program} did not finish within {timeout:?} and was killed"
            ))
        }
    }
}

/// Replaces `{host}` and `{port}` in one argument.
fn expand(arg: &str, target: &Target) -> String {
    arg.replace("{host}", &target.host)
        .replace("{port}", &target.port.to_string())
}

/// Sends SIGKILL to the process group the child leads, reaching the processes it started
/// (for the exec checks and the exec alert receivers alike).
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill(2) has no memory effects; a negative pid names the process group
        // created for this child by `process_group(0)`, so nothing else is signalled.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Reads a pipe to its end, keeping the first `max` bytes.
pub async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut chunk = [0u8; 1024];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// The first non-blank line of a command's output, fit for a log line.
pub fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(super::readable(line.as_bytes(), 200))
}

/// Maps the exit to an outcome, with the first line of output as the reason.
fn judge(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> (ProbeOutcome, String) {
    let said = first_line(stdout).or_else(|| first_line(stderr));
    let (outcome, how) = match status.code() {
        Some(0) => (ProbeOutcome::Up, "exited 0".to_string()),
        Some(1) => (ProbeOutcome::Degraded, "exited 1 (degraded)".to_string()),
        Some(code) => (ProbeOutcome::Down, format!("exited {code}")),
        None => (ProbeOutcome::Down, format!("ended by {status}")),
    };
    match said {
        Some(line) => (outcome, format!("{how}: {line}")),
        None => (outcome, how),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn target() -> Target {
        Target {
            host: "10.0.0.5".into(),
            port: 5001,
        }
    }

    #[test]
    fn expands_placeholders() {
        assert_eq!(
            expand("--addr={host}:{port}", &target()),
            "--addr=10.0.0.5:5001"
        );
        assert_eq!(expand("plain", &target()), "plain");
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(judge(exit(0), b"", b"").0, ProbeOutcome::Up);
        assert_eq!(
            judge(exit(1), b"", b""),
            (ProbeOutcome::Degraded, "exited 1 (degraded)".into())
        );
        assert_eq!(
            judge(exit(2), b"\nno route\nmore", b""),
            (ProbeOutcome::Down, "exited 2: no route".into())
        );
        assert_eq!(
            judge(ExitStatus::from_raw(9), b"", b"").0,
            ProbeOutcome::Down
        );
        assert_eq!(judge(exit(3), b"", b"boom").1, "exited 3: boom");
    }

    #[tokio::test]
    async fn runs_a_real_command() {
        let check = ExecCheck {
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo at $SERVICEWATCH_PORT; exit 1".into(),
            ],
        };
        let (outcome, detail) = probe(&check, &target(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(outcome, ProbeOutcome::Degraded);
        assert_eq!(detail, "exited 1 (degraded): at 5001");
    }

    /// The processes whose command line contains `marker`.
    fn processes_with(marker: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
            .count()
    }

    #[tokio::test]
    async fn what_a_command_leaves_running_ends_with_it() {
        // One leftover keeps the output pipes open, the other does not: neither may hold
        // the probe or outlive it.
        for (script, marker) in [
            ("sleep 601.25 & echo started; exit 0", "601.25"),
            ("sleep 601.75 >/dev/null 2>&1 & exit 0", "601.75"),
        ] {
            let check = ExecCheck {
                command: vec!["sh".into(), "-c".into(), script.into()],
            };
            let started = std::time::Instant::now();
            let (outcome, detail) = probe(&check, &target(), Duration::from_secs(20))
                .await
                .unwrap();
            assert_eq!(outcome, ProbeOutcome::Up, "{script}: {detail}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{script}: judged by its exit, not held until the timeout"
            );
            // SIGKILL is sent before the probe returns; the process may take a moment to go.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while processes_with(marker) > 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{script}: its leftover still runs"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    #[tokio::test]
    async fn a_command_that_spews_output_is_judged_by_its_exit() {
        // 20 MB of output: read to the end so the command never blocks on a full pipe, but
        // only the first bytes kept.
        let check = ExecCheck {
            command: vec![
                "sh".into(),
                "-c".into(),
                "head -c 20000000 /dev/zero | tr '\\0' x; echo; exit 2".into(),
            ],
        };
        let (outcome, detail) = probe(&check, &target(), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(outcome, ProbeOutcome::Down);
        assert!(detail.starts_with("exited 2: xxxx"), "{detail}");
        assert!(detail.len() < 300, "the reason is one short line");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_failure() {
        let check = ExecCheck {
            command: vec!["/nonexistent/servicewatch-check".into()],
        };
        let why = probe(&check, &target(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            why.starts_with("cannot start /nonexistent/servicewatch-check"),
            "{why}"
        );
    }
}
