//! The real clients' setup (Node.js packages, Chromium), shared by the tests that run them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the clients once (tests/interop/setup.sh); false when skipped.
pub fn ready() -> bool {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    !skipped() && setup(&SETUP, &[])
}

/// The Python of the virtual environment, with the packages of requirements.txt (aiosmtpd
/// among them), set up once (`setup.sh python`); `None` when skipped.
pub fn python() -> Option<PathBuf> {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    if skipped() || !setup(&SETUP, &["python"]) {
        return None;
    }
    Some(root().join("target/interop-venv/bin/python"))
}

/// Whether SKIP_INTEROP_TESTS is set (never under CI: a skipped check is not a passed one).
fn skipped() -> bool {
    if std::env::var_os("SKIP_INTEROP_TESTS").is_none() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "SKIP_INTEROP_TESTS is set under CI; the interop tests must run there"
    );
    eprintln!("interop tests skipped: SKIP_INTEROP_TESTS is set");
    true
}

/// Runs setup.sh with `args`, once per `done`; panics with its output if it fails.
fn setup(done: &OnceLock<Result<(), String>>, args: &[&str]) -> bool {
    let result = done.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(root().join("tests/interop/setup.sh"))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("tests/interop/setup.sh failed (set SKIP_INTEROP_TESTS=1 to skip):\n{e}");
    }
    true
}

/// Chromium's path (`CHROMIUM`, else Debian's), which must exist.
pub fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} (apt-get install chromium; set CHROMIUM, or SKIP_INTEROP_TESTS=1 to skip)"
    );
    chromium
}
