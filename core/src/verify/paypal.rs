//! PayPal webhooks (REST API). `PAYPAL-TRANSMISSION-SIG` is the base64
//! RSA PKCS#1 v1.5 SHA-256 signature (`PAYPAL-AUTH-ALGO: SHA256withRSA`)
//! of `<PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<webhook
//! id>|<CRC-32 of the raw body, unsigned decimal>`, where the webhook id is
//! the one PayPal gave the endpoint (`spec.paypal.webhookId`). The key is
//! the first certificate at `PAYPAL-CERT-URL`, fetched only from PayPal's
//! API hosts ([`super::keys::url::paypal_cert_url`]). No shared secret.
//!
//! Replay defence: `PAYPAL-TRANSMISSION-TIME` within the tolerance. The
//! delivery id is the body's event `id` (kept by PayPal's retries, which
//! are new transmissions), else `PAYPAL-TRANSMISSION-ID`; the event type is
//! the body's `event_type`.
//!
//! See <https://developer.paypal.com/api/rest/webhooks/rest/#link-eventheadervalidation>
//! and <https://developer.paypal.com/api/webhooks/v1/#verify-webhook-signature>.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use ring::signature::RsaKeyPair;

use super::hmac_common::{json_body, json_info, signature_header, system_clock};
use super::keys::{KeyFetcher, KeyKind, KeyUrl, RsaDigest, Signer, material, url};
use super::{
    Clock, Incoming, Prefetch, Rejection, Verified, Verifier, VerifierError, info_header,
    single_header,
};

const SIGNATURE_HEADER: &str = "paypal-transmission-sig";
const ID_HEADER: &str = "paypal-transmission-id";
const TIME_HEADER: &str = "paypal-transmission-time";
const CERT_URL_HEADER: &str = "paypal-cert-url";
const ALGO_HEADER: &str = "paypal-auth-algo";
/// The only algorithm PayPal names.
const ALGO: &str = "SHA256withRSA";

/// Five minutes, the receiver's default window.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Verifies PayPal deliveries to one webhook.
#[derive(Debug)]
pub struct PaypalVerifier {
    webhook_id: String,
    tolerance: u32,
    clock: Clock,
    fetcher: Arc<KeyFetcher>,
}

/// What the header checks found, before any key is needed.
struct Parsed<'a> {
    cert_url: KeyUrl,
    signature: Vec<u8>,
    transmission_id: &'a str,
    transmission_time: &'a str,
}

impl PaypalVerifier {
    /// A verifier for the webhook `webhook_id` within `tolerance` seconds,
    /// with the process's key fetcher.
    pub fn new(webhook_id: String, tolerance: u32) -> Result<Self, VerifierError> {
        Self::with_clock(webhook_id, tolerance, system_clock, KeyFetcher::shared())
    }

    /// As [`PaypalVerifier::new`], reading the time from `clock` and keys
    /// through `fetcher`.
    pub fn with_clock(
        webhook_id: String,
        tolerance: u32,
        clock: Clock,
        fetcher: Arc<KeyFetcher>,
    ) -> Result<Self, VerifierError> {
        if webhook_id.trim().is_empty() {
            return Err(VerifierError::SettingRequired {
                provider: "paypal",
                setting: "spec.paypal.webhookId",
            });
        }
        Ok(Self {
            webhook_id,
            tolerance,
            clock,
            fetcher,
        })
    }

    fn parse<'a>(&self, headers: &'a HeaderMap) -> Result<Parsed<'a>, Rejection> {
        let signature = signature_header(headers, SIGNATURE_HEADER)?;
        let signature = STANDARD
            .decode(signature)
            .map_err(|_| Rejection::SignatureMalformed)?;
        let header = |name: &str| {
            single_header(headers, name)
                .map_err(|()| Rejection::SignatureMalformed)?
                .ok_or(Rejection::SignatureMalformed)
        };
        if !header(ALGO_HEADER)?.eq_ignore_ascii_case(ALGO) {
            return Err(Rejection::SignatureMalformed);
        }
        let transmission_id = header(ID_HEADER)?;
        let cert_url =
            url::paypal_cert_url(header(CERT_URL_HEADER)?).ok_or(Rejection::KeyUrlNotAllowed)?;
        let transmission_time = single_header(headers, TIME_HEADER)
            .map_err(|()| Rejection::TimestampMalformed)?
            .ok_or(Rejection::TimestampMissing)?;
        let seconds = transmission_time
            .parse::<jiff::Timestamp>()
            .map_err(|_| Rejection::TimestampMalformed)?
            .as_second();
        if (self.clock)().abs_diff(seconds) > u64::from(self.tolerance) {
            return Err(Rejection::TimestampOutOfTolerance);
        }
        Ok(Parsed {
            cert_url,
            signature,
            transmission_id,
            transmission_time,
        })
    }
}

impl Verifier for PaypalVerifier {
    fn provider(&self) -> &'static str {
        "paypal"
    }

    fn secret_headers(&self) -> Vec<&str> {
        vec![SIGNATURE_HEADER]
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        let parsed = self.parse(headers)?;
        let key = self
            .fetcher
            .certificate_key(&parsed.cert_url, Signer::Paypal, (self.clock)())?;
        let message = signed_message(
            parsed.transmission_id,
            parsed.transmission_time,
            &self.webhook_id,
            body,
        );
        if !key.verifies(RsaDigest::Sha256, message.as_bytes(), &parsed.signature) {
            return Err(Rejection::SignatureMismatch);
        }
        let json = json_body(body);
        Ok(Verified {
            event: json_info(json.as_ref(), "/event_type"),
            delivery_id: json_info(json.as_ref(), "/id")
                .or_else(|| info_header(headers, ID_HEADER)),
            secret_index: 0,
        })
    }

    fn prefetch(&self, request: &Incoming<'_>) -> Option<Prefetch> {
        let parsed = match self.parse(request.headers) {
            Ok(parsed) => parsed,
            Err(Rejection::KeyUrlNotAllowed) => {
                return Some(Box::pin(async { Err(Rejection::KeyUrlNotAllowed) }));
            }
            Err(_) => return None,
        };
        let fetcher = Arc::clone(&self.fetcher);
        let cert_url = parsed.cert_url;
        let kind = KeyKind::Certificate {
            signer: Signer::Paypal,
            now: (self.clock)(),
        };
        Some(Box::pin(async move {
            fetcher
                .ensure(&cert_url, kind)
                .await
                .map_err(Rejection::from)
        }))
    }
}

/// `<id>|<time>|<webhook id>|<crc32(body)>`, what PayPal signs.
fn signed_message(id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    format!("{id}|{time}|{webhook_id}|{}", crc32(body))
}

/// The CRC-32 (IEEE 802.3, as zlib's `crc32`) table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC-32 of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        CRC_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

/// The headers PayPal sends for `body` to the webhook `webhook_id`, signed
/// with `key` at `timestamp` (Unix seconds); the certificate of `key` must
/// be served at `cert_url`.
pub fn sign(
    key: &RsaKeyPair,
    cert_url: &str,
    webhook_id: &str,
    transmission_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let time = jiff::Timestamp::from_second(timestamp)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let message = signed_message(transmission_id, &time, webhook_id, body);
    let signature = STANDARD.encode(material::rsa_sha256_sign(key, message.as_bytes()));
    vec![
        (ID_HEADER, transmission_id.to_owned()),
        (TIME_HEADER, time),
        (SIGNATURE_HEADER, signature),
        (CERT_URL_HEADER, cert_url.to_owned()),
        (ALGO_HEADER, ALGO.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::hmac_common::test_support::{
        NOW, signed_headers, with_header, without_header,
    };
    use super::super::keys::FetcherConfig;
    use super::super::keys::material::test_keys::*;
    use super::super::keys::test_server::{KeyServer, TestCa, pem};
    use super::super::{Verdict, check_post};
    use super::*;

    const HOST: &str = "api.paypal.com";
    const CERT_PATH: &str = "/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77";
    const WEBHOOK_ID: &str = "4JH86294D6297924G";
    const TRANSMISSION_ID: &str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55";
    const BODY: &[u8] = br#"{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0","create_time":"2016-02-18T20:01:35Z","resource_type":"sale","event_type":"PAYMENT.SALE.COMPLETED","summary":"A successful sale payment was made for $ 0.48 USD","resource":{}}"#;

    fn now() -> i64 {
        NOW
    }

    fn cert_url() -> String {
        format!("https://{HOST}{CERT_PATH}")
    }

    async fn setup() -> (KeyServer, Arc<KeyFetcher>) {
        // The key server's CA, which its fetchers trust, issued the
        // signing certificate too; served with its chain, as PayPal does.
        let ca = TestCa::new("test root");
        let intermediate = ca.intermediate("test intermediate");
        let chain = pem(&[
            &intermediate.issue(
                SIGNER_KEY,
                "messageverificationcerts.paypal.com",
                2020,
                2100,
            ),
            &intermediate.der,
        ]);
        let server = KeyServer::start_of(
            &ca,
            &[HOST],
            HashMap::from([(CERT_PATH.to_owned(), (200, chain.into_bytes()))]),
        )
        .await;
        let fetcher = server.fetcher(FetcherConfig::default());
        (server, fetcher)
    }

    fn verifier(fetcher: &Arc<KeyFetcher>) -> PaypalVerifier {
        PaypalVerifier::with_clock(
            WEBHOOK_ID.to_owned(),
            DEFAULT_TOLERANCE_SECS,
            now,
            Arc::clone(fetcher),
        )
        .expect("verifier")
    }

    fn good(key: &RsaKeyPair, timestamp: i64) -> HeaderMap {
        signed_headers(&sign(
            key,
            &cert_url(),
            WEBHOOK_ID,
            TRANSMISSION_ID,
            timestamp,
            BODY,
        ))
    }

    async fn receive(
        v: &PaypalVerifier,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let uri = http::Uri::from_static("/");
        let request = Incoming {
            method: &http::Method::POST,
            uri: &uri,
            headers,
            body,
        };
        if let Some(fetching) = v.prefetch(&request) {
            fetching.await?;
        }
        match v.check(&request)? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(_) => panic!("no handshakes"),
        }
    }

    #[test]
    fn crc32_known_answers() {
        // The CRC-32 check value of "123456789" (e.g. zlib, PHP's crc32()).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        // `python3 -c 'import zlib,sys; print(zlib.crc32(sys.argv[1].encode()))' "$BODY"`
        assert_eq!(crc32(BODY), include!("keys/testdata/paypal_body_crc32.txt"));
    }

    /// PayPal publishes no signed delivery with its certificate; this
    /// signature was computed independently of this code:
    /// `printf '%s' '69cd13f0-d67a-11e5-baa3-778b53f4ae55|2023-11-14T22:13:20Z|4JH86294D6297924G|<crc32 of BODY>'
    /// | openssl dgst -sha256 -sign testdata/signer_key.pem | base64 -w0`
    const KNOWN_SIGNATURE: &str = include_str!("keys/testdata/paypal_signature.txt");

    #[tokio::test]
    async fn known_answer_and_round_trip() {
        let (server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        let headers = with_header(
            &good(&signer(), NOW),
            SIGNATURE_HEADER,
            KNOWN_SIGNATURE.trim(),
        );
        let verified = receive(&v, &headers, BODY).await.expect("known answer");
        assert_eq!(verified.event.as_deref(), Some("PAYMENT.SALE.COMPLETED"));
        assert_eq!(
            verified.delivery_id.as_deref(),
            Some("WH-2WR32451HC0233532-67976317FL4543714")
        );
        assert_eq!(good(&signer(), NOW)[TIME_HEADER], "2023-11-14T22:13:20Z");
        receive(&v, &good(&signer(), NOW - 100), BODY)
            .await
            .expect("round trip");
        assert_eq!(server.hits(), 1);
        // Check alone finds the cached key.
        assert!(check_post(&v, &good(&signer(), NOW), BODY).is_ok());
    }

    #[tokio::test]
    async fn wrong_key_tampering_and_other_webhooks_are_refused() {
        let (_server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        assert_eq!(
            receive(&v, &good(&other(), NOW), BODY).await,
            Err(Rejection::SignatureMismatch)
        );
        let headers = good(&signer(), NOW);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            receive(&v, &headers, &tampered).await,
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            receive(&v, &with_header(&headers, ID_HEADER, "other"), BODY).await,
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            receive(
                &v,
                &with_header(&headers, TIME_HEADER, "2023-11-14T22:13:21Z"),
                BODY
            )
            .await,
            Err(Rejection::SignatureMismatch)
        );
        let other_webhook =
            PaypalVerifier::with_clock("OTHER".to_owned(), 300, now, Arc::clone(&fetcher))
                .expect("verifier");
        assert_eq!(
            receive(&other_webhook, &headers, BODY).await,
            Err(Rejection::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn replays_and_malformed_headers_are_refused_without_a_fetch() {
        let (server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        for ts in [NOW - 301, NOW + 301] {
            assert_eq!(
                receive(&v, &good(&signer(), ts), BODY).await,
                Err(Rejection::TimestampOutOfTolerance)
            );
        }
        let headers = good(&signer(), NOW);
        assert_eq!(
            receive(&v, &without_header(&headers, SIGNATURE_HEADER), BODY).await,
            Err(Rejection::SignatureMissing)
        );
        assert_eq!(
            receive(&v, &without_header(&headers, TIME_HEADER), BODY).await,
            Err(Rejection::TimestampMissing)
        );
        for (name, value, rejection) in [
            (SIGNATURE_HEADER, "!!", Rejection::SignatureMalformed),
            (ALGO_HEADER, "SHA1withRSA", Rejection::SignatureMalformed),
            (TIME_HEADER, "yesterday", Rejection::TimestampMalformed),
            (
                CERT_URL_HEADER,
                "https://evil.example/v1/notifications/certs/CERT-1",
                Rejection::KeyUrlNotAllowed,
            ),
            (
                CERT_URL_HEADER,
                "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
                Rejection::KeyUrlNotAllowed,
            ),
            (
                CERT_URL_HEADER,
                "http://api.paypal.com/v1/notifications/certs/CERT-1",
                Rejection::KeyUrlNotAllowed,
            ),
        ] {
            assert_eq!(
                receive(&v, &with_header(&headers, name, value), BODY).await,
                Err(rejection),
                "{name}: {value}"
            );
        }
        let mut twice = headers.clone();
        twice.append(SIGNATURE_HEADER, headers[SIGNATURE_HEADER].clone());
        assert_eq!(
            receive(&v, &twice, BODY).await,
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn a_missing_certificate_is_key_unavailable() {
        let (_server, fetcher) = setup().await;
        let v = verifier(&fetcher);
        let headers = with_header(
            &good(&signer(), NOW),
            CERT_URL_HEADER,
            "https://api.paypal.com/v1/notifications/certs/CERT-gone",
        );
        assert_eq!(
            receive(&v, &headers, BODY).await,
            Err(Rejection::KeyUnavailable)
        );
    }

    #[test]
    fn a_webhook_id_is_required() {
        assert!(matches!(
            PaypalVerifier::new(String::new(), 300),
            Err(VerifierError::SettingRequired { .. })
        ));
        let v = PaypalVerifier::new(WEBHOOK_ID.to_owned(), 300).expect("verifier");
        assert_eq!(v.provider(), "paypal");
    }
}
