//! Microsoft Entra ID access tokens, as Azure Event Grid (a Microsoft
//! Entra protected webhook) and Microsoft Graph (rich notifications'
//! `validationTokens`) send them: RS256 JWTs signed with a key of the
//! tenant's JWK Set, fetched from
//! `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys` (made
//! from the spec's tenant id, never from a request: [`url::entra_jwks_url`])
//! and picked by the header's `kid`.
//!
//! A token is accepted when
//! - its `alg` is `RS256` and it names a `kid` of the tenant's keys, whose
//!   signature it carries;
//! - it is within `nbf`/`exp` (and `iat` is not in the future), with
//!   [`DEFAULT_LEEWAY_SECS`] of clock skew;
//! - `iss` is the tenant's: `https://sts.windows.net/<tenant>/` (v1.0
//!   tokens, what an app registration issues unless its manifest sets
//!   `accessTokenAcceptedVersion: 2`) or
//!   `https://login.microsoftonline.com/<tenant>/v2.0` (v2.0 tokens);
//! - `aud` is the configured audience (the app id, or for Event Grid the
//!   app id URI the subscription names);
//! - the client that asked for the token is the expected Microsoft service:
//!   `appid` (v1.0) or `azp` (v2.0) is its application id
//!   ([`EVENT_GRID_APP_ID`], [`GRAPH_CHANGE_TRACKING_APP_ID`]). Without
//!   this any other client of the tenant allowed to get a token for the app
//!   could send deliveries.
//!
//! Claims are checked before any key is fetched (`token_mismatch`,
//! `timestamp_*`), the signature with the cached keys (`signature_*`), the
//! client last (`sender_not_allowed`).
//!
//! See <https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-tokens>,
//! <https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference>,
//! <https://learn.microsoft.com/en-us/azure/event-grid/secure-webhook-delivery> and
//! <https://learn.microsoft.com/en-us/graph/change-notifications-with-resource-data#validate-the-authenticity-of-notifications>.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use ring::signature::RsaKeyPair;
use serde_json::Value;

use super::hmac_common::signature_header;
use super::keys::{KeyFetcher, KeyUrl, Keys, material, url};
use super::{Clock, Prefetch, Rejection, VerifierError};

/// The application id of "Azure Event Grid", the client that asks Entra
/// for the tokens it delivers with (the `$eventGridAppId` of Microsoft's
/// setup scripts in the Event Grid docs).
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";

/// The application id of "Microsoft Graph Change Tracking", the `appid` /
/// `azp` of every validation token Graph sends.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Clock skew allowed around `nbf`, `iat` and `exp`, in seconds: the five
/// minutes Microsoft's token libraries allow by default.
pub const DEFAULT_LEEWAY_SECS: u32 = 300;

/// How long Entra's app-only access tokens are valid at most (60 to 90
/// minutes; Microsoft documents no longer lifetime for them), in seconds.
pub const TOKEN_LIFETIME_SECS: u32 = 90 * 60;

/// The longest token looked at, the bound of a signature header.
const MAX_TOKEN_LEN: usize = super::hmac_common::MAX_SIGNATURE_HEADER_LEN;

/// The checks of one tenant, audience and client.
#[derive(Debug)]
pub struct EntraCheck {
    issuers: [String; 2],
    audience: String,
    client: &'static str,
    keys: KeyUrl,
    leeway: u32,
    clock: Clock,
    fetcher: Arc<KeyFetcher>,
}

/// A token whose form and claims were checked, not yet its signature.
#[derive(Debug)]
pub struct Token {
    /// The key it names.
    pub kid: String,
    signed: String,
    signature: Vec<u8>,
    client: Option<String>,
}

/// What [`EntraCheck::new`] needs.
#[derive(Debug, Clone)]
pub struct EntraSettings<'a> {
    /// The preset, for errors.
    pub provider: &'static str,
    /// The spec field of the tenant id, for errors.
    pub tenant_field: &'static str,
    /// The spec field of the audience, for errors.
    pub audience_field: &'static str,
    /// The tenant id (a GUID).
    pub tenant: &'a str,
    /// The expected `aud`.
    pub audience: &'a str,
    /// The expected `appid` / `azp`.
    pub client: &'static str,
}

impl EntraCheck {
    /// The check of `settings`, reading the time from `clock` and keys
    /// through `fetcher`.
    pub fn new(
        settings: &EntraSettings<'_>,
        leeway: u32,
        clock: Clock,
        fetcher: Arc<KeyFetcher>,
    ) -> Result<Self, VerifierError> {
        let keys = url::entra_jwks_url(settings.tenant).ok_or(VerifierError::Invalid {
            field: settings.tenant_field,
            reason: "a tenant id is a GUID (8-4-4-4-12 hex digits), as in the tokens' `tid`",
        })?;
        if settings.audience.trim().is_empty() {
            return Err(VerifierError::SettingRequired {
                provider: settings.provider,
                setting: settings.audience_field,
            });
        }
        let tenant = settings.tenant.to_ascii_lowercase();
        Ok(Self {
            issuers: [
                format!("https://sts.windows.net/{tenant}/"),
                format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            ],
            audience: settings.audience.to_owned(),
            client: settings.client,
            keys,
            leeway,
            clock,
            fetcher,
        })
    }

    /// The token's form, algorithm, times, issuer and audience: everything
    /// but the signature and the client.
    pub fn parse(&self, token: &str) -> Result<Token, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::SignatureMalformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::SignatureMalformed);
        };
        let header_json = decode_object(header)?;
        if header_json.get("alg").and_then(Value::as_str) != Some("RS256")
            || header_json.get("crit").is_some()
        {
            return Err(Rejection::SignatureMalformed);
        }
        let kid = header_json
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(Rejection::SignatureMalformed)?
            .to_owned();
        let claims_json = decode_object(claims)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Rejection::SignatureMalformed)?;
        let now = (self.clock)();
        let leeway = i64::from(self.leeway);
        let time = |name: &str| match claims_json.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or(Rejection::TimestampMalformed),
        };
        // Without `exp` a captured token would be accepted forever.
        let exp = time("exp")?.ok_or(Rejection::TimestampMissing)?;
        let not_before = [time("nbf")?, time("iat")?].into_iter().flatten();
        if now > exp.saturating_add(leeway)
            || not_before
                .into_iter()
                .any(|t| now < t.saturating_sub(leeway))
        {
            return Err(Rejection::TimestampOutOfTolerance);
        }
        let issuer_ok = claims_json
            .get("iss")
            .and_then(Value::as_str)
            .is_some_and(|iss| self.issuers.iter().any(|i| i == iss));
        let audience_ok = match claims_json.get("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !issuer_ok || !audience_ok {
            return Err(Rejection::TokenMismatch);
        }
        // v1.0 tokens name the client `appid`, v2.0 tokens `azp`.
        let client = ["appid", "azp"]
            .iter()
            .find_map(|name| claims_json.get(*name).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(Token {
            kid,
            signed: format!("{header}.{claims}"),
            signature,
            client,
        })
    }

    /// The signature of a parsed token with the cached keys, then its
    /// client.
    pub fn check(&self, token: &Token) -> Result<(), Rejection> {
        let keys = self
            .fetcher
            .cached(&self.keys)
            .ok_or(Rejection::KeyUnavailable)?;
        let Keys::Jwks(set) = keys.as_ref() else {
            return Err(Rejection::KeyUnavailable);
        };
        // An unknown kid after the bounded refresh: no key signs it.
        let key = set
            .iter()
            .find(|key| key.kid == token.kid)
            .ok_or(Rejection::SignatureMismatch)?;
        if !key.verifies_rs256(token.signed.as_bytes(), &token.signature) {
            return Err(Rejection::SignatureMismatch);
        }
        if token.client.as_deref() != Some(self.client) {
            return Err(Rejection::SenderNotAllowed);
        }
        Ok(())
    }

    /// [`EntraCheck::parse`] and [`EntraCheck::check`].
    pub fn verify(&self, token: &str) -> Result<(), Rejection> {
        self.check(&self.parse(token)?)
    }

    /// Makes sure the keys named by `kids` are cached (at most one refresh
    /// per `min_refresh` for unknown ones, by the fetcher's rule).
    pub fn prefetch(&self, kids: Vec<String>) -> Prefetch {
        let fetcher = Arc::clone(&self.fetcher);
        let url = self.keys.clone();
        Box::pin(async move {
            for kid in kids {
                fetcher
                    .ensure_kid(&url, &kid)
                    .await
                    .map_err(|_| Rejection::KeyUnavailable)?;
            }
            Ok(())
        })
    }
}

/// A base64url JSON object, or `signature_malformed`.
fn decode_object(part: &str) -> Result<Value, Rejection> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object)
        .ok_or(Rejection::SignatureMalformed)
}

/// The token of the one `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Rejection> {
    let value = signature_header(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::SignatureMalformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::SignatureMalformed);
    }
    Ok(token.trim())
}

/// What an Entra token says, for [`token`].
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// The tenant id.
    pub tenant: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// `appid` / `azp`: the client the token was issued to.
    pub client: &'a str,
    /// `iat` and `nbf`; `exp` is an hour later.
    pub iat: i64,
    /// A v2.0 token (`iss` `login.microsoftonline.com/<tenant>/v2.0`,
    /// `azp`) instead of v1.0 (`sts.windows.net`, `appid`).
    pub v2: bool,
}

/// An app-only access token as Entra issues it, signed with `key` under
/// `kid` (whose JWK must be in the tenant's key set).
pub fn token(key: &RsaKeyPair, kid: &str, claims: &Claims<'_>) -> String {
    let Claims {
        tenant,
        audience,
        client,
        iat,
        v2,
    } = *claims;
    let mut json = serde_json::json!({
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + 3600,
        "oid": "a5d2c2a6-1e5f-4b3a-9c57-c5d0b1f3e0aa",
        "roles": ["AzureEventGridSecureWebhookSubscriber"],
        "sub": "a5d2c2a6-1e5f-4b3a-9c57-c5d0b1f3e0aa",
        "tid": tenant,
    });
    if v2 {
        json["iss"] = format!("https://login.microsoftonline.com/{tenant}/v2.0").into();
        json["azp"] = client.into();
        json["ver"] = "2.0".into();
    } else {
        json["iss"] = format!("https://sts.windows.net/{tenant}/").into();
        json["appid"] = client.into();
        json["ver"] = "1.0".into();
    }
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT", "x5t": kid});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(json.to_string())
    );
    let signature = material::rsa_sha256_sign(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A loopback key server serving the test signer's JWK under
    //! [`KID`] as tenant [`TENANT`]'s key set.

    use std::collections::HashMap;

    use super::super::keys::FetcherConfig;
    use super::super::keys::material::{jwk_json, test_keys::signer};
    use super::super::keys::test_server::KeyServer;
    use super::*;

    pub(crate) const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
    pub(crate) const KID: &str = "entra-1";

    pub(crate) async fn key_server() -> (KeyServer, Arc<KeyFetcher>) {
        let keys = url::entra_jwks_url(TENANT).expect("tenant");
        let set = serde_json::json!({"keys": [jwk_json(&signer(), KID)]});
        let server = KeyServer::start(
            &[keys.host()],
            HashMap::from([(
                keys.path_and_query().to_owned(),
                (200, set.to_string().into_bytes()),
            )]),
        )
        .await;
        let fetcher = server.fetcher(FetcherConfig::default());
        (server, fetcher)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hmac_common::test_support::NOW;
    use super::super::keys::material::test_keys::{other, signer};
    use super::test_support::*;
    use super::*;

    const AUDIENCE: &str = "api://8e460676-ae3f-4b1e-8790-ee0fb5d6148f";

    fn now() -> i64 {
        NOW
    }

    fn check(fetcher: &Arc<KeyFetcher>) -> EntraCheck {
        EntraCheck::new(
            &EntraSettings {
                provider: "azure-event-grid",
                tenant_field: "spec.azure.entra.tenantId",
                audience_field: "spec.azure.entra.audience",
                tenant: TENANT,
                audience: AUDIENCE,
                client: EVENT_GRID_APP_ID,
            },
            DEFAULT_LEEWAY_SECS,
            now,
            Arc::clone(fetcher),
        )
        .expect("check")
    }

    fn claims(v2: bool) -> Claims<'static> {
        Claims {
            tenant: TENANT,
            audience: AUDIENCE,
            client: EVENT_GRID_APP_ID,
            iat: NOW - 60,
            v2,
        }
    }

    async fn verify(c: &EntraCheck, token: &str) -> Result<(), Rejection> {
        let parsed = c.parse(token)?;
        c.prefetch(vec![parsed.kid.clone()]).await?;
        c.check(&parsed)
    }

    /// Re-signs `token`'s claims after `edit` with the test signer.
    fn edited(edit: impl FnOnce(&mut Value)) -> String {
        let good = token(&signer(), KID, &claims(false));
        let claims_part = good.split('.').nth(1).expect("claims");
        let mut json: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_part).expect("b64"))
                .expect("json");
        edit(&mut json);
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","kid":"{KID}"}}"#));
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(json.to_string()));
        let signature = material::rsa_sha256_sign(&signer(), signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[tokio::test]
    async fn v1_and_v2_tokens_of_the_tenant_verify() {
        let (server, fetcher) = key_server().await;
        let c = check(&fetcher);
        for v2 in [false, true] {
            verify(&c, &token(&signer(), KID, &claims(v2)))
                .await
                .unwrap_or_else(|e| panic!("v2 {v2}: {e}"));
        }
        assert_eq!(server.hits(), 1, "fetched once, then cached");
        assert_eq!(
            server.paths.lock().expect("paths").as_slice(),
            [format!("/{TENANT}/discovery/v2.0/keys")]
        );
    }

    #[tokio::test]
    async fn wrong_keys_claims_and_clients_are_refused() {
        let (server, fetcher) = key_server().await;
        let c = check(&fetcher);
        assert_eq!(
            verify(&c, &token(&other(), KID, &claims(false))).await,
            Err(Rejection::SignatureMismatch),
            "another key"
        );
        assert_eq!(
            verify(&c, &token(&other(), "unknown-kid", &claims(false))).await,
            Err(Rejection::SignatureMismatch),
            "unknown kid, after one bounded refresh"
        );
        assert_eq!(
            verify(&c, &token(&other(), "unknown-2", &claims(false))).await,
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(server.hits(), 1, "the refresh is within min_refresh");
        // Claims swapped under a valid signature.
        let good = token(&signer(), KID, &claims(false));
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let forged = edited(|c| c["roles"] = serde_json::json!(["Admin"]));
        parts[1] = forged.split('.').nth(1).expect("claims").to_owned();
        assert_eq!(
            verify(&c, &parts.join(".")).await,
            Err(Rejection::SignatureMismatch)
        );
        type Edit = fn(&mut Value);
        let cases: [(Edit, Rejection); 9] = [
            (
                |c| c["aud"] = "api://other".into(),
                Rejection::TokenMismatch,
            ),
            (
                |c| {
                    c["iss"] =
                        "https://sts.windows.net/00000000-0000-0000-0000-000000000000/".into()
                },
                Rejection::TokenMismatch,
            ),
            (
                |c| c["iss"] = "https://login.microsoftonline.com/common/v2.0".into(),
                Rejection::TokenMismatch,
            ),
            (
                |c| c["exp"] = (NOW - 301).into(),
                Rejection::TimestampOutOfTolerance,
            ),
            (
                |c| c["nbf"] = (NOW + 301).into(),
                Rejection::TimestampOutOfTolerance,
            ),
            (
                |c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                },
                Rejection::TimestampMissing,
            ),
            (
                |c| c["appid"] = "11111111-1111-1111-1111-111111111111".into(),
                Rejection::SenderNotAllowed,
            ),
            (
                |c| {
                    c.as_object_mut().map(|o| o.remove("appid"));
                },
                Rejection::SenderNotAllowed,
            ),
            (|c| c["exp"] = "later".into(), Rejection::TimestampMalformed),
        ];
        for (index, (edit, rejection)) in cases.into_iter().enumerate() {
            assert_eq!(verify(&c, &edited(edit)).await, Err(rejection), "{index}");
        }
        // Within the leeway; an audience list holding ours.
        assert!(
            verify(&c, &edited(|c| c["exp"] = (NOW - 299).into()))
                .await
                .is_ok()
        );
        assert!(
            verify(
                &c,
                &edited(|c| c["aud"] = serde_json::json!(["x", AUDIENCE]))
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_a_fetch() {
        let (server, fetcher) = key_server().await;
        let c = check(&fetcher);
        let good = token(&signer(), KID, &claims(false));
        let claims_part = good.split('.').nth(1).expect("claims").to_owned();
        for bad in [
            String::new(),
            "a.b".to_owned(),
            format!("{good}.x"),
            format!(
                "{}.{claims_part}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"entra-1"}"#)
            ),
            format!(
                "{}.{claims_part}.AAAA",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"entra-1"}"#)
            ),
            format!(
                "{}.{claims_part}.AAAA",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#)
            ),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(
                matches!(c.parse(&bad), Err(Rejection::SignatureMalformed)),
                "{bad}"
            );
        }
        assert_eq!(server.hits(), 0);
        // Nothing cached yet: the check cannot be made.
        let parsed = c.parse(&good).expect("parsed");
        assert_eq!(c.check(&parsed), Err(Rejection::KeyUnavailable));
    }

    #[test]
    fn settings_are_checked() {
        let fetcher = KeyFetcher::shared();
        for (tenant, audience) in [
            ("contoso.onmicrosoft.com", AUDIENCE),
            ("common", AUDIENCE),
            (TENANT, " "),
        ] {
            assert!(
                EntraCheck::new(
                    &EntraSettings {
                        provider: "azure-event-grid",
                        tenant_field: "t",
                        audience_field: "a",
                        tenant,
                        audience,
                        client: EVENT_GRID_APP_ID,
                    },
                    60,
                    now,
                    Arc::clone(&fetcher),
                )
                .is_err(),
                "{tenant}"
            );
        }
    }
}
