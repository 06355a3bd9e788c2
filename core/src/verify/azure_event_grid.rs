//! Azure Event Grid webhook deliveries: Event Grid signs nothing. It
//! authenticates a delivery with a Microsoft Entra ID bearer token
//! (`spec.azure.entra`: [`super::entra`], the token must be issued by the
//! tenant to Azure Event Grid for the configured app), or with a secret the
//! subscriber chose, or with both (the secret is checked whenever
//! `secretRefs` lists one). The secret is sent verbatim either as a
//! query parameter of the endpoint URL ("client secret as a query
//! parameter", Microsoft's documented webhook method, and the default here:
//! `?code=<secret>`) or as a custom delivery property, a static header
//! marked secret (`Credential::Header`). Every request must carry it,
//! handshakes included; it is compared in constant time through SHA-256
//! digests (so neither timing nor length leaks). No timestamp is signed:
//! TLS and the stream's de-duplication (by event `id`) are the only defence
//! against a replay.
//!
//! Two endpoint-validation handshakes are answered:
//! - Event Grid schema: a `POST` of `[{"eventType":
//!   "Microsoft.EventGrid.SubscriptionValidationEvent", "data":
//!   {"validationCode": ..}}]`, answered `{"validationResponse": <code>}`.
//! - CloudEvents v1.0 abuse protection: an `OPTIONS` with
//!   `WebHook-Request-Origin: eventgrid.azure.net`, answered 200 with
//!   `WebHook-Allowed-Origin: eventgrid.azure.net` and
//!   `WebHook-Allowed-Rate: *` (the receiver's own rate limits apply). Any
//!   other origin is refused: this preset agrees to Event Grid only, and the
//!   answer never reflects what the request sent.
//!
//! The event is the (first) event's `eventType` (Event Grid schema) or
//! `type` (CloudEvents, structured or binary `ce-type`); the delivery id is
//! its `id` when the delivery holds a single event (a batch has no one id).
//!
//! See <https://learn.microsoft.com/en-us/azure/event-grid/security-authentication>,
//! <https://learn.microsoft.com/en-us/azure/event-grid/delivery-properties>,
//! <https://learn.microsoft.com/en-us/azure/event-grid/end-point-validation-event-grid-events-schema>,
//! <https://learn.microsoft.com/en-us/azure/event-grid/webhook-event-delivery> and
//! <https://github.com/cloudevents/spec/blob/v1.0/http-webhook.md#4-abuse-protection>.

use http::{HeaderMap, HeaderName, Method, Uri};
use serde_json::Value;

use super::entra::{self, EntraCheck};
use super::handshake_common::{Tokens, query_param};
use super::hmac_common::{json_body, require_secrets};
use super::{
    Handshake, Head, Incoming, Prefetch, Rejection, Verdict, Verified, Verifier, VerifierError,
    challenge, info_header, info_value, single_header,
};
use crate::secrets::Secret;

/// The query parameter the secret is read from by default.
pub const DEFAULT_QUERY_PARAMETER: &str = "code";
/// The only origin the CloudEvents handshake is granted to.
pub const EVENT_GRID_ORIGIN: &str = "eventgrid.azure.net";
const REQUEST_ORIGIN: &str = "webhook-request-origin";
const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// Where Event Grid puts the subscriber's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A query parameter of the endpoint URL (`?code=<secret>`).
    Query(String),
    /// A custom delivery property: a static header.
    Header(HeaderName),
}

/// Verifies Event Grid deliveries against one or more shared secrets, an
/// Entra token, or both.
#[derive(Debug)]
pub struct AzureEventGridVerifier {
    credential: Credential,
    /// `None`: no shared secret, the Entra token alone authenticates.
    tokens: Option<Tokens>,
    entra: Option<EntraCheck>,
}

impl AzureEventGridVerifier {
    /// A verifier accepting any of `secrets` in the `code` query parameter.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        Self::with_credential(
            secrets,
            Credential::Query(DEFAULT_QUERY_PARAMETER.to_owned()),
        )
    }

    /// As [`AzureEventGridVerifier::new`], reading the secret from
    /// `credential`.
    pub fn with_credential(
        secrets: Vec<Secret>,
        credential: Credential,
    ) -> Result<Self, VerifierError> {
        Self::with_entra(secrets, credential, None)
    }

    /// As [`AzureEventGridVerifier::with_credential`], also requiring an
    /// Entra token that `entra` accepts. With `entra`, `secrets` may be
    /// empty: then the token alone authenticates.
    pub fn with_entra(
        secrets: Vec<Secret>,
        credential: Credential,
        entra: Option<EntraCheck>,
    ) -> Result<Self, VerifierError> {
        if entra.is_none() || !secrets.is_empty() {
            require_secrets(&secrets)?;
        }
        Ok(Self {
            credential,
            tokens: (!secrets.is_empty()).then(|| Tokens::new(&secrets)),
            entra,
        })
    }

    /// The shared secret (if configured), then the Entra token (if
    /// configured), signature included: the keys must be cached.
    fn authenticate(&self, uri: Option<&Uri>, headers: &HeaderMap) -> Result<usize, Rejection> {
        let index = self.secret(uri, headers)?;
        if let Some(entra) = &self.entra {
            entra.verify(entra::bearer(headers)?)?;
        }
        Ok(index)
    }

    /// The index of the shared secret sent, or 0 without one configured.
    fn secret(&self, uri: Option<&Uri>, headers: &HeaderMap) -> Result<usize, Rejection> {
        let Some(tokens) = &self.tokens else {
            return Ok(0);
        };
        let given = match &self.credential {
            Credential::Query(name) => {
                // A repeated parameter is ambiguous: refused, not chosen from.
                query_param(uri.and_then(Uri::query), name).map_err(|_| Rejection::TokenMismatch)?
            }
            Credential::Header(name) => single_header(headers, name.as_str())
                .map_err(|()| Rejection::TokenMismatch)?
                .map(str::to_owned),
        };
        let given = given.ok_or(Rejection::TokenMissing)?;
        tokens
            .find(given.as_bytes())
            .ok_or(Rejection::TokenMismatch)
    }

    /// What a delivery's events say about it.
    fn describe(secret_index: usize, headers: &HeaderMap, body: &[u8]) -> Verified {
        let json = json_body(body);
        // A batch (an array) is described by its first event, and has an id
        // only if it holds one event.
        let (first, single) = match &json {
            Some(Value::Array(events)) => (events.first(), events.len() == 1),
            Some(event @ Value::Object(_)) => (Some(event), true),
            _ => (None, false),
        };
        let field = |name: &str| {
            first
                .and_then(|event| event.get(name))
                .and_then(Value::as_str)
                .and_then(info_value)
        };
        // Binary-mode CloudEvents carry their attributes as `ce-` headers.
        let event = field("eventType")
            .or_else(|| field("type"))
            .or_else(|| info_header(headers, "ce-type"));
        let delivery_id = if single {
            field("id")
        } else {
            info_header(headers, "ce-id")
        };
        Verified {
            event,
            delivery_id,
            secret_index,
        }
    }
}

/// The subscription validation event's code, if `body` is one; a body
/// that holds it among other events, or without a code, is malformed.
fn validation_code(body: &[u8]) -> Result<Option<String>, Rejection> {
    let Some(Value::Array(events)) = json_body(body) else {
        return Ok(None);
    };
    let is_validation =
        |event: &Value| event.get("eventType").and_then(Value::as_str) == Some(VALIDATION_EVENT);
    if !events.iter().any(is_validation) {
        return Ok(None);
    }
    let [event] = events.as_slice() else {
        return Err(Rejection::HandshakeMalformed);
    };
    challenge(
        event
            .pointer("/data/validationCode")
            .and_then(Value::as_str),
    )
    .map(Some)
}

impl Verifier for AzureEventGridVerifier {
    fn provider(&self) -> &'static str {
        "azure-event-grid"
    }

    fn secret_headers(&self) -> Vec<&str> {
        let mut names = match (&self.credential, &self.tokens) {
            (Credential::Header(name), Some(_)) => vec![name.as_str()],
            _ => Vec::new(),
        };
        if self.entra.is_some() {
            names.push("authorization");
        }
        names
    }

    /// Without the request's URL, a secret expected in the query is missing.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let secret_index = self.authenticate(None, headers)?;
        Ok(Self::describe(secret_index, headers, body))
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        let secret_index = self.authenticate(Some(request.uri), request.headers)?;
        let verified = Verified {
            event: None,
            delivery_id: None,
            secret_index,
        };
        if request.method == Method::OPTIONS {
            let origin = single_header(request.headers, REQUEST_ORIGIN)
                .map_err(|()| Rejection::HandshakeMalformed)?
                .ok_or(Rejection::HandshakeMalformed)?;
            if !origin.trim().eq_ignore_ascii_case(EVENT_GRID_ORIGIN) {
                return Err(Rejection::HandshakeMalformed);
            }
            let Verdict::Handshake(mut handshake) =
                Handshake::answer(verified, "text/plain; charset=utf-8", Vec::new())
            else {
                return Err(Rejection::HandshakeMalformed);
            };
            handshake.headers = vec![
                ("webhook-allowed-origin", EVENT_GRID_ORIGIN.to_owned()),
                ("webhook-allowed-rate", "*".to_owned()),
                ("allow", "POST, OPTIONS".to_owned()),
            ];
            return Ok(Verdict::Handshake(handshake));
        }
        if let Some(code) = validation_code(request.body)? {
            return Ok(Handshake::answer(
                verified,
                "application/json",
                validation_response(&code).into_bytes(),
            ));
        }
        Ok(Verdict::Deliver(Self::describe(
            secret_index,
            request.headers,
            request.body,
        )))
    }

    fn answers_options(&self) -> bool {
        true
    }

    /// The secret needs no body: it is checked whole before the body is
    /// read; of an Entra token, what needs no key (its keys may not be
    /// cached yet).
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        self.secret(Some(request.uri), request.headers)?;
        if let Some(entra) = &self.entra {
            entra.parse(entra::bearer(request.headers)?)?;
        }
        Ok(())
    }

    /// With Entra: the key of the token's `kid`. A request that fails the
    /// cheap checks is refused by `check` without any fetch.
    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        let entra = self.entra.as_ref()?;
        self.secret(Some(request.uri), request.headers).ok()?;
        let token = entra.parse(entra::bearer(request.headers).ok()?).ok()?;
        Some(entra.prefetch(vec![token.kid]))
    }
}

/// The endpoint's query with the secret as Event Grid sends it (the
/// default `code` parameter).
pub fn secret_query(secret: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(DEFAULT_QUERY_PARAMETER, secret)
        .finish()
}

/// The `Authorization` header of a delivery with Entra authentication: an
/// app-only v1.0 token of `tenant` for `audience`, issued to Azure Event
/// Grid at `iat`, signed with `key` under `kid`.
pub fn entra_header(
    key: &ring::signature::RsaKeyPair,
    kid: &str,
    tenant: &str,
    audience: &str,
    iat: i64,
) -> (&'static str, String) {
    let token = entra::token(
        key,
        kid,
        &entra::Claims {
            tenant,
            audience,
            client: entra::EVENT_GRID_APP_ID,
            iat,
            v2: false,
        },
    );
    ("authorization", format!("Bearer {token}"))
}

/// A subscription validation event (Event Grid schema) as Event Grid posts it.
pub fn validation_body(validation_code: &str) -> Vec<u8> {
    serde_json::json!([{
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "subject": "",
        "data": {
            "validationCode": validation_code,
            "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/myeventsub/validate?id=0000000000-0000-0000-0000-00000000000000&t=2022-10-28T04:23:35.1981776Z&apiVersion=2018-05-01-preview&token=1A1A1A1A",
        },
        "eventType": VALIDATION_EVENT,
        "eventTime": "2022-10-28T04:23:35.1981776Z",
        "metadataVersion": "1",
        "dataVersion": "1",
    }])
    .to_string()
    .into_bytes()
}

/// The answer Event Grid expects to a subscription validation event.
pub fn validation_response(validation_code: &str) -> String {
    serde_json::json!({ "validationResponse": validation_code }).to_string()
}

/// The headers of the CloudEvents abuse-protection `OPTIONS` Event Grid sends.
pub fn options_headers() -> Vec<(&'static str, String)> {
    vec![(REQUEST_ORIGIN, EVENT_GRID_ORIGIN.to_owned())]
}

/// The query Event Grid sends the secret in, for a delivery signed (that is,
/// carrying) `secret`; the headers are the usual Event Grid ones.
pub fn sign(secret: &[u8]) -> (String, Vec<(&'static str, String)>) {
    (
        secret_query(&String::from_utf8_lossy(secret)),
        vec![("aeg-event-type", "Notification".to_owned())],
    )
}

#[cfg(test)]
mod tests {
    use super::super::expect_handshake;
    use super::super::hmac_common::test_support::*;
    use super::*;

    const SECRET: &str = "s3cr3t+/=";
    /// The validation event of Microsoft's documentation
    /// (<https://learn.microsoft.com/en-us/azure/event-grid/end-point-validation-event-grid-events-schema>),
    /// answered `{"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}`.
    const CODE: &str = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6";
    const DELIVERY: &[u8] = br#"[{"id":"9aeb0fdf-c01e-0131-0922-9eb54906e209","topic":"/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z","subject":"/blobServices/default/containers/c/blobs/b","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2019-01-01T00:00:00Z","data":{},"dataVersion":"","metadataVersion":"1"}]"#;

    fn verifier(secrets_: &[&str]) -> AzureEventGridVerifier {
        AzureEventGridVerifier::new(secrets(secrets_)).expect("verifier")
    }

    fn send(
        v: &AzureEventGridVerifier,
        method: Method,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verdict, Rejection> {
        let uri: Uri = format!("/api/events?{query}").parse().expect("uri");
        v.precheck(&Head {
            method: &method,
            uri: &uri,
            headers,
        })?;
        v.check(&Incoming {
            method: &method,
            uri: &uri,
            headers,
            body,
        })
    }

    fn delivered(verdict: Result<Verdict, Rejection>) -> Verified {
        match verdict {
            Ok(Verdict::Deliver(verified)) => verified,
            other => panic!("a delivery: {other:?}"),
        }
    }

    #[test]
    fn deliveries_need_the_query_secret() {
        let v = verifier(&["old", SECRET]);
        let (query, pairs) = sign(SECRET.as_bytes());
        assert_eq!(query, "code=s3cr3t%2B%2F%3D");
        let good = signed_headers(&pairs);
        let verified = delivered(send(&v, Method::POST, &query, &good, DELIVERY));
        assert_eq!(
            verified,
            Verified {
                event: Some("Microsoft.Storage.BlobCreated".into()),
                delivery_id: Some("9aeb0fdf-c01e-0131-0922-9eb54906e209".into()),
                secret_index: 1,
            }
        );
        let post = |query: &str| send(&v, Method::POST, query, &good, DELIVERY).map(|_| ());
        assert_eq!(post(""), Err(Rejection::TokenMissing));
        assert_eq!(post("code=s3cr3t"), Err(Rejection::TokenMismatch));
        assert_eq!(post("code="), Err(Rejection::TokenMismatch));
        assert_eq!(
            post(&format!("{query}&{query}")),
            Err(Rejection::TokenMismatch),
            "a repeated secret is ambiguous"
        );
        assert_eq!(post(&format!("a=1&{query}&b=2")), Ok(()));
        // Without the URL there is no secret to check.
        assert_eq!(v.verify(&good, DELIVERY), Err(Rejection::TokenMissing));
    }

    #[test]
    fn cloudevents_deliveries_and_batches() {
        let v = verifier(&[SECRET]);
        let query = secret_query(SECRET);
        let none = HeaderMap::new();
        let single = br#"{"specversion":"1.0","type":"Microsoft.Storage.BlobCreated","source":"/x","id":"e-1","data":{}}"#;
        let verified = delivered(send(&v, Method::POST, &query, &none, single));
        assert_eq!(
            verified.event.as_deref(),
            Some("Microsoft.Storage.BlobCreated")
        );
        assert_eq!(verified.delivery_id.as_deref(), Some("e-1"));
        let batch = br#"[{"type":"a.b","id":"e-1"},{"type":"c.d","id":"e-2"}]"#;
        let verified = delivered(send(&v, Method::POST, &query, &none, batch));
        assert_eq!(verified.event.as_deref(), Some("a.b"));
        assert_eq!(verified.delivery_id, None, "a batch has no one id");
        let binary = headers(&[("ce-type", "a.b"), ("ce-id", "e-3")]);
        let verified = delivered(send(&v, Method::POST, &query, &binary, b"raw"));
        assert_eq!(
            (verified.event.as_deref(), verified.delivery_id.as_deref()),
            (Some("a.b"), Some("e-3"))
        );
    }

    #[test]
    fn the_subscription_validation_event_is_answered() {
        let v = verifier(&[SECRET]);
        let query = secret_query(SECRET);
        let none = HeaderMap::new();
        let body = validation_body(CODE);
        let handshake = expect_handshake(send(&v, Method::POST, &query, &none, &body));
        assert_eq!(handshake.content_type, "application/json");
        assert_eq!(
            handshake.body,
            br#"{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}"#
        );
        assert_eq!(validation_response(CODE).as_bytes(), handshake.body);
        // Not without the secret.
        assert_eq!(
            send(&v, Method::POST, "", &none, &body).map(|_| ()),
            Err(Rejection::TokenMissing)
        );
        // No code, an odd code, or mixed with other events: refused.
        for bad in [
            br#"[{"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]"#
                .to_vec(),
            validation_body("<b> x"),
            format!(
                "[{},{}]",
                String::from_utf8_lossy(&validation_body(CODE))
                    .trim_start_matches('[')
                    .trim_end_matches(']'),
                r#"{"eventType":"x.y","id":"1"}"#
            )
            .into_bytes(),
        ] {
            assert_eq!(
                send(&v, Method::POST, &query, &none, &bad).map(|_| ()),
                Err(Rejection::HandshakeMalformed),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    #[test]
    fn the_cloudevents_options_handshake_is_granted_to_event_grid_only() {
        let v = verifier(&[SECRET]);
        assert!(v.answers_options());
        assert!(!v.answers_get());
        let query = secret_query(SECRET);
        let good = signed_headers(&options_headers());
        let handshake = expect_handshake(send(&v, Method::OPTIONS, &query, &good, b""));
        assert!(handshake.body.is_empty());
        assert_eq!(
            handshake.headers,
            vec![
                ("webhook-allowed-origin", "eventgrid.azure.net".to_owned()),
                ("webhook-allowed-rate", "*".to_owned()),
                ("allow", "POST, OPTIONS".to_owned()),
            ]
        );
        let options = |query: &str, headers: &HeaderMap| {
            send(&v, Method::OPTIONS, query, headers, b"").map(|_| ())
        };
        assert_eq!(
            options(&query, &headers(&[(REQUEST_ORIGIN, "EventGrid.Azure.NET")])),
            Ok(())
        );
        assert_eq!(options("", &good), Err(Rejection::TokenMissing));
        for bad in ["evil.example.com", "eventgrid.azure.net.evil.example", "*"] {
            assert_eq!(
                options(&query, &headers(&[(REQUEST_ORIGIN, bad)])),
                Err(Rejection::HandshakeMalformed),
                "{bad}"
            );
        }
        assert_eq!(
            options(&query, &HeaderMap::new()),
            Err(Rejection::HandshakeMalformed)
        );
        let mut twice = good.clone();
        twice.append(REQUEST_ORIGIN, "other".parse().expect("value"));
        assert_eq!(options(&query, &twice), Err(Rejection::HandshakeMalformed));
    }

    #[test]
    fn a_delivery_header_instead_of_the_query() {
        let v = AzureEventGridVerifier::with_credential(
            secrets(&[SECRET]),
            Credential::Header(HeaderName::from_static("x-hook-secret")),
        )
        .expect("verifier");
        assert_eq!(v.secret_headers(), vec!["x-hook-secret"]);
        let good = headers(&[("x-hook-secret", SECRET)]);
        assert!(v.verify(&good, DELIVERY).is_ok());
        let verified = delivered(send(&v, Method::POST, "", &good, DELIVERY));
        assert_eq!(verified.secret_index, 0);
        // The secret in the query is not where this endpoint expects it.
        assert_eq!(
            send(
                &v,
                Method::POST,
                &secret_query(SECRET),
                &HeaderMap::new(),
                DELIVERY
            )
            .map(|_| ()),
            Err(Rejection::TokenMissing)
        );
        let mut twice = good.clone();
        twice.append("x-hook-secret", SECRET.parse().expect("value"));
        assert_eq!(v.verify(&twice, DELIVERY), Err(Rejection::TokenMismatch));
    }

    #[test]
    fn built_under_its_manifest_name() {
        let built = super::super::for_provider(
            hookwarden_crds::Provider::AzureEventGrid,
            secrets(&["s"]),
            None,
        )
        .expect("verifier");
        assert_eq!(built.provider(), "azure-event-grid");
        assert!(built.answers_options());
        assert!(matches!(
            super::super::for_provider(hookwarden_crds::Provider::AzureEventGrid, Vec::new(), None),
            Err(VerifierError::NoSecrets)
        ));
    }

    mod entra_tokens {
        use std::sync::Arc;

        use super::super::super::entra::test_support::{KID, TENANT, key_server};
        use super::super::super::entra::{DEFAULT_LEEWAY_SECS, EVENT_GRID_APP_ID, EntraSettings};
        use super::super::super::keys::KeyFetcher;
        use super::super::super::keys::material::test_keys::{other, signer};
        use super::*;

        const AUDIENCE: &str = "api://hookwarden-events";

        fn now() -> i64 {
            NOW
        }

        fn verifier(secrets_: &[&str], fetcher: &Arc<KeyFetcher>) -> AzureEventGridVerifier {
            let entra = EntraCheck::new(
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
            .expect("entra");
            AzureEventGridVerifier::with_entra(
                secrets(secrets_),
                Credential::Query(DEFAULT_QUERY_PARAMETER.to_owned()),
                Some(entra),
            )
            .expect("verifier")
        }

        /// As the server does: precheck, prefetch, check.
        async fn receive(
            v: &AzureEventGridVerifier,
            method: Method,
            query: &str,
            headers: &HeaderMap,
            body: &[u8],
        ) -> Result<Verdict, Rejection> {
            let uri: Uri = format!("/api/events?{query}").parse().expect("uri");
            v.precheck(&Head {
                method: &method,
                uri: &uri,
                headers,
            })?;
            let request = Incoming {
                method: &method,
                uri: &uri,
                headers,
                body,
            };
            if let Some(fetching) = v.prefetch(&request) {
                fetching.await?;
            }
            v.check(&request)
        }

        fn bearer(key: &ring::signature::RsaKeyPair, audience: &str, iat: i64) -> HeaderMap {
            signed_headers(&[entra_header(key, KID, TENANT, audience, iat)])
        }

        #[tokio::test]
        async fn the_token_alone_authenticates_deliveries_and_handshakes() {
            let (server, fetcher) = key_server().await;
            let v = verifier(&[], &fetcher);
            assert_eq!(v.secret_headers(), vec!["authorization"]);
            let good = bearer(&signer(), AUDIENCE, NOW - 60);
            let verified = delivered(receive(&v, Method::POST, "", &good, DELIVERY).await);
            assert_eq!(verified.secret_index, 0);
            assert_eq!(
                verified.event.as_deref(),
                Some("Microsoft.Storage.BlobCreated")
            );
            let handshake = expect_handshake(
                receive(&v, Method::POST, "", &good, &validation_body(CODE)).await,
            );
            assert_eq!(handshake.body, validation_response(CODE).as_bytes());
            let mut options = good.clone();
            options.extend(signed_headers(&options_headers()));
            expect_handshake(receive(&v, Method::OPTIONS, "", &options, b"").await);
            assert_eq!(server.hits(), 1);

            // Without a token, or with a forged, expired, misaddressed one.
            for (headers, rejection) in [
                (HeaderMap::new(), Rejection::SignatureMissing),
                (
                    bearer(&other(), AUDIENCE, NOW - 60),
                    Rejection::SignatureMismatch,
                ),
                (
                    bearer(&signer(), AUDIENCE, NOW - 3600 - 301),
                    Rejection::TimestampOutOfTolerance,
                ),
                (
                    bearer(&signer(), "api://other-app", NOW - 60),
                    Rejection::TokenMismatch,
                ),
                (
                    headers(&[("authorization", "Basic dXNlcjpwYXNz")]),
                    Rejection::SignatureMalformed,
                ),
            ] {
                assert_eq!(
                    receive(&v, Method::POST, "", &headers, DELIVERY)
                        .await
                        .map(|_| ()),
                    Err(rejection)
                );
                assert_eq!(
                    receive(&v, Method::POST, "", &headers, &validation_body(CODE))
                        .await
                        .map(|_| ()),
                    Err(rejection),
                    "the handshake too"
                );
            }
            // A token of the tenant, for the app, but not asked for by
            // Event Grid.
            let stranger = super::super::super::entra::token(
                &signer(),
                KID,
                &super::super::super::entra::Claims {
                    tenant: TENANT,
                    audience: AUDIENCE,
                    client: "11111111-2222-3333-4444-555555555555",
                    iat: NOW - 60,
                    v2: true,
                },
            );
            let stranger = headers(&[("authorization", &format!("Bearer {stranger}"))]);
            assert_eq!(
                receive(&v, Method::POST, "", &stranger, DELIVERY)
                    .await
                    .map(|_| ()),
                Err(Rejection::SenderNotAllowed)
            );
            // A query secret is not asked for, and does not replace the token.
            assert_eq!(
                receive(
                    &v,
                    Method::POST,
                    &secret_query(SECRET),
                    &HeaderMap::new(),
                    DELIVERY
                )
                .await
                .map(|_| ()),
                Err(Rejection::SignatureMissing)
            );
        }

        #[tokio::test]
        async fn with_secrets_both_are_required() {
            let (server, fetcher) = key_server().await;
            let v = verifier(&[SECRET], &fetcher);
            let good = bearer(&signer(), AUDIENCE, NOW - 60);
            let query = secret_query(SECRET);
            assert!(
                receive(&v, Method::POST, &query, &good, DELIVERY)
                    .await
                    .is_ok()
            );
            assert_eq!(
                receive(&v, Method::POST, "", &good, DELIVERY)
                    .await
                    .map(|_| ()),
                Err(Rejection::TokenMissing)
            );
            assert_eq!(
                receive(&v, Method::POST, "code=wrong", &good, DELIVERY)
                    .await
                    .map(|_| ()),
                Err(Rejection::TokenMismatch)
            );
            assert_eq!(
                receive(&v, Method::POST, &query, &HeaderMap::new(), DELIVERY)
                    .await
                    .map(|_| ()),
                Err(Rejection::SignatureMissing)
            );
            assert_eq!(server.hits(), 1);
        }

        #[tokio::test]
        async fn no_fetch_for_a_request_without_the_secret_or_a_token() {
            let (server, fetcher) = key_server().await;
            let v = verifier(&[SECRET], &fetcher);
            let good = bearer(&signer(), AUDIENCE, NOW - 60);
            for (query, headers) in [
                ("", good.clone()),
                (secret_query(SECRET).as_str(), HeaderMap::new()),
            ] {
                assert!(
                    receive(&v, Method::POST, query, &headers, DELIVERY)
                        .await
                        .is_err()
                );
            }
            assert_eq!(server.hits(), 0);
        }
    }
}
