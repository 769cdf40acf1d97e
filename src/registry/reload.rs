//! What a reload does to the supervised services, decided as a pure plan before the
//! registry carries it out.

use std::collections::HashMap;

use crate::config::services::ServiceSpec;

/// What happens to one service of the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Configured exactly as before: it keeps its monitors and state.
    Unchanged,
    /// Configured differently: new monitors, resuming from the state last published.
    Changed,
    /// New: monitors start, and it is Inactive until probed.
    Added,
}

/// The steps of a reload, one per service of the new configuration (in its order), and the
/// ids of the services it removes (in the old order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    pub steps: Vec<Step>,
    pub removed: Vec<String>,
}

/// Plans going from the services `old` to `new`, matching them by id.
pub fn plan<'a>(old: impl Iterator<Item = &'a ServiceSpec>, new: &[ServiceSpec]) -> ReloadPlan {
    let mut old: Vec<&ServiceSpec> = old.collect();
    let new_ids: HashMap<&str, &ServiceSpec> = new.iter().map(|s| (s.id.as_str(), s)).collect();
    let by_id: HashMap<&str, &ServiceSpec> = old.iter().map(|s| (s.id.as_str(), *s)).collect();
    let steps = new
        .iter()
        .map(|spec| match by_id.get(spec.id.as_str()) {
            Some(before) if *before == spec => Step::Unchanged,
            Some(_) => Step::Changed,
            None => Step::Added,
        })
        .collect();
    old.retain(|s| !new_ids.contains_key(s.id.as_str()));
    ReloadPlan {
        steps,
        removed: old.into_iter().map(|s| s.id.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::validate;

    fn services(toml: &str) -> Vec<ServiceSpec> {
        validate(toml::from_str(toml).unwrap(), "test")
            .unwrap()
            .services
    }

    fn voice(id: &str, port: u16) -> String {
        format!(
            "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\n"
        )
    }

    #[test]
    fn services_are_matched_by_id_and_compared_whole() {
        let old = services(&[voice("a", 1), voice("b", 2), voice("c", 3)].concat());
        let new = services(&[voice("d", 4), voice("b", 20), voice("a", 1)].concat());
        let plan = plan(old.iter(), &new);
        assert_eq!(plan.steps, [Step::Added, Step::Changed, Step::Unchanged]);
        assert_eq!(plan.removed, ["c"]);
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let old = services(&[voice("a", 1), voice("b", 2)].concat());
        let plan = plan(old.iter(), &old);
        assert_eq!(plan.steps, [Step::Unchanged, Step::Unchanged]);
        assert!(plan.removed.is_empty());
        let emptied = super::plan(old.iter(), &[]);
        assert_eq!(emptied.removed, ["a", "b"]);
    }
}
