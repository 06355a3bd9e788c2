//! The documents providers publish their ranges in, one strict parser each.
//!
//! Strict means: the whole document is refused when any entry the list is
//! made of is not a valid CIDR (or a bare address, a single host) or a
//! network with host bits set, when the field that holds the list is
//! missing or of another type, or when there are more than
//! [`MAX_ENTRIES`]. A list that is half understood is never applied: the
//! last good one stays. Documents are read whole, so their size is capped
//! by the fetch ([`super::fetch::MAX_DOCUMENT_BYTES`]); JSON nesting is
//! bounded by serde_json's recursion limit.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::Value;

/// The most entries one list may have (AWS's whole `ip-ranges.json` has
/// about 10 000 prefixes).
pub const MAX_ENTRIES: usize = 20_000;

/// The longest entry looked at; a CIDR is at most 43 characters.
const MAX_ENTRY_LEN: usize = 64;

/// Why a document is not a list of ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not UTF-8, or not JSON where JSON is expected.
    #[error("the document is not valid {0}")]
    Syntax(&'static str),
    /// The field that holds the list is missing or of another type.
    #[error("the document has no {0}")]
    Missing(String),
    /// An entry is not a string.
    #[error("entry {index} of {field} is not a string")]
    NotAString {
        /// Where the list is.
        field: String,
        /// Its position.
        index: usize,
    },
    /// An entry is not a CIDR or an address (the text is cut to 64
    /// characters).
    #[error("entry {index} {value:?} is not a valid CIDR: {reason}")]
    BadEntry {
        /// Its position.
        index: usize,
        /// The entry, cut.
        value: String,
        /// Why.
        reason: String,
    },
    /// More than [`MAX_ENTRIES`].
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
    /// A `jsonPath` that is not of the supported subset.
    #[error("invalid jsonPath {0:?}: {1}")]
    BadPath(String, &'static str),
}

/// One entry: a CIDR without host bits, or a bare address (`/32`, `/128`).
pub fn parse_entry(index: usize, text: &str) -> Result<IpNet, FormatError> {
    let bad = |reason: String| FormatError::BadEntry {
        index,
        value: text.chars().take(MAX_ENTRY_LEN).collect(),
        reason,
    };
    let text = text.trim();
    if text.len() > MAX_ENTRY_LEN {
        return Err(bad("too long".to_owned()));
    }
    if !text.contains('/') {
        return IpAddr::from_str(text)
            .map(IpNet::from)
            .map_err(|err| bad(err.to_string()));
    }
    let net = IpNet::from_str(text).map_err(|err| bad(err.to_string()))?;
    if net.trunc() != net {
        return Err(bad(format!(
            "host bits are set; the network is {}",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Parses `entries` (strings), refusing the lot on the first bad one.
fn parse_all<'a>(
    field: &str,
    entries: impl IntoIterator<Item = &'a Value>,
) -> Result<Vec<IpNet>, FormatError> {
    let mut nets = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        if index >= MAX_ENTRIES {
            return Err(FormatError::TooMany);
        }
        let text = entry.as_str().ok_or_else(|| FormatError::NotAString {
            field: field.to_owned(),
            index,
        })?;
        nets.push(parse_entry(index, text)?);
    }
    Ok(nets)
}

fn json(body: &[u8]) -> Result<Value, FormatError> {
    serde_json::from_slice(body).map_err(|_| FormatError::Syntax("JSON"))
}

fn array<'a>(value: Option<&'a Value>, field: &str) -> Result<&'a Vec<Value>, FormatError> {
    value
        .and_then(Value::as_array)
        .ok_or_else(|| FormatError::Missing(format!("array {field}")))
}

/// GitHub's `https://api.github.com/meta`: an object whose key `service`
/// (e.g. `hooks`) is an array of CIDRs.
pub fn github_meta(body: &[u8], service: &str) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    parse_all(service, array(document.get(service), service)?)
}

/// Atlassian's `https://ip-ranges.atlassian.com/`: `items`, objects with a
/// `cidr` and the lists `product` and `direction`; the items of `product`
/// with direction `egress` (traffic from Atlassian, what webhooks are).
pub fn atlassian(body: &[u8], product: &str) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    let items = array(document.get("items"), "items")?;
    if items.len() > MAX_ENTRIES {
        return Err(FormatError::TooMany);
    }
    let has = |item: &Value, key: &str, wanted: &str| {
        item.get(key)
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| v.as_str() == Some(wanted)))
    };
    let mut nets = Vec::new();
    for (index, item) in items.iter().enumerate() {
        // Every item must be well formed, not only the ones wanted: a
        // document that changed shape is not half believed.
        let cidr = item
            .get("cidr")
            .ok_or_else(|| FormatError::Missing(format!("cidr in items[{index}]")))?
            .as_str()
            .ok_or_else(|| FormatError::NotAString {
                field: "items[].cidr".to_owned(),
                index,
            })?;
        let net = parse_entry(index, cidr)?;
        if has(item, "product", product) && has(item, "direction", "egress") {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// Stripe's `https://stripe.com/files/ips/ips_webhooks.json`: the array
/// `WEBHOOKS` of addresses.
pub fn stripe(body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    parse_all("WEBHOOKS", array(document.get("WEBHOOKS"), "WEBHOOKS")?)
}

/// PagerDuty's webhook safelist (`...-service-region-json`): a JSON array
/// of addresses.
pub fn pagerduty(body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    parse_all("the document", array(Some(&document), "at the top")?)
}

/// Paddle's `GET /ips`: `data.ipv4_cidrs`.
pub fn paddle(body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    let cidrs = document.get("data").and_then(|data| data.get("ipv4_cidrs"));
    parse_all("data.ipv4_cidrs", array(cidrs, "data.ipv4_cidrs")?)
}

/// AWS's `https://ip-ranges.amazonaws.com/ip-ranges.json`: `prefixes`
/// (`ip_prefix`) and `ipv6_prefixes` (`ipv6_prefix`), each with `region`
/// and `service`; those of `service`, and of `region` when given.
pub fn aws(body: &[u8], service: &str, region: Option<&str>) -> Result<Vec<IpNet>, FormatError> {
    let document = json(body)?;
    let mut nets = Vec::new();
    for (list, key) in [("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")] {
        let entries = array(document.get(list), list)?;
        if nets.len() + entries.len() > MAX_ENTRIES * 4 {
            return Err(FormatError::TooMany);
        }
        for (index, entry) in entries.iter().enumerate() {
            let text = entry
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| FormatError::Missing(format!("{key} in {list}[{index}]")))?;
            let net = parse_entry(index, text)?;
            let field = |name: &str| entry.get(name).and_then(Value::as_str);
            if field("service") == Some(service)
                && region.is_none_or(|r| field("region") == Some(r))
            {
                nets.push(net);
            }
        }
    }
    if nets.len() > MAX_ENTRIES {
        return Err(FormatError::TooMany);
    }
    Ok(nets)
}

/// A plain text list (Zoom's `Zoom.txt`): one CIDR per line; blank lines
/// and lines starting with `#` are skipped. Also the format of the files
/// `hookwarden ranges fetch` writes and a standalone receiver keeps.
pub fn text_lines(body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
    let text = std::str::from_utf8(body).map_err(|_| FormatError::Syntax("UTF-8"))?;
    let mut nets = Vec::new();
    for (index, line) in text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .enumerate()
    {
        if index >= MAX_ENTRIES {
            return Err(FormatError::TooMany);
        }
        nets.push(parse_entry(index, line)?);
    }
    Ok(nets)
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    /// `.name`: a member of an object.
    Member(String),
    /// `[*]`: every element of an array.
    Each,
}

/// The `jsonPath` of a `url` source: a small subset of JSONPath, enough
/// for the documents providers publish. `$` is the document, `.name` a
/// member (letters, digits, `_` and `-`), `[*]` every element of an
/// array, at most 8 steps; e.g. `$.hooks`, `$.data.ipv4_cidrs`,
/// `$.prefixes[*].ip_prefix`, `$`. Where it ends there must be strings or
/// arrays of strings, and every one is an entry. No filters, no
/// recursion, no indexes: what it selects is obvious from the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

/// The most steps of a [`JsonPath`].
const MAX_STEPS: usize = 8;

impl JsonPath {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let bad = |why| FormatError::BadPath(text.chars().take(256).collect(), why);
        let mut rest = text
            .strip_prefix('$')
            .ok_or_else(|| bad("must start with $"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if steps.len() >= MAX_STEPS {
                return Err(bad("more than 8 steps"));
            }
            if let Some(after) = rest.strip_prefix("[*]") {
                steps.push(Step::Each);
                rest = after;
            } else if let Some(after) = rest.strip_prefix('.') {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(after.len());
                if end == 0 {
                    return Err(bad("a member name is empty or has other characters"));
                }
                steps.push(Step::Member(after[..end].to_owned()));
                rest = &after[end..];
            } else {
                return Err(bad("only .name and [*] are supported"));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The entries `self` selects in the JSON `body`.
    pub fn select(&self, body: &[u8]) -> Result<Vec<IpNet>, FormatError> {
        let document = json(body)?;
        let mut current: Vec<&Value> = vec![&document];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in current {
                match step {
                    Step::Member(name) => next.push(
                        value
                            .get(name.as_str())
                            .ok_or_else(|| FormatError::Missing(self.text.clone()))?,
                    ),
                    Step::Each => next.extend(
                        value
                            .as_array()
                            .ok_or_else(|| FormatError::Missing(self.text.clone()))?,
                    ),
                }
                if next.len() > MAX_ENTRIES {
                    return Err(FormatError::TooMany);
                }
            }
            current = next;
        }
        let mut entries: Vec<&Value> = Vec::new();
        for value in current {
            match value {
                Value::Array(items) => entries.extend(items),
                other => entries.push(other),
            }
        }
        parse_all(&self.text, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = format!("{}/src/ranges/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn texts(nets: &[IpNet]) -> Vec<String> {
        nets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn github_hooks_from_the_meta_sample() {
        let hooks = github_meta(&sample("github-meta.json"), "hooks").expect("parses");
        assert_eq!(
            texts(&hooks),
            [
                "192.30.252.0/22",
                "185.199.108.0/22",
                "140.82.112.0/20",
                "143.55.64.0/20",
                "2a0a:a440::/29",
                "2606:50c0::/32"
            ]
        );
        assert!(github_meta(&sample("github-meta.json"), "web").is_ok());
        assert!(matches!(
            github_meta(&sample("github-meta.json"), "no_such_key"),
            Err(FormatError::Missing(_))
        ));
        // `verifiable_password_authentication` is a boolean, not a list.
        assert!(
            github_meta(
                &sample("github-meta.json"),
                "verifiable_password_authentication"
            )
            .is_err()
        );
    }

    #[test]
    fn bitbucket_egress_from_the_atlassian_sample() {
        let nets = atlassian(&sample("atlassian-ip-ranges.json"), "bitbucket").expect("parses");
        let nets = texts(&nets);
        assert!(nets.contains(&"104.192.136.0/21".to_owned()), "{nets:?}");
        // An ingress-only item and another product's item are left out.
        assert!(!nets.contains(&"13.52.5.0/25".to_owned()), "{nets:?}");
        assert!(!nets.contains(&"18.246.31.208/28".to_owned()), "{nets:?}");
    }

    #[test]
    fn stripe_pagerduty_paddle_zoom_samples() {
        let stripe = stripe(&sample("stripe-ips-webhooks.json")).expect("stripe");
        assert_eq!(stripe.len(), 15);
        assert!(stripe.iter().all(|n| n.prefix_len() == 32));
        let us = pagerduty(&sample("pagerduty-webhooks-us.json")).expect("pagerduty");
        assert_eq!(us.len(), 16);
        let paddle = paddle(&sample("paddle-ips.json")).expect("paddle");
        assert_eq!(texts(&paddle)[0], "34.194.127.46/32");
        let zoom = text_lines(&sample("zoom.txt")).expect("zoom");
        assert!(texts(&zoom).contains(&"170.114.0.0/16".to_owned()));
    }

    #[test]
    fn aws_by_service_and_region() {
        let body = sample("aws-ip-ranges.json");
        let all = aws(&body, "AMAZON", None).expect("parses");
        let east = aws(&body, "AMAZON", Some("us-east-1")).expect("parses");
        assert!(!east.is_empty() && east.len() < all.len());
        assert!(all.iter().any(|n| matches!(n, IpNet::V6(_))), "IPv6 too");
        assert!(
            aws(&body, "AMAZON", Some("xx-nowhere-1"))
                .expect("parses")
                .is_empty()
        );
    }

    #[test]
    fn one_bad_entry_refuses_the_document() {
        for (body, why) in [
            (
                &br#"{"hooks": ["192.30.252.0/22", "not a cidr"]}"#[..],
                "not a cidr",
            ),
            (br#"{"hooks": ["192.30.252.1/22"]}"#, "host bits"),
            (br#"{"hooks": ["10.0.0.0/33"]}"#, "prefix"),
            (br#"{"hooks": [42]}"#, "number"),
            (br#"{"hooks": "192.30.252.0/22"}"#, "string"),
            (br#"{"hooks": ["192.30.252.0/22"]"#, "truncated"),
            (b"<html>rate limited</html>", "html"),
        ] {
            assert!(github_meta(body, "hooks").is_err(), "{why}");
        }
        let long = format!(r#"{{"hooks": ["{}"]}}"#, "1".repeat(10_000));
        let Err(FormatError::BadEntry { value, .. }) = github_meta(long.as_bytes(), "hooks") else {
            panic!("a long entry is refused");
        };
        assert!(value.len() <= 64, "the message is bounded");
        let many: Vec<String> = (0..=MAX_ENTRIES)
            .map(|i| format!("10.{}.{}.0/24", i / 256 % 256, i % 256))
            .collect();
        let body = serde_json::json!({"hooks": many}).to_string();
        assert_eq!(
            github_meta(body.as_bytes(), "hooks"),
            Err(FormatError::TooMany)
        );
        assert!(text_lines(b"10.0.0.0/8\nnonsense\n").is_err());
        assert!(text_lines(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn json_paths() {
        let body = br#"{"a": {"b": ["10.0.0.0/8"]}, "list": [{"p": "1.2.3.0/24"}, {"p": "::1"}], "flat": ["1.1.1.1"]}"#;
        let select = |path: &str| {
            JsonPath::parse(path)
                .and_then(|p| p.select(body))
                .map(|n| texts(&n))
        };
        assert_eq!(select("$.a.b"), Ok(vec!["10.0.0.0/8".to_owned()]));
        assert_eq!(
            select("$.list[*].p"),
            Ok(vec!["1.2.3.0/24".to_owned(), "::1/128".to_owned()])
        );
        assert_eq!(select("$.flat[*]"), Ok(vec!["1.1.1.1/32".to_owned()]));
        assert!(matches!(select("$.nope"), Err(FormatError::Missing(_))));
        assert!(matches!(select("$.a"), Err(FormatError::NotAString { .. })));
        for bad in [
            "",
            "a.b",
            "$..a",
            "$.a[0]",
            "$.a[?(@.x)]",
            "$.a.b.c.d.e.f.g.h.i",
            "$.a b",
        ] {
            assert!(
                matches!(JsonPath::parse(bad), Err(FormatError::BadPath(..))),
                "{bad}"
            );
        }
        // The real documents through the generic form.
        let path = JsonPath::parse("$.prefixes[*].ip_prefix").expect("path");
        assert!(
            !path
                .select(&sample("aws-ip-ranges.json"))
                .expect("aws")
                .is_empty()
        );
        let path = JsonPath::parse("$").expect("path");
        assert_eq!(
            path.select(&sample("pagerduty-webhooks-us.json"))
                .expect("pd")
                .len(),
            16
        );
    }
}
