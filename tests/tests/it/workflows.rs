//! The GitHub Actions workflows (`.github/workflows/`): they cannot run here
//! (no container engine, no GitHub), so they are checked statically with
//! the pinned actionlint, and the release is checked against what it ships:
//! the images are the Dockerfile's targets, pushed to the repositories the
//! chart deploys by default, with the Helm the tests pin, every action
//! pinned to a commit.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use hookwarden_tests::tools::{pinned_version, repo_root, require_tool};
use serde_yaml_ng::Value;

fn workflows() -> Vec<PathBuf> {
    let dir = repo_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

fn actionlint(files: &[PathBuf]) -> (bool, String) {
    let tool = require_tool("actionlint").unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(tool)
        .arg("-no-color")
        .args(files)
        .output()
        .expect("actionlint runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn yaml(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn actionlint_passes_every_workflow_and_catches_a_broken_one() {
    let files = workflows();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.contains(&"release.yml".to_owned()), "{names:?}");
    assert!(names.contains(&"ci.yml".to_owned()), "{names:?}");
    let (ok, report) = actionlint(&files);
    assert!(ok, "actionlint:\n{report}");

    // The linter really checks: a script injection and a missing job are found.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "on: issues\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nowhere\n    steps:\n      \
         - run: echo \"${{ github.event.issue.title }}\"\n",
    )
    .expect("write");
    let (ok, report) = actionlint(&[broken]);
    assert!(!ok, "{report}");
    assert!(report.contains("nowhere"), "{report}");
    assert!(report.contains("github.event.issue.title"), "{report}");
}

#[test]
fn the_release_ships_the_dockerfile_targets_to_the_charts_repositories() {
    let release = yaml(&repo_root().join(".github/workflows/release.yml"));
    let env = &release["env"];
    let prefix = env["IMAGE_PREFIX"].as_str().expect("env.IMAGE_PREFIX");
    assert_eq!(
        env["HELM_VERSION"].as_str(),
        pinned_version("HELM_VERSION"),
        "the release packages the chart with the Helm the tests pin"
    );
    let components: BTreeSet<String> = release["jobs"]["images"]["strategy"]["matrix"]["component"]
        .as_sequence()
        .expect("the images matrix")
        .iter()
        .map(|c| c.as_str().expect("a name").to_owned())
        .collect();

    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let targets: BTreeSet<String> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .map(|t| t.trim().to_owned())
        .filter(|t| t != "build")
        .collect();
    assert_eq!(
        components, targets,
        "every image target is released, and only those"
    );

    let values = yaml(&repo_root().join("charts/hookwarden/values.yaml"));
    for component in &components {
        assert_eq!(
            values["image"][component.as_str()]["repository"].as_str(),
            Some(format!("{prefix}/{component}").as_str()),
            "the chart deploys {component} from where the release pushes it"
        );
        assert_eq!(
            values["image"][component.as_str()]["tag"].as_str(),
            Some(""),
            "the chart's default tag is its appVersion, the released version"
        );
    }
}

#[test]
fn every_action_is_pinned_to_a_commit() {
    for file in workflows() {
        let text = std::fs::read_to_string(&file).expect("workflow");
        for line in text.lines() {
            let Some(used) = line.trim().trim_start_matches("- ").strip_prefix("uses:") else {
                continue;
            };
            let reference = used.split('#').next().unwrap_or_default().trim();
            let (_, commit) = reference
                .split_once('@')
                .unwrap_or_else(|| panic!("{}: {reference} has no @ref", file.display()));
            assert!(
                commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "{}: {reference} is not pinned to a commit",
                file.display()
            );
            assert!(
                used.contains("# v"),
                "{}: {reference} does not say which release the commit is",
                file.display()
            );
        }
    }
}
