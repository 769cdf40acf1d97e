//! The alerting rules and the Grafana dashboard shipped in `deploy/`: promtool checks the
//! rules and runs their unit tests, every dashboard query parses as PromQL, and every
//! `servicewatch_*` metric either names is one the real daemon exports.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Backend, Mode, TestDaemon};
use serde_json::Value;

/// Metric names the rules and the dashboard use before the daemon exports them: the series
/// that work landing beside these rules adds. Take each out as it lands; the daemon test then
/// checks it like the others, and says which of these it already finds.
const NOT_YET_EXPORTED: &[&str] = &[
    // Exported once an `https` check has verified a certificate: taking it out needs an
    // https backend in the daemon below.
    "servicewatch_certificate_days_left",
];

/// The rule file, its unit tests and the dashboard, in the repository.
fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

const RULES: &str = "prometheus/servicewatch-rules.yml";
const RULE_TESTS: &str = "prometheus/servicewatch-rules.test.yml";
const DASHBOARD: &str = "grafana/servicewatch.json";

/// Whether promtool is on the PATH, installed here if it can be (as root with apt-get, from
/// Debian's `prometheus` package, as `.ci/run` does). Missing and not root, the promtool
/// checks are skipped with a note, except under CI.
fn promtool() -> bool {
    static FOUND: OnceLock<Result<bool, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let runs = || {
            Command::new("promtool")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if runs() {
            return Ok(true);
        }
        // SAFETY: getuid(2) has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        if !root {
            if std::env::var_os("CI").is_some() {
                return Err("promtool is missing under CI: .ci/run installs it (apt-get install prometheus)".into());
            }
            note("promtool not found and not root: the alerting rules are not checked (apt-get install prometheus)");
            return Ok(false);
        }
        let install = Command::new("sh")
            .args(["-c", "apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null"])
            .status()
            .map_err(|e| format!("cannot run apt-get to install promtool: {e}"))?;
        if install.success() && runs() {
            Ok(true)
        } else {
            Err("promtool is missing and apt-get could not install it (Debian: apt-get install prometheus)".into())
        }
    });
    match found {
        Ok(found) => *found,
        Err(e) => panic!("{e}"),
    }
}

/// Writes `line` to the standard error straight, so that it shows in a passing test's output
/// (the harness keeps what `eprintln!` writes to show it only on failure).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn run_promtool(args: &[&str], dir: &Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `servicewatch_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let in_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.match_indices("servicewatch_")
        .filter(|(at, _)| !text[..*at].ends_with(in_name))
        .map(|(at, _)| text[at..].chars().take_while(|c| in_name(*c)).collect())
        .collect()
}

/// The sample names of a `/metrics` text (`servicewatch_probes_total`,
/// `servicewatch_probe_duration_seconds_bucket`...): what a query can name.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(deploy(DASHBOARD)).expect("the dashboard is there");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel of the dashboard, those inside rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            into.push(panel);
            walk(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    walk(&dashboard["panels"], &mut all);
    all
}

/// The PromQL of every panel's queries.
fn panel_queries(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .map(|target| target["expr"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The queries of the template variables (`label_values(...)`, Grafana's, not PromQL).
fn variable_queries(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| v["definition"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A panel query as Prometheus would get it: the dashboard's variables and Grafana's
/// intervals replaced by values.
fn as_sent(query: &str) -> String {
    [
        ("$__rate_interval", "1m"),
        ("$__interval", "1m"),
        ("$__range", "6h"),
        ("$job", "servicewatch"),
        ("$node", "sw1:9180"),
        ("$service", ".*"),
    ]
    .into_iter()
    .fold(query.to_string(), |q, (variable, value)| {
        q.replace(variable, value)
    })
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    if !promtool() {
        return;
    }
    let dir = deploy("prometheus");
    run_promtool(&["check", "rules", deploy(RULES).to_str().unwrap()], &dir);
    // The test file names the rule file relative to itself.
    run_promtool(
        &["test", "rules", deploy(RULE_TESTS).to_str().unwrap()],
        &dir,
    );
}

#[test]
fn every_dashboard_query_is_promql() {
    if !promtool() {
        return;
    }
    let queries = panel_queries(&dashboard());
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: |\n          {}\n",
            as_sent(query)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, file).unwrap();
    run_promtool(&["check", "rules", path.to_str().unwrap()], dir.path());
}

#[test]
fn the_dashboard_is_importable_on_a_datasource_variable() {
    let dashboard = dashboard();
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .and_then(|v| v["name"].as_str())
        .expect("a Prometheus datasource variable");
    let uid = format!("${{{datasource}}}");
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(variable["datasource"]["uid"], uid.as_str(), "{variable}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "panel id used twice: {title}"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], uid.as_str(), "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], uid.as_str(), "{title}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}: {target}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let rules = std::fs::read_to_string(deploy(RULES)).unwrap();
    let dashboard = dashboard();
    let mut named = metric_names(&rules);
    for query in panel_queries(&dashboard)
        .iter()
        .chain(&variable_queries(&dashboard))
    {
        named.extend(metric_names(query));
    }
    for name in NOT_YET_EXPORTED {
        assert!(
            named.contains(*name),
            "{name} is in NOT_YET_EXPORTED, but neither the rules nor the dashboard name it"
        );
    }
    let wanted: Vec<&String> = named
        .iter()
        .filter(|name| !NOT_YET_EXPORTED.contains(&name.as_str()))
        .collect();

    // A pair, and a pair whose role check has both instances say primary: the families a
    // daemon exports only once it has such services (role_conflict) or once a switchover
    // happened (switchovers_total), the history's, and a receiver's.
    let mut primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let pair = format!(
        "type = \"Voice\"\nprimary = {}\nbackup = {}\ncheck = {{ interval = \"50ms\", rise = 1, fall = 1, jitter = 0.0 }}\n",
        primary.toml(),
        backup.toml()
    );
    let d = TestDaemon::start(&format!(
        "[history]\npath = \"history.sqlite\"\n[[alerts.receiver]]\nname = \"script\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n\n[[service]]\nid = \"sips1\"\n{pair}\n[[service]]\nid = \"sips2\"\n{pair}role = {{ kind = \"exec\", command = [\"echo\", \"primary\"] }}\n"
    ));
    primary.close().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let (missing, exported, text) = loop {
        let (_, text) = d.admin_get("/metrics").await;
        let exported = exported_names(&text);
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|name| !exported.contains(name.as_str()))
            .map(|name| name.as_str())
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (missing, exported, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        missing.is_empty(),
        "deploy/ names metrics the daemon does not export: {missing:?}\n{text}"
    );
    for name in NOT_YET_EXPORTED.iter().filter(|n| exported.contains(**n)) {
        note(&format!(
            "{name} is exported now: take it out of NOT_YET_EXPORTED"
        ));
    }
}
