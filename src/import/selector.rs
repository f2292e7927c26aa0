//! Kubernetes label selectors, as both imports meet them: Flux's
//! `ImageUpdateAutomation.spec.policySelector` (which `ImagePolicy` objects an automation
//! writes) and Argo CD Image Updater's `applicationRefs[].labelSelectors` (which Applications
//! an `ImageUpdater` updates).
//!
//! Invariant: a selector matches a set of labels exactly when Kubernetes' would
//! (`metav1.LabelSelector`): every `matchLabels` pair is present, and every `matchExpressions`
//! item holds (`In`: the key is present with one of the values; `NotIn`: the key is absent or
//! has none of them; `Exists`; `DoesNotExist`); an empty selector matches everything. A
//! selector that Kubernetes would refuse (an unknown operator, `In` without values, `Exists`
//! with values, a missing key) is an error naming the field, never a guess.

use std::fmt;

use yaml_serde::Value;

use super::{ImportError, Object};

/// A parsed label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    labels: Vec<(String, String)>,
    expressions: Vec<Expression>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expression {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// The selector at `field` of `object` (`spec.policySelector`); absent or null is the
    /// empty selector, which selects everything.
    pub fn parse(object: &Object, field: &str) -> Result<Self, ImportError> {
        match object.at(field) {
            None => Ok(LabelSelector::default()),
            Some(selector) => Self::parse_value(object, selector, field),
        }
    }

    /// The selector `selector`, found at `field` of `object` (for errors).
    pub fn parse_value(
        object: &Object,
        selector: &Value,
        field: &str,
    ) -> Result<Self, ImportError> {
        let mut parsed = LabelSelector::default();
        let Some(map) = selector.as_mapping() else {
            return Err(object.error(
                field,
                "expected a label selector (matchLabels, matchExpressions)",
            ));
        };
        for key in map.keys() {
            let known = key
                .as_str()
                .is_some_and(|k| k == "matchLabels" || k == "matchExpressions");
            if !known {
                return Err(object.error(
                    field,
                    format!(
                        "`{}`: expected matchLabels or matchExpressions",
                        scalar(key).unwrap_or_else(|| "?".to_string())
                    ),
                ));
            }
        }
        let labels_field = format!("{field}.matchLabels");
        match map.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(labels)) => {
                for (k, v) in labels {
                    match (k.as_str(), scalar(v)) {
                        (Some(k), Some(v)) => parsed.labels.push((k.to_string(), v)),
                        _ => {
                            return Err(object
                                .error(&labels_field, "expected a mapping of labels to strings"));
                        }
                    }
                }
            }
            Some(_) => return Err(object.error(&labels_field, "expected a mapping of labels")),
        }
        let expressions_field = format!("{field}.matchExpressions");
        let items = match map.get("matchExpressions") {
            None | Some(Value::Null) => return Ok(parsed),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                return Err(object.error(
                    &expressions_field,
                    "expected a list of {key, operator, values}",
                ));
            }
        };
        for (index, item) in items.iter().enumerate() {
            let at = format!("{expressions_field}[{index}]");
            let text = |key: &str| -> Result<Option<String>, ImportError> {
                match item.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => scalar(v)
                        .map(Some)
                        .ok_or_else(|| object.error(&format!("{at}.{key}"), "expected a string")),
                }
            };
            if !item.is_mapping() {
                return Err(object.error(&at, "expected {key, operator, values}"));
            }
            let key = text("key")?
                .filter(|k| !k.is_empty())
                .ok_or_else(|| object.error(&format!("{at}.key"), "is required but missing"))?;
            let operator_text = text("operator")?.ok_or_else(|| {
                object.error(&format!("{at}.operator"), "is required but missing")
            })?;
            let values_field = format!("{at}.values");
            let values = match item.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Sequence(values)) => values
                    .iter()
                    .map(|v| {
                        scalar(v).ok_or_else(|| {
                            object.error(&values_field, "expected a list of strings")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(object.error(&values_field, "expected a list of strings")),
            };
            let operator = match operator_text.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(object.error(
                        &format!("{at}.operator"),
                        format!("`{other}`: expected In, NotIn, Exists or DoesNotExist"),
                    ));
                }
            };
            match (operator, values.is_empty()) {
                (Operator::In | Operator::NotIn, true) => {
                    return Err(object.error(
                        &values_field,
                        format!("`{operator_text}` needs at least one value"),
                    ));
                }
                (Operator::Exists | Operator::DoesNotExist, false) => {
                    return Err(
                        object.error(&values_field, format!("`{operator_text}` takes no values"))
                    );
                }
                _ => {}
            }
            parsed.expressions.push(Expression {
                key,
                operator,
                values,
            });
        }
        Ok(parsed)
    }

    /// An empty selector: it selects everything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.expressions.is_empty()
    }

    /// Does an object with `labels` match.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        self.labels.iter().all(|pair| labels.contains(pair))
            && self.expressions.iter().all(|e| {
                let found = value(&e.key);
                match e.operator {
                    Operator::In => found.is_some_and(|v| e.values.contains(v)),
                    Operator::NotIn => !found.is_some_and(|v| e.values.contains(v)),
                    Operator::Exists => found.is_some(),
                    Operator::DoesNotExist => found.is_none(),
                }
            })
    }
}

/// `team=web, tier in (a, b), !legacy`, as `kubectl get -l` writes selectors.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.expressions {
            parts.push(match e.operator {
                Operator::In => format!("{} in ({})", e.key, e.values.join(", ")),
                Operator::NotIn => format!("{} notin ({})", e.key, e.values.join(", ")),
                Operator::Exists => e.key.clone(),
                Operator::DoesNotExist => format!("!{}", e.key),
            });
        }
        f.write_str(&parts.join(", "))
    }
}

/// A scalar as text (label values are strings; `true` and `1` unquoted are read as such).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn selector(yaml: &str) -> Result<LabelSelector, String> {
        let text = format!("apiVersion: v1\nkind: K\nmetadata: {{name: x}}\nselector: {yaml}\n");
        let objects = super::super::read_objects("in.yaml", &text, "default").unwrap();
        LabelSelector::parse(&objects[0], "selector").map_err(|e| e.to_string())
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_operator_matches_as_kubernetes_does() {
        let web = labels(&[("team", "web"), ("tier", "front")]);
        let db = labels(&[("team", "data")]);
        let none = labels(&[]);
        for (yaml, expected) in [
            ("{}", [true, true, true]),
            ("null", [true, true, true]),
            ("{matchLabels: {team: web}}", [true, false, false]),
            (
                "{matchExpressions: [{key: team, operator: In, values: [web, ops]}]}",
                [true, false, false],
            ),
            // NotIn holds where the key is absent, as in Kubernetes.
            (
                "{matchExpressions: [{key: team, operator: NotIn, values: [web]}]}",
                [false, true, true],
            ),
            (
                "{matchExpressions: [{key: tier, operator: Exists}]}",
                [true, false, false],
            ),
            (
                "{matchExpressions: [{key: tier, operator: DoesNotExist}]}",
                [false, true, true],
            ),
            // Labels and expressions must all hold.
            (
                "{matchLabels: {team: web}, matchExpressions: [{key: tier, operator: NotIn, values: [front]}]}",
                [false, false, false],
            ),
        ] {
            let parsed = selector(yaml).unwrap();
            let got = [
                parsed.matches(&web),
                parsed.matches(&db),
                parsed.matches(&none),
            ];
            assert_eq!(got, expected, "{yaml}");
        }
        assert!(selector("{}").unwrap().is_empty());
    }

    #[test]
    fn a_selector_kubernetes_refuses_is_an_error_naming_the_field() {
        for (yaml, expected) in [
            (
                "{matchExpressions: [{key: a, operator: Has}]}",
                "`selector.matchExpressions[0].operator`: `Has`: expected In, NotIn, Exists or DoesNotExist",
            ),
            (
                "{matchExpressions: [{key: a, operator: In}]}",
                "`selector.matchExpressions[0].values`: `In` needs at least one value",
            ),
            (
                "{matchExpressions: [{key: a, operator: NotIn, values: []}]}",
                "`selector.matchExpressions[0].values`: `NotIn` needs at least one value",
            ),
            (
                "{matchExpressions: [{key: a, operator: Exists, values: [x]}]}",
                "`selector.matchExpressions[0].values`: `Exists` takes no values",
            ),
            (
                "{matchExpressions: [{operator: Exists}]}",
                "`selector.matchExpressions[0].key`: is required but missing",
            ),
            (
                "{matchExpressions: {key: a}}",
                "`selector.matchExpressions`: expected a list",
            ),
            (
                "{matchLabels: [a]}",
                "`selector.matchLabels`: expected a mapping of labels",
            ),
            (
                "{matchLabel: {a: b}}",
                "`selector`: `matchLabel`: expected matchLabels or matchExpressions",
            ),
            ("[a]", "`selector`: expected a label selector"),
        ] {
            let err = selector(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn selectors_print_as_kubectl_writes_them() {
        let parsed = selector(
            "{matchLabels: {team: web}, matchExpressions: [{key: tier, operator: In, values: [a, b]}, {key: env, operator: NotIn, values: [dev]}, {key: canary, operator: Exists}, {key: legacy, operator: DoesNotExist}]}",
        )
        .unwrap();
        assert_eq!(
            parsed.to_string(),
            "team=web, tier in (a, b), env notin (dev), canary, !legacy"
        );
    }
}
