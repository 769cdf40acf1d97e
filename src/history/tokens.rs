//! The API tokens' table in the history database: a row per token, with its SHA-256 and
//! never the token itself. A revoked token's row is deleted (the audit trail keeps who
//! revoked it and when). Written by the token endpoints directly, not through the writer
//! thread's queue: creating or revoking a token must be confirmed kept (or refused) before
//! the answer, and a queue may drop.

use rusqlite::types::Type;
use rusqlite::{Connection, params};

use super::store::{millis, time};
use crate::auth::{ApiTokenRecord, Scope};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    name           TEXT    PRIMARY KEY,
    sha256         BLOB    NOT NULL UNIQUE,
    scope          TEXT    NOT NULL,
    contact_center TEXT    NOT NULL,
    expires_ms     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    created_ms     INTEGER NOT NULL
);
";

/// Stores a new token; a name taken already is refused by the primary key
/// (`SQLITE_CONSTRAINT`), whoever took it meanwhile.
pub fn insert(conn: &Connection, t: &ApiTokenRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO tokens (name, sha256, scope, contact_center, expires_ms, created_by, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.name,
            &t.sha256[..],
            t.scope.as_str(),
            t.contact_center,
            millis(t.expires),
            t.created_by,
            millis(t.created)
        ],
    )?;
    Ok(())
}

/// Deletes the token named `name`; whether there was one.
pub fn delete(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM tokens WHERE name = ?1", params![name])? > 0)
}

/// Every stored token. A row this servicewatch cannot read (a scope it does not know, a
/// digest of the wrong size) is an error: a token must not be half-loaded.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<ApiTokenRecord>> {
    let mut statement = conn.prepare(
        "SELECT name, sha256, scope, contact_center, expires_ms, created_by, created_ms FROM tokens ORDER BY name",
    )?;
    let rows = statement.query_map([], |row| {
        let digest: Vec<u8> = row.get(1)?;
        let sha256: [u8; 32] = digest.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(1, Type::Blob, "not a SHA-256".into())
        })?;
        let scope: String = row.get(2)?;
        let scope = Scope::parse(&scope).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                Type::Text,
                format!("\"{scope}\" is not a scope (read, maintenance, admin)").into(),
            )
        })?;
        Ok(ApiTokenRecord {
            name: row.get(0)?,
            sha256,
            scope,
            contact_center: row.get(3)?,
            expires: time(row.get(4)?),
            created_by: row.get(5)?,
            created: time(row.get(6)?),
        })
    })?;
    rows.collect()
}

/// Whether `e` is the refusal of a name taken already.
pub fn is_duplicate(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record(name: &str, byte: u8) -> ApiTokenRecord {
        ApiTokenRecord {
            name: name.into(),
            scope: Scope::Maintenance,
            contact_center: "cc".into(),
            expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            created_by: "chief".into(),
            created: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            sha256: [byte; 32],
        }
    }

    #[test]
    fn tokens_round_trip_and_names_are_unique() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::store::prepare(&conn).unwrap();
        insert(&conn, &record("ci", 1)).unwrap();
        insert(&conn, &record("dash", 2)).unwrap();
        let taken = insert(&conn, &record("ci", 3)).unwrap_err();
        assert!(is_duplicate(&taken), "{taken}");
        assert_eq!(all(&conn).unwrap(), [record("ci", 1), record("dash", 2)]);
        assert!(delete(&conn, "ci").unwrap());
        assert!(!delete(&conn, "ci").unwrap());
        assert_eq!(all(&conn).unwrap(), [record("dash", 2)]);
        conn.execute("UPDATE tokens SET scope = 'root'", [])
            .unwrap();
        let refused = all(&conn).unwrap_err().to_string();
        assert!(refused.contains("\"root\" is not a scope"), "{refused}");
    }
}
