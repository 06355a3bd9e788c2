//! What the chart's alerts and dashboard read, checked against what the
//! binaries export: the metric names and label names the PromQL of
//! `charts/hookwarden/rules/hookwarden.rules.yaml` and
//! `charts/hookwarden/dashboards/hookwarden.json` use, and a parser of the
//! Prometheus text exposition a `/metrics` endpoint answers.
//!
//! The PromQL scanner knows just enough of the language for our own
//! expressions (selectors, matchers, grouping clauses, `label_replace`), and
//! fails loudly on what it does not know rather than skip it.

use std::collections::{BTreeMap, BTreeSet};

use crate::tools::repo_root;

/// Labels every scraped series carries from its target (Prometheus and the
/// Prometheus Operator add them), so an expression may group by them.
pub const TARGET_LABELS: [&str; 4] = ["namespace", "pod", "instance", "job"];

/// Metrics of other projects the alerts read, with the labels they export
/// (documented by those projects). Not exported by any Hookwarden binary,
/// so not checked against ours, by name.
pub const EXTERNAL: [(&str, &str, &[&str]); 2] = [
    (
        "certmanager_certificate_expiration_timestamp_seconds",
        "cert-manager's controller",
        &[
            "name",
            "namespace",
            "issuer_name",
            "issuer_kind",
            "issuer_group",
        ],
    ),
    (
        "kube_pod_container_status_restarts_total",
        "kube-state-metrics",
        &["namespace", "pod", "container", "uid"],
    ),
];

/// Which process exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exporter {
    /// `hookwarden-receiver serve`.
    Receiver,
    /// `hookwarden-receiver forward`.
    Forwarder,
    /// `hookwarden-operator`.
    Operator,
    /// Another project ([`EXTERNAL`]).
    External,
}

impl Exporter {
    /// The exporter of `metric`, by its prefix; `None` for a name nobody
    /// exports (a typo in a rule or panel).
    pub fn of(metric: &str) -> Option<Self> {
        if EXTERNAL.iter().any(|(name, _, _)| *name == metric) {
            Some(Self::External)
        } else if metric.starts_with("hookwarden_operator_") {
            Some(Self::Operator)
        } else if metric.starts_with("hookwarden_forward_") {
            Some(Self::Forwarder)
        } else if metric.starts_with("hookwarden_") {
            Some(Self::Receiver)
        } else {
            None
        }
    }
}

/// One use of a metric: the labels its matchers name, and the labels the
/// surrounding expression groups or joins by (which must exist on some
/// metric of the expression, come from the target, or be made by
/// `label_replace`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expression {
    /// Where it is (alert name or panel title), for messages.
    pub place: String,
    /// The expression.
    pub expr: String,
    /// Metric name → labels its matchers name.
    pub selectors: BTreeMap<String, BTreeSet<String>>,
    /// Labels in `by`, `without`, `on`, `ignoring`, `group_left/right`.
    pub grouping: BTreeSet<String>,
    /// Labels `label_replace` writes.
    pub made: BTreeSet<String>,
}

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const OPERATORS: [&str; 6] = ["and", "or", "unless", "bool", "offset", "atan2"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads a quoted string starting at `chars[i]` (a quote); returns its
/// content and the index after it.
fn string_at(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let quote = chars[i];
    let mut out = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if quote != '`' => {
                if let Some(c) = chars.get(j + 1) {
                    out.push(*c);
                }
                j += 2;
            }
            c if c == quote => return Ok((out, j + 1)),
            c => {
                out.push(c);
                j += 1;
            }
        }
    }
    Err("unterminated string".to_owned())
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn ident_at(chars: &[char], i: usize) -> (String, usize) {
    let mut j = i;
    while chars.get(j).copied().is_some_and(is_ident) {
        j += 1;
    }
    (chars[i..j].iter().collect(), j)
}

/// The metrics, matcher labels, grouping labels and made labels of `expr`.
pub fn scan(place: &str, expr: &str) -> Result<Expression, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Expression {
        place: place.to_owned(),
        expr: expr.to_owned(),
        ..Expression::default()
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = string_at(&chars, i)?.1;
        } else if c == '[' {
            // A range or subquery: durations and Grafana's $__rate_interval.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            // A number, possibly with an exponent or a duration unit.
            while chars.get(i).copied().is_some_and(is_ident) || chars.get(i) == Some(&'.') {
                i += 1;
            }
        } else if c == '{' {
            return Err(format!("a selector without a metric name in {expr:?}"));
        } else if c == '$' {
            // A Grafana variable outside a string (none of ours).
            return Err(format!("a Grafana variable outside a string in {expr:?}"));
        } else if is_ident_start(c) {
            let (word, end) = ident_at(&chars, i);
            let next = skip_spaces(&chars, end);
            if GROUPING.contains(&word.as_str()) {
                i = next;
                if chars.get(next) == Some(&'(') {
                    let close = chars[next..]
                        .iter()
                        .position(|c| *c == ')')
                        .ok_or_else(|| format!("unclosed {word}( in {expr:?}"))?;
                    let list: String = chars[next + 1..next + close].iter().collect();
                    found.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = next + close + 1;
                }
            } else if OPERATORS.contains(&word.as_str()) {
                i = end;
            } else if chars.get(next) == Some(&'(') || aggregation_clause_at(&chars, next) {
                // A function, or an aggregation written `sum by (...) (...)`.
                if word == "label_replace" {
                    found.made.insert(label_replace_destination(&chars, next)?);
                }
                i = next;
            } else {
                let labels = found.selectors.entry(word).or_default();
                i = end;
                if chars.get(next) == Some(&'{') {
                    i = matchers(&chars, next, labels)?;
                }
            }
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// Whether `by` or `without` starts at `chars[i]` (after an aggregation).
fn aggregation_clause_at(chars: &[char], i: usize) -> bool {
    if !chars.get(i).copied().is_some_and(is_ident_start) {
        return false;
    }
    let (word, _) = ident_at(chars, i);
    word == "by" || word == "without"
}

/// Reads `{label op "value", ...}` from `chars[open]`; adds the label names.
fn matchers(chars: &[char], open: usize, labels: &mut BTreeSet<String>) -> Result<usize, String> {
    let mut i = open + 1;
    loop {
        i = skip_spaces(chars, i);
        match chars.get(i) {
            Some('}') => return Ok(i + 1),
            Some(',') => i += 1,
            Some(c) if is_ident_start(*c) => {
                let (label, end) = ident_at(chars, i);
                labels.insert(label);
                i = skip_spaces(chars, end);
                while chars.get(i).is_some_and(|c| matches!(c, '=' | '!' | '~')) {
                    i += 1;
                }
                i = skip_spaces(chars, i);
                if !chars.get(i).is_some_and(|c| matches!(c, '"' | '\'' | '`')) {
                    return Err("a matcher without a quoted value".to_owned());
                }
                i = string_at(chars, i)?.1;
            }
            _ => return Err("an unreadable matcher".to_owned()),
        }
    }
}

/// The second argument of `label_replace(` at `chars[open]`.
fn label_replace_destination(chars: &[char], open: usize) -> Result<String, String> {
    let mut depth = 0_usize;
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = string_at(chars, i)?.1,
            '(' | '{' | '[' => {
                depth += 1;
                i += 1;
            }
            ')' | '}' | ']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            ',' if depth == 0 => {
                let start = skip_spaces(chars, i + 1);
                return Ok(string_at(chars, start)?.0);
            }
            _ => i += 1,
        }
    }
    Err("label_replace without a destination".to_owned())
}

/// The expressions of the chart's alert rules and dashboard, with where
/// each is.
pub fn chart_expressions() -> Result<Vec<Expression>, String> {
    let chart = repo_root().join("charts/hookwarden");
    let read = |path: &str| {
        std::fs::read_to_string(chart.join(path)).map_err(|e| format!("reading {path}: {e}"))
    };
    let mut out = Vec::new();
    let rules: serde_json::Value = serde_yaml_ng::from_str(&read("rules/hookwarden.rules.yaml")?)
        .map_err(|e| format!("rules: {e}"))?;
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let place = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap_or("?");
            let expr = rule["expr"].as_str().ok_or("a rule without expr")?;
            out.push(scan(&format!("alert {place}"), expr)?);
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&read("dashboards/hookwarden.json")?)
        .map_err(|e| format!("dashboard: {e}"))?;
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let place = format!("panel {:?}", panel["title"].as_str().unwrap_or("?"));
            let expr = target["expr"]
                .as_str()
                .ok_or("a panel target without expr")?;
            out.push(scan(&place, expr)?);
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .ok_or("a query variable without a query")?;
        let args = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .ok_or_else(|| {
                format!("variable query {query:?} is not label_values(metric, label)")
            })?;
        let (metric, label) = args.split_once(',').ok_or("label_values needs a label")?;
        let mut expression = scan(
            &format!("variable {:?}", variable["name"].as_str().unwrap_or("?")),
            metric.trim(),
        )?;
        expression
            .selectors
            .entry(metric.trim().to_owned())
            .or_default()
            .insert(label.trim().to_owned());
        out.push(expression);
    }
    Ok(out)
}

/// Sample name → the union of the label names of its samples, from a
/// Prometheus text (or OpenMetrics) exposition.
pub fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let (name, mut i) = ident_at(&chars, 0);
        let labels = out.entry(name).or_default();
        if chars.get(i) != Some(&'{') {
            continue;
        }
        i += 1;
        while let Some(c) = chars.get(i) {
            if *c == '}' {
                break;
            }
            if *c == ',' || c.is_whitespace() {
                i += 1;
                continue;
            }
            let (label, end) = ident_at(&chars, i);
            if label.is_empty() {
                break;
            }
            labels.insert(label);
            // Skip `="value"`.
            i = end + 1;
            match string_at(&chars, i) {
                Ok((_, next)) => i = next,
                Err(_) => break,
            }
        }
    }
    out
}

/// What `expressions` use of the metrics `exporters` export that `exported`
/// (merged expositions of those processes) lacks, one message per problem.
pub fn missing(
    expressions: &[Expression],
    exporters: &[Exporter],
    exported: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let labels_of = |metric: &str| -> Option<BTreeSet<String>> {
        if let Some((_, _, labels)) = EXTERNAL.iter().find(|(name, _, _)| *name == metric) {
            return Some(labels.iter().map(|l| (*l).to_owned()).collect());
        }
        exported.get(metric).cloned()
    };
    for expression in expressions {
        let mut ours = false;
        let mut available: BTreeSet<String> = TARGET_LABELS.map(str::to_owned).into();
        available.extend(expression.made.iter().cloned());
        for (metric, used) in &expression.selectors {
            let Some(exporter) = Exporter::of(metric) else {
                problems.push(format!(
                    "{}: {metric} is exported by no Hookwarden binary and is not listed as external",
                    expression.place
                ));
                continue;
            };
            if let Some(labels) = labels_of(metric) {
                available.extend(labels);
            }
            if !exporters.contains(&exporter) {
                continue;
            }
            ours = true;
            match labels_of(metric) {
                None => problems.push(format!(
                    "{}: {metric} is not on the /metrics of the {exporter:?}",
                    expression.place
                )),
                Some(labels) => {
                    for label in used.difference(&labels) {
                        problems.push(format!(
                            "{}: {metric} has no label {label:?} (it has {labels:?})",
                            expression.place
                        ));
                    }
                }
            }
        }
        if ours {
            for label in expression.grouping.difference(&available) {
                problems.push(format!(
                    "{}: groups or joins by {label:?}, which none of its metrics has: {}",
                    expression.place, expression.expr
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_matchers_and_grouping_are_found() {
        let found = scan(
            "t",
            r#"histogram_quantile(0.99, sum by (endpoint, le) (rate(a_bucket{endpoint=~"$e", x!="}"}[$__rate_interval]))) > 0.5
               and on (namespace) max by (namespace, name) (label_replace(b, "name", "$1-tls", "endpoint", "(.+)")) or c == 1"#,
        )
        .expect("scans");
        assert_eq!(
            found.selectors.keys().cloned().collect::<Vec<_>>(),
            ["a_bucket", "b", "c"]
        );
        assert_eq!(
            found.selectors["a_bucket"],
            ["endpoint".to_owned(), "x".to_owned()].into()
        );
        assert_eq!(
            found.grouping,
            ["endpoint", "le", "name", "namespace"]
                .map(str::to_owned)
                .into()
        );
        assert_eq!(found.made, ["name".to_owned()].into());
        assert!(scan("t", r#"{__name__="a"}"#).is_err());
    }

    #[test]
    fn the_exposition_gives_names_and_labels() {
        let text = "# HELP a_total x\n# TYPE a_total counter\n\
                    a_total{endpoint=\"ci/gh\",reason=\"x,}\\\"y\"} 3\n\
                    b 1\nc_bucket{le=\"+Inf\"} 2\n# EOF\n";
        let found = exposition(text);
        assert_eq!(
            found["a_total"],
            ["endpoint".to_owned(), "reason".to_owned()].into()
        );
        assert!(found["b"].is_empty());
        assert_eq!(found["c_bucket"], ["le".to_owned()].into());
    }

    #[test]
    fn a_missing_metric_or_label_is_reported() {
        let expressions = [scan(
            "alert X",
            r#"sum by (reason) (rate(hookwarden_refusals_total{endpoint="a"}[5m]))"#,
        )
        .expect("scans")];
        let mut exported = BTreeMap::new();
        let problems = missing(&expressions, &[Exporter::Receiver], &exported);
        assert!(
            problems[0].contains("hookwarden_refusals_total is not on the /metrics"),
            "{problems:?}"
        );
        exported.insert(
            "hookwarden_refusals_total".to_owned(),
            ["endpoint".to_owned()].into(),
        );
        let problems = missing(&expressions, &[Exporter::Receiver], &exported);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"reason\""), "{problems:?}");
        exported.insert(
            "hookwarden_refusals_total".to_owned(),
            ["endpoint".to_owned(), "reason".to_owned()].into(),
        );
        assert!(missing(&expressions, &[Exporter::Receiver], &exported).is_empty());
        // Not the operator's metric: nothing to check there.
        assert!(missing(&expressions, &[Exporter::Operator], &BTreeMap::new()).is_empty());
    }
}
