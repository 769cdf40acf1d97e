//! Every input kept under `fuzz/regressions/<target>/` (seeds, and what the fuzzer found or
//! found interesting) run through its target on the stable toolchain, so that what was
//! fixed stays fixed without the fuzzer. `bash fuzz/run.sh` runs the fuzzer itself.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

/// Runs `target` on every file of `fuzz/regressions/<name>/`; returns how many there were.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(name);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "{} fails again", path.display());
        count += 1;
    }
    assert!(count > 0, "no inputs under {}", dir.display());
    count
}

#[test]
fn bayeux_batch() {
    replay("bayeux_batch", targets::bayeux_batch);
}

#[test]
fn services_query() {
    replay("services_query", targets::services_query);
}

#[test]
fn config() {
    replay("config", targets::config);
}

#[test]
fn http_answer() {
    replay("http_answer", targets::http_answer);
}

#[test]
fn cql_frame() {
    replay("cql_frame", targets::cql_frame);
}

#[test]
fn sip_response() {
    replay("sip_response", targets::sip_response);
}
