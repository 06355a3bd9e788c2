//! Source ranges that providers publish (`spec.allowedSources`): which
//! document each is, how it is parsed ([`formats`]), when a parsed list is
//! believed ([`plausibility`]) and how it is fetched ([`fetch`]).
//!
//! One module for every runtime: the operator fetches each list once for
//! all endpoints and writes the ranges into the receivers' configuration;
//! a standalone receiver fetches its own (see [`local`]); the CLI's
//! `hookwarden ranges fetch` writes a list into a file. All of them go
//! through [`fetch::RangeFetcher::fetch`], so the same bounds, parsers and
//! plausibility rules apply everywhere.

pub mod age;
pub mod fetch;
pub mod formats;
pub mod local;
pub mod plausibility;

use std::collections::BTreeSet;

use hookwarden_crds::{AllowedSource, RangeProvider, WebhookEndpointSpec};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::verify::keys::KeyUrl;
use crate::verify::keys::url::range_list_url;
use formats::{FormatError, JsonPath};

/// The field path of the published sources in the spec.
pub const ALLOWED_SOURCES_FIELD: &str = "spec.allowedSources";

/// GitHub's `meta` API.
pub const GITHUB_META_URL: &str = "https://api.github.com/meta";
/// Atlassian's ranges of all its cloud products, Bitbucket's among them.
pub const ATLASSIAN_URL: &str = "https://ip-ranges.atlassian.com/";
/// Stripe's webhook senders.
pub const STRIPE_WEBHOOKS_URL: &str = "https://stripe.com/files/ips/ips_webhooks.json";
/// PagerDuty's webhook senders, US service region.
pub const PAGERDUTY_US_URL: &str =
    "https://developer.pagerduty.com/ip-safelists/webhooks-us-service-region-json";
/// PagerDuty's webhook senders, EU service region.
pub const PAGERDUTY_EU_URL: &str =
    "https://developer.pagerduty.com/ip-safelists/webhooks-eu-service-region-json";
/// Every range Zoom publishes.
pub const ZOOM_URL: &str = "https://assets.zoom.us/docs/ipranges/Zoom.txt";
/// Paddle Billing's addresses, live.
pub const PADDLE_URL: &str = "https://api.paddle.com/ips";
/// Paddle Billing's addresses, sandbox.
pub const PADDLE_SANDBOX_URL: &str = "https://sandbox-api.paddle.com/ips";
/// Every range of AWS.
pub const AWS_URL: &str = "https://ip-ranges.amazonaws.com/ip-ranges.json";

/// Why an `allowedSources` entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Neither or both of `provider` and `url`.
    #[error("set exactly one of provider and url")]
    ProviderOrUrl,
    /// `service` or `region` the provider does not have.
    #[error("{provider} has no {field} {value:?} (see docs/providers.md)")]
    Unsupported {
        /// The provider.
        provider: RangeProvider,
        /// `service` or `region`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// The URL is not `https` on port 443 to a DNS name.
    #[error("url must be https:// on port 443 to a DNS name, without userinfo or fragment")]
    BadUrl,
    /// `jsonPath` is missing or invalid.
    #[error(transparent)]
    Path(FormatError),
    /// `jsonPath`, `service` or `region` where they do not belong.
    #[error("{0} goes with {1} only")]
    Misplaced(&'static str, &'static str),
}

/// One published list, resolved from an `allowedSources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListSource {
    /// GitHub's `meta`, one key.
    Github {
        /// The key, e.g. `hooks`.
        service: String,
    },
    /// Atlassian's ranges of Bitbucket, egress.
    Bitbucket,
    /// Stripe's webhook senders.
    Stripe,
    /// PagerDuty's webhook senders.
    Pagerduty {
        /// The EU service region instead of the US one.
        eu: bool,
    },
    /// Zoom's published ranges.
    Zoom,
    /// Paddle Billing's addresses.
    Paddle {
        /// The sandbox's instead of live.
        sandbox: bool,
    },
    /// AWS's ranges (service `AMAZON`), for Amazon SNS.
    AwsSns {
        /// Only this region's.
        region: Option<String>,
    },
    /// Any JSON document.
    Url {
        /// Where.
        url: KeyUrl,
        /// Which strings.
        path: JsonPath,
    },
}

/// `value` is a lower-case name of letters, digits, `_` and `-`.
fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl ListSource {
    /// The list an `allowedSources` entry names (the CRD's CEL rules check
    /// the same shape; this is what a standalone manifest gets too).
    pub fn from_spec(entry: &AllowedSource) -> Result<Self, SourceError> {
        match (entry.provider, &entry.url) {
            (Some(provider), None) => {
                if entry.json_path.is_some() {
                    return Err(SourceError::Misplaced("jsonPath", "url"));
                }
                Self::of_provider(provider, entry.service.as_deref(), entry.region.as_deref())
            }
            (None, Some(url)) => {
                if entry.service.is_some() || entry.region.is_some() {
                    return Err(SourceError::Misplaced("service and region", "provider"));
                }
                let url = range_list_url(url).ok_or(SourceError::BadUrl)?;
                let path = entry
                    .json_path
                    .as_deref()
                    .ok_or(SourceError::Misplaced("url", "jsonPath"))
                    .and_then(|p| JsonPath::parse(p).map_err(SourceError::Path))?;
                Ok(Self::Url { url, path })
            }
            _ => Err(SourceError::ProviderOrUrl),
        }
    }

    fn of_provider(
        provider: RangeProvider,
        service: Option<&str>,
        region: Option<&str>,
    ) -> Result<Self, SourceError> {
        let unsupported = |field, value: &str| SourceError::Unsupported {
            provider,
            field,
            value: value.to_owned(),
        };
        // Only the providers that have one take a service or a region.
        let takes = match provider {
            RangeProvider::Github | RangeProvider::Paddle => (true, false),
            RangeProvider::Pagerduty | RangeProvider::AwsSns => (false, true),
            _ => (false, false),
        };
        if let (false, Some(value)) = (takes.0, service) {
            return Err(unsupported("service", value));
        }
        if let (false, Some(value)) = (takes.1, region) {
            return Err(unsupported("region", value));
        }
        Ok(match provider {
            RangeProvider::Github => {
                let service = service.unwrap_or("hooks");
                if !is_name(service) {
                    return Err(unsupported("service", service));
                }
                Self::Github {
                    service: service.to_owned(),
                }
            }
            RangeProvider::Bitbucket => Self::Bitbucket,
            RangeProvider::Stripe => Self::Stripe,
            RangeProvider::Pagerduty => match region.unwrap_or("us") {
                "us" => Self::Pagerduty { eu: false },
                "eu" => Self::Pagerduty { eu: true },
                other => return Err(unsupported("region", other)),
            },
            RangeProvider::Zoom => Self::Zoom,
            RangeProvider::Paddle => match service.unwrap_or("live") {
                "live" => Self::Paddle { sandbox: false },
                "sandbox" => Self::Paddle { sandbox: true },
                other => return Err(unsupported("service", other)),
            },
            RangeProvider::AwsSns => match region {
                Some(region) if !is_name(region) || region.contains('_') => {
                    return Err(unsupported("region", region));
                }
                region => Self::AwsSns {
                    region: region.map(str::to_owned),
                },
            },
        })
    }

    /// A stable name of the list, unique per list, usable as a ConfigMap
    /// key and a file name: `github-hooks`, `aws-sns-us-east-1`,
    /// `url-<16 hex digits of SHA-256 of the URL and path>`.
    pub fn key(&self) -> String {
        match self {
            Self::Github { service } => format!("github-{service}"),
            Self::Bitbucket => "bitbucket".to_owned(),
            Self::Stripe => "stripe-webhooks".to_owned(),
            Self::Pagerduty { eu: false } => "pagerduty-us".to_owned(),
            Self::Pagerduty { eu: true } => "pagerduty-eu".to_owned(),
            Self::Zoom => "zoom".to_owned(),
            Self::Paddle { sandbox: false } => "paddle-live".to_owned(),
            Self::Paddle { sandbox: true } => "paddle-sandbox".to_owned(),
            Self::AwsSns { region: None } => "aws-sns".to_owned(),
            Self::AwsSns {
                region: Some(region),
            } => format!("aws-sns-{region}"),
            Self::Url { url, path } => {
                let mut hash = Sha256::new();
                hash.update(url.text().as_bytes());
                hash.update([0]);
                hash.update(path.as_str().as_bytes());
                format!("url-{}", &hex::encode(hash.finalize())[..16])
            }
        }
    }

    /// The URL of the document, as text.
    pub fn url_text(&self) -> String {
        match self {
            Self::Url { url, .. } => url.text(),
            other => other.fixed_url().to_owned(),
        }
    }

    fn fixed_url(&self) -> &'static str {
        match self {
            Self::Github { .. } => GITHUB_META_URL,
            Self::Bitbucket => ATLASSIAN_URL,
            Self::Stripe => STRIPE_WEBHOOKS_URL,
            Self::Pagerduty { eu: false } => PAGERDUTY_US_URL,
            Self::Pagerduty { eu: true } => PAGERDUTY_EU_URL,
            Self::Zoom => ZOOM_URL,
            Self::Paddle { sandbox: false } => PADDLE_URL,
            Self::Paddle { sandbox: true } => PADDLE_SANDBOX_URL,
            Self::AwsSns { .. } => AWS_URL,
            Self::Url { .. } => "",
        }
    }

    /// The URL of the document, as fetched.
    pub fn url(&self) -> Option<KeyUrl> {
        match self {
            Self::Url { url, .. } => Some(url.clone()),
            other => range_list_url(other.fixed_url()),
        }
    }

    /// For people: what the list is and where it comes from, e.g.
    /// `github hooks (https://api.github.com/meta)`.
    pub fn describe(&self) -> String {
        let what = match self {
            Self::Github { service } => format!("github {service}"),
            Self::Bitbucket => "bitbucket egress".to_owned(),
            Self::Stripe => "stripe webhooks".to_owned(),
            Self::Pagerduty { eu } => {
                format!("pagerduty webhooks {}", if *eu { "eu" } else { "us" })
            }
            Self::Zoom => "zoom".to_owned(),
            Self::Paddle { sandbox } => {
                format!("paddle {}", if *sandbox { "sandbox" } else { "live" })
            }
            Self::AwsSns { region } => format!(
                "aws-sns (AWS service AMAZON, {})",
                region.as_deref().unwrap_or("every region")
            ),
            Self::Url { path, .. } => format!("{} of", path.as_str()),
        };
        format!("{what} ({})", self.url_text())
    }

    /// The ranges in `body`, the document at [`ListSource::url`]:
    /// canonical (sorted, without duplicates).
    pub fn parse(&self, body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
        let nets = match self {
            Self::Github { service } => formats::github_meta(body, service)?,
            Self::Bitbucket => formats::atlassian(body, "bitbucket")?,
            Self::Stripe => formats::stripe(body)?,
            Self::Pagerduty { .. } => formats::pagerduty(body)?,
            Self::Zoom => formats::text_lines(body)?,
            Self::Paddle { .. } => formats::paddle(body)?,
            Self::AwsSns { region } => formats::aws(body, "AMAZON", region.as_deref())?,
            Self::Url { path, .. } => path.select(body)?,
        };
        Ok(canonical(nets))
    }
}

/// Sorted, without duplicates.
pub fn canonical(nets: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    nets.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The lists of `spec.allowedSources`, in order, or the first entry that
/// cannot be used (with its index).
pub fn sources_of(spec: &WebhookEndpointSpec) -> Result<Vec<ListSource>, (usize, SourceError)> {
    spec.allowed_sources
        .iter()
        .enumerate()
        .map(|(index, entry)| ListSource::from_spec(entry).map_err(|err| (index, err)))
        .collect()
}

/// The last good answer of one list, as the operator keeps it in its
/// ConfigMap (JSON) and a standalone receiver in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedList {
    /// [`ListSource::describe`], for people reading the ConfigMap.
    pub source: String,
    /// The ranges, canonical.
    pub cidrs: Vec<String>,
    /// When the list was last confirmed (a `200` or a `304`), Unix seconds.
    pub fetched_at: i64,
    /// When its content last changed, Unix seconds.
    pub changed_at: i64,
    /// The answer's `ETag`, sent back as `If-None-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The answer's `Last-Modified`, sent back as `If-Modified-Since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl SavedList {
    /// The ranges, parsed again and checked (a saved list is read from a
    /// ConfigMap or a file that someone could have edited): strict, and
    /// plausible by the same rules as a fetched one (without a previous
    /// list to compare with).
    pub fn networks(&self) -> Result<Vec<IpNet>, String> {
        let nets = self
            .cidrs
            .iter()
            .enumerate()
            .map(|(index, text)| formats::parse_entry(index, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| err.to_string())?;
        let nets = canonical(nets);
        plausibility::check(&nets, None).map_err(|err| err.to_string())?;
        Ok(nets)
    }
}

/// What changed between two canonical lists: (added, removed).
pub fn diff(before: &[IpNet], after: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    let before_set: BTreeSet<&IpNet> = before.iter().collect();
    let after_set: BTreeSet<&IpNet> = after.iter().collect();
    (
        after
            .iter()
            .filter(|n| !before_set.contains(n))
            .copied()
            .collect(),
        before
            .iter()
            .filter(|n| !after_set.contains(n))
            .copied()
            .collect(),
    )
}

/// `nets` as text, e.g. for [`SavedList::cidrs`] or a spec's
/// `allowedSourceCidrs`.
pub fn texts(nets: &[IpNet]) -> Vec<String> {
    nets.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> AllowedSource {
        serde_json::from_str(yaml).expect("entry")
    }

    #[test]
    fn entries_resolve_to_lists_with_stable_keys() {
        for (json, key, url) in [
            (r#"{"provider": "github"}"#, "github-hooks", GITHUB_META_URL),
            (
                r#"{"provider": "github", "service": "web"}"#,
                "github-web",
                GITHUB_META_URL,
            ),
            (r#"{"provider": "bitbucket"}"#, "bitbucket", ATLASSIAN_URL),
            (
                r#"{"provider": "stripe"}"#,
                "stripe-webhooks",
                STRIPE_WEBHOOKS_URL,
            ),
            (
                r#"{"provider": "pagerduty", "region": "eu"}"#,
                "pagerduty-eu",
                PAGERDUTY_EU_URL,
            ),
            (r#"{"provider": "zoom"}"#, "zoom", ZOOM_URL),
            (
                r#"{"provider": "paddle", "service": "sandbox"}"#,
                "paddle-sandbox",
                PADDLE_SANDBOX_URL,
            ),
            (
                r#"{"provider": "aws-sns", "region": "eu-west-1"}"#,
                "aws-sns-eu-west-1",
                AWS_URL,
            ),
            (r#"{"provider": "aws-sns"}"#, "aws-sns", AWS_URL),
        ] {
            let source = ListSource::from_spec(&entry(json)).expect(json);
            assert_eq!(source.key(), key);
            assert_eq!(
                source.url().map(|u| u.text()).as_deref(),
                Some(url),
                "{json}"
            );
        }
        let custom = ListSource::from_spec(&entry(
            r#"{"url": "https://example.com/ranges.json", "jsonPath": "$.cidrs"}"#,
        ))
        .expect("url");
        assert!(custom.key().starts_with("url-") && custom.key().len() == 20);
        assert_eq!(
            custom,
            ListSource::from_spec(&entry(
                r#"{"url": "https://example.com/ranges.json", "jsonPath": "$.cidrs"}"#,
            ))
            .expect("url")
        );
    }

    #[test]
    fn every_provider_url_passes_the_url_rule() {
        for provider in RangeProvider::ALL {
            let source = ListSource::from_spec(&AllowedSource {
                provider: Some(*provider),
                ..AllowedSource::default()
            })
            .expect("defaults");
            assert!(source.url().is_some(), "{provider}");
        }
        for url in [PAGERDUTY_US_URL, PAGERDUTY_EU_URL, PADDLE_SANDBOX_URL] {
            assert!(range_list_url(url).is_some(), "{url}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for json in [
            r#"{}"#,
            r#"{"provider": "github", "url": "https://example.com/x"}"#,
            r#"{"provider": "github", "region": "us"}"#,
            r#"{"provider": "github", "service": "Hooks"}"#,
            r#"{"provider": "github", "service": "../x"}"#,
            r#"{"provider": "stripe", "service": "webhooks"}"#,
            r#"{"provider": "pagerduty", "region": "ap"}"#,
            r#"{"provider": "paddle", "service": "test"}"#,
            r#"{"provider": "aws-sns", "region": "us_east"}"#,
            r#"{"provider": "github", "jsonPath": "$.hooks"}"#,
            r#"{"url": "https://example.com/x"}"#,
            r#"{"url": "http://example.com/x", "jsonPath": "$"}"#,
            r#"{"url": "https://10.0.0.1/x", "jsonPath": "$"}"#,
            r#"{"url": "https://localhost/x", "jsonPath": "$"}"#,
            r#"{"url": "https://example.com:8443/x", "jsonPath": "$"}"#,
            r#"{"url": "https://example.com/x", "jsonPath": "hooks"}"#,
            r#"{"url": "https://example.com/x", "jsonPath": "$", "service": "a"}"#,
        ] {
            assert!(ListSource::from_spec(&entry(json)).is_err(), "{json}");
        }
    }

    #[test]
    fn saved_lists_are_checked_when_read_back() {
        let saved = |cidrs: &[&str]| SavedList {
            source: "test".to_owned(),
            cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
            fetched_at: 0,
            changed_at: 0,
            etag: None,
            last_modified: None,
        };
        assert_eq!(
            saved(&["10.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8"])
                .networks()
                .map(|n| texts(&n)),
            Ok(vec!["10.0.0.0/8".to_owned(), "127.0.0.0/8".to_owned()])
        );
        assert!(saved(&["0.0.0.0/0"]).networks().is_err());
        assert!(saved(&[]).networks().is_err());
        assert!(saved(&["10.0.0.1/8"]).networks().is_err());
    }

    #[test]
    fn diffs_name_added_and_removed() {
        let a = canonical([
            "10.0.0.0/8".parse().expect("net"),
            "127.0.0.0/8".parse().expect("net"),
        ]);
        let b = canonical([
            "127.0.0.0/8".parse().expect("net"),
            "192.0.2.0/24".parse().expect("net"),
        ]);
        let (added, removed) = diff(&a, &b);
        assert_eq!(texts(&added), ["192.0.2.0/24"]);
        assert_eq!(texts(&removed), ["10.0.0.0/8"]);
    }
}
