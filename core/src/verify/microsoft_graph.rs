//! Microsoft Graph change notifications: nothing is signed. A delivery is a
//! JSON `{"value": [ .. ]}` of change or lifecycle notifications, each
//! carrying the `clientState` given when the subscription was created (at
//! most 255 characters); every notification's `clientState` must equal one
//! of the configured secrets (compared in constant time through SHA-256
//! digests), and a single notification with a wrong or missing one refuses
//! the whole delivery (a batch may mix subscriptions; a forged notification
//! must not ride along with genuine ones). No timestamp is signed: TLS and
//! the stream's de-duplication are the only defence against a replay. The
//! event is the first notification's `lifecycleEvent` (e.g.
//! `reauthorizationRequired`) or `changeType` (e.g. `created`); the
//! delivery id is its `id` when the batch holds one notification.
//!
//! Rich notifications' `validationTokens` (JWTs signed by Microsoft) are
//! also verified when `spec.graph.validationTokens` names the tenant and the
//! app ([`super::entra`]: the tenant's keys, `aud` the app id, `appid` /
//! `azp` Microsoft Graph Change Tracking): every token must verify, and a
//! delivery without tokens (or with more than [`MAX_VALIDATION_TOKENS`]) is
//! refused. Off by default: basic notifications carry no tokens.
//!
//! Subscription validation is a `POST ?validationToken=<token>` (URL-encoded,
//! with an empty body, unsigned), answered within 10 s with the decoded token
//! as `text/plain`, 200. The token is text like `Validation: Testing client
//! application reachability for subscription Request-Id: <uuid>`, so spaces
//! are echoed, but nothing else beyond printable ASCII, and at most 1024
//! bytes (the receiver sends it with `X-Content-Type-Options: nosniff`).
//!
//! See <https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/changenotificationcollection> and
//! <https://learn.microsoft.com/en-us/graph/api/resources/changenotification>.

use http::HeaderMap;
use serde_json::Value;

use super::entra::EntraCheck;
use super::handshake_common::{Tokens, query_param};
use super::hmac_common::{json_body, require_secrets};
use super::{
    Handshake, Incoming, Prefetch, Rejection, Verdict, Verified, Verifier, VerifierError,
    info_value,
};

/// The most validation tokens a delivery may carry: Graph sends one per
/// app and tenant among its notifications, and an endpoint serves one app.
pub const MAX_VALIDATION_TOKENS: usize = 16;
use crate::secrets::Secret;

/// Verifies Graph change notifications against one or more `clientState`
/// secrets.
#[derive(Debug)]
pub struct MicrosoftGraphVerifier {
    tokens: Tokens,
    validation: Option<EntraCheck>,
}

impl MicrosoftGraphVerifier {
    /// A verifier accepting notifications whose `clientState` is any of
    /// `secrets`.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_validation_tokens(secrets, None)
    }

    /// As [`MicrosoftGraphVerifier::new`], also requiring every
    /// `validationTokens` JWT to pass `validation`.
    pub fn with_validation_tokens(
        secrets: Vec<Secret>,
        validation: Option<EntraCheck>,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            tokens: Tokens::new(&secrets),
            validation,
        })
    }

    /// The delivery's validation tokens, parsed (form and claims, not yet
    /// signatures): 1 to [`MAX_VALIDATION_TOKENS`] strings.
    fn validation_tokens(
        check: &EntraCheck,
        json: Option<&Value>,
    ) -> Result<Vec<super::entra::Token>, Rejection> {
        let tokens = json
            .and_then(|j| j.get("validationTokens"))
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or(Rejection::SignatureMissing)?;
        if tokens.len() > MAX_VALIDATION_TOKENS {
            return Err(Rejection::SignatureMalformed);
        }
        tokens
            .iter()
            .map(|token| check.parse(token.as_str().ok_or(Rejection::SignatureMalformed)?))
            .collect()
    }
}

/// The validation token to echo: 1-1024 bytes of printable ASCII, spaces
/// included (Graph's token has them); anything else is refused rather than
/// reflected.
fn validation_token(value: Option<String>) -> Result<String, Rejection> {
    let value = value.ok_or(Rejection::HandshakeMalformed)?;
    if value.is_empty()
        || value.len() > 1024
        || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(Rejection::HandshakeMalformed);
    }
    Ok(value)
}

impl Verifier for MicrosoftGraphVerifier {
    fn provider(&self) -> &'static str {
        "microsoft-graph"
    }

    /// The secret is in the body (`clientState`).
    fn secret_headers(&self) -> Vec<&str> {
        Vec::new()
    }

    fn verify(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let json = json_body(body);
        let notifications = json
            .as_ref()
            .and_then(|j| j.get("value"))
            .and_then(Value::as_array)
            .filter(|n| !n.is_empty())
            .ok_or(Rejection::TokenMissing)?;
        // One SHA-256 per notification: the body limit bounds the work.
        let mut first_index = None;
        for notification in notifications {
            let state = notification
                .get("clientState")
                .and_then(Value::as_str)
                .ok_or(Rejection::TokenMissing)?;
            let index = self
                .tokens
                .find(state.as_bytes())
                .ok_or(Rejection::TokenMismatch)?;
            first_index.get_or_insert(index);
        }
        let secret_index = first_index.ok_or(Rejection::TokenMissing)?;
        if let Some(check) = &self.validation {
            for token in Self::validation_tokens(check, json.as_ref())? {
                check.check(&token)?;
            }
        }
        let first = notifications.first();
        let field = |name: &str| {
            first
                .and_then(|n| n.get(name))
                .and_then(Value::as_str)
                .and_then(info_value)
        };
        Ok(Verified {
            event: field("lifecycleEvent").or_else(|| field("changeType")),
            delivery_id: if notifications.len() == 1 {
                field("id")
            } else {
                None
            },
            secret_index,
        })
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        // Graph validates with a POST, like its deliveries: the query tells
        // them apart.
        if let Some(token) = query_param(request.uri.query(), "validationToken")? {
            return Ok(Handshake::answer(
                Verified {
                    event: None,
                    delivery_id: None,
                    secret_index: 0,
                },
                "text/plain; charset=utf-8",
                validation_token(Some(token))?.into_bytes(),
            ));
        }
        self.verify(request.headers, request.body)
            .map(Verdict::Deliver)
    }

    /// With `validationTokens`: the keys their `kid`s name. A delivery whose
    /// tokens fail the cheap checks is refused by `check` without a fetch.
    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        let check = self.validation.as_ref()?;
        let json = json_body(request.body);
        let mut kids: Vec<String> = Self::validation_tokens(check, json.as_ref())
            .ok()?
            .into_iter()
            .map(|token| token.kid)
            .collect();
        kids.sort();
        kids.dedup();
        Some(check.prefetch(kids))
    }
}

/// A rich notification delivery: [`notification_body`] with
/// `validationTokens`.
pub fn rich_notification_body(client_state: &str, validation_tokens: &[String]) -> Vec<u8> {
    let mut json: Value =
        serde_json::from_slice(&notification_body(client_state)).unwrap_or_default();
    json["validationTokens"] = validation_tokens.into();
    json.to_string().into_bytes()
}

/// The query of Graph's validation POST.
pub fn validation_query(token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("validationToken", token)
        .finish()
}

/// A change notification delivery as Graph posts it: one `created`
/// notification carrying `client_state`.
pub fn notification_body(client_state: &str) -> Vec<u8> {
    serde_json::json!({
        "value": [{
            "id": "lsgTZMr9KwAAA",
            "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
            "subscriptionExpirationDateTime": "2024-03-20T11:00:00.0000000Z",
            "clientState": client_state,
            "changeType": "created",
            "resource": "users/{user-id}/messages/{message-id}",
            "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Message",
                "@odata.id": "users/{user-id}/messages/{message-id}",
                "id": "{message-id}"
            }
        }]
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::super::expect_handshake;
    use super::super::hmac_common::test_support::*;
    use super::*;

    /// Graph signs nothing and publishes no vector: the `clientState` of its
    /// documented example, `secretClientValue`
    /// (<https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks>).
    const SECRET: &str = "secretClientValue";
    /// A validation token of the shape Graph sends (the text of
    /// <https://learn.microsoft.com/en-us/answers/questions/2146042/getting-validation-testing-client-application-reac>).
    const TOKEN: &str = "Validation: Testing client application reachability for subscription Request-Id: 522a8e7e-096a-494c-aaf1-ac0dcfca45b7";

    fn verifier(secrets_: &[&str]) -> MicrosoftGraphVerifier {
        MicrosoftGraphVerifier::new(secrets(secrets_)).expect("verifier")
    }

    fn post(v: &MicrosoftGraphVerifier, query: &str, body: &[u8]) -> Result<Verdict, Rejection> {
        let uri: Uri = format!("/graph?{query}").parse().expect("uri");
        v.check(&Incoming {
            method: &Method::POST,
            uri: &uri,
            headers: &HeaderMap::new(),
            body,
        })
    }

    #[test]
    fn the_validation_post_is_echoed_decoded() {
        let v = verifier(&[SECRET]);
        let query = validation_query(TOKEN);
        assert!(query.contains("Validation%3A+Testing"), "{query}");
        let handshake = expect_handshake(post(&v, &query, b""));
        assert_eq!(handshake.body, TOKEN.as_bytes());
        assert_eq!(handshake.content_type, "text/plain; charset=utf-8");
        // %20 decodes like `+`.
        let handshake = expect_handshake(post(&v, "validationToken=a%20b", b""));
        assert_eq!(handshake.body, b"a b");
        for bad in [
            "validationToken=",
            "validationToken=a&validationToken=b",
            "validationToken=%3Cb%3E%0Ax",
            "validationToken=%C3%A9",
            &validation_query(&"a".repeat(1025)),
        ] {
            assert_eq!(
                post(&v, bad, b"").map(|_| ()),
                Err(Rejection::HandshakeMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_notification_needs_the_client_state() {
        let v = verifier(&["old", SECRET]);
        let body = notification_body(SECRET);
        match post(&v, "", &body) {
            Ok(Verdict::Deliver(verified)) => assert_eq!(
                verified,
                Verified {
                    event: Some("created".into()),
                    delivery_id: Some("lsgTZMr9KwAAA".into()),
                    secret_index: 1,
                }
            ),
            other => panic!("a delivery: {other:?}"),
        }
        assert_eq!(
            v.verify(&HeaderMap::new(), &notification_body("secretClientValuE")),
            Err(Rejection::TokenMismatch)
        );
        let lifecycle = br#"{"value":[{"subscriptionId":"s","clientState":"secretClientValue","lifecycleEvent":"reauthorizationRequired"},{"subscriptionId":"t","clientState":"old","changeType":"updated","id":"2"}]}"#;
        let verified = v.verify(&HeaderMap::new(), lifecycle).expect("verifies");
        assert_eq!(verified.event.as_deref(), Some("reauthorizationRequired"));
        assert_eq!(verified.delivery_id, None, "a batch has no one id");
        assert_eq!(verified.secret_index, 1);
        // One forged notification refuses the batch.
        for (batch, expected) in [
            (
                r#"{"value":[{"clientState":"secretClientValue"},{"clientState":"forged"}]}"#,
                Rejection::TokenMismatch,
            ),
            (
                r#"{"value":[{"clientState":"secretClientValue"},{"changeType":"created"}]}"#,
                Rejection::TokenMissing,
            ),
            (
                r#"{"value":[{"clientState":"secretClientValue"},{"clientState":7}]}"#,
                Rejection::TokenMissing,
            ),
            (r#"{"value":[]}"#, Rejection::TokenMissing),
            (
                r#"{"value":{"clientState":"secretClientValue"}}"#,
                Rejection::TokenMissing,
            ),
            (
                r#"[{"clientState":"secretClientValue"}]"#,
                Rejection::TokenMissing,
            ),
            ("", Rejection::TokenMissing),
        ] {
            assert_eq!(
                v.verify(&HeaderMap::new(), batch.as_bytes()),
                Err(expected),
                "{batch}"
            );
        }
    }

    #[test]
    fn built_under_its_manifest_name() {
        let built = super::super::for_provider(
            hookwarden_crds::Provider::MicrosoftGraph,
            secrets(&["s"]),
            None,
        )
        .expect("verifier");
        assert_eq!(built.provider(), "microsoft-graph");
        assert!(!built.answers_get());
        assert!(built.secret_headers().is_empty());
        assert!(matches!(
            super::super::for_provider(hookwarden_crds::Provider::MicrosoftGraph, Vec::new(), None),
            Err(VerifierError::NoSecrets)
        ));
    }

    mod validation_tokens {
        use std::sync::Arc;

        use super::super::super::entra::test_support::{KID, TENANT, key_server};
        use super::super::super::entra::{
            Claims, DEFAULT_LEEWAY_SECS, EntraSettings, GRAPH_CHANGE_TRACKING_APP_ID, token,
        };
        use super::super::super::keys::KeyFetcher;
        use super::super::super::keys::material::test_keys::{other, signer};
        use super::*;

        /// The app id of Microsoft's example token
        /// (<https://learn.microsoft.com/en-us/graph/change-notifications-with-resource-data>).
        const APP_ID: &str = "8e460676-ae3f-4b1e-8790-ee0fb5d6148f";

        fn now() -> i64 {
            NOW
        }

        fn verifier(fetcher: &Arc<KeyFetcher>) -> MicrosoftGraphVerifier {
            let check = EntraCheck::new(
                &EntraSettings {
                    provider: "microsoft-graph",
                    tenant_field: "spec.graph.validationTokens.tenantId",
                    audience_field: "spec.graph.validationTokens.appId",
                    tenant: TENANT,
                    audience: APP_ID,
                    client: GRAPH_CHANGE_TRACKING_APP_ID,
                },
                DEFAULT_LEEWAY_SECS,
                now,
                Arc::clone(fetcher),
            )
            .expect("check");
            MicrosoftGraphVerifier::with_validation_tokens(secrets(&[SECRET]), Some(check))
                .expect("verifier")
        }

        fn graph_token(
            key: &ring::signature::RsaKeyPair,
            audience: &str,
            client: &str,
            iat: i64,
        ) -> String {
            token(
                key,
                KID,
                &Claims {
                    tenant: TENANT,
                    audience,
                    client,
                    iat,
                    v2: false,
                },
            )
        }

        fn good() -> String {
            graph_token(&signer(), APP_ID, GRAPH_CHANGE_TRACKING_APP_ID, NOW - 60)
        }

        async fn receive(v: &MicrosoftGraphVerifier, body: &[u8]) -> Result<Verdict, Rejection> {
            let uri = Uri::from_static("/graph");
            let headers = HeaderMap::new();
            let request = Incoming {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body,
            };
            if let Some(fetching) = v.prefetch(&request) {
                fetching.await?;
            }
            v.check(&request)
        }

        #[tokio::test]
        async fn every_validation_token_must_verify() {
            let (server, fetcher) = key_server().await;
            let v = verifier(&fetcher);
            let body = rich_notification_body(SECRET, &[good()]);
            assert!(matches!(receive(&v, &body).await, Ok(Verdict::Deliver(_))));
            let two = rich_notification_body(SECRET, &[good(), good()]);
            assert!(receive(&v, &two).await.is_ok());
            assert_eq!(server.hits(), 1);
            let cases = [
                (
                    vec![
                        good(),
                        graph_token(&other(), APP_ID, GRAPH_CHANGE_TRACKING_APP_ID, NOW),
                    ],
                    Rejection::SignatureMismatch,
                ),
                (
                    vec![graph_token(
                        &signer(),
                        "another-app",
                        GRAPH_CHANGE_TRACKING_APP_ID,
                        NOW,
                    )],
                    Rejection::TokenMismatch,
                ),
                (
                    vec![graph_token(
                        &signer(),
                        APP_ID,
                        GRAPH_CHANGE_TRACKING_APP_ID,
                        NOW - 3600 - 301,
                    )],
                    Rejection::TimestampOutOfTolerance,
                ),
                (
                    vec![graph_token(
                        &signer(),
                        APP_ID,
                        "4962773b-9cdb-44cf-a8bf-237846a00ab7",
                        NOW,
                    )],
                    Rejection::SenderNotAllowed,
                ),
                (vec![], Rejection::SignatureMissing),
                (vec!["not.a.jwt".to_owned()], Rejection::SignatureMalformed),
                (
                    vec![good(); MAX_VALIDATION_TOKENS + 1],
                    Rejection::SignatureMalformed,
                ),
            ];
            for (index, (tokens, rejection)) in cases.into_iter().enumerate() {
                let body = rich_notification_body(SECRET, &tokens);
                assert_eq!(
                    receive(&v, &body).await.map(|_| ()),
                    Err(rejection),
                    "{index}"
                );
            }
            // A basic notification carries no tokens: refused when they are
            // required; the clientState is still checked first.
            assert_eq!(
                receive(&v, &notification_body(SECRET)).await.map(|_| ()),
                Err(Rejection::SignatureMissing)
            );
            assert_eq!(
                receive(&v, &rich_notification_body("wrong", &[good()]))
                    .await
                    .map(|_| ()),
                Err(Rejection::TokenMismatch)
            );
            assert_eq!(server.hits(), 1, "unknown kids aside, the set is cached");
            // Without the check, the same basic notification is accepted.
            assert!(
                verifier_without()
                    .verify(&HeaderMap::new(), &notification_body(SECRET))
                    .is_ok()
            );
        }

        fn verifier_without() -> MicrosoftGraphVerifier {
            MicrosoftGraphVerifier::new(secrets(&[SECRET])).expect("verifier")
        }

        #[tokio::test]
        async fn a_tenant_of_another_issuer_is_refused_unfetched() {
            let (server, fetcher) = key_server().await;
            let v = verifier(&fetcher);
            let foreign = token(
                &signer(),
                KID,
                &Claims {
                    tenant: "00000000-1111-2222-3333-444444444444",
                    audience: APP_ID,
                    client: GRAPH_CHANGE_TRACKING_APP_ID,
                    iat: NOW,
                    v2: true,
                },
            );
            let body = rich_notification_body(SECRET, &[foreign]);
            assert_eq!(
                receive(&v, &body).await.map(|_| ()),
                Err(Rejection::TokenMismatch)
            );
            assert_eq!(server.hits(), 0);
        }
    }
}
