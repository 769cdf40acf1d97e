//! Availability at size: a year of history for N services (a change every 3 to 9 hours
//! each, in every state, some in maintenance), written through the history's own store in
//! time order as the writer thread writes it (which keeps the day totals), in a temporary
//! directory. It then measures, on a read-only connection as the API reads:
//!
//! - (a) the list: every service's 24 hours, 7 days and 30 days ending now;
//! - (b) one service, the same three periods;
//! - (c) for comparison, the same figures from a full scan of the changes (every row, in
//!   order, each service's periods computed from its rows), which also checks (a) exactly.
//!
//! `cargo bench --bench availability [-- N [DAYS]]` (default: 1000 services, 365 days).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use servicewatch::history::availability::{Mark, Plan, Totals, between};
use servicewatch::history::store::{self, Change, ServiceState};

const HOUR_MS: i64 = 3_600_000;
/// Changes per transaction while building: the writer's batch.
const BATCH: usize = 1000;
/// How often (b) is measured, to average it.
const ONE_ROUNDS: u32 = 200;
/// How often (a) is measured; its best and median are shown.
const LIST_ROUNDS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let services: usize = args
        .first()
        .map_or(1000, |n| n.parse().expect("N services"));
    let days: i64 = args.get(1).map_or(365, |n| n.parse().expect("DAYS"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("history.sqlite");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;

    let started = Instant::now();
    let rows = build(&path, services, days, now_ms);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "built {rows} changes of {services} services over {days} days in {:.1} s ({:.0} MB)",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );

    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the history");
    let ids: Vec<String> = (0..services).map(id).collect();
    let plans: Vec<Plan> = [24, 7 * 24, 30 * 24]
        .map(|hours| Plan::of(now_ms - hours * HOUR_MS, now_ms))
        .to_vec();

    let mut list_times = Vec::new();
    let mut list = Vec::new();
    for _ in 0..LIST_ROUNDS {
        let t = Instant::now();
        list = store::availability(&conn, &ids, &plans).expect("the list");
        list_times.push(t.elapsed());
    }
    list_times.sort();
    let list_time = list_times[LIST_ROUNDS / 2];

    let t = Instant::now();
    for round in 0..ONE_ROUNDS {
        let one = vec![ids[round as usize * 7 % services].clone()];
        store::availability(&conn, &one, &plans).expect("one service");
    }
    let one_time = t.elapsed() / ONE_ROUNDS;

    let t = Instant::now();
    let scanned = scan(&conn, &ids, &plans);
    let scan_time = t.elapsed();
    assert_eq!(scanned, list, "the aggregates and the rows disagree");

    println!(
        "(a) list of {services}, 24h/7d/30d: {} (best {})",
        ms(list_time),
        ms(list_times[0])
    );
    println!("(b) one service, 24h/7d/30d: {}", ms(one_time));
    println!(
        "(c) full scan of the {rows} changes: {} ({:.0} times the list, {:.0} times one service)",
        ms(scan_time),
        scan_time.as_secs_f64() / list_time.as_secs_f64(),
        scan_time.as_secs_f64() / one_time.as_secs_f64()
    );
}

fn id(n: usize) -> String {
    format!("svc{n:04}")
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Writes the history; returns how many changes.
fn build(path: &std::path::Path, services: usize, days: i64, now_ms: i64) -> usize {
    let mut conn = Connection::open(path).expect("create the history");
    store::prepare(&conn).expect("the schema");
    let start = now_ms - days * 24 * HOUR_MS;
    // A small deterministic generator.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move |below: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as i64
    };
    // Each service's next change, soonest first.
    let mut next: BinaryHeap<Reverse<(i64, usize)>> = (0..services)
        .map(|s| Reverse((start + random(6 * HOUR_MS), s)))
        .collect();
    let states = [
        ServiceState::Active,
        ServiceState::Active,
        ServiceState::Inactive,
        ServiceState::ReadOnly,
    ];
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0;
    while let Some(Reverse((at, service))) = next.pop() {
        if at >= now_ms {
            continue;
        }
        let at_time = UNIX_EPOCH + Duration::from_millis(at as u64);
        batch.push(Change {
            service: id(service),
            at: at_time,
            state: states[random(4) as usize],
            state_since: at_time,
            serving: None,
            maintenance: (random(20) == 0).then(|| "upgrade".to_string()),
            reason: "benchmark".to_string(),
        });
        next.push(Reverse((at + 3 * HOUR_MS + random(6 * HOUR_MS), service)));
        if batch.len() == BATCH {
            written += flush(&mut conn, &mut batch);
        }
    }
    written + flush(&mut conn, &mut batch)
}

fn flush(conn: &mut Connection, batch: &mut Vec<Change>) -> usize {
    let tx = conn.transaction().expect("a transaction");
    store::insert(&tx, batch).expect("insert");
    tx.commit().expect("commit");
    std::mem::take(batch).len()
}

/// Every service's figures from every row: what answering without the aggregates costs.
fn scan(conn: &Connection, ids: &[String], plans: &[Plan]) -> Vec<Vec<Totals>> {
    let mut statement = conn
        .prepare("SELECT service, at_ms, state = 'Active', maintenance IS NOT NULL FROM changes ORDER BY service, at_ms, id")
        .expect("the scan");
    let mut rows = statement.query([]).expect("the scan");
    let mut by_service: std::collections::HashMap<String, Vec<Mark>> = Default::default();
    while let Some(row) = rows.next().expect("a row") {
        let service: String = row.get(0).expect("service");
        by_service.entry(service).or_default().push(Mark {
            at_ms: row.get(1).expect("at"),
            active: row.get(2).expect("state"),
            maintenance: row.get(3).expect("maintenance"),
        });
    }
    ids.iter()
        .map(|id| {
            let marks = by_service.get(id).map_or(&[][..], Vec::as_slice);
            plans
                .iter()
                .map(|p| between(marks, p.from_ms, p.to_ms))
                .collect()
        })
        .collect()
}
