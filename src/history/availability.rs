//! Availability: the share of time a service was `Active` over a period, computed from the
//! history. Pure functions over plain types (times in milliseconds since the Unix epoch,
//! UTC); the SQL that feeds them is in [`super::store`].
//!
//! Definitions. A service's state at a time is the state of its latest recorded change at
//! or before that time (by time, then by the order written); the time before its first
//! recorded change is not observed. In a period, *observed* is the time observed,
//! *active* the part of it in state `Active` (`ReadOnly` and `Inactive` are not), and
//! *maintenance* the part during which a maintenance was in force (the change's
//! `maintenance` column not null). Excluding maintenance removes its time from both observed
//! and active. servicewatch keeps no record of its own downtime: time while it was not
//! running counts as the state last recorded.
//!
//! Why aggregates, and these: a year of history for 1,000 services is millions of rows, and
//! a request must not read them. Every span between two consecutive changes of a service is
//! added, when the second one is written, to per-service, per-UTC-day totals (observed,
//! active, maintenance, active during maintenance: the four sums both maintenance modes
//! need). A period is then its whole days summed from those totals, the open span (from the
//! latest change to now, in no day's totals yet) added to them, and the partial days at its
//! edges computed exactly from the rows there: a few dozen rows per service, whatever the
//! length of the period. The latest change of each service is kept beside the totals, so
//! that a service stable for longer than the rows are kept is still observed.

/// A day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// A recorded change, as availability sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub at_ms: i64,
    /// The state is `Active`.
    pub active: bool,
    /// A maintenance is in force.
    pub maintenance: bool,
}

/// Observed time and its parts, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub observed_ms: i64,
    pub active_ms: i64,
    pub maintenance_ms: i64,
    /// Active while a maintenance was in force: what excluding maintenance takes off active.
    pub active_maintenance_ms: i64,
}

impl Totals {
    /// `ms` of time in the state of `mark`.
    pub fn span(mark: &Mark, ms: i64) -> Totals {
        let ms = ms.max(0);
        let active = if mark.active { ms } else { 0 };
        let maintenance = if mark.maintenance { ms } else { 0 };
        Totals {
            observed_ms: ms,
            active_ms: active,
            maintenance_ms: maintenance,
            active_maintenance_ms: if mark.maintenance { active } else { 0 },
        }
    }

    /// Adds `other` to these.
    pub fn add(&mut self, other: &Totals) {
        self.observed_ms += other.observed_ms;
        self.active_ms += other.active_ms;
        self.maintenance_ms += other.maintenance_ms;
        self.active_maintenance_ms += other.active_maintenance_ms;
    }
}

/// Whether time in maintenance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceMode {
    /// Removed from observed and active time: a planned outage costs nothing.
    Exclude,
    /// Counted like any other time.
    Include,
}

impl MaintenanceMode {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceMode::Exclude => "exclude",
            MaintenanceMode::Include => "include",
        }
    }
}

/// A period's figures as the API answers them, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub observed_seconds: f64,
    pub active_seconds: f64,
    pub maintenance_seconds: f64,
    /// Active over observed; `None` when nothing was observed.
    pub active: Option<f64>,
}

impl Figures {
    /// The figures of `totals`, maintenance counted as `mode` says.
    pub fn of(totals: &Totals, mode: MaintenanceMode) -> Figures {
        let (observed, active) = match mode {
            MaintenanceMode::Exclude => (
                totals.observed_ms - totals.maintenance_ms,
                totals.active_ms - totals.active_maintenance_ms,
            ),
            MaintenanceMode::Include => (totals.observed_ms, totals.active_ms),
        };
        Figures {
            observed_seconds: observed as f64 / 1000.0,
            active_seconds: active as f64 / 1000.0,
            maintenance_seconds: totals.maintenance_ms as f64 / 1000.0,
            active: (observed > 0).then(|| active as f64 / observed as f64),
        }
    }
}

/// The UTC day holding `at_ms`.
pub fn day_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS)
}

/// The span `[from_ms, to_ms)` in the state of `mark`, cut into per-day totals, in day
/// order (empty if the span is).
pub fn split_by_day(mark: &Mark, from_ms: i64, to_ms: i64) -> Vec<(i64, Totals)> {
    let mut days = Vec::new();
    let mut at = from_ms;
    while at < to_ms {
        let day = day_of(at);
        let end = ((day + 1) * DAY_MS).min(to_ms);
        days.push((day, Totals::span(mark, end - at)));
        at = end;
    }
    days
}

/// The totals over `[from_ms, to_ms)` of `rows`, sorted by time (and, at the same time, in
/// the order written): the state at `from_ms` is that of the last row at or before it; with
/// none, time is not observed until the first row.
pub fn between(rows: &[Mark], from_ms: i64, to_ms: i64) -> Totals {
    let mut totals = Totals::default();
    if from_ms >= to_ms {
        return totals;
    }
    let first_after = rows.partition_point(|r| r.at_ms <= from_ms);
    let mut current = first_after.checked_sub(1).map(|i| (from_ms, rows[i]));
    for row in rows[first_after..].iter().take_while(|r| r.at_ms < to_ms) {
        if let Some((since, mark)) = current {
            totals.add(&Totals::span(&mark, row.at_ms - since));
        }
        current = Some((row.at_ms, *row));
    }
    if let Some((since, mark)) = current {
        totals.add(&Totals::span(&mark, to_ms - since));
    }
    totals
}

/// How a period is computed: the whole days `[first, end)` from the day totals (if it holds
/// any), the rest from the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The whole days inside the period, first and one past the last.
    pub days: Option<(i64, i64)>,
}

impl Plan {
    /// The plan for `[from_ms, to_ms)`.
    pub fn of(from_ms: i64, to_ms: i64) -> Plan {
        let first = day_of(from_ms + DAY_MS - 1);
        let end = day_of(to_ms);
        Plan {
            from_ms,
            to_ms,
            days: (first < end).then_some((first, end)),
        }
    }

    /// The parts of the period computed from the rows (at most two, none empty).
    pub fn edges(&self) -> Vec<(i64, i64)> {
        let parts = match self.days {
            None => vec![(self.from_ms, self.to_ms)],
            Some((first, end)) => vec![(self.from_ms, first * DAY_MS), (end * DAY_MS, self.to_ms)],
        };
        parts.into_iter().filter(|(a, b)| a < b).collect()
    }

    /// The period's totals: its edges from `rows` (every row from the last at or before each
    /// edge's start to its end, sorted), its whole days from `days` (a service's day totals,
    /// any order, any range) and the open span from `latest` (the latest change recorded).
    pub fn totals(&self, rows: &[Mark], days: &[(i64, Totals)], latest: Option<&Mark>) -> Totals {
        let mut totals = Totals::default();
        for (from, to) in self.edges() {
            totals.add(&between(rows, from, to));
        }
        let Some((first, end)) = self.days else {
            return totals;
        };
        for (_, day) in days.iter().filter(|(d, _)| (first..end).contains(d)) {
            totals.add(day);
        }
        if let Some(latest) = latest {
            let since = latest.at_ms.max(first * DAY_MS);
            totals.add(&Totals::span(latest, end * DAY_MS - since));
        }
        totals
    }
}

/// `intervals` sorted and merged where they touch or overlap: the ranges of rows to read
/// for several periods' edges at once.
pub fn merged(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    intervals.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
    for (from, to) in intervals {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn mark(at_ms: i64, active: bool, maintenance: bool) -> Mark {
        Mark {
            at_ms,
            active,
            maintenance,
        }
    }

    /// The totals of `rows` over `[from, to)`, added up a millisecond-free way: per hour.
    fn by_hand(rows: &[Mark], from: i64, to: i64) -> Totals {
        let mut totals = Totals::default();
        let mut at = from;
        while at < to {
            if let Some(m) = rows.iter().rev().find(|r| r.at_ms <= at) {
                totals.add(&Totals::span(m, H));
            }
            at += H;
        }
        totals
    }

    #[test]
    fn a_span_is_cut_at_midnight_utc() {
        let m = mark(0, true, false);
        let days = split_by_day(&m, 22 * H, 2 * DAY_MS + 3 * H);
        let observed: Vec<(i64, i64)> = days.iter().map(|(d, t)| (*d, t.observed_ms)).collect();
        assert_eq!(observed, [(0, 2 * H), (1, 24 * H), (2, 3 * H)]);
        assert!(days.iter().all(|(_, t)| t.active_ms == t.observed_ms));
        assert!(split_by_day(&m, 5, 5).is_empty());
        // Before 1970 too.
        assert_eq!(split_by_day(&m, -H, H).len(), 2);
    }

    #[test]
    fn time_before_the_first_change_is_not_observed() {
        let rows = [mark(10 * H, true, false), mark(12 * H, false, false)];
        let t = between(&rows, 0, 20 * H);
        assert_eq!((t.observed_ms, t.active_ms), (10 * H, 2 * H));
        assert_eq!(between(&rows, 0, 10 * H), Totals::default());
        // Starting inside a span takes the state of the last change before it.
        let t = between(&rows, 11 * H, 13 * H);
        assert_eq!((t.observed_ms, t.active_ms), (2 * H, H));
    }

    #[test]
    fn changes_at_the_same_time_count_the_last_written() {
        let rows = [mark(H, false, false), mark(H, true, false)];
        assert_eq!(between(&rows, H, 2 * H).active_ms, H);
        assert_eq!(between(&rows, 0, 2 * H).active_ms, H);
    }

    #[test]
    fn maintenance_is_excluded_or_included() {
        let rows = [
            mark(0, true, false),
            mark(2 * H, false, true),
            mark(3 * H, true, true),
            mark(4 * H, true, false),
        ];
        let t = between(&rows, 0, 6 * H);
        assert_eq!(
            t,
            Totals {
                observed_ms: 6 * H,
                active_ms: 5 * H,
                maintenance_ms: 2 * H,
                active_maintenance_ms: H,
            }
        );
        let exclude = Figures::of(&t, MaintenanceMode::Exclude);
        assert_eq!(
            (exclude.observed_seconds, exclude.active_seconds),
            (4.0 * 3600.0, 4.0 * 3600.0)
        );
        assert_eq!(
            (exclude.maintenance_seconds, exclude.active),
            (7200.0, Some(1.0))
        );
        let include = Figures::of(&t, MaintenanceMode::Include);
        assert_eq!(include.active, Some(5.0 / 6.0));
        assert_eq!(
            Figures::of(&Totals::default(), MaintenanceMode::Include).active,
            None
        );
    }

    #[test]
    fn a_plan_has_whole_days_only_when_the_period_holds_one() {
        let p = Plan::of(DAY_MS - H, 2 * DAY_MS + H);
        assert_eq!(p.days, Some((1, 2)));
        assert_eq!(
            p.edges(),
            [(DAY_MS - H, DAY_MS), (2 * DAY_MS, 2 * DAY_MS + H)]
        );
        assert_eq!(Plan::of(H, DAY_MS + H).days, None);
        assert_eq!(Plan::of(H, DAY_MS + H).edges(), [(H, DAY_MS + H)]);
        let exact = Plan::of(DAY_MS, 3 * DAY_MS);
        assert_eq!((exact.days, exact.edges()), (Some((1, 3)), vec![]));
    }

    /// Day totals as the writer keeps them (closed spans only), plus the open span and the
    /// edges, add up to what the rows say, hour by hour, for periods of every shape.
    #[test]
    fn a_period_from_day_totals_and_edges_is_what_the_rows_say() {
        let rows: Vec<Mark> = (0..40)
            .map(|i| mark(5 * H + i * 7 * H, i % 3 != 1, i % 5 == 2))
            .collect();
        let mut days: Vec<(i64, Totals)> = Vec::new();
        for pair in rows.windows(2) {
            for (day, t) in split_by_day(&pair[0], pair[0].at_ms, pair[1].at_ms) {
                match days.iter_mut().find(|(d, _)| *d == day) {
                    Some((_, sum)) => sum.add(&t),
                    None => days.push((day, t)),
                }
            }
        }
        let latest = rows.last();
        let now = 14 * DAY_MS;
        for from_h in [0, 3, 24, 29, 48, 100, 200] {
            for to_h in [30, 72, 150, 270, 280, 300, 14 * 24] {
                let (from, to) = (from_h * H, to_h * H);
                if from > to || to > now {
                    continue;
                }
                let plan = Plan::of(from, to);
                assert_eq!(
                    plan.totals(&rows, &days, latest),
                    by_hand(&rows, from, to),
                    "{from_h} h to {to_h} h"
                );
            }
        }
    }

    #[test]
    fn intervals_merge_where_they_meet() {
        assert_eq!(
            merged(vec![(5, 9), (0, 2), (2, 3), (8, 12), (20, 21)]),
            [(0, 3), (5, 12), (20, 21)]
        );
    }
}
