//! `source_range_list_age_seconds{list}`: how long ago each published list
//! was last fetched (a `200` or a `304`), computed at scrape time, so the
//! age grows between fetches and shows a list that stopped refreshing.
//!
//! One collector for both places that keep lists: the operator (all of a
//! cluster's lists, `hookwarden_operator_` prefix) and a standalone
//! receiver (its own, `hookwarden_` prefix).

use std::fmt::Debug;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::fetch::unix_now;

/// The metric's name without the registry's prefix.
pub const LIST_AGE_METRIC: &str = "source_range_list_age_seconds";

/// Whatever keeps lists: each list's key (the `list` label) and when it was
/// last fetched, Unix seconds.
pub trait ListFetchTimes: Debug + Send + Sync + 'static {
    /// `(list key, fetched at)` of every list known now.
    fn fetch_times(&self) -> Vec<(String, i64)>;
}

/// The collector of [`LIST_AGE_METRIC`] over `lists`.
#[derive(Debug)]
pub struct ListAgeCollector(pub Arc<dyn ListFetchTimes>);

impl Collector for ListAgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut lists = self.0.fetch_times();
        if lists.is_empty() {
            return Ok(());
        }
        lists.sort();
        let now = unix_now();
        let mut family = encoder.encode_descriptor(
            LIST_AGE_METRIC,
            "Seconds since each published source range list (spec.allowedSources) was last fetched successfully",
            None,
            MetricType::Gauge,
        )?;
        for (list, fetched_at) in lists {
            let gauge = ConstGauge::new(now.saturating_sub(fetched_at).max(0));
            gauge.encode(family.encode_family(&[("list", list.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug)]
    struct Fixed(Vec<(String, i64)>);

    impl ListFetchTimes for Fixed {
        fn fetch_times(&self) -> Vec<(String, i64)> {
            self.0.clone()
        }
    }

    fn scrape(lists: Vec<(String, i64)>) -> String {
        let mut registry = Registry::with_prefix("hookwarden");
        registry.register_collector(Box::new(ListAgeCollector(Arc::new(Fixed(lists)))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    }

    #[test]
    fn ages_are_seconds_since_the_fetch_per_list() {
        let now = unix_now();
        let text = scrape(vec![
            ("stripe-webhooks".to_owned(), now - 7200),
            ("github-hooks".to_owned(), now - 60),
        ]);
        let line = |list: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "hookwarden_source_range_list_age_seconds{{list=\"{list}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("no age of {list} in:\n{text}"))
        };
        // A scrape a second later still reads the same minute.
        assert!((60..=62).contains(&line("github-hooks")), "{text}");
        assert!((7200..=7202).contains(&line("stripe-webhooks")), "{text}");
    }

    #[test]
    fn a_fetch_time_in_the_future_reads_as_zero_and_no_lists_no_family() {
        let text = scrape(vec![("zoom".to_owned(), unix_now() + 3600)]);
        assert!(
            text.contains("hookwarden_source_range_list_age_seconds{list=\"zoom\"} 0"),
            "{text}"
        );
        assert!(!scrape(Vec::new()).contains(LIST_AGE_METRIC));
    }
}
