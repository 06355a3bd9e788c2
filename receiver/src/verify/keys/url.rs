//! Which URLs the receiver may fetch keys from: a strict rule per preset.
//!
//! A signed delivery names where its key is (`SigningCertURL`,
//! `PAYPAL-CERT-URL`), but it is not verified yet when that URL is read, so
//! the URL is attacker-controlled text. Only `https` on the provider's own
//! hosts, on the default port, without userinfo and with the path shape the
//! provider uses is ever fetched; anything else is refused without a
//! connection. Google's keys are at one fixed URL, never taken from a
//! request.

/// The longest URL considered at all.
const MAX_URL_LEN: usize = 2048;

/// An `https` URL that passed a preset's host rule: what the fetcher may GET.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyUrl {
    host: String,
    path_and_query: String,
}

impl KeyUrl {
    /// The host (lower case), also the TLS server name checked.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request target sent.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The URL as text (`https://host/path?query`), the cache key.
    pub fn text(&self) -> String {
        format!("https://{}{}", self.host, self.path_and_query)
    }
}

/// Splits an absolute `https` URL into lower-cased host and path with
/// query. Refused: another scheme, userinfo, a port other than 443, a
/// fragment, an empty or odd host, a path that does not start with `/` or
/// has dot segments or backslashes, anything not visible ASCII.
fn parse_https(text: &str) -> Option<KeyUrl> {
    if text.len() > MAX_URL_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if text.contains('#') || text.contains('\\') {
        return None;
    }
    let rest = text.strip_prefix("https://")?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    if authority.contains('@') {
        return None;
    }
    let host = match authority.split_once(':') {
        Some((host, "443")) => host,
        Some(_) => return None,
        None => authority,
    };
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok || !path_and_query.starts_with('/') {
        return None;
    }
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == "." || segment.contains('%'))
    {
        return None;
    }
    Some(KeyUrl {
        host,
        path_and_query: path_and_query.to_owned(),
    })
}

/// `sns.<region>.amazonaws.com` or, in the China partition,
/// `sns.<region>.amazonaws.com.cn`: the pattern of AWS's own validators
/// (`^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$` in
/// aws-php-sns-message-validator and aws-js-sns-message-validator), which
/// keeps out other amazonaws.com names such as S3 buckets.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let Some(region) = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    region.len() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An SNS `SigningCertURL`: an SNS host and
/// `/SimpleNotificationService-<name>.pem`, no query (the validators insist
/// on `.pem`; every certificate SNS uses is named so).
pub fn sns_cert_url(text: &str) -> Option<KeyUrl> {
    let url = parse_https(text)?;
    let name = url
        .path_and_query
        .strip_prefix("/SimpleNotificationService-")?
        .strip_suffix(".pem")?;
    (is_sns_host(&url.host)
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then_some(url)
}

/// An SNS `SubscribeURL`: an SNS host, path `/`, and a query whose `Action`
/// is `ConfirmSubscription` (what SNS sends; nothing else is ever visited).
pub fn sns_subscribe_url(text: &str) -> Option<KeyUrl> {
    let url = parse_https(text)?;
    let query = url.path_and_query.strip_prefix("/?")?;
    let mut actions = form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name == "Action");
    let confirm = matches!(actions.next(), Some((_, action)) if action == "ConfirmSubscription")
        && actions.next().is_none();
    (is_sns_host(&url.host) && confirm).then_some(url)
}

/// PayPal's API hosts, live and sandbox (the `api-m` names are the ones
/// PayPal's current docs use for the same APIs).
const PAYPAL_HOSTS: [&str; 4] = [
    "api.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.paypal.com",
    "api-m.sandbox.paypal.com",
];

/// A `PAYPAL-CERT-URL`: a PayPal API host and
/// `/v1/notifications/certs/<CERT-id>`, no query.
pub fn paypal_cert_url(text: &str) -> Option<KeyUrl> {
    let url = parse_https(text)?;
    let id = url
        .path_and_query
        .strip_prefix("/v1/notifications/certs/")?;
    (PAYPAL_HOSTS.contains(&url.host.as_str())
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then_some(url)
}

/// Google's OAuth 2.0 signing keys (JWKS), the only URL the
/// `google-pubsub` preset fetches.
///
/// See <https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken>.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// [`GOOGLE_JWKS_URL`] as a [`KeyUrl`].
pub fn google_jwks_url() -> KeyUrl {
    KeyUrl {
        host: "www.googleapis.com".to_owned(),
        path_and_query: "/oauth2/v3/certs".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_cert_urls() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "https://sns.us-gov-west-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
            "https://SNS.EU-WEST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem",
        ] {
            let url = sns_cert_url(good).unwrap_or_else(|| panic!("{good}"));
            assert!(url.host().starts_with("sns."), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
            "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://s3.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://bucket.s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us.amazonaws.com.cn.evil/SimpleNotificationService-abc.pem",
            "https://sns.x.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://evil.com@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#f",
            "https://sns.us-east-1.amazonaws.com/other.pem",
            "https://sns.us-east-1.amazonaws.com/x/../SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a%2fb.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
            "https://sns..amazonaws.com/SimpleNotificationService-abc.pem",
            "sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "",
        ] {
            assert_eq!(sns_cert_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn sns_subscribe_urls() {
        let good = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37";
        assert_eq!(
            sns_subscribe_url(good).map(|u| u.text()),
            Some(good.to_owned())
        );
        for bad in [
            "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Action=Publish",
            "https://sns.us-west-2.amazonaws.com/x?Action=ConfirmSubscription",
            "https://example.com/?Action=ConfirmSubscription",
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
        ] {
            assert_eq!(sns_subscribe_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn paypal_cert_urls() {
        for good in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
        ] {
            assert!(paypal_cert_url(good).is_some(), "{good}");
        }
        for bad in [
            "https://api.paypal.com.evil.com/v1/notifications/certs/CERT-1",
            "https://evil.paypal.com/v1/notifications/certs/CERT-1",
            "https://www.paypal.com/v1/notifications/certs/CERT-1",
            "https://api.paypal.com/v1/notifications/webhooks/CERT-1",
            "https://api.paypal.com/v1/notifications/certs/CERT-1?x",
            "https://api.paypal.com/v1/notifications/certs/",
            "https://api.paypal.com/v1/notifications/certs/../x",
            "http://api.paypal.com/v1/notifications/certs/CERT-1",
            "https://api.paypal.com:444/v1/notifications/certs/CERT-1",
        ] {
            assert_eq!(paypal_cert_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn google_url_is_fixed() {
        assert_eq!(google_jwks_url().text(), GOOGLE_JWKS_URL);
    }
}
