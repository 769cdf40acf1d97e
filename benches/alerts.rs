//! Alerts: a mass outage to receivers. N services, each a `tcp` check every second (timeout
//! 0.5 s, rise = fall = 1) on a loopback listener of its own, and two webhook receivers
//! (`group_wait` 2 s, `group_interval` 1 min, no routes: every event to both). Every
//! listener closes at once; the bench measures when REST shows every service Inactive, when
//! each receiver has notifications whose `stateChanged` events cover all N services, how
//! many notifications that took, how long after the last service was seen down (the
//! events' `at`) the covering one came, the daemon's CPU from the close until both were
//! covered, its CPU at rest before, and the largest body. Then the listeners reopen and the
//! same is measured for the recovery, which Alertmanager's grouping holds until
//! `group_interval` after the outage's notification.
//!
//! The reference, in the same run: a real Alertmanager (Debian `prometheus-alertmanager`),
//! one group (`group_by: []`, the same `group_wait` and `group_interval`), a webhook
//! receiver of the bench; the same N alerts are POSTed to it in batches of 64, as Prometheus
//! sends them, and the bench measures when its notification covering all N arrives, its CPU
//! meanwhile and its notifications. servicewatch's figures include detecting the outage;
//! Alertmanager's start when the alerts are posted to it. CPU is read from `/proc/PID/stat`
//! (user + system), in the kernel's ticks of 10 ms.
//!
//! `cargo bench --bench alerts [-- N... [outbox=memory]]` (default: 1000 5000 services; the
//! outbox in a history database, as installed; `outbox=memory` runs without one). Set
//! `BENCH_DAEMON` to the path of another build of the daemon to measure it the same way, and
//! `BENCH_LOG` to a `RUST_LOG` filter to see the daemon's log on stderr.
//!
//! The target: every service told, one group per receiver for the outage (notifications of
//! at most `max_events` events), covered within `group_wait` + 1 s after the last service
//! was seen down.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

#[path = "common/backends.rs"]
mod backends;
#[path = "common/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "common/webhook.rs"]
mod webhook;

use backends::Backends;
use cpu::cpu_time;
use process::Reaped;
use webhook::{Arrival, Webhook};

const PASSWORD: &str = "alerts-bench-password";
/// `[alerts] max_events` (its default, written out): a group of N events goes out as
/// ceil(N / MAX_EVENTS) notifications.
const MAX_EVENTS: usize = 500;
/// `[alerts] group_wait` of the daemon and of Alertmanager's route.
const GROUP_WAIT: Duration = Duration::from_secs(2);
/// `[alerts] group_interval` of the daemon and of Alertmanager's route.
const GROUP_INTERVAL: Duration = Duration::from_secs(60);
/// `group_wait` + 1 s: the target from the last service seen down to the covering
/// notification.
const TARGET: Duration = Duration::from_secs(3);
/// How long any one phase may take before the bench gives up on it: a recovery is held
/// `group_interval` after the outage's notification, and a split outage as long.
const GIVE_UP: Duration = Duration::from_secs(150);
/// How often the receivers' arrivals are looked at.
const POLL: Duration = Duration::from_millis(20);
/// How often REST is asked, until it shows every service in the state awaited (a list of
/// N services costs the daemon, which is measured meanwhile).
const REST_POLL: Duration = Duration::from_millis(100);
/// How long the CPU at rest is measured.
const REST_WINDOW: Duration = Duration::from_secs(5);
/// How long after the covering notification later ones are still counted in the phase.
const GRACE: Duration = Duration::from_secs(2);
/// Alerts per request to Alertmanager: Prometheus's batch (`maxBatchSize`).
const PROMETHEUS_BATCH: usize = 64;
/// Debian's Alertmanager.
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// The daemon's log filter: what `scale` runs with (the listen line, warnings).
const LOG: &str = "warn,servicewatch::daemon=info";

/// A service's id, the same in the daemon and in the alerts posted to Alertmanager.
fn service_id(i: usize) -> String {
    format!("svc{i:04}")
}

/// What one receiver was told in one phase.
#[derive(Default)]
struct Told {
    /// From the phase's start to the first notification telling of a service in the
    /// state awaited.
    first: Option<Duration>,
    /// To the notification with which every service had been told.
    covered: Option<Duration>,
    /// From the last service seen in the state (the latest `at` of the events told) to
    /// that notification; from the last POST for Alertmanager.
    after_last: Option<Duration>,
    /// From the phase's start to the last service seen in the state (the last POST for
    /// Alertmanager).
    last_seen: Option<Duration>,
    /// Notifications that arrived in the phase.
    notifications: usize,
    /// The largest body, in bytes.
    largest: usize,
}

/// The services each body tells of in the state awaited, with when each was seen so.
type Extract = fn(&Value, &str) -> Vec<(String, Option<SystemTime>)>;

/// servicewatch's notification: its `stateChanged` events to `state`.
fn servicewatch_told(body: &Value, state: &str) -> Vec<(String, Option<SystemTime>)> {
    let events = body["events"].as_array().map_or(&[][..], Vec::as_slice);
    events
        .iter()
        .filter(|e| e["kind"] == "stateChanged" && e["state"] == state)
        .filter_map(|e| {
            let id = e["service"]["id"].as_str()?.to_string();
            Some((id, e["at"].as_str().and_then(wall_time)))
        })
        .collect()
}

/// Alertmanager's webhook: its alerts firing (`state` is always that of the outage).
fn alertmanager_told(body: &Value, _state: &str) -> Vec<(String, Option<SystemTime>)> {
    let alerts = body["alerts"].as_array().map_or(&[][..], Vec::as_slice);
    alerts
        .iter()
        .filter(|a| a["status"] == "firing")
        .filter_map(|a| Some((a["labels"]["service"].as_str()?.to_string(), None)))
        .collect()
}

/// An RFC 3339 time, as the events carry it.
fn wall_time(text: &str) -> Option<SystemTime> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// When a phase began, by the monotonic clock and by the wall clock (to compare with the
/// times the bodies carry).
#[derive(Clone, Copy)]
struct Start {
    at: Instant,
    wall: SystemTime,
}

impl Start {
    fn now() -> Start {
        Start {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What a phase waits for receivers to be told: `n` services in `state`, as `extract`
/// reads a body.
struct Awaited<'a> {
    n: usize,
    state: &'a str,
    extract: Extract,
}

/// What `arrivals` (a phase's, begun at `start`) told of what is `awaited`; `last` stands
/// for the moment the last service was seen so when the bodies do not say.
fn tally(
    arrivals: &[Arc<Arrival>],
    start: Start,
    awaited: &Awaited,
    last: Option<SystemTime>,
) -> Told {
    let mut told = Told {
        notifications: arrivals.len(),
        ..Told::default()
    };
    let mut services = HashSet::with_capacity(awaited.n);
    let mut latest: Option<SystemTime> = last;
    for arrival in arrivals {
        told.largest = told.largest.max(arrival.size);
        let these = (awaited.extract)(&arrival.body, awaited.state);
        if these.is_empty() {
            continue;
        }
        told.first.get_or_insert(arrival.at - start.at);
        for (id, at) in these {
            services.insert(id);
            latest = latest.max(at);
        }
        if told.covered.is_none() && services.len() >= awaited.n {
            told.covered = Some(arrival.at - start.at);
            told.after_last = latest.and_then(|l| arrival.wall.duration_since(l).ok());
            told.last_seen = latest.and_then(|l| l.duration_since(start.wall).ok());
        }
    }
    told
}

/// One phase of the daemon's: its receivers' tallies, REST, its CPU.
struct Phase {
    /// When REST showed every service in the state.
    rest: Option<Duration>,
    told: Vec<Told>,
    /// From the phase's start until every receiver was covered.
    covered: Option<Duration>,
    /// The daemon's CPU over that time.
    cpu: Option<Duration>,
}

/// The daemon under measure, its address and its receivers.
struct Watched {
    client: reqwest::Client,
    addr: String,
    pid: u32,
    hooks: [Webhook; 2],
    n: usize,
}

/// Where a phase begins: when, the receivers' arrivals so far, the daemon's CPU so far.
struct Begun {
    start: Start,
    marks: Vec<usize>,
    cpu: Duration,
}

impl Watched {
    /// Marks the beginning of a phase; what starts it comes right after.
    fn begin(&self) -> Begun {
        Begun {
            marks: self.hooks.iter().map(Webhook::count).collect(),
            cpu: cpu_time(self.pid),
            start: Start::now(),
        }
    }

    /// What each receiver was told since `begun`.
    fn tallies(&self, begun: &Begun, awaited: &Awaited) -> Vec<Told> {
        self.hooks
            .iter()
            .zip(&begun.marks)
            .map(|(hook, &mark)| tally(&hook.since(mark), begun.start, awaited, None))
            .collect()
    }

    /// Waits until REST shows every service in `state` and every receiver has been told
    /// of all of them, up to `GIVE_UP`; counts what arrives up to `GRACE` later.
    async fn phase(&self, begun: Begun, state: &str) -> Phase {
        let awaited = Awaited {
            n: self.n,
            state,
            extract: servicewatch_told,
        };
        let start = begun.start.at;
        let mut phase = Phase {
            rest: None,
            told: Vec::new(),
            covered: None,
            cpu: None,
        };
        let mut seen = vec![usize::MAX; self.hooks.len()];
        let mut asked = None::<Instant>;
        let polls = GIVE_UP.as_millis() / POLL.as_millis();
        for _ in 0..polls {
            if phase.rest.is_none() && asked.is_none_or(|a| a.elapsed() >= REST_POLL) {
                asked = Some(Instant::now());
                if rest_count(&self.client, &self.addr, state).await == self.n {
                    phase.rest = Some(start.elapsed());
                }
            }
            let counts: Vec<usize> = self.hooks.iter().map(Webhook::count).collect();
            if phase.covered.is_none() && counts != seen {
                seen = counts;
                let tallies = self.tallies(&begun, &awaited);
                if tallies.iter().all(|t| t.covered.is_some()) {
                    phase.covered = Some(start.elapsed());
                    phase.cpu = Some(cpu_time(self.pid).saturating_sub(begun.cpu));
                }
            }
            if (phase.rest.is_some() && phase.covered.is_some()) || start.elapsed() > GIVE_UP {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(GRACE).await;
        phase.told = self.tallies(&begun, &awaited);
        phase
    }
}

/// How many services REST shows in `state`.
async fn rest_count(client: &reqwest::Client, addr: &str, state: &str) -> usize {
    let url = format!("http://{addr}/api/v2/services?fields=state&state={state}");
    let Ok(response) = client
        .get(&url)
        .basic_auth("bench", Some(PASSWORD))
        .send()
        .await
    else {
        return 0;
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["services"].as_array().map_or(0, Vec::len)
}

/// The share of one core `pid` uses over `window`.
async fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    tokio::time::sleep(window).await;
    cpu_time(pid).saturating_sub(before).as_secs_f64() / window.as_secs_f64()
}

fn start_daemon(config: &Path) -> (Reaped, String) {
    let binary = std::env::var("BENCH_DAEMON")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_servicewatch").to_string());
    let log = std::env::var("BENCH_LOG").ok();
    let mut daemon = Command::new(binary)
        .arg("--config")
        .arg(config)
        .env_remove("BENCH_DAEMON")
        .env_remove("BENCH_LOG")
        .env("RUST_LOG", log.as_deref().unwrap_or(LOG))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let (addr, _, lines) = process::read_until_listening(daemon.stderr.take().unwrap());
    let show = log.is_some();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if show {
                eprintln!("daemon: {line}");
            }
        }
    });
    (Reaped(daemon), addr)
}

/// What the daemon did with N services.
struct Servicewatch {
    /// Its CPU at rest, as a share of one core.
    rest_cpu: f64,
    outage: Phase,
    recovery: Phase,
}

async fn servicewatch(n: usize, durable: bool) -> Servicewatch {
    let mut backends = Backends::open_new(n).await;
    let ports = backends.ports.clone();
    let hooks = [Webhook::start("/a").await, Webhook::start("/b").await];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerts.toml");
    let history = if durable {
        format!(
            "[history]\npath = \"{}\"\n",
            dir.path().join("history.sqlite").display()
        )
    } else {
        "[history]\nenabled = false\n".to_string()
    };
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n{history}[checks]\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n[alerts]\ngroup_wait = \"{}s\"\ngroup_interval = \"{}s\"\nmax_events = {MAX_EVENTS}\n[[contact_center]]\nid = \"cc\"\nfeatures = [\"api-voice\"]\n[[user]]\nname = \"bench\"\npassword = \"{}\"\nroles = [\"supervisor\"]\ncontact_center = \"cc\"\n",
        GROUP_WAIT.as_secs(),
        GROUP_INTERVAL.as_secs(),
        servicewatch::password::hash(PASSWORD).unwrap(),
    );
    for (name, hook) in ["hook-a", "hook-b"].iter().zip(&hooks) {
        text.push_str(&format!(
            "[[alerts.receiver]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ));
    }
    for (i, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "[[service]]\nid = \"{}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\n",
            service_id(i)
        ));
    }
    std::fs::write(&config, text).unwrap();

    let client = reqwest::Client::new();
    let started = Instant::now();
    let (daemon, addr) = start_daemon(&config);
    let pid = daemon.id();
    let polls = GIVE_UP.as_millis() / REST_POLL.as_millis();
    for _ in 0..polls {
        if rest_count(&client, &addr, "Active").await == n || started.elapsed() > GIVE_UP {
            break;
        }
        tokio::time::sleep(REST_POLL).await;
    }
    let active = rest_count(&client, &addr, "Active").await;
    assert_eq!(active, n, "not all Active within {GIVE_UP:?}");
    eprintln!(
        "{n}: all Active after {:.2} s; measuring the CPU at rest",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest_cpu = cpu_share(pid, REST_WINDOW).await;

    let watched = Watched {
        client,
        addr,
        pid,
        hooks,
        n,
    };

    eprintln!("{n}: closing every listener");
    let begun = watched.begin();
    backends.close();
    let outage = watched.phase(begun, "Inactive").await;

    eprintln!("{n}: reopening every listener");
    let begun = watched.begin();
    let mut backends = Backends::open(&ports).await;
    let recovery = watched.phase(begun, "Active").await;
    backends.close();
    drop(daemon);
    Servicewatch {
        rest_cpu,
        outage,
        recovery,
    }
}

/// What Alertmanager did with the same N alerts.
struct Reference {
    /// Its CPU at rest, as a share of one core.
    rest_cpu: f64,
    /// From the first POST to the last answer.
    posted: Duration,
    told: Told,
    /// Its CPU from the first POST until the covering notification.
    cpu: Option<Duration>,
}

/// The first line of the file at `path` that holds `marker`, within 20 s.
fn wait_for_line(path: &Path, marker: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..1000 {
        let file = std::fs::File::open(path).ok();
        let found = file.and_then(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains(marker))
        });
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn alertmanager(n: usize) -> Option<Reference> {
    if !Path::new(ALERTMANAGER).exists() {
        return None;
    }
    let hook = Webhook::start("/alertmanager").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: bench\n  group_by: []\n  group_wait: {}s\n  group_interval: {}s\n  repeat_interval: 4h\nreceivers:\n  - name: bench\n    webhook_configs:\n      - url: '{}'\n        send_resolved: false\n",
            GROUP_WAIT.as_secs(),
            GROUP_INTERVAL.as_secs(),
            hook.url
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .ok()?;
    let process = Reaped(child);
    let Some(line) = wait_for_line(&log, "Listening on") else {
        eprintln!(
            "Alertmanager did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        return None;
    };
    let address = line.rsplit("address=").next()?.trim().to_string();
    let url = format!("http://{address}/api/v2/alerts");
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest_cpu = cpu_share(process.id(), REST_WINDOW).await;

    let batches: Vec<Value> = (0..n)
        .collect::<Vec<_>>()
        .chunks(PROMETHEUS_BATCH)
        .map(|chunk| {
            Value::Array(
                chunk
                    .iter()
                    .map(|&i| {
                        let id = service_id(i);
                        json!({
                            "labels": {"alertname": "ServiceInactive", "service": id, "severity": "critical", "type": "Voice"},
                            "annotations": {"summary": format!("{id} is Inactive")},
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    eprintln!("{n}: posting {n} alerts to Alertmanager");
    let mark = hook.count();
    let cpu_before = cpu_time(process.id());
    let start = Start::now();
    for batch in &batches {
        let answer = client.post(&url).json(batch).send().await;
        match answer {
            Ok(a) if a.status().is_success() => {}
            Ok(a) => panic!("Alertmanager refused the alerts: {}", a.status()),
            Err(e) => panic!("Alertmanager did not take the alerts: {e}"),
        }
    }
    let posted = start.at.elapsed();
    // Alertmanager's bodies carry no time the alerts were seen: the last POST stands for it.
    let last_post = SystemTime::now();
    let awaited = Awaited {
        n,
        state: "Inactive",
        extract: alertmanager_told,
    };
    let mut cpu = None;
    let polls = GIVE_UP.as_millis() / POLL.as_millis();
    for _ in 0..polls {
        let told = tally(&hook.since(mark), start, &awaited, Some(last_post));
        if told.covered.is_some() {
            cpu = Some(cpu_time(process.id()).saturating_sub(cpu_before));
            break;
        }
        if start.at.elapsed() > GIVE_UP {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(GRACE).await;
    let told = tally(&hook.since(mark), start, &awaited, Some(last_post));
    Some(Reference {
        rest_cpu,
        posted,
        told,
        cpu,
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn megabytes(bytes: usize) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "-".to_string(),
    }
}

/// Each receiver's `field`, as `a | b`.
fn each(told: &[Told], field: impl Fn(&Told) -> String) -> String {
    told.iter().map(field).collect::<Vec<_>>().join(" | ")
}

/// The latest of the receivers' `field`, `None` if any lacks it.
fn latest(told: &[Told], field: impl Fn(&Told) -> Option<Duration>) -> Option<Duration> {
    told.iter()
        .map(field)
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

/// The CPU above what the same time at rest would have cost.
fn above_rest(cpu: Option<Duration>, over: Option<Duration>, rest: f64) -> Option<Duration> {
    let at_rest = over?.as_secs_f64() * rest;
    Some(Duration::from_secs_f64(
        (cpu?.as_secs_f64() - at_rest).max(0.0),
    ))
}

/// One size's figures, for the table and the verdicts.
struct Run {
    n: usize,
    sw: Servicewatch,
    am: Option<Reference>,
}

fn print_run(run: &Run) {
    let (n, sw) = (run.n, &run.sw);
    let (out, rec) = (&sw.outage, &sw.recovery);
    let row = |what: &str, ours: String, theirs: String, r: String| {
        println!("  {what:<44} {ours:<30} {theirs:<24} {r}");
    };
    println!();
    println!(
        "{n} services, 2 webhook receivers (a | b), group_wait {} s, group_interval {} s",
        GROUP_WAIT.as_secs(),
        GROUP_INTERVAL.as_secs()
    );
    row(
        "",
        "servicewatch".into(),
        if run.am.is_some() {
            "Alertmanager".into()
        } else {
            "(Alertmanager skipped)".into()
        },
        "ratio".into(),
    );
    let am = run.am.as_ref();
    row(
        "outage: all Inactive in REST",
        secs(out.rest),
        am.map_or(String::new(), |a| {
            format!("posted in {}", secs(Some(a.posted)))
        }),
        String::new(),
    );
    row(
        "last service seen down (AM: last POST)",
        each(&out.told, |t| secs(t.last_seen)),
        am.map_or(String::new(), |a| secs(a.told.last_seen)),
        String::new(),
    );
    row(
        "first notification after t0",
        each(&out.told, |t| secs(t.first)),
        am.map_or(String::new(), |a| secs(a.told.first)),
        String::new(),
    );
    row(
        "covering notification after t0",
        each(&out.told, |t| secs(t.covered)),
        am.map_or(String::new(), |a| secs(a.told.covered)),
        ratio(
            latest(&out.told, |t| t.covered),
            am.and_then(|a| a.told.covered),
        ),
    );
    row(
        "  after the last seen down (AM: last POST)",
        each(&out.told, |t| secs(t.after_last)),
        am.map_or(String::new(), |a| secs(a.told.after_last)),
        ratio(
            latest(&out.told, |t| t.after_last),
            am.and_then(|a| a.told.after_last),
        ),
    );
    row(
        "notifications for the outage",
        each(&out.told, |t| t.notifications.to_string()),
        am.map_or(String::new(), |a| a.told.notifications.to_string()),
        String::new(),
    );
    row(
        "CPU from t0 until covered",
        secs(out.cpu),
        am.map_or(String::new(), |a| secs(a.cpu)),
        ratio(out.cpu, am.and_then(|a| a.cpu)),
    );
    let above = above_rest(out.cpu, out.covered, sw.rest_cpu);
    row(
        "  above the CPU at rest",
        secs(above),
        am.map_or(String::new(), |a| {
            secs(above_rest(a.cpu, a.told.covered, a.rest_cpu))
        }),
        ratio(
            above,
            am.and_then(|a| above_rest(a.cpu, a.told.covered, a.rest_cpu)),
        ),
    );
    row(
        "CPU at rest (share of a core)",
        format!("{:.1}%", sw.rest_cpu * 100.0),
        am.map_or(String::new(), |a| format!("{:.1}%", a.rest_cpu * 100.0)),
        String::new(),
    );
    row(
        "largest body",
        each(&out.told, |t| megabytes(t.largest)),
        am.map_or(String::new(), |a| megabytes(a.told.largest)),
        String::new(),
    );
    row(
        "recovery: all Active in REST",
        secs(rec.rest),
        String::new(),
        String::new(),
    );
    row(
        "last service seen up",
        each(&rec.told, |t| secs(t.last_seen)),
        String::new(),
        String::new(),
    );
    row(
        "covering notification after reopening",
        each(&rec.told, |t| secs(t.covered)),
        String::new(),
        String::new(),
    );
    row(
        "  after the last seen up",
        each(&rec.told, |t| secs(t.after_last)),
        String::new(),
        String::new(),
    );
    row(
        "notifications for the recovery",
        each(&rec.told, |t| t.notifications.to_string()),
        String::new(),
        String::new(),
    );
    row(
        "CPU from reopening until covered",
        secs(rec.cpu),
        String::new(),
        String::new(),
    );
    println!(
        "  (servicewatch's times include detecting the outage, a probe every second; \
         Alertmanager's start at its first POST and include no detection. \
         A recovery within group_interval of the outage's notification is held until then, \
         as Alertmanager holds a group.)"
    );
}

/// The verdicts: every service told, one group per receiver, covered in time.
fn verdicts(run: &Run) -> Vec<(bool, String)> {
    let (n, out, rec) = (run.n, &run.sw.outage, &run.sw.recovery);
    let all_told = out.told.iter().all(|t| t.covered.is_some())
        && rec.told.iter().all(|t| t.covered.is_some());
    let one_group = n.div_ceil(MAX_EVENTS);
    let once = out.told.iter().all(|t| t.notifications == one_group);
    let in_time = out
        .told
        .iter()
        .all(|t| t.after_last.is_some_and(|d| d <= TARGET));
    let recovery_once = rec.told.iter().all(|t| t.notifications == one_group);
    vec![
        (
            all_told,
            format!("{n}: every service told to each receiver, down and up again"),
        ),
        (
            once,
            format!(
                "{n}: the outage as one group per receiver, {one_group} notification(s) of at most {MAX_EVENTS} events ({})",
                each(&out.told, |t| t.notifications.to_string())
            ),
        ),
        (
            in_time,
            format!(
                "{n}: covered within group_wait + 1 s ({} s) after the last service was seen down ({})",
                TARGET.as_secs(),
                each(&out.told, |t| secs(t.after_last))
            ),
        ),
        (
            recovery_once,
            format!(
                "{n}: the recovery as one group per receiver, {one_group} notification(s) ({})",
                each(&rec.told, |t| t.notifications.to_string())
            ),
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let durable = !args.iter().any(|a| a == "outbox=memory");
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    if !Path::new(ALERTMANAGER).exists() {
        eprintln!("{ALERTMANAGER} not found: the Alertmanager reference is skipped");
    }
    let mut runs = Vec::new();
    for n in sizes {
        let sw = servicewatch(n, durable).await;
        let am = alertmanager(n).await;
        if am.is_none() {
            println!(
                "{n}: the Alertmanager reference was skipped ({ALERTMANAGER} not found or did not start)"
            );
        }
        let run = Run { n, sw, am };
        print_run(&run);
        runs.push(run);
    }
    println!();
    println!(
        "outbox: {}",
        if durable {
            "in the history database"
        } else {
            "in memory (no history database)"
        }
    );
    for run in &runs {
        for (ok, what) in verdicts(run) {
            println!("{} {what}", if ok { "PASS" } else { "FAIL" });
        }
    }
}
