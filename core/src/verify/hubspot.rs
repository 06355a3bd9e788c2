//! HubSpot's request signature v3: `X-HubSpot-Signature-v3: <base64
//! HMAC-SHA256(app client secret, method + URI + body + timestamp)>` where
//! `timestamp` is `X-HubSpot-Request-Timestamp` (Unix milliseconds, exactly
//! as sent) and `URI` is the full URL HubSpot called (scheme, host, path,
//! query), with the twelve percent-encodings HubSpot lists decoded
//! (`%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B` → `: / ? @ ! $ ' ( ) * , ;`),
//! every other byte as received. A timestamp more than five minutes away
//! from the receiver's clock is refused (HubSpot: "reject the request if the
//! timestamp is older than 5 minutes"; as far in the future is refused too).
//!
//! The URL comes from the spec like Twilio's and Square's (see
//! [`super::public_url`]); the query and the method are the request's. The
//! client secret is used as raw bytes. The event type is the first event's
//! `subscriptionType` (HubSpot batches up to 100 events in a JSON array).
//! There is no delivery id: HubSpot documents `eventId` as "not guaranteed
//! to be unique", so using it for de-duplication could drop real events.
//! The older v1/v2 signatures (unkeyed SHA-256, no timestamp) are not
//! accepted.
//!
//! See <https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests#validate-the-v3-request-signature>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::hmac_common::{
    check_fresh, find_secret, json_body, json_info, mac, require_secrets, signature_header,
    system_clock,
};
use super::public_url::PublicUrl;
use super::{
    Clock, Incoming, Rejection, Verdict, Verified, Verifier, VerifierError, single_header,
};
use crate::secrets::Secret;

const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

/// HubSpot's documented window: five minutes.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// The characters HubSpot signs decoded when the request URI carries them
/// percent-encoded (its v3 validation table), and only these.
const DECODED: &[u8] = b":/?@!$'()*,;";

/// Verifies HubSpot v3 signatures against one or more client secrets.
#[derive(Debug)]
pub struct HubspotVerifier {
    secrets: Vec<Secret>,
    url: PublicUrl,
    tolerance: u32,
    clock: Clock,
}

impl HubspotVerifier {
    /// A verifier for requests HubSpot sends to `url`, accepting any of
    /// `secrets` (app client secrets) within `tolerance` seconds.
    pub fn new(
        secrets: Vec<Secret>,
        url: PublicUrl,
        tolerance: u32,
    ) -> Result<Self, VerifierError> {
        Self::with_clock(secrets, url, tolerance, system_clock)
    }

    /// As [`HubspotVerifier::new`], reading the time from `clock`.
    pub fn with_clock(
        secrets: Vec<Secret>,
        url: PublicUrl,
        tolerance: u32,
        clock: Clock,
    ) -> Result<Self, VerifierError> {
        require_secrets(&secrets)?;
        Ok(Self {
            secrets,
            url,
            tolerance,
            clock,
        })
    }

    fn verify_request(
        &self,
        method: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let value = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = BASE64
            .decode(value.trim())
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::SignatureMalformed)?;
        let timestamp = single_header(headers, TIMESTAMP_HEADER)
            .map_err(|()| Rejection::TimestampMalformed)?
            .ok_or(Rejection::TimestampMissing)?;
        let millis = parse_millis(timestamp)?;
        check_fresh((self.clock)(), millis.div_euclid(1000), self.tolerance)?;
        let uri = decode_uri(&self.url.with_query(query));
        let parts: [&[u8]; 4] = [
            method.as_bytes(),
            uri.as_bytes(),
            body,
            timestamp.as_bytes(),
        ];
        let secret_index = find_secret::<Hmac<Sha256>>(&self.secrets, &parts, &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/0/subscriptionType"),
            delivery_id: None,
            secret_index,
        })
    }
}

/// Unix milliseconds as plain decimal digits; at most 18 of them, so an
/// absurd value is malformed without being parsed.
fn parse_millis(text: &str) -> Result<i64, Rejection> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::TimestampMalformed);
    }
    text.parse().map_err(|_| Rejection::TimestampMalformed)
}

/// `uri` with HubSpot's twelve percent-encodings decoded, every other byte
/// (other escapes included) kept. The hex digits are matched in either case:
/// RFC 3986 makes `%3a` and `%3A` the same octet.
pub fn decode_uri(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let escaped = bytes
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(|b| DECODED.contains(b));
            if let Some(decoded) = escaped {
                out.push(decoded);
                at += 3;
                continue;
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    // Only ASCII escapes were replaced by ASCII bytes: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Verifier for HubspotVerifier {
    fn provider(&self) -> &'static str {
        "hubspot"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    /// Without the request line, the request is taken to be a `POST` to the
    /// public URL without a query.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        self.verify_request("POST", None, headers, body)
    }

    fn check(&self, request: &Incoming<'_>) -> Result<Verdict, Rejection> {
        self.verify_request(
            request.method.as_str(),
            request.uri.query(),
            request.headers,
            request.body,
        )
        .map(Verdict::Deliver)
    }
}

/// The headers HubSpot sends for a `method` request to `url` (the full URL,
/// query included) with `body`, signed with the client `secret` at
/// `timestamp_ms` (Unix milliseconds).
pub fn sign(
    secret: &[u8],
    method: &str,
    url: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> Vec<(&'static str, String)> {
    let ts = timestamp_ms.to_string();
    let uri = decode_uri(url);
    let signature = mac::<Hmac<Sha256>>(
        secret,
        &[method.as_bytes(), uri.as_bytes(), body, ts.as_bytes()],
    );
    vec![
        (SIGNATURE_HEADER, BASE64.encode(signature)),
        (TIMESTAMP_HEADER, ts),
    ]
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::super::hmac_common::test_support::*;
    use super::*;

    // The v3 vector of HubSpot's own Python SDK,
    // HubSpot/hubspot-api-python `tests/spec/utils/test_signature.py`
    // (`test_get_signature__v3`): secret, body, URL, method, timestamp and
    // expected signature. Also checked with
    // `printf '%s' "POSThttps://www.example.com/webhook_uri{'example_field':'example_value'}15000000" | openssl dgst -sha256 -hmac yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy -binary | base64`.
    const SDK_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const SDK_BODY: &str = "{'example_field':'example_value'}";
    const SDK_URL: &str = "https://www.example.com/webhook_uri";
    const SDK_TIMESTAMP: &str = "15000000";
    const SDK_SIGNATURE: &str = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=";

    const URL: &str = "https://hooks.example.com/hubspot";
    const BODY: &[u8] = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    fn sdk_now() -> i64 {
        15_000
    }

    fn verifier_at(url: &str, clock: Clock, secrets_: &[&str]) -> HubspotVerifier {
        HubspotVerifier::with_clock(
            secrets(secrets_),
            PublicUrl::parse(url).expect("url"),
            DEFAULT_TOLERANCE_SECS,
            clock,
        )
        .expect("verifier")
    }

    fn verifier(secrets_: &[&str]) -> HubspotVerifier {
        verifier_at(URL, now, secrets_)
    }

    fn check(
        v: &HubspotVerifier,
        method: Method,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let uri: Uri = target.parse().expect("uri");
        match v.check(&Incoming {
            method: &method,
            uri: &uri,
            headers,
            body,
        })? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(h) => panic!("HubSpot has no handshake: {h:?}"),
        }
    }

    fn signed(method: &str, url: &str, body: &[u8], ms: i64) -> HeaderMap {
        signed_headers(&sign(b"s3cret", method, url, body, ms))
    }

    #[test]
    fn hubspots_published_vector() {
        let v = verifier_at(SDK_URL, sdk_now, &["other", SDK_SECRET]);
        let headers = headers(&[
            (SIGNATURE_HEADER, SDK_SIGNATURE),
            (TIMESTAMP_HEADER, SDK_TIMESTAMP),
        ]);
        let verified = check(
            &v,
            Method::POST,
            "/webhook_uri",
            &headers,
            SDK_BODY.as_bytes(),
        )
        .expect("verifies");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            sign(
                SDK_SECRET.as_bytes(),
                "POST",
                SDK_URL,
                SDK_BODY.as_bytes(),
                15_000_000
            ),
            vec![
                (SIGNATURE_HEADER, SDK_SIGNATURE.to_owned()),
                (TIMESTAMP_HEADER, SDK_TIMESTAMP.to_owned())
            ]
        );
    }

    #[test]
    fn the_first_events_type_and_no_delivery_id() {
        let ms = NOW * 1000;
        let verified = check(
            &verifier(&["s3cret"]),
            Method::POST,
            "/hubspot",
            &signed("POST", URL, BODY, ms),
            BODY,
        )
        .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("contact.creation".into()),
                delivery_id: None,
                secret_index: 0,
            }
        );
    }

    #[test]
    fn method_url_query_body_and_timestamp_are_signed() {
        let v = verifier(&["s3cret"]);
        let ms = NOW * 1000;
        let url = format!("{URL}?portal=1");
        let good = signed("POST", &url, BODY, ms);
        assert!(check(&v, Method::POST, "/hubspot?portal=1", &good, BODY).is_ok());
        for (method, target, body) in [
            (Method::PUT, "/hubspot?portal=1", BODY.to_vec()),
            (Method::POST, "/hubspot?portal=2", BODY.to_vec()),
            (Method::POST, "/hubspot", BODY.to_vec()),
            (Method::POST, "/hubspot?portal=1", tamper(BODY)),
        ] {
            assert_eq!(
                check(&v, method.clone(), target, &good, &body),
                Err(Rejection::SignatureMismatch),
                "{method} {target}"
            );
        }
        // Another host or path in the spec does not verify either.
        assert_eq!(
            check(
                &verifier_at("https://hooks.example.com/other", now, &["s3cret"]),
                Method::POST,
                "/other?portal=1",
                &good,
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
        // The timestamp is signed: moved by one millisecond, no match.
        let moved = with_header(&good, TIMESTAMP_HEADER, &(ms + 1).to_string());
        assert_eq!(
            check(&v, Method::POST, "/hubspot?portal=1", &moved, BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(
                &verifier(&["other"]),
                Method::POST,
                "/hubspot?portal=1",
                &good,
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn the_listed_escapes_are_signed_decoded() {
        assert_eq!(
            decode_uri("https://h/p%2Fq?e=a%40b.c&t=%3a%3B%20%25%2B%2f&x=%4"),
            "https://h/p/q?e=a@b.c&t=:;%20%25%2B/&x=%4"
        );
        assert_eq!(
            decode_uri("%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"),
            ":/?@!$'()*,;"
        );
        // HubSpot signs `?email=a@b.c` for a request to `?email=a%40b.c`.
        let v = verifier(&["s3cret"]);
        let ms = NOW * 1000;
        let decoded = signed("POST", &format!("{URL}?email=a@b.c&n=%20"), BODY, ms);
        assert!(
            check(
                &v,
                Method::POST,
                "/hubspot?email=a%40b.c&n=%20",
                &decoded,
                BODY
            )
            .is_ok()
        );
        // An escape outside the table stays as sent.
        assert_eq!(
            check(
                &v,
                Method::POST,
                "/hubspot?email=a%40b.c&n=+",
                &decoded,
                BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn timestamps_in_milliseconds() {
        let v = verifier(&["s3cret"]);
        let at = |ms: i64| v.verify(&signed("POST", URL, BODY, ms), BODY);
        assert!(at((NOW - 300) * 1000).is_ok());
        assert!(at((NOW + 300) * 1000 + 999).is_ok());
        assert_eq!(
            at((NOW - 301) * 1000),
            Err(Rejection::TimestampOutOfTolerance)
        );
        assert_eq!(
            at((NOW + 301) * 1000),
            Err(Rejection::TimestampOutOfTolerance)
        );
        // Seconds instead of milliseconds are a timestamp in 1970.
        assert_eq!(at(NOW), Err(Rejection::TimestampOutOfTolerance));
        let good = signed("POST", URL, BODY, NOW * 1000);
        assert_eq!(
            v.verify(&without_header(&good, TIMESTAMP_HEADER), BODY),
            Err(Rejection::TimestampMissing)
        );
        for bad in ["x", "-1", "1.5", " 1", &huge_value("1")] {
            assert_eq!(
                v.verify(&with_header(&good, TIMESTAMP_HEADER, bad), BODY),
                Err(Rejection::TimestampMalformed),
                "{}",
                &bad[..bad.len().min(20)]
            );
        }
        let mut twice = good.clone();
        twice.append(TIMESTAMP_HEADER, good[TIMESTAMP_HEADER].clone());
        assert_eq!(v.verify(&twice, BODY), Err(Rejection::TimestampMalformed));
        let narrow = HubspotVerifier::with_clock(
            secrets(&["s3cret"]),
            PublicUrl::parse(URL).expect("url"),
            10,
            now,
        )
        .expect("verifier");
        assert_eq!(
            narrow.verify(&signed("POST", URL, BODY, (NOW - 11) * 1000), BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn common_behaviour() {
        body_signature_suite(&Suite {
            build: |s| {
                Ok(Box::new(HubspotVerifier::with_clock(
                    s,
                    PublicUrl::parse(URL).map_err(VerifierError::PublicUrl)?,
                    DEFAULT_TOLERANCE_SECS,
                    now,
                )?))
            },
            sign: |secret, body| sign(secret, "POST", URL, body, NOW * 1000),
            signature_header: SIGNATURE_HEADER,
            body: BODY,
        });
    }

    #[test]
    fn the_preset_needs_the_public_url() {
        use hookwarden_crds::Provider;

        use super::super::{PresetOptions, for_preset};
        let secrets = || vec![Secret::from(&b"s3cret"[..])];
        let err = for_preset(Provider::Hubspot, secrets(), None, PresetOptions::default())
            .expect_err("no public URL");
        assert!(matches!(
            err,
            VerifierError::PublicUrlRequired(Provider::Hubspot)
        ));
        let v = for_preset(
            Provider::Hubspot,
            secrets(),
            None,
            PresetOptions {
                public_url: Some(PublicUrl::parse(URL).expect("url")),
                ..PresetOptions::default()
            },
        )
        .expect("verifier");
        assert_eq!(v.provider(), "hubspot");
        let fresh = super::super::hmac_common::system_clock() * 1000;
        let uri: Uri = "/hubspot".parse().expect("uri");
        let headers = signed("POST", URL, BODY, fresh);
        assert!(matches!(
            v.check(&Incoming {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body: BODY,
            }),
            Ok(Verdict::Deliver(_))
        ));
    }
}
