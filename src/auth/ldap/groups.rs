//! From a directory user's groups to what servicewatch grants: the roles of every mapped
//! group, and the one contact center its groups name. Pure; no I/O.
//!
//! A user in no contact-center group is refused: servicewatch would not know which
//! services to show. A user whose groups name two or more contact centers is refused as
//! well, rather than one being picked: any rule (the first group, the alphabetical first)
//! would silently show someone another center's services after a harmless group change.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::auth::UserRole;
use crate::config::ldap::{CenterRef, normalize_dn};

/// Why a user's groups grant no login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// No group of the user maps to a contact center.
    NoContactCenter,
    /// The user's groups map to these contact centers (two or more).
    Ambiguous(Vec<String>),
}

/// The roles and contact center `groups` (DNs, as the directory wrote them) grant.
pub fn grant<'a>(
    groups: &[String],
    roles: &BTreeMap<String, BTreeSet<UserRole>>,
    centers: &'a BTreeMap<String, CenterRef>,
) -> Result<(BTreeSet<UserRole>, &'a CenterRef), Unmapped> {
    let groups: BTreeSet<String> = groups.iter().map(|g| normalize_dn(g)).collect();
    let granted = groups
        .iter()
        .filter_map(|g| roles.get(g))
        .flatten()
        .copied()
        .collect();
    let mut found: BTreeMap<&str, &CenterRef> = BTreeMap::new();
    for center in groups.iter().filter_map(|g| centers.get(g)) {
        found.insert(center.id.as_str(), center);
    }
    match found.len() {
        0 => Err(Unmapped::NoContactCenter),
        1 => Ok((granted, found.into_values().next().expect("one center"))),
        _ => Err(Unmapped::Ambiguous(
            found.keys().map(|id| id.to_string()).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUPERVISORS: &str = "cn=supervisors,ou=groups,dc=example,dc=com";
    const AGENTS: &str = "cn=agents,ou=groups,dc=example,dc=com";
    const PARIS: &str = "cn=paris,ou=groups,dc=example,dc=com";
    const LYON: &str = "cn=lyon,ou=groups,dc=example,dc=com";

    fn mapping() -> (
        BTreeMap<String, BTreeSet<UserRole>>,
        BTreeMap<String, CenterRef>,
    ) {
        let roles = [
            (SUPERVISORS.to_string(), [UserRole::Supervisor].into()),
            (AGENTS.to_string(), [UserRole::Agent].into()),
        ]
        .into();
        let center = |id: &str| CenterRef {
            id: id.into(),
            features: BTreeSet::new(),
        };
        let centers = [
            (PARIS.to_string(), center("paris")),
            (LYON.to_string(), center("lyon")),
        ]
        .into();
        (roles, centers)
    }

    #[test]
    fn roles_add_up_and_one_center_is_found() {
        let (roles, centers) = mapping();
        let groups = [
            "CN=Supervisors,OU=Groups,DC=example,DC=com".to_string(),
            AGENTS.into(),
            PARIS.into(),
            "cn=unrelated,dc=example,dc=com".into(),
        ];
        let (granted, center) = grant(&groups, &roles, &centers).unwrap();
        assert_eq!(granted, [UserRole::Agent, UserRole::Supervisor].into());
        assert_eq!(center.id, "paris");
    }

    #[test]
    fn a_center_without_a_role_grants_no_role() {
        let (roles, centers) = mapping();
        let (granted, _) = grant(&[LYON.into()], &roles, &centers).unwrap();
        assert!(granted.is_empty());
    }

    #[test]
    fn no_center_or_two_are_refused() {
        let (roles, centers) = mapping();
        assert_eq!(
            grant(&[SUPERVISORS.into()], &roles, &centers).unwrap_err(),
            Unmapped::NoContactCenter
        );
        assert_eq!(
            grant(&[PARIS.into(), LYON.into()], &roles, &centers).unwrap_err(),
            Unmapped::Ambiguous(vec!["lyon".into(), "paris".into()])
        );
    }
}
