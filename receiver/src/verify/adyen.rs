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
//! See <https://docs.adyen.com/development-resources/webhooks/verify-hmac-signatures/>.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{Rejection, Verified, Verifier, VerifierError, info_value, parse_keys};
use crate::secrets::Secret;

/// A base64 HMAC-SHA256 is 44 characters; anything much longer is not one.
const MAX_SIGNATURE_CHARS: usize = 64;

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
        // The signature is inside the body, which only `full` payload
        // logging shows.
        Vec::new()
    }

    fn verify(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
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
