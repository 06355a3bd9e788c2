//! The signers of the presets whose keys the receiver fetches (AWS SNS,
//! PayPal, Google Pub/Sub): signed with a test key, the key URL pointing
//! at where the tests serve its certificate.

use serde_json::json;

use super::{
    DEFAULT_PAYPAL_WEBHOOK_ID, DEFAULT_SERVICE_ACCOUNT, DEFAULT_TOPIC_ARN, Delivery, GOOGLE_KID,
    PAYPAL_CERT_URL, SNS_CERT_URL, SignError, SignInput, body_or, header, json_post, owned,
    rfc3339, rsa_key,
};
use crate::verify::{aws_sns, google_pubsub, paypal};

pub(crate) fn aws_sns(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let topic = input
        .spec
        .and_then(|spec| spec.aws.as_ref())
        .and_then(|aws| aws.topic_arns.first())
        .map_or(DEFAULT_TOPIC_ARN, String::as_str);
    let message = match &input.body {
        Some(body) => String::from_utf8_lossy(body).into_owned(),
        None => json!({"event": input.event}).to_string(),
    };
    let timestamp = rfc3339(input.now)?;
    let body = aws_sns::sign(
        &key,
        &aws_sns::Message {
            kind: "Notification",
            message_id: input.id,
            topic_arn: topic,
            subject: Some(input.event),
            message: &message,
            timestamp: &timestamp,
            signing_cert_url: SNS_CERT_URL,
            subscribe_url: None,
            token: None,
        },
    );
    let headers = vec![
        header("x-amz-sns-message-type", "Notification"),
        header("x-amz-sns-message-id", input.id),
        header("x-amz-sns-topic-arn", topic),
        header("Content-Type", "text/plain; charset=UTF-8"),
    ];
    Ok(Delivery {
        method: "POST",
        headers,
        body,
        extra_query: None,
        expect: None,
    })
}

pub(crate) fn paypal(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let webhook_id = input
        .spec
        .and_then(|spec| spec.paypal.as_ref())
        .map_or(DEFAULT_PAYPAL_WEBHOOK_ID, |p| p.webhook_id.as_str());
    let body = body_or(
        input,
        json!({"id": input.id, "event_version": "1.0", "create_time": rfc3339(input.now)?,
               "resource_type": "sale", "event_type": input.event,
               "summary": "hookwarden", "resource": {}}),
    );
    let headers = paypal::sign(
        &key,
        PAYPAL_CERT_URL,
        webhook_id,
        &format!("{}-transmission", input.id),
        input.now,
        &body,
    );
    Ok(json_post(owned(headers), body))
}

pub(crate) fn google_pubsub(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = rsa_key(secret)?;
    let google = input.spec.and_then(|spec| spec.google.as_ref());
    let audience = google
        .and_then(|g| g.audience.as_deref())
        .unwrap_or(input.url.split('?').next().unwrap_or(input.url));
    let email = google.map_or(DEFAULT_SERVICE_ACCOUNT, |g| {
        g.service_account_email.as_str()
    });
    let body = match &input.body {
        Some(body) => body.clone(),
        None => google_pubsub::push_body(
            input.id,
            input.event.as_bytes(),
            "projects/hookwarden/subscriptions/hookwarden",
        ),
    };
    let headers = google_pubsub::sign(&key, GOOGLE_KID, audience, email, input.now);
    Ok(json_post(owned(headers), body))
}
