//! The query parameters of the Services API, parsed and checked without I/O: `fields`, and
//! list filters named like attributes (`?type=Voice&state=Active`; a comma separates values
//! any of which may match; several filters combine with AND).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::service::{ServiceState, ServiceType};
use crate::domain::text::one_line;
use std::collections::BTreeSet;

/// Which attributes to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// `fields=*`: the whole resource.
    All,
    /// `fields=a,b`: only these, in resource order.
    Only(Vec<String>),
}

/// One attribute filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The resource attribute compared (`type`, `state`...).
    pub attribute: String,
    /// Any of these values matches.
    pub values: Vec<String>,
}

impl Filter {
    /// Whether a resource passes this filter.
    pub fn matches(&self, resource: &Map<String, Value>) -> bool {
        resource
            .get(&self.attribute)
            .and_then(filter_text)
            .is_some_and(|text| self.values.iter().any(|v| *v == text))
    }
}

/// The text a list filter compares with: strings as they are, numbers and booleans as
/// written in JSON; `None` for values a filter cannot match (arrays, objects, null).
pub(crate) fn filter_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

/// Parameters accepted on every request and without effect: `_`, the cache buster that
/// jQuery and many HTTP clients append (`?_=1700000000`), and GWS's own `subresources`
/// (services have no sub-resources to expand). Anything else that is neither `fields` nor a
/// known attribute is refused: a misspelt filter must not silently return every service.
pub(crate) const IGNORED_PARAMETERS: [&str; 2] = ["_", "subresources"];

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicesQuery {
    /// The attributes each resource is cut to; `None`: the default ones.
    pub fields: Option<Fields>,
    /// Every filter must pass (each passes on any of its values).
    pub filters: Vec<Filter>,
}

/// Parses the query string of a list (`filters_allowed`) or single-resource request,
/// checking names against the attributes the snapshot knows.
pub fn parse(
    query: &str,
    attributes: &BTreeSet<String>,
    filters_allowed: bool,
) -> Result<ServicesQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::InvalidParameter(format!("the query string cannot be decoded: {e}"))
    })?;
    let mut parsed = ServicesQuery::default();
    for (name, value) in pairs {
        if IGNORED_PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        if name == "fields" {
            if parsed.fields.is_some() {
                return Err(ApiError::InvalidParameter(
                    "fields is given more than once".into(),
                ));
            }
            parsed.fields = Some(parse_fields(&value, attributes)?);
        } else if !filters_allowed {
            return Err(ApiError::InvalidParameter(format!(
                "unknown parameter \"{}\"; a single service takes only fields",
                echo(&name)
            )));
        } else {
            parsed
                .filters
                .push(parse_filter(&name, &value, attributes)?);
        }
    }
    Ok(parsed)
}

fn known_attributes(attributes: &BTreeSet<String>) -> String {
    attributes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` without the spaces around it: ASCII space, tab, line feed, carriage return,
/// vertical tab and form feed, what `\s` means in the patterns of docs/openapi.json (spelled
/// out there), and not Unicode's wider set (U+0085, U+00A0...), which a client's regular
/// expressions would not agree on.
fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
}

/// A client's parameter name or value as a refusal quotes it: one line, at most 64
/// characters.
fn echo(text: &str) -> String {
    one_line(text, 64)
}

fn parse_fields(value: &str, attributes: &BTreeSet<String>) -> Result<Fields, ApiError> {
    if trim(value) == "*" {
        return Ok(Fields::All);
    }
    let names: Vec<String> = value.split(',').map(|n| trim(n).to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(ApiError::InvalidParameter(format!(
            "fields=\"{}\" is not a list of attribute names; use fields=* or fields=id,state",
            echo(value)
        )));
    }
    if let Some(unknown) = names.iter().find(|n| !attributes.contains(n.as_str())) {
        return Err(ApiError::InvalidParameter(format!(
            "unknown field \"{}\"; known fields: {}",
            echo(unknown),
            known_attributes(attributes)
        )));
    }
    Ok(Fields::Only(names))
}

fn parse_filter(
    name: &str,
    value: &str,
    attributes: &BTreeSet<String>,
) -> Result<Filter, ApiError> {
    if !attributes.contains(name) {
        return Err(ApiError::InvalidParameter(format!(
            "unknown parameter \"{}\"; filter by an attribute ({}) or use fields",
            echo(name),
            known_attributes(attributes)
        )));
    }
    let values: Vec<String> = value.split(',').map(|v| trim(v).to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(ApiError::InvalidParameter(format!(
            "filter {name} needs a value, such as {name}=..."
        )));
    }
    let check =
        |valid: &dyn Fn(&str) -> bool, choices: &[&str]| match values.iter().find(|v| !valid(v)) {
            Some(bad) => Err(ApiError::InvalidParameter(format!(
                "\"{}\" is not a valid {name}; expected one of {}",
                echo(bad),
                choices.join(", ")
            ))),
            None => Ok(()),
        };
    match name {
        "type" => check(
            &|v| v.parse::<ServiceType>().is_ok(),
            &ServiceType::ALL.map(ServiceType::as_str),
        )?,
        "state" => check(
            &|v| v.parse::<ServiceState>().is_ok(),
            &ServiceState::ALL.map(ServiceState::as_str),
        )?,
        "servingInstance" => check(&|v| v == "primary" || v == "backup", &["primary", "backup"])?,
        _ => {}
    }
    Ok(Filter {
        attribute: name.to_string(),
        values,
    })
}

/// The resource with only the selected attributes, in resource order.
pub fn project(resource: &Map<String, Value>, names: &[String]) -> Map<String, Value> {
    resource
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{PublishedService, Snapshot};

    fn snapshot() -> Snapshot {
        let mut voice = Map::new();
        voice.insert("id".into(), Value::from("sips1"));
        voice.insert("type".into(), Value::from("Voice"));
        voice.insert("state".into(), Value::from("Active"));
        voice.insert("sipPort".into(), Value::from(5060));
        Snapshot::new(vec![std::sync::Arc::new(PublishedService::new(
            "api-voice",
            ServiceState::Active,
            voice,
        ))])
    }

    fn attributes() -> BTreeSet<String> {
        snapshot().attributes().clone()
    }

    fn err(query: &str, list: bool) -> String {
        parse(query, &attributes(), list).unwrap_err().to_string()
    }

    #[test]
    fn parses_fields() {
        assert_eq!(
            parse("", &attributes(), true).unwrap(),
            ServicesQuery::default()
        );
        assert_eq!(
            parse("fields=*", &attributes(), true).unwrap().fields,
            Some(Fields::All)
        );
        assert_eq!(
            parse("fields=%2A", &attributes(), true).unwrap().fields,
            Some(Fields::All)
        );
        assert_eq!(
            parse("fields=id,%20state", &attributes(), false)
                .unwrap()
                .fields,
            Some(Fields::Only(vec!["id".into(), "state".into()]))
        );
    }

    #[test]
    fn what_clients_add_is_accepted_and_changes_nothing() {
        for query in [
            "_=1700000000",
            "subresources=*",
            "fields=*&_=1&subresources=x",
        ] {
            let plain = parse(
                query
                    .split('&')
                    .find(|p| p.starts_with("fields"))
                    .unwrap_or(""),
                &attributes(),
                true,
            );
            assert_eq!(
                parse(query, &attributes(), true).unwrap(),
                plain.unwrap(),
                "{query}"
            );
            assert!(
                parse(query, &attributes(), false).is_ok(),
                "{query} on one service"
            );
        }
        assert!(err("__=1", true).starts_with("unknown parameter \"__\""));
    }

    #[test]
    fn refuses_bad_fields() {
        assert!(
            err("fields=id,bogus", true)
                .starts_with("unknown field \"bogus\"; known fields: id, maintenance, name,")
        );
        assert!(err("fields=", true).contains("is not a list of attribute names"));
        assert!(err("fields=id,,state", true).contains("is not a list"));
        assert_eq!(
            err("fields=*&fields=id", true),
            "fields is given more than once"
        );
    }

    #[test]
    fn parses_and_checks_filters() {
        let s = snapshot();
        let q = parse(
            "fields=*&type=Voice,Media&sipPort=5060",
            &attributes(),
            true,
        )
        .unwrap();
        assert_eq!(q.filters.len(), 2);
        let resource = s.get("sips1").unwrap().resource.clone();
        assert!(q.filters.iter().all(|f| f.matches(&resource)));
        let other = parse("state=Inactive", &attributes(), true).unwrap();
        assert!(!other.filters[0].matches(&resource));
        assert!(
            err("type=Fax", true)
                .starts_with("\"Fax\" is not a valid type; expected one of Provisioning, Voice")
        );
        assert!(err("state=active", true).contains("not a valid state"));
        assert!(err("color=red", true).starts_with("unknown parameter \"color\""));
        assert!(err("type=", true).contains("needs a value"));
        // Spaces are the ASCII ones the OpenAPI patterns name: U+0085 is a value, not a space.
        assert!(err("type=%20%09%0B", true).contains("needs a value"));
        let nel = parse("name=%C2%85", &attributes(), true).unwrap();
        assert_eq!(nel.filters[0].values, ["\u{85}"]);
        assert!(err("type=Voice", false).contains("a single service takes only fields"));
    }

    #[test]
    fn projects_in_resource_order() {
        let resource = snapshot().get("sips1").unwrap().resource.clone();
        let only = project(&resource, &["state".into(), "id".into()]);
        assert_eq!(
            serde_json::to_string(&only).unwrap(),
            r#"{"id":"sips1","state":"Active"}"#
        );
    }

    #[test]
    fn filter_text_of_scalars() {
        assert_eq!(filter_text(&Value::from(5060)).as_deref(), Some("5060"));
        assert_eq!(filter_text(&Value::from("x")).as_deref(), Some("x"));
        assert_eq!(filter_text(&Value::from(true)).as_deref(), Some("true"));
        assert_eq!(filter_text(&Value::Null), None);
    }
}
