//! `hookwarden ranges fetch`: one published list of source ranges into a
//! file (or standard output), through the same fetch, parsers and
//! plausibility rules as the operator and the receiver
//! (`hookwarden_receiver::ranges`).

use std::path::Path;

use hookwarden_crds::{AllowedSource, RangeProvider};
use hookwarden_receiver::ranges::fetch::{RangeFetcher, unix_now};
use hookwarden_receiver::ranges::local::{read_list_file, write_file};
use hookwarden_receiver::ranges::{ListSource, SavedList, texts};

/// The `allowedSources` entry `hookwarden ranges fetch` was asked for: a
/// provider name or an `https://` URL (then `json_path` is required).
pub fn source_of(
    name: &str,
    service: Option<String>,
    region: Option<String>,
    json_path: Option<String>,
) -> Result<ListSource, String> {
    let entry = if name.starts_with("https://") || name.starts_with("http://") {
        AllowedSource {
            url: Some(name.to_owned()),
            json_path,
            service,
            region,
            ..AllowedSource::default()
        }
    } else {
        let provider = RangeProvider::from_manifest_name(name).ok_or_else(|| {
            let known: Vec<&str> = RangeProvider::ALL
                .iter()
                .map(|p| p.manifest_name())
                .collect();
            format!(
                "unknown provider {name:?}: one of {} or an https:// URL",
                known.join(", ")
            )
        })?;
        AllowedSource {
            provider: Some(provider),
            service,
            region,
            json_path,
            ..AllowedSource::default()
        }
    };
    ListSource::from_spec(&entry).map_err(|err| err.to_string())
}

/// Fetches `source` with `fetcher` and writes its ranges to `output` (one
/// CIDR per line, atomically), or returns them as text when there is no
/// `output`. An existing `output` is the previous list: a list that shrank
/// by more than half against it is refused like anywhere else. Returns
/// (the text written to standard output, a summary for people).
pub async fn fetch(
    fetcher: &RangeFetcher,
    source: &ListSource,
    output: Option<&Path>,
) -> Result<(String, String), String> {
    let previous = output
        .filter(|path| path.exists())
        .map(|path| read_list_file(path).map_err(|err| format!("{}: {err}", path.display())))
        .transpose()?
        .map(|networks| SavedList {
            source: source.describe(),
            cidrs: texts(&networks),
            fetched_at: 0,
            changed_at: 0,
            etag: None,
            last_modified: None,
        });
    let fetched = fetcher
        .fetch(source, previous.as_ref(), unix_now())
        .await
        .map_err(|err| format!("{}: {err}", source.describe()))?;
    let changes = match &fetched.changes {
        None => "unchanged".to_owned(),
        Some((added, removed)) => format!("{} added, {} removed", added.len(), removed.len()),
    };
    let summary = format!(
        "{}: {} ranges ({changes}); for hookwarden-receiver --source-ranges-dir the file is {}.txt",
        source.describe(),
        fetched.networks.len(),
        source.key()
    );
    match output {
        Some(path) => {
            write_file(path, &source.describe(), &fetched.networks)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            Ok((String::new(), summary))
        }
        None => {
            let mut text = String::new();
            for cidr in texts(&fetched.networks) {
                text.push_str(&cidr);
                text.push('\n');
            }
            Ok((text, summary))
        }
    }
}
