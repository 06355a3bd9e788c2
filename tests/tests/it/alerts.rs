//! The chart's alert rules (`charts/hookwarden/rules/`), checked with the
//! pinned promtool: the rule file is valid (`promtool check rules`), its
//! unit tests pass (`promtool test rules`), every alert has a case that
//! fires and one that must not, and both commands really fail on a broken
//! rule, so a pass means something.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hookwarden_tests::tools::{repo_root, require_tool};
use serde_json::Value;

use crate::text;

const RULES: &str = "hookwarden.rules.yaml";
const TESTS: &str = "hookwarden.rules.test.yaml";

fn rules_dir() -> PathBuf {
    repo_root().join("charts/hookwarden/rules")
}

/// `promtool <args>` run in `dir` (rule files name each other relatively).
fn promtool(dir: &Path, args: &[&str]) -> Output {
    let path = require_tool("promtool").unwrap_or_else(|e| panic!("{e}"));
    Command::new(&path)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every alert name the rule file defines.
fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").iter())
        .filter_map(|rule| rule["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = rules_dir();
    let check = promtool(&dir, &["check", "rules", RULES]);
    assert!(check.status.success(), "{}", text(&check));
    let alerts = alert_names(&yaml(&dir.join(RULES)));
    assert!(
        text(&check).contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "every rule is an alert: {}",
        text(&check)
    );
    let tests = promtool(&dir, &["test", "rules", TESTS]);
    assert!(tests.status.success(), "{}", text(&tests));
}

/// Each alert is tested both ways: some evaluation expects it to fire, and
/// some expects nothing (an explicit empty `exp_alerts`). promtool compares
/// the whole list of alerts, so the series that must not fire next to the
/// ones that do are checked as well.
#[test]
fn every_alert_has_a_firing_and_a_quiet_case() {
    let dir = rules_dir();
    let alerts = alert_names(&yaml(&dir.join(RULES)));
    let tests = yaml(&dir.join(TESTS));
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let untested: Vec<_> = alerts.difference(&fires).collect();
    assert!(
        untested.is_empty(),
        "alerts never seen firing: {untested:?}"
    );
    let unquiet: Vec<_> = alerts.difference(&quiet).collect();
    assert!(unquiet.is_empty(), "alerts never seen quiet: {unquiet:?}");
    assert!(alerts.len() >= 10, "{alerts:?}");
}

/// A copy of the rules directory with the rule file changed by `edit`.
fn broken_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [RULES, TESTS] {
        let original = std::fs::read_to_string(rules_dir().join(file)).expect("read");
        let content = if file == RULES {
            let edited = edit(&original);
            assert_ne!(edited, original, "the edit changed nothing");
            edited
        } else {
            original
        };
        std::fs::write(dir.path().join(file), content).expect("write");
    }
    dir
}

#[test]
fn promtool_refuses_a_broken_rule_and_a_changed_threshold() {
    // Unbalanced parentheses: not PromQL.
    let syntax = broken_copy(|rules| {
        rules.replacen(
            "rate(hookwarden_refusals_total{reason!~",
            "rate((hookwarden_refusals_total{reason!~",
            1,
        )
    });
    let check = promtool(syntax.path(), &["check", "rules", RULES]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("HookwardenDeliveriesRefused")
            || text(&check).contains("parse error"),
        "{}",
        text(&check)
    );

    // Valid, but a hundred times less sensitive: the unit tests notice.
    let threshold = broken_copy(|rules| rules.replacen(") > 0.05", ") > 5", 1));
    let check = promtool(threshold.path(), &["check", "rules", RULES]);
    assert!(check.status.success(), "{}", text(&check));
    let tests = promtool(threshold.path(), &["test", "rules", TESTS]);
    assert!(!tests.status.success(), "{}", text(&tests));
    assert!(
        text(&tests).contains("HookwardenDeliveriesRefused"),
        "{}",
        text(&tests)
    );
}

/// Every metric the alerts and the dashboard read is exported by one of our
/// binaries (checked against their running `/metrics` in
/// receiver/tests/it/dashboards.rs and operator/tests/it/dashboards.rs) or listed
/// as another project's, by name: nothing is skipped silently.
#[test]
fn every_metric_the_chart_reads_has_a_known_exporter() {
    use hookwarden_tests::promql::{EXTERNAL, Exporter, chart_expressions};

    let expressions = chart_expressions().unwrap_or_else(|e| panic!("{e}"));
    let mut by_exporter: std::collections::BTreeMap<Exporter, BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for expression in &expressions {
        for metric in expression.selectors.keys() {
            let exporter = Exporter::of(metric)
                .unwrap_or_else(|| panic!("{}: nobody exports {metric}", expression.place));
            by_exporter
                .entry(exporter)
                .or_default()
                .insert(metric.clone());
        }
    }
    for exporter in [
        Exporter::Receiver,
        Exporter::Forwarder,
        Exporter::Operator,
        Exporter::External,
    ] {
        assert!(
            by_exporter.get(&exporter).is_some_and(|m| !m.is_empty()),
            "nothing read from {exporter:?}: {by_exporter:?}"
        );
    }
    let external: BTreeSet<String> = EXTERNAL.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    assert_eq!(
        by_exporter[&Exporter::External],
        external,
        "every external metric is used"
    );
}
