//! Published source ranges (`spec.allowedSources`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One published list of source ranges: exactly one of `provider` (a list
/// Hookwarden knows) or `url` with `jsonPath` (any other).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.provider) != has(self.url)").message("allowedSources: set exactly one of provider and url")))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.url) == has(self.jsonPath)").message("allowedSources: jsonPath goes with url, and url needs it")))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.url) || self.url.startsWith('https://')").message("allowedSources: url must be https://")))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.provider) || (!has(self.service) && !has(self.region))").message("allowedSources: service and region go with provider")))]
pub struct AllowedSource {
    /// A provider's published list (see `docs/providers.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<RangeProvider>,
    /// Which of the provider's lists: `github` the key of its `meta` API
    /// (default `hooks`); `paddle` `live` (default) or `sandbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub service: Option<String>,
    /// Which region's list: `aws-sns` an AWS region of `ip-ranges.json`
    /// (default: every region); `pagerduty` `us` (default) or `eu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// A list no preset knows: an `https` URL (port 443, a public DNS name)
    /// serving JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    pub url: Option<String>,
    /// Where the ranges are in the JSON at `url`: `$` the document, `.name`
    /// a member, `[*]` every element of an array, e.g. `$.hooks` or
    /// `$.prefixes[*].ip_prefix`; it must end at strings (CIDRs or
    /// addresses) or arrays of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub json_path: Option<String>,
}

/// The providers whose published source ranges Hookwarden reads (their
/// documents and fields: `docs/providers.md`). A set of its own, not
/// that of `spec.provider`: not every verified provider publishes
/// ranges, and ranges are useful for senders that are not presets.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RangeProvider {
    /// GitHub: `https://api.github.com/meta`, the key `service` names
    /// (default `hooks`).
    Github,
    /// Bitbucket Cloud: `https://ip-ranges.atlassian.com/`, the items of
    /// product `bitbucket` with direction `egress`.
    Bitbucket,
    /// Stripe webhooks: `https://stripe.com/files/ips/ips_webhooks.json`.
    Stripe,
    /// PagerDuty webhooks: the JSON safelist of the US (default) or EU
    /// service region at `developer.pagerduty.com`.
    Pagerduty,
    /// Zoom: `https://assets.zoom.us/docs/ipranges/Zoom.txt`, every range
    /// Zoom publishes (there is no webhook-only list).
    Zoom,
    /// Paddle Billing: `https://api.paddle.com/ips` (`sandbox`:
    /// `https://sandbox-api.paddle.com/ips`).
    Paddle,
    /// Amazon SNS: `https://ip-ranges.amazonaws.com/ip-ranges.json`, the
    /// prefixes of service `AMAZON` (of `region`, if given). AWS publishes
    /// no SNS-only subset: this is all of AWS.
    AwsSns,
}

impl RangeProvider {
    /// Every value, in the order of the enum (and of docs/providers.md); a
    /// test checks it against the CRD schema's list.
    pub const ALL: &'static [RangeProvider] = &[
        Self::Github,
        Self::Bitbucket,
        Self::Stripe,
        Self::Pagerduty,
        Self::Zoom,
        Self::Paddle,
        Self::AwsSns,
    ];

    /// The name written in a manifest (`aws-sns`, ...).
    pub fn manifest_name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Bitbucket => "bitbucket",
            Self::Stripe => "stripe",
            Self::Pagerduty => "pagerduty",
            Self::Zoom => "zoom",
            Self::Paddle => "paddle",
            Self::AwsSns => "aws-sns",
        }
    }

    /// The provider a manifest name stands for.
    pub fn from_manifest_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|provider| provider.manifest_name() == name)
    }
}

impl std::fmt::Display for RangeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.manifest_name())
    }
}
