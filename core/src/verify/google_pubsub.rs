//! Google Cloud Pub/Sub push subscriptions with authentication. Each push
//! carries `Authorization: Bearer <JWT>`, a Google-signed OIDC token: RS256
//! (RSA PKCS#1 v1.5 SHA-256 over `<base64url header>.<base64url claims>`)
//! with one of Google's keys, published as a JWK Set at
//! [`super::keys::url::GOOGLE_JWKS_URL`] (a fixed URL: nothing is fetched
//! from where a request says) and picked by the header's `kid`. The claims
//! must say `iss` `accounts.google.com` (or with `https://`), `aud` the
//! subscription's audience (`spec.google.audience`, by default the
//! endpoint's public URL), `email` the push service account
//! (`spec.google.serviceAccountEmail`) with `email_verified: true`, and be
//! within `iat`/`exp` (with a minute's leeway). The body itself is not
//! signed: the token authenticates the sender, TLS the content.
//!
//! Replay defence: the token's `exp` (Google issues them for an hour and
//! reuses them across pushes), and the body's `message.messageId` as the
//! delivery id for de-duplication.
//!
//! See <https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>
//! and <https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken>.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use ring::signature::RsaKeyPair;

use super::hmac_common::{json_body, json_info, signature_header, system_clock};
use super::keys::{KeyFetcher, Keys, material, url};
use super::{Clock, Incoming, Prefetch, Rejection, Verified, Verifier, VerifierError};

const AUTHORIZATION: &str = "authorization";
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

/// Clock skew allowed around `iat` and `exp`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u32 = 60;

/// How long Google's push tokens are valid, in seconds.
pub const TOKEN_LIFETIME_SECS: u32 = 3600;

/// Verifies Pub/Sub pushes from one service account to one audience.
#[derive(Debug)]
pub struct GooglePubsubVerifier {
    audience: String,
    service_account: String,
    leeway: u32,
    clock: Clock,
    fetcher: Arc<KeyFetcher>,
}

/// A token whose form and claims were checked, not yet its signature.
struct Token {
    kid: String,
    signed: String,
    signature: Vec<u8>,
    claims: serde_json::Value,
}

impl GooglePubsubVerifier {
    /// A verifier for tokens of `service_account` to `audience`, with
    /// `leeway` seconds of clock skew and the process's key fetcher.
    pub fn new(
        audience: String,
        service_account: String,
        leeway: u32,
    ) -> Result<Self, VerifierError> {
        Self::with_clock(
            audience,
            service_account,
            leeway,
            system_clock,
            KeyFetcher::shared(),
        )
    }

    /// As [`GooglePubsubVerifier::new`], reading the time from `clock` and
    /// keys through `fetcher`.
    pub fn with_clock(
        audience: String,
        service_account: String,
        leeway: u32,
        clock: Clock,
        fetcher: Arc<KeyFetcher>,
    ) -> Result<Self, VerifierError> {
        if audience.is_empty() {
            return Err(VerifierError::SettingRequired {
                provider: "google-pubsub",
                setting: "spec.google.audience, or spec.publicUrl or spec.ingress",
            });
        }
        if service_account.is_empty() {
            return Err(VerifierError::SettingRequired {
                provider: "google-pubsub",
                setting: "spec.google.serviceAccountEmail",
            });
        }
        Ok(Self {
            audience,
            service_account,
            leeway,
            clock,
            fetcher,
        })
    }

    /// The bearer token's form, algorithm, issuer, audience and times:
    /// everything but the signature and the sender.
    fn parse(&self, headers: &HeaderMap) -> Result<Token, Rejection> {
        let value = signature_header(headers, AUTHORIZATION)?;
        let (scheme, jwt) = value.split_once(' ').ok_or(Rejection::SignatureMalformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Rejection::SignatureMalformed);
        }
        let mut parts = jwt.trim().split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::SignatureMalformed);
        };
        let decode_json = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .filter(serde_json::Value::is_object)
                .ok_or(Rejection::SignatureMalformed)
        };
        let header_json = decode_json(header)?;
        if header_json.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
            return Err(Rejection::SignatureMalformed);
        }
        let kid = header_json
            .get("kid")
            .and_then(|k| k.as_str())
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(Rejection::SignatureMalformed)?
            .to_owned();
        let claims_json = decode_json(claims)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Rejection::SignatureMalformed)?;
        let claim = |name: &str| claims_json.get(name);
        let now = (self.clock)();
        let leeway = i64::from(self.leeway);
        let time = |name: &str| {
            claim(name)
                .and_then(serde_json::Value::as_i64)
                .ok_or(Rejection::TimestampMalformed)
        };
        let (iat, exp) = (time("iat")?, time("exp")?);
        if now > exp.saturating_add(leeway) || now < iat.saturating_sub(leeway) {
            return Err(Rejection::TimestampOutOfTolerance);
        }
        let issuer_ok = claim("iss")
            .and_then(|i| i.as_str())
            .is_some_and(|i| ISSUERS.contains(&i));
        let audience_ok = match claim("aud") {
            Some(serde_json::Value::String(aud)) => *aud == self.audience,
            Some(serde_json::Value::Array(auds)) => {
                auds.iter().any(|a| a.as_str() == Some(&self.audience))
            }
            _ => false,
        };
        if !issuer_ok || !audience_ok {
            return Err(Rejection::TokenMismatch);
        }
        Ok(Token {
            kid,
            signed: format!("{header}.{claims}"),
            signature,
            claims: claims_json,
        })
    }
}

impl Verifier for GooglePubsubVerifier {
    fn provider(&self) -> &'static str {
        "google-pubsub"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![AUTHORIZATION]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let token = self.parse(headers)?;
        let keys = self
            .fetcher
            .cached(&url::google_jwks_url())
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
        let email_ok = token.claims.get("email").and_then(|e| e.as_str())
            == Some(self.service_account.as_str())
            && token.claims.get("email_verified") == Some(&serde_json::Value::Bool(true));
        if !email_ok {
            return Err(Rejection::SenderNotAllowed);
        }
        let json = json_body(body);
        Ok(Verified {
            event: None,
            delivery_id: json_info(json.as_ref(), "/message/messageId")
                .or_else(|| json_info(json.as_ref(), "/message/message_id")),
            secret_index: 0,
        })
    }

    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        // A token that fails the cheap checks is refused by `check` without
        // any fetch.
        let token = self.parse(request.headers).ok()?;
        let fetcher = Arc::clone(&self.fetcher);
        Some(Box::pin(async move {
            fetcher
                .ensure_kid(&url::google_jwks_url(), &token.kid)
                .await
                .map_err(|_| Rejection::KeyUnavailable)
        }))
    }
}

/// The `Authorization` header Pub/Sub sends: a token for `audience` and the
/// service account `email`, issued at `iat` for an hour, signed with `key`
/// under `kid` (whose JWK must be served at the JWKS URL).
pub fn sign(
    key: &RsaKeyPair,
    kid: &str,
    audience: &str,
    email: &str,
    iat: i64,
) -> Vec<(&'static str, String)> {
    let claims = serde_json::json!({
        "aud": audience,
        "azp": "113774264463038321964",
        "email": email,
        "email_verified": true,
        "exp": iat + i64::from(TOKEN_LIFETIME_SECS),
        "iat": iat,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    });
    vec![(AUTHORIZATION, format!("Bearer {}", jwt(key, kid, &claims)))]
}

/// An RS256 JWT of `claims` signed with `key` under `kid`.
pub fn jwt(key: &RsaKeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = material::rsa_sha256_sign(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A push body as Pub/Sub sends it (wrapped, not `--push-no-wrapper`).
pub fn push_body(message_id: &str, data: &[u8], subscription: &str) -> Vec<u8> {
    serde_json::json!({
        "message": {
            "attributes": {},
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2023-11-14T22:13:20.000Z",
            "publish_time": "2023-11-14T22:13:20.000Z",
        },
        "subscription": subscription,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::Verdict;
    use super::super::hmac_common::test_support::{
        NOW, signed_headers, with_header, without_header,
    };
    use super::super::keys::FetcherConfig;
    use super::super::keys::material::{jwk_json, test_keys::*};
    use super::super::keys::test_server::KeyServer;
    use super::*;

    const AUDIENCE: &str = "https://hooks.example.com/pubsub";
    const EMAIL: &str = "pusher@project.iam.gserviceaccount.com";

    fn now() -> i64 {
        NOW
    }

    fn body() -> Vec<u8> {
        push_body("2070443601311540", b"hello", "projects/p/subscriptions/s")
    }

    async fn setup() -> (KeyServer, Arc<KeyFetcher>) {
        let jwks = url::google_jwks_url();
        let set = serde_json::json!({"keys": [jwk_json(&signer(), "k1")]});
        let server = KeyServer::start(
            &[jwks.host()],
            HashMap::from([(
                jwks.path_and_query().to_owned(),
                (200, set.to_string().into_bytes()),
            )]),
        )
        .await;
        let fetcher = server.fetcher(FetcherConfig::default());
        (server, fetcher)
    }

    fn verifier(fetcher: &Arc<KeyFetcher>) -> GooglePubsubVerifier {
        GooglePubsubVerifier::with_clock(
            AUDIENCE.to_owned(),
            EMAIL.to_owned(),
            DEFAULT_LEEWAY_SECS,
            now,
            Arc::clone(fetcher),
        )
        .expect("verifier")
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "aud": AUDIENCE,
            "email": EMAIL,
            "email_verified": true,
            "exp": NOW + 3000,
            "iat": NOW - 600,
            "iss": "accounts.google.com",
            "sub": "1",
        })
    }

    fn bearer(key: &RsaKeyPair, kid: &str, claims: &serde_json::Value) -> HeaderMap {
        signed_headers(&[(AUTHORIZATION, format!("Bearer {}", jwt(key, kid, claims)))])
    }

    async fn receive(v: &GooglePubsubVerifier, headers: &HeaderMap) -> Result<Verified, Rejection> {
        let uri = http::Uri::from_static("/");
        let body = body();
        let request = Incoming {
            method: &http::Method::POST,
            uri: &uri,
            headers,
            body: &body,
        };
        if let Some(fetching) = v.prefetch(&request) {
            fetching.await?;
        }
        match v.check(&request)? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(_) => panic!("no handshakes"),
        }
    }

    #[tokio::test]
    async fn a_google_token_is_accepted_once_the_keys_are_fetched() {
        let (server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        let headers = signed_headers(&sign(&signer(), "k1", AUDIENCE, EMAIL, NOW - 10));
        let verified = receive(&v, &headers).await.expect("verified");
        assert_eq!(verified.delivery_id.as_deref(), Some("2070443601311540"));
        receive(&v, &bearer(&signer(), "k1", &claims()))
            .await
            .expect("iss without https");
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn wrong_keys_and_tampered_tokens_are_refused() {
        let (server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        assert_eq!(
            receive(&v, &bearer(&other(), "k1", &claims())).await,
            Err(Rejection::SignatureMismatch)
        );
        // An unknown kid: one refresh, then a mismatch; more unknown kids
        // cause no more fetches.
        for kid in ["k2", "k3", "k4"] {
            assert_eq!(
                receive(&v, &bearer(&other(), kid, &claims())).await,
                Err(Rejection::SignatureMismatch)
            );
        }
        assert_eq!(server.hits(), 1);
        // Claims swapped under a valid signature.
        let good = jwt(&signer(), "k1", &claims());
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged["email"] = "attacker@evil.iam.gserviceaccount.com".into();
        parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
        let headers = signed_headers(&[(AUTHORIZATION, format!("Bearer {}", parts.join(".")))]);
        assert_eq!(
            receive(&v, &headers).await,
            Err(Rejection::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn claims_are_checked() {
        let (_server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        let cases: [(&str, serde_json::Value, Rejection); 7] = [
            (
                "aud",
                "https://other.example/".into(),
                Rejection::TokenMismatch,
            ),
            (
                "iss",
                "https://evil.example".into(),
                Rejection::TokenMismatch,
            ),
            (
                "email",
                "other@p.iam.gserviceaccount.com".into(),
                Rejection::SenderNotAllowed,
            ),
            ("email_verified", false.into(), Rejection::SenderNotAllowed),
            ("exp", (NOW - 61).into(), Rejection::TimestampOutOfTolerance),
            ("iat", (NOW + 61).into(), Rejection::TimestampOutOfTolerance),
            ("exp", "soon".into(), Rejection::TimestampMalformed),
        ];
        for (name, value, rejection) in cases {
            let mut c = claims();
            c[name] = value;
            let got = receive(&v, &bearer(&signer(), "k1", &c)).await;
            assert_eq!(got, Err(rejection), "{name}");
        }
        // An audience list containing ours is accepted.
        let mut c = claims();
        c["aud"] = serde_json::json!(["x", AUDIENCE]);
        assert!(receive(&v, &bearer(&signer(), "k1", &c)).await.is_ok());
        // Within the leeway.
        let mut c = claims();
        c["exp"] = (NOW - 59).into();
        assert!(receive(&v, &bearer(&signer(), "k1", &c)).await.is_ok());
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_a_fetch() {
        let (server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        let good = bearer(&signer(), "k1", &claims());
        let token = good[AUTHORIZATION].to_str().expect("ascii").to_owned();
        let none_alg = format!(
            "Bearer {}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let hs256 = format!(
            "Bearer {}.{}.AAAA",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        for bad in [
            "Bearer",
            "Basic dXNlcjpwYXNz",
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Bearer !!.!!.!!",
            &none_alg,
            &hs256,
            &token.replacen("Bearer ", "Token ", 1),
        ] {
            assert_eq!(
                receive(&v, &with_header(&good, AUTHORIZATION, bad)).await,
                Err(Rejection::SignatureMalformed),
                "{bad}"
            );
        }
        assert_eq!(
            receive(&v, &without_header(&good, AUTHORIZATION)).await,
            Err(Rejection::SignatureMissing)
        );
        let mut twice = good.clone();
        twice.append(AUTHORIZATION, good[AUTHORIZATION].clone());
        assert_eq!(
            receive(&v, &twice).await,
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn settings_are_required() {
        assert!(GooglePubsubVerifier::new(String::new(), EMAIL.to_owned(), 60).is_err());
        assert!(GooglePubsubVerifier::new(AUDIENCE.to_owned(), String::new(), 60).is_err());
        let v =
            GooglePubsubVerifier::new(AUDIENCE.to_owned(), EMAIL.to_owned(), 60).expect("verifier");
        assert_eq!(v.provider(), "google-pubsub");
        assert_eq!(v.secret_headers(), vec![AUTHORIZATION]);
    }
}
