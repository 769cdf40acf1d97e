//! Overrides from the environment: `SERVICEWATCH_<TABLE>__<KEY>` sets `key` in `[table]`,
//! such as `SERVICEWATCH_SERVER__LISTEN=0.0.0.0:8080`.
//!
//! What can be set: every key of a single value (a string, number, boolean or duration) in
//! every table: `[server]`, `[checks]`, `[limits]`, `[notifications]`, `[admin]`, `[log]`,
//! `[auth]`, `[tls]`, `[history]` and `[cluster]` (`SERVICEWATCH_CLUSTER__NODE` is the one
//! key a fleet sets per host). What cannot: lists (`allowed_origins`, a check's
//! `expect_status` or `command`, the cluster's `endpoints`), whose items a variable name
//! cannot address, and the entries of `[[service]]`, `[[user]]`, `[[contact_center]]` and
//! `[[auth.display]]`, which have no name to address them by; those live in the file. A key set in a table the
//! file does not have adds the table: a `[cluster]` key then turns clustering on, and the
//! start is refused for want of `endpoints`.
//!
//! A variable under the prefix that names no option is refused, naming the variable: an
//! override mistyped at 3 a.m. and silently ignored would leave the daemon running on
//! something other than what the operator believes. Variables of other programs must
//! therefore stay out of the prefix (the test suite's switches do).

use super::ENV_PREFIX;

/// The tables whose keys the environment may set.
pub const TABLES: [&str; 10] = [
    "server",
    "checks",
    "limits",
    "notifications",
    "admin",
    "log",
    "auth",
    "tls",
    "history",
    "cluster",
];

/// The arrays of tables, which only the file can hold.
const ENTRIES: [&str; 3] = ["service", "user", "contact_center"];

/// Keys that hold lists, which the environment cannot set.
const LISTS: [(&str, &str); 5] = [
    ("auth", "display"),
    ("server", "allowed_origins"),
    ("checks", "expect_status"),
    ("checks", "command"),
    ("cluster", "endpoints"),
];

/// Checks the name of every variable under the prefix; the refusal names the first that
/// names no option the environment can set.
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let prefix = format!("{ENV_PREFIX}_");
    for name in names {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let example = format!("{ENV_PREFIX}_SERVER__LISTEN");
        let Some((table, key)) = lower.split_once("__") else {
            return Err(format!(
                "{name} names no option: an override is {ENV_PREFIX}_<TABLE>__<KEY>, such as {example}; remove it from the environment or correct it"
            ));
        };
        if ENTRIES.contains(&table) {
            return Err(format!(
                "{name}: [[{table}]] entries cannot be set from the environment; write them in the file"
            ));
        }
        if !TABLES.contains(&table) {
            return Err(format!(
                "{name}: there is no [{table}] table (tables: {}); an override is {ENV_PREFIX}_<TABLE>__<KEY>, such as {example}",
                TABLES.join(", ")
            ));
        }
        if LISTS.contains(&(table, key)) {
            return Err(format!(
                "{name}: {table}.{key} is a list, which the environment cannot set; write it in the file"
            ));
        }
    }
    Ok(())
}

/// The variable that set `key`, for an error about it (`None` if none did).
pub fn variable_for<'a>(key: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let prefix = format!("{ENV_PREFIX}_");
    names.into_iter().find(|name| {
        name.strip_prefix(&prefix)
            .and_then(|rest| {
                rest.to_ascii_lowercase()
                    .split_once("__")
                    .map(|(_, k)| k == key)
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_of_table_keys_pass_and_others_are_named() {
        assert_eq!(
            check_names([
                "PATH",
                "SERVICEWATCH_SERVER__LISTEN",
                "SERVICEWATCH_CHECKS__INTERVAL",
                "SERVICEWATCH_AUTH__MAX_FAILURES",
                "SERVICEWATCH_HISTORY__MAX_ROWS",
                "SERVICEWATCH_CLUSTER__NODE",
            ]),
            Ok(())
        );
        let stray = check_names(["SERVICEWATCH_SKIP_INTEROP"]).unwrap_err();
        assert!(
            stray.starts_with("SERVICEWATCH_SKIP_INTEROP names no option"),
            "{stray}"
        );
        let table = check_names(["SERVICEWATCH_SERVERS__LISTEN"]).unwrap_err();
        assert!(
            table.starts_with("SERVICEWATCH_SERVERS__LISTEN: there is no [servers] table"),
            "{table}"
        );
        let entry = check_names(["SERVICEWATCH_SERVICE__ID"]).unwrap_err();
        assert!(
            entry.contains("[[service]] entries cannot be set"),
            "{entry}"
        );
        let list = check_names(["SERVICEWATCH_SERVER__ALLOWED_ORIGINS"]).unwrap_err();
        assert!(list.contains("server.allowed_origins is a list"), "{list}");
        let endpoints = check_names(["SERVICEWATCH_CLUSTER__ENDPOINTS"]).unwrap_err();
        assert!(
            endpoints.contains("cluster.endpoints is a list"),
            "{endpoints}"
        );
    }

    #[test]
    fn finds_the_variable_behind_a_key() {
        let names = ["HOME", "SERVICEWATCH_SERVER__BOGUS"];
        assert_eq!(
            variable_for("bogus", names),
            Some("SERVICEWATCH_SERVER__BOGUS")
        );
        assert_eq!(variable_for("listen", names), None);
    }
}
