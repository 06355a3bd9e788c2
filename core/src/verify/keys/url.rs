//! Which URLs the receiver may fetch keys from: a strict rule per preset.
//!
//! A signed delivery names where its key is (`SigningCertURL`,
//! `PAYPAL-CERT-URL`), but it is not verified yet when that URL is read, so
//! the URL is attacker-controlled text. Only `https` on the provider's own
//! hosts, on the default port, without userinfo and with the path shape the
//! provider uses is ever fetched; anything else is refused without a
//! connection. Google's keys are at one fixed URL, Microsoft Entra's at a
//! URL made from the spec's tenant id, and a `generic` endpoint's at the
//! one URL its spec names: none of these is ever taken from a request.

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

/// A `generic` endpoint's `verification.jwt.jwksUrl`, read from the spec
/// once at startup: the only URL that endpoint fetches (a token's `iss`,
/// `jku` or `x5u` is never followed, and there is no OpenID discovery).
/// `https` on port 443, no userinfo or fragment, a DNS name (not an IP
/// literal or a single label such as `localhost`: the keys of a public
/// issuer are on a public name, and the NetworkPolicy only lets HTTPS out
/// to public addresses anyway).
pub fn configured_jwks_url(text: &str) -> Option<KeyUrl> {
    let url = parse_https(text)?;
    let tld = url.host.rsplit('.').next().unwrap_or_default();
    let dns_name = url.host.contains('.') && tld.bytes().all(|b| b.is_ascii_alphabetic());
    dns_name.then_some(url)
}

/// A published list of source ranges ([`crate::ranges`]): a provider's
/// fixed URL or a spec's `allowedSources[].url`, under the same rule as
/// [`configured_jwks_url`] (`https` on port 443 to a DNS name, no userinfo
/// or fragment); the fetch also refuses a name that resolves to a
/// non-public address.
pub fn range_list_url(text: &str) -> Option<KeyUrl> {
    configured_jwks_url(text)
}

/// Microsoft Entra ID's sign-in host, the only one the Entra presets
/// fetch keys from.
pub const ENTRA_HOST: &str = "login.microsoftonline.com";

/// Whether `tenant` is a tenant id as Entra writes it in tokens (`tid`,
/// `iss`): a GUID, 8-4-4-4-12 hex digits. A domain name such as
/// `contoso.onmicrosoft.com` would fetch the same keys but never match
/// the issuer, so it is refused when the spec is read.
pub fn is_tenant_id(tenant: &str) -> bool {
    let groups: Vec<&str> = tenant.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The signing keys of Entra tenant `tenant` (a GUID:
/// [`is_tenant_id`]): `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`,
/// the `jwks_uri` of the tenant's v2.0 OpenID configuration, which also
/// holds the keys of its v1.0 tokens.
///
/// See <https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-signature>.
pub fn entra_jwks_url(tenant: &str) -> Option<KeyUrl> {
    is_tenant_id(tenant).then(|| KeyUrl {
        host: ENTRA_HOST.to_owned(),
        path_and_query: format!("/{}/discovery/v2.0/keys", tenant.to_ascii_lowercase()),
    })
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

    #[test]
    fn configured_jwks_urls() {
        for good in [
            "https://issuer.example.com/.well-known/jwks.json",
            "https://login.example.org:443/keys?p=b2c_1_signin",
            "https://KEYS.Example.COM/jwks",
        ] {
            assert!(configured_jwks_url(good).is_some(), "{good}");
        }
        for bad in [
            "http://issuer.example.com/jwks",
            "https://issuer.example.com:8443/jwks",
            "https://user:pw@issuer.example.com/jwks",
            "https://issuer.example.com/jwks#x",
            "https://issuer.example.com/a/../jwks",
            "https://10.0.0.1/jwks",
            "https://169.254.169.254/jwks",
            "https://localhost/jwks",
            "https://[::1]/jwks",
            "https://issuer.example.com",
            "issuer.example.com/jwks",
        ] {
            assert_eq!(configured_jwks_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn entra_urls_are_made_from_a_tenant_id_only() {
        let tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
        assert_eq!(
            entra_jwks_url(tenant).map(|u| u.text()).as_deref(),
            Some(
                "https://login.microsoftonline.com/84bd8158-6d4d-4958-8b9f-9d6445542f95/discovery/v2.0/keys"
            )
        );
        for bad in [
            "",
            "common",
            "organizations",
            "contoso.onmicrosoft.com",
            "84bd8158-6d4d-4958-8b9f-9d6445542f9",
            "84bd8158-6d4d-4958-8b9f-9d6445542f95/../x",
            "84bd8158-6d4d-4958-8b9f-9d6445542f9g",
            "84bd81586d4d49588b9f9d6445542f95",
        ] {
            assert_eq!(entra_jwks_url(bad), None, "{bad}");
        }
    }
}
