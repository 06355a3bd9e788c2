//! Square's scheme: `x-square-hmacsha256-signature: <base64
//! HMAC-SHA256(signature key, notification URL + body)>`, the notification
//! URL exactly as configured in the subscription (see
//! [`super::public_url`]). Square signs no timestamp. The event type is the
//! body's `type`, the delivery id its `event_id` (kept on retries). The
//! legacy `x-square-signature` (HMAC-SHA1) is not accepted.
//!
//! See <https://developer.squareup.com/docs/webhooks/step3validate>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    find_secret, json_body, json_info, mac, require_secrets, signature_header,
};
use super::public_url::PublicUrl;
use super::{Incoming, Rejection, Verdict, Verified, Verifier, VerifierError};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-square-hmacsha256-signature";

/// Verifies Square notifications against one or more signature keys.
#[derive(Debug)]
pub struct SquareVerifier {
    secrets: Vec<Secret>,
    url: PublicUrl,
}

impl SquareVerifier {
    /// A verifier for notifications sent to `url`, accepting any of
    /// `secrets` (signature keys, used as raw bytes).
    pub fn new(secrets: Vec<Secret>, url: PublicUrl) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self { secrets, url })
    }

    fn verify_query(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = BASE64
            .decode(value.trim())
            .map_err(|_| Rejection::SignatureMalformed)?;
        if signature.len() != 32 {
            return Err(Rejection::SignatureMalformed);
        }
        let url = self.url.with_query(query);
        let secret_index =
            find_secret::<Hmac<Sha256>>(&self.secrets, &[url.as_bytes(), body], &[signature])
                .ok_or(Rejection::SignatureMismatch)?;
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/type"),
            delivery_id: json_info(json.as_ref(), "/event_id"),
            secret_index,
        })
    }
}

impl Verifier for SquareVerifier {
    fn provider(&self) -> &'static str {
        "square"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    /// Without the request line, the URL is taken to be the public URL
    /// without a query.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        self.verify_query(None, headers, body)
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        self.verify_query(request.uri.query(), request.headers, request.body)
            .map(Verdict::Deliver)
    }
}

/// The headers Square sends for `body` notified to `url` (the full URL).
pub fn sign(key: &[u8], url: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(
        SIGNATURE_HEADER,
        BASE64.encode(mac::<Hmac<Sha256>>(key, &[url.as_bytes(), body])),
    )]
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::super::hmac_common::test_support::*;
    use super::*;

    // The vector of Square's SDK tests (e.g. square-python-sdk
    // `tests/utilities/test_webhooks_helper.py`, the same in every SDK).
    const BODY: &str = "{\"merchant_id\":\"MLEFBHHSJGVHD\",\"type\":\"webhooks.test_notification\",\"event_id\":\"ac3ac95b-f97d-458c-a6e6-18981597e05f\",\"created_at\":\"2022-07-13T20:30:59.037339943Z\",\"data\":{\"type\":\"webhooks\",\"id\":\"bc368e64-01aa-407e-b46e-3231809b1129\"}}";
    const SIGNATURE: &str = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";
    const KEY: &str = "Ibxx_5AKakO-3qeNVR61Dw";
    const URL: &str = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";

    fn verifier(url: &str) -> SquareVerifier {
        SquareVerifier::new(
            secrets(&["other", KEY]),
            PublicUrl::parse(url).expect("url"),
        )
        .expect("verifier")
    }

    fn check(
        v: &SquareVerifier,
        path: &str,
        signature: &str,
        body: &str,
    ) -> Result<Verified, Rejection> {
        let uri: Uri = path.parse().expect("uri");
        let headers = headers(&[(SIGNATURE_HEADER, signature)]);
        match v.check(&Incoming {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: body.as_bytes(),
        })? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(handshake) => panic!("Square has no handshake: {handshake:?}"),
        }
    }

    #[test]
    fn squares_published_vector() {
        let verified = check(&verifier(URL), "/", SIGNATURE, BODY).expect("verifies");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verified.event.as_deref(),
            Some("webhooks.test_notification")
        );
        assert_eq!(
            verified.delivery_id.as_deref(),
            Some("ac3ac95b-f97d-458c-a6e6-18981597e05f")
        );
        assert_eq!(sign(KEY.as_bytes(), URL, BODY.as_bytes())[0].1, SIGNATURE);
    }

    #[test]
    fn url_query_and_body_are_signed() {
        let v = verifier(URL);
        let changed = BODY.replace("MLEFBHHSJGVHD", "MLEFBHHSJGVHE");
        assert_eq!(
            check(&v, "/", SIGNATURE, &changed).map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(
                &verifier("https://webhook.site/other"),
                "/",
                SIGNATURE,
                BODY
            )
            .map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
        // A query the provider called is part of the signed URL.
        assert_eq!(
            check(&v, "/?x=1", SIGNATURE, BODY).map(|_| ()),
            Err(Rejection::SignatureMismatch)
        );
        let with_query = sign(KEY.as_bytes(), &format!("{URL}?x=1"), BODY.as_bytes());
        assert!(check(&v, "/?x=1", &with_query[0].1, BODY).is_ok());
        assert_eq!(
            check(&v, "/", "AAAA", BODY).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
    }
}
