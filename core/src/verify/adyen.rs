//! Adyen's standard notifications: each `NotificationRequestItem` of
//! `{"notificationItems": [{"NotificationRequestItem": {...}}]}` carries
//! `additionalData.hmacSignature`, the base64 HMAC-SHA256 — keyed with the
//! HMAC key from the Customer Area, written as hex (the secret file holds
//! the hex text) — of the item's fields joined with `:`:
//! `pspReference:originalReference:merchantAccountCode:merchantReference:amount.value:amount.currency:eventCode:success`
//! (an absent field is the empty string, values unescaped).
//!
//! Every item of a delivery must verify, with the same key. The body has to
//! be parsed before it is verified (it is already bounded by the receiver's
//! body limit); a body that is not such a JSON object counts as carrying no
//! signature. The event is the `eventCode` and the delivery id the
//! `pspReference` of the FIRST item only: Adyen may batch several items, and
//! a batch is stored as one delivery (a known limitation). Nothing outside
//! the listed fields is signed; that is Adyen's design.
//!
//! Adyen's other webhooks (Balance Platform: configuration, transfer,
//! report, ...; Management API) sign the whole raw body instead:
//! `HmacSignature: <base64 HMAC-SHA256(HMAC key, body)>`, the key again
//! written as hex. A delivery carrying that header is verified by it alone
//! (it covers every byte, so it is never weaker than the item signatures);
//! one without it must be a standard notification. Its event is the body's
//! `type` (e.g. `balancePlatform.accountHolder.updated`); these webhooks
//! carry no delivery id. Neither kind signs a timestamp.
//!
//! See <https://docs.adyen.com/development-resources/webhooks/verify-hmac-signatures/>.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha2::Sha256;

use super::hmac_common::{MAX_SIGNATURE_HEADER_LEN, find_secret, json_body, json_info};
use super::{
    Head, Rejection, Verified, Verifier, VerifierError, info_value, parse_keys, single_header,
};
use crate::secrets::Secret;

/// A base64 HMAC-SHA256 is 44 characters; anything much longer is not one.
const MAX_SIGNATURE_CHARS: usize = 64;

/// The header of the Balance Platform and Management webhooks (HTTP header
/// names are case-insensitive; Adyen writes `HmacSignature`).
const HMAC_SIGNATURE_HEADER: &str = "hmacsignature";

/// Verifies Adyen notifications against one or more HMAC keys.
#[derive(Debug)]
pub struct AdyenVerifier {
    keys: Vec<Secret>,
}

impl AdyenVerifier {
    /// A verifier accepting items signed with any of the keys (each secret
    /// file holds one key as hex text; surrounding whitespace is ignored).
    /// A key that is not hex fails here, at startup.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, VerifierError> {
        let keys = parse_keys(&secrets, "adyen", "an HMAC key as hex digits", decode_key)?;
        Ok(Self { keys })
    }
}

fn decode_key(secret: &Secret) -> Option<Secret> {
    let text = std::str::from_utf8(secret.expose()).ok()?.trim();
    let bytes = hex::decode(text).ok()?;
    (!bytes.is_empty()).then(|| Secret::from(bytes))
}

/// A field as Adyen writes it into the signed text: strings as they are,
/// numbers and booleans in their JSON form, anything else (absent) empty.
fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The text Adyen signs for one `NotificationRequestItem`.
fn signed_text(item: &Value) -> String {
    let amount = item.get("amount");
    [
        scalar(item.get("pspReference")),
        scalar(item.get("originalReference")),
        scalar(item.get("merchantAccountCode")),
        scalar(item.get("merchantReference")),
        scalar(amount.and_then(|a| a.get("value"))),
        scalar(amount.and_then(|a| a.get("currency"))),
        scalar(item.get("eventCode")),
        scalar(item.get("success")),
    ]
    .join(":")
}

fn mac(key: &[u8], item: &Value) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(signed_text(item).as_bytes());
    Some(mac)
}

/// The `additionalData.hmacSignature` Adyen sends for a
/// `NotificationRequestItem`, with the (hex-decoded) key.
pub fn sign(key: &[u8], item: &Value) -> String {
    mac(key, item)
        .map(|m| BASE64.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// The `HmacSignature` header Adyen sends with a Balance Platform or
/// Management webhook `body`, with the (hex-decoded) key.
pub fn sign_hmac_signature_header(key: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    let signature = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map(|mut m| {
            m.update(body);
            BASE64.encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    vec![(HMAC_SIGNATURE_HEADER, signature)]
}

/// The items of a notification and their decoded signatures.
fn items(body: &[u8]) -> Result<Vec<(Value, [u8; 32])>, Rejection> {
    let mut parsed: Value =
        serde_json::from_slice(body).map_err(|_| Rejection::SignatureMissing)?;
    let Some(Value::Array(list)) = parsed.get_mut("notificationItems").map(Value::take) else {
        return Err(Rejection::SignatureMissing);
    };
    if list.is_empty() {
        return Err(Rejection::SignatureMissing);
    }
    list.into_iter()
        .map(|mut wrapper| {
            let item = wrapper
                .get_mut("NotificationRequestItem")
                .map(Value::take)
                .filter(Value::is_object)
                .ok_or(Rejection::SignatureMissing)?;
            let encoded = item
                .get("additionalData")
                .and_then(|d| d.get("hmacSignature"))
                .ok_or(Rejection::SignatureMissing)?
                .as_str()
                .ok_or(Rejection::SignatureMalformed)?;
            if encoded.len() > MAX_SIGNATURE_CHARS {
                return Err(Rejection::SignatureMalformed);
            }
            let decoded = BASE64
                .decode(encoded.trim())
                .map_err(|_| Rejection::SignatureMalformed)?;
            let signature: [u8; 32] = decoded
                .try_into()
                .map_err(|_| Rejection::SignatureMalformed)?;
            Ok((item, signature))
        })
        .collect()
}

impl Verifier for AdyenVerifier {
    fn provider(&self) -> &'static str {
        "adyen"
    }

    fn secret_headers(&self) -> Vec<&str> {
        // A standard notification's signature is inside the body, which only
        // `full` payload logging shows.
        vec![HMAC_SIGNATURE_HEADER]
    }

    /// A standard notification has no signature header, so its absence is
    /// no reason to refuse before the body; a present `HmacSignature` must
    /// occur once and be of sane length.
    fn precheck(&self, request: &Head<'_>) -> Result<(), Rejection> {
        match single_header(request.headers, HMAC_SIGNATURE_HEADER) {
            Err(()) => Err(Rejection::SignatureMalformed),
            Ok(Some(value)) if value.len() > MAX_SIGNATURE_HEADER_LEN => {
                Err(Rejection::SignatureMalformed)
            }
            Ok(_) => Ok(()),
        }
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
        match single_header(headers, HMAC_SIGNATURE_HEADER) {
            Err(()) => Err(Rejection::SignatureMalformed),
            Ok(Some(value)) => self.verify_header(value, body),
            Ok(None) => self.verify_items(body),
        }
    }
}

impl AdyenVerifier {
    /// A Balance Platform or Management webhook: `HmacSignature` over the
    /// raw body.
    fn verify_header(&self, value: &str, body: &[u8]) -> Result<Verified, Rejection> {
        if value.len() > MAX_SIGNATURE_CHARS {
            return Err(Rejection::SignatureMalformed);
        }
        let signature = BASE64
            .decode(value.trim())
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or(Rejection::SignatureMalformed)?;
        let secret_index = find_secret::<Hmac<Sha256>>(&self.keys, &[body], &[signature])
            .ok_or(Rejection::SignatureMismatch)?;
        Ok(Verified {
            event: json_info(json_body(body).as_ref(), "/type"),
            delivery_id: None,
            secret_index,
        })
    }

    /// A standard notification: every item's `additionalData.hmacSignature`.
    fn verify_items(&self, body: &[u8]) -> Result<Verified, Rejection> {
        let items = items(body)?;
        // A key matches when it verifies every item; every key and item is
        // checked (constant-time each) so timing does not tell which matched.
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut all = true;
            for (item, signature) in &items {
                let ok = mac(key.expose(), item).is_some_and(|m| m.verify_slice(signature).is_ok());
                all &= ok;
            }
            if all && matched.is_none() {
                matched = Some(index);
            }
        }
        let secret_index = matched.ok_or(Rejection::SignatureMismatch)?;
        let first = items.first().map(|(item, _)| item);
        let field = |name: &str| {
            first
                .and_then(|item| item.get(name))
                .and_then(Value::as_str)
                .and_then(info_value)
        };
        Ok(Verified {
            event: field("eventCode"),
            delivery_id: field("pspReference"),
            secret_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The example of Adyen's official PHP library,
    /// <https://github.com/Adyen/adyen-php-api-library/blob/main/tests/Adyen/Util/HmacSignatureTest.php>
    /// (`testNotificationRequestItemHmac`): key, item and expected signature.
    const SDK_KEY: &str = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00";
    const SDK_SIGNATURE: &str = "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=";

    fn sdk_item() -> Value {
        json!({
            "pspReference": "7914073381342284",
            "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "amount": {"value": 1130, "currency": "EUR"},
            "eventCode": "AUTHORISATION",
            "success": "true"
        })
    }

    fn with_signature(mut item: Value, signature: &str) -> Value {
        item["additionalData"] = json!({"hmacSignature": signature});
        item
    }

    fn notification(items: &[Value]) -> Vec<u8> {
        let wrapped: Vec<Value> = items
            .iter()
            .map(|item| json!({"NotificationRequestItem": item}))
            .collect();
        json!({"live": "false", "notificationItems": wrapped})
            .to_string()
            .into_bytes()
    }

    fn key_bytes(hex_key: &str) -> Vec<u8> {
        hex::decode(hex_key).expect("hex")
    }

    fn verifier(keys: &[&str]) -> AdyenVerifier {
        AdyenVerifier::new(keys.iter().map(|k| Secret::from(k.as_bytes())).collect())
            .expect("valid keys")
    }

    const OTHER_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

    #[test]
    fn sign_matches_the_official_library() {
        assert_eq!(
            signed_text(&sdk_item()),
            "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
        );
        assert_eq!(sign(&key_bytes(SDK_KEY), &sdk_item()), SDK_SIGNATURE);
    }

    #[test]
    fn accepts_the_official_example() {
        let body = notification(&[with_signature(sdk_item(), SDK_SIGNATURE)]);
        let verified = verifier(&[&format!("{SDK_KEY}\n")])
            .verify(&HeaderMap::new(), &body)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("AUTHORISATION".to_owned()),
                delivery_id: Some("7914073381342284".to_owned()),
                secret_index: 0,
            }
        );
    }

    #[test]
    fn every_item_must_verify() {
        let key = key_bytes(OTHER_KEY);
        let mut second = sdk_item();
        second["pspReference"] = json!("8815073381342285");
        second["originalReference"] = json!("7914073381342284");
        second["eventCode"] = json!("CAPTURE");
        let second_signed = with_signature(second.clone(), &sign(&key, &second));
        let first_signed = with_signature(sdk_item(), &sign(&key, &sdk_item()));
        let v = verifier(&[OTHER_KEY]);
        assert!(
            v.verify(
                &HeaderMap::new(),
                &notification(&[first_signed.clone(), second_signed.clone()])
            )
            .is_ok()
        );
        // The second item changed after signing.
        let mut tampered = second_signed.clone();
        tampered["amount"]["value"] = json!(1131);
        assert_eq!(
            v.verify(
                &HeaderMap::new(),
                &notification(&[first_signed.clone(), tampered])
            ),
            Err(Rejection::SignatureMismatch)
        );
        // The second item unsigned.
        assert_eq!(
            v.verify(&HeaderMap::new(), &notification(&[first_signed, second])),
            Err(Rejection::SignatureMissing)
        );
    }

    #[test]
    fn rejects_single_field_changes() {
        let v = verifier(&[SDK_KEY]);
        let changes: [(&str, Value); 8] = [
            ("pspReference", json!("7914073381342285")),
            ("originalReference", json!("x")),
            ("merchantAccountCode", json!("TestMerchanT")),
            ("merchantReference", json!("TestPayment-1407325143705")),
            ("eventCode", json!("AUTHORISATIoN")),
            ("success", json!("false")),
            ("amount", json!({"value": 1131, "currency": "EUR"})),
            ("amount", json!({"value": 1130, "currency": "EUS"})),
        ];
        for (field, value) in changes {
            let mut item = with_signature(sdk_item(), SDK_SIGNATURE);
            item[field] = value;
            assert_eq!(
                v.verify(&HeaderMap::new(), &notification(&[item])),
                Err(Rejection::SignatureMismatch),
                "{field}"
            );
        }
        let mut der = BASE64.decode(SDK_SIGNATURE).expect("base64");
        der[0] ^= 0x01;
        let item = with_signature(sdk_item(), &BASE64.encode(der));
        assert_eq!(
            v.verify(&HeaderMap::new(), &notification(&[item])),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn rejects_missing_and_malformed_signatures() {
        let v = verifier(&[SDK_KEY]);
        let h = HeaderMap::new();
        let huge = "A".repeat(100 * 1024);
        let cases: Vec<(Vec<u8>, Rejection)> = vec![
            (b"not json".to_vec(), Rejection::SignatureMissing),
            (b"{}".to_vec(), Rejection::SignatureMissing),
            (
                br#"{"notificationItems":[]}"#.to_vec(),
                Rejection::SignatureMissing,
            ),
            (
                br#"{"notificationItems":{}}"#.to_vec(),
                Rejection::SignatureMissing,
            ),
            (
                br#"{"notificationItems":[{"other":{}}]}"#.to_vec(),
                Rejection::SignatureMissing,
            ),
            (notification(&[sdk_item()]), Rejection::SignatureMissing),
            (
                notification(&[with_signature(sdk_item(), "not base64!")]),
                Rejection::SignatureMalformed,
            ),
            (
                notification(&[with_signature(sdk_item(), &SDK_SIGNATURE[..40])]),
                Rejection::SignatureMalformed,
            ),
            (
                notification(&[with_signature(sdk_item(), &huge)]),
                Rejection::SignatureMalformed,
            ),
        ];
        for (index, (body, expected)) in cases.into_iter().enumerate() {
            assert_eq!(v.verify(&h, &body), Err(expected), "case {index}");
        }
        let mut item = sdk_item();
        item["additionalData"] = json!({"hmacSignature": 5});
        assert_eq!(
            v.verify(&h, &notification(&[item])),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn accepts_a_rotated_key_and_says_which() {
        let body = notification(&[with_signature(sdk_item(), SDK_SIGNATURE)]);
        let verified = verifier(&[OTHER_KEY, SDK_KEY])
            .verify(&HeaderMap::new(), &body)
            .expect("second key");
        assert_eq!(verified.secret_index, 1);
        assert_eq!(
            verifier(&[OTHER_KEY]).verify(&HeaderMap::new(), &body),
            Err(Rejection::SignatureMismatch)
        );
    }

    /// The Balance Platform vector of Adyen's official .NET library,
    /// Adyen/adyen-dotnet-api-library `Adyen.Test` (`HmacValidatorUtilityTest`,
    /// `TestBalancePlatformHmac`): body, key and `HmacSignature`. Also
    /// checked with `printf '%s' "$BODY" | openssl dgst -sha256 -mac HMAC
    /// -macopt hexkey:$KEY -binary | base64`.
    const PLATFORM_BODY: &str = r#"{"data":{"balancePlatform":"Integration_tools_test","accountId":"BA32272223222H5HVKTBK4MLB","sweep":{"id":"SWPC42272223222H5HVKV6H8C64DP5","schedule":{"type":"balance"},"status":"active","targetAmount":{"currency":"EUR","value":0},"triggerAmount":{"currency":"EUR","value":0},"type":"pull","counterparty":{"balanceAccountId":"BA3227C223222H5HVKT3H9WLC"},"currency":"EUR"}},"environment":"test","type":"balancePlatform.balanceAccountSweep.updated"}"#;
    const PLATFORM_KEY: &str = "D7DD5BA6146493707BF0BE7496F6404EC7A63616B7158EC927B9F54BB436765F";
    const PLATFORM_SIGNATURE: &str = "9Qz9S/0xpar1klkniKdshxpAhRKbiSAewPpWoxKefQA=";

    fn header(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(HMAC_SIGNATURE_HEADER, value.parse().expect("header value"));
        map
    }

    #[test]
    fn a_platform_webhook_verifies_by_its_header() {
        let body = PLATFORM_BODY.as_bytes();
        let verified = verifier(&[OTHER_KEY, PLATFORM_KEY])
            .verify(&header(PLATFORM_SIGNATURE), body)
            .expect("verifies");
        assert_eq!(
            verified,
            Verified {
                event: Some("balancePlatform.balanceAccountSweep.updated".to_owned()),
                delivery_id: None,
                secret_index: 1,
            }
        );
        assert_eq!(
            sign_hmac_signature_header(&key_bytes(PLATFORM_KEY), body),
            vec![(HMAC_SIGNATURE_HEADER, PLATFORM_SIGNATURE.to_owned())]
        );
        let v = verifier(&[PLATFORM_KEY]);
        let changed = PLATFORM_BODY.replace("\"value\":0", "\"value\":1");
        assert_eq!(
            v.verify(&header(PLATFORM_SIGNATURE), changed.as_bytes()),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            verifier(&[OTHER_KEY]).verify(&header(PLATFORM_SIGNATURE), body),
            Err(Rejection::SignatureMismatch)
        );
        let mut flipped = BASE64.decode(PLATFORM_SIGNATURE).expect("base64");
        flipped[31] ^= 0x01;
        assert_eq!(
            v.verify(&header(&BASE64.encode(flipped)), body),
            Err(Rejection::SignatureMismatch)
        );
        // Without the header, a platform body is not a notification.
        assert_eq!(
            v.verify(&HeaderMap::new(), body),
            Err(Rejection::SignatureMissing)
        );
    }

    #[test]
    fn the_header_alone_decides_when_present() {
        // A correctly signed standard notification with a bad header is
        // refused: the header, when sent, is what is checked.
        let body = notification(&[with_signature(sdk_item(), SDK_SIGNATURE)]);
        let v = verifier(&[SDK_KEY]);
        assert!(v.verify(&HeaderMap::new(), &body).is_ok());
        assert_eq!(
            v.verify(&header(PLATFORM_SIGNATURE), &body),
            Err(Rejection::SignatureMismatch)
        );
        // The same body signed as a whole verifies by the header.
        let signed = sign_hmac_signature_header(&key_bytes(SDK_KEY), &body);
        assert!(v.verify(&header(&signed[0].1), &body).is_ok());
    }

    #[test]
    fn malformed_and_repeated_headers() {
        let v = verifier(&[PLATFORM_KEY]);
        let body = PLATFORM_BODY.as_bytes();
        let huge = "A".repeat(100 * 1024);
        for bad in ["not base64!", "", &PLATFORM_SIGNATURE[..40], huge.as_str()] {
            assert_eq!(
                v.verify(&header(bad), body),
                Err(Rejection::SignatureMalformed),
                "{}",
                &bad[..bad.len().min(20)]
            );
        }
        let mut twice = header(PLATFORM_SIGNATURE);
        twice.append(
            HMAC_SIGNATURE_HEADER,
            PLATFORM_SIGNATURE.parse().expect("value"),
        );
        assert_eq!(v.verify(&twice, body), Err(Rejection::SignatureMalformed));
        let uri = http::Uri::from_static("/");
        let head = |headers: &HeaderMap| {
            v.precheck(&Head {
                method: &http::Method::POST,
                uri: &uri,
                headers,
            })
        };
        // A standard notification has no header and is read; a repeated or
        // huge header is refused before the body.
        assert_eq!(head(&HeaderMap::new()), Ok(()));
        assert_eq!(head(&header(PLATFORM_SIGNATURE)), Ok(()));
        assert_eq!(head(&twice), Err(Rejection::SignatureMalformed));
        let longer = "A".repeat(MAX_SIGNATURE_HEADER_LEN + 1);
        assert_eq!(head(&header(&longer)), Err(Rejection::SignatureMalformed));
    }

    #[test]
    fn invalid_key_material_is_a_startup_error_that_hides_the_key() {
        let odd = &SDK_KEY[..63];
        let not_hex = format!("{}zz", &SDK_KEY[..62]);
        for bad in [odd, not_hex.as_str(), "", "  \n"] {
            let err = AdyenVerifier::new(vec![
                Secret::from(SDK_KEY.as_bytes()),
                Secret::from(bad.as_bytes()),
            ])
            .expect_err(bad);
            assert!(
                matches!(
                    err,
                    VerifierError::InvalidKey {
                        provider: "adyen",
                        index: 1,
                        ..
                    }
                ),
                "{err}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&SDK_KEY[..16]), "{shown}");
        }
        assert!(matches!(
            AdyenVerifier::new(Vec::new()),
            Err(VerifierError::NoSecrets)
        ));
    }
}
