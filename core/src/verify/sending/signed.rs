//! The signers of the presets that sign with what their secret file holds
//! (a shared secret, or the private key of the provider's public one), and
//! their handshakes.

use serde_json::json;

use super::{
    Delivery, ED25519_PRIVATE_KEY, Expected, HEX_KEY, P256_PRIVATE_KEY, SignError, SignInput,
    WHSEC_KEY, body_or, der, ed25519_seed, form, handshake_get, handshake_post, header,
    json_object, json_post, owned, rfc3339,
};
use crate::verify::{
    adyen, bitbucket, discord, docusign, dropbox, gitlab, hubspot, intercom, linear, mailgun, meta,
    paddle, pagerduty, sendgrid, shopify, slack, square, standard_webhooks, stripe, svix, trello,
    twilio, twitch, twitter, xero, zendesk, zoom,
};

pub(crate) fn github(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    // GitHub and Bitbucket sign identically (`sha256=<hex>` of the body).
    let headers = vec![
        header("X-Hub-Signature-256", &bitbucket::sign(secret, &body)),
        header("X-GitHub-Event", input.event),
        header("X-GitHub-Delivery", input.id),
    ];
    Ok(json_post(headers, body))
}

pub(crate) fn bitbucket(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let headers = vec![
        header("X-Hub-Signature", &bitbucket::sign(secret, &body)),
        header("X-Event-Key", input.event),
        header("X-Request-UUID", input.id),
    ];
    Ok(json_post(headers, body))
}

pub(crate) fn gitlab(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let mut headers = if secret.starts_with(b"whsec_") {
        gitlab::sign_with_signing_token(secret, input.id, input.now, &body)
            .map(owned)
            .ok_or(SignError::Key(WHSEC_KEY))?
    } else {
        let mut headers = owned(gitlab::sign(secret));
        headers.push(header("Idempotency-Key", input.id));
        headers
    };
    headers.push(header("X-Gitlab-Event", input.event));
    Ok(json_post(headers, body))
}

pub(crate) fn stripe(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"id": input.id, "type": input.event}));
    Ok(json_post(
        owned(stripe::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn slack(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": "event_callback", "event_id": input.id, "event": {"type": input.event}}),
    );
    Ok(json_post(
        owned(slack::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn standard_webhooks(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers = standard_webhooks::sign(secret, input.id, input.now, &body)
        .ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn svix(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers =
        svix::sign(secret, input.id, input.now, &body).ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

/// A Standard Webhooks sender of `scheme` (Clerk, OpenAI, ...), keyed with
/// a `whsec_` secret.
pub(crate) fn standard_webhooks_sender(
    scheme: standard_webhooks::Scheme,
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"type": input.event}));
    let headers = standard_webhooks::sign_scheme(scheme, secret, input.id, input.now, &body)
        .ok_or(SignError::Key(WHSEC_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn shopify(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({}));
    let mut headers = owned(shopify::sign(secret, &body));
    headers.push(header("X-Shopify-Topic", input.event));
    headers.push(header("X-Shopify-Webhook-Id", input.id));
    Ok(json_post(headers, body))
}

pub(crate) fn paddle(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event_id": input.id, "event_type": input.event}),
    );
    Ok(json_post(
        owned(paddle::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn zoom(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"event": input.event}));
    Ok(json_post(owned(zoom::sign(secret, input.now, &body)), body))
}

/// Twitch's headers for a message of `message_type`.
pub(super) fn twitch_headers(
    secret: &[u8],
    input: &SignInput<'_>,
    message_type: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignError> {
    let timestamp = rfc3339(input.now)?;
    Ok(vec![
        header(
            "Twitch-Eventsub-Message-Signature",
            &twitch::sign(secret, input.id, &timestamp, body),
        ),
        header("Twitch-Eventsub-Message-Id", input.id),
        header("Twitch-Eventsub-Message-Timestamp", &timestamp),
        header("Twitch-Eventsub-Message-Type", message_type),
        header("Twitch-Eventsub-Subscription-Type", input.event),
    ])
}

pub(crate) fn twitch(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"subscription": {"type": input.event}, "event": {}}),
    );
    let headers = twitch_headers(secret, input, "notification", &body)?;
    Ok(json_post(headers, body))
}

pub(crate) fn linear(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": input.event, "webhookTimestamp": input.now.saturating_mul(1000)}),
    );
    let mut headers = owned(linear::sign(secret, &body));
    headers.push(header("Linear-Event", input.event));
    headers.push(header("Linear-Delivery", input.id));
    Ok(json_post(headers, body))
}

pub(crate) fn intercom(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": "notification_event", "topic": input.event, "id": input.id}),
    );
    Ok(json_post(owned(intercom::sign(secret, &body)), body))
}

pub(crate) fn pagerduty(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event": {"id": input.id, "event_type": input.event}}),
    );
    Ok(json_post(owned(pagerduty::sign(secret, &body)), body))
}

pub(crate) fn meta(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(input, json!({"object": input.event, "entry": []}));
    Ok(json_post(owned(meta::sign(secret, &body)), body))
}

pub(crate) fn discord(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let seed = ed25519_seed(secret).ok_or(SignError::Key(ED25519_PRIVATE_KEY))?;
    let body = body_or(
        input,
        json!({"id": input.id, "type": 2, "application_id": "0", "token": "hookwarden",
               "version": 1, "data": {"name": input.event}}),
    );
    Ok(json_post(
        owned(discord::sign(&seed, input.now, &body)),
        body,
    ))
}

pub(crate) fn sendgrid(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"event": input.event, "sg_event_id": input.id, "timestamp": input.now,
                "email": "test@example.com"}]),
    );
    let headers =
        sendgrid::sign(&der(secret), input.now, &body).ok_or(SignError::Key(P256_PRIVATE_KEY))?;
    Ok(json_post(owned(headers), body))
}

pub(crate) fn mailgun(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let mut envelope = json_object(
        input,
        json!({"event-data": {"event": input.event, "id": input.id}}),
    )?;
    let ts = input.now.to_string();
    // Mailgun's tokens are 50 hex characters; any hex does.
    let token = format!(
        "{}{}",
        hex::encode(input.id.as_bytes()),
        hex::encode(ts.as_bytes())
    );
    envelope.insert(
        "signature".to_owned(),
        json!({"timestamp": ts, "token": token, "signature": mailgun::sign(secret, &ts, &token)}),
    );
    Ok(json_post(
        Vec::new(),
        serde_json::Value::Object(envelope).to_string().into_bytes(),
    ))
}

pub(crate) fn adyen(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let key = std::str::from_utf8(secret)
        .ok()
        .and_then(|text| hex::decode(text.trim()).ok())
        .ok_or(SignError::Key(HEX_KEY))?;
    let mut notification = json_object(
        input,
        json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
            "pspReference": input.id, "eventCode": input.event,
            "merchantAccountCode": "HookwardenTest", "merchantReference": "hookwarden",
            "amount": {"value": 1000, "currency": "EUR"}, "success": "true",
            "additionalData": {}}}]}),
    )?;
    let items = notification
        .get_mut("notificationItems")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or(SignError::Body("the body has no notificationItems array"))?;
    for wrapper in items {
        let item = wrapper
            .get_mut("NotificationRequestItem")
            .ok_or(SignError::Body(
                "a notification item has no NotificationRequestItem",
            ))?;
        let signature = adyen::sign(&key, item);
        let additional = item
            .as_object_mut()
            .ok_or(SignError::Body(
                "a NotificationRequestItem is not an object",
            ))?
            .entry("additionalData")
            .or_insert_with(|| json!({}));
        additional
            .as_object_mut()
            .ok_or(SignError::Body("additionalData is not an object"))?
            .insert("hmacSignature".to_owned(), json!(signature));
    }
    Ok(json_post(
        Vec::new(),
        serde_json::Value::Object(notification)
            .to_string()
            .into_bytes(),
    ))
}

pub(crate) fn twilio(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    // A JSON body is signed through bodySHA256 in the URL; anything else is
    // form parameters.
    let body = input.body.clone().unwrap_or_else(|| {
        form(&[
            ("AccountSid", "AChookwarden"),
            ("MessageSid", input.id),
            ("MessageStatus", input.event),
        ])
    });
    let is_json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
    let mut headers = Vec::new();
    let mut extra_query = None;
    if is_json {
        let signed = twilio::url_with_body_hash(input.url, &body);
        extra_query = Some(format!(
            "bodySHA256={}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
        ));
        headers.push(header(
            "X-Twilio-Signature",
            &twilio::sign(secret, &signed, &body),
        ));
        headers.push(header("Content-Type", "application/json"));
    } else {
        headers.push(header(
            "X-Twilio-Signature",
            &twilio::sign(secret, input.url, &body),
        ));
        headers.push(header("Content-Type", "application/x-www-form-urlencoded"));
    }
    headers.push(header("I-Twilio-Idempotency-Token", input.id));
    Ok(Delivery {
        method: "POST",
        headers,
        body,
        extra_query,
        expect: None,
    })
}

pub(crate) fn square(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let created = rfc3339(input.now)?;
    let body = body_or(
        input,
        json!({"merchant_id": "HOOKWARDEN", "type": input.event, "event_id": input.id,
               "created_at": created, "data": {}}),
    );
    Ok(json_post(
        owned(square::sign(secret, input.url, &body)),
        body,
    ))
}

pub(crate) fn hubspot(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"eventId": 1, "subscriptionId": 1, "portalId": 1, "appId": 1,
                "occurredAt": input.now.saturating_mul(1000), "subscriptionType": input.event,
                "attemptNumber": 0, "objectId": input.id, "changeSource": "CRM"}]),
    );
    let headers = hubspot::sign(
        secret,
        "POST",
        input.url,
        &body,
        input.now.saturating_mul(1000),
    );
    Ok(json_post(owned(headers), body))
}

pub(crate) fn zendesk(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"type": input.event, "id": input.id, "time": rfc3339(input.now)?,
               "zendesk_event_version": "2022-11-06", "detail": {}, "event": {}}),
    );
    Ok(json_post(
        owned(zendesk::sign(secret, input.now, &body)),
        body,
    ))
}

pub(crate) fn xero(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    // Xero reports `<eventCategory>.<eventType>`: the event is split there.
    let (category, kind) = input
        .event
        .split_once('.')
        .unwrap_or(("INVOICE", input.event));
    let body = body_or(
        input,
        json!({"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/1",
                           "resourceId": input.id, "eventDateUtc": rfc3339(input.now)?,
                           "eventType": kind, "eventCategory": category,
                           "tenantId": "00000000-0000-0000-0000-000000000000",
                           "tenantType": "ORGANISATION"}],
               "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "HOOKWARDEN"}),
    );
    Ok(json_post(owned(xero::sign(secret, &body)), body))
}

/// Xero's Intent to Receive: a signed delivery without events, answered
/// with an empty 200.
pub(crate) fn xero_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = xero::intent_to_receive_body(input.id);
    Ok(handshake_post(
        owned(xero::sign(secret, &body)),
        body,
        Expected::Text(Vec::new()),
    ))
}

pub(crate) fn docusign(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"event": input.event, "apiVersion": "v2.1", "uri": "/restapi/v2.1/accounts",
               "retryCount": 0, "configurationId": 1, "generatedDateTime": rfc3339(input.now)?,
               "data": {"envelopeId": input.id}}),
    );
    Ok(json_post(owned(docusign::sign(secret, &body)), body))
}

pub(crate) fn dropbox(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"list_folder": {"accounts": [format!("dbid:{}", input.id)]},
               "delta": {"users": [12345]}}),
    );
    Ok(json_post(owned(dropbox::sign(secret, &body)), body))
}

/// Dropbox's unsigned `?challenge=` GET, echoed.
pub(crate) fn dropbox_handshake(_: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(handshake_get(
        dropbox::challenge_query(input.id),
        Vec::new(),
        Expected::Text(input.id.as_bytes().to_vec()),
    ))
}

pub(crate) fn twitter(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"for_user_id": "2244994945",
               "tweet_create_events": [{"id_str": input.id, "text": input.event}]}),
    );
    Ok(json_post(owned(twitter::sign(secret, &body)), body))
}

/// X's CRC GET, answered with the HMAC of its token.
pub(crate) fn twitter_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let answer = serde_json::from_str(&twitter::crc_response(secret, input.id))
        .map_err(|_| SignError::Body("the CRC answer is not JSON"))?;
    Ok(handshake_get(
        twitter::crc_query(input.id),
        Vec::new(),
        Expected::Json(answer),
    ))
}

pub(crate) fn trello(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!({"action": {"id": input.id, "type": input.event, "data": {}},
               "model": {"id": "4d5ea62fd76aa1136000000c", "name": "Hookwarden"}}),
    );
    Ok(json_post(
        owned(trello::sign(secret, input.url, &body)),
        body,
    ))
}

/// Trello's unsigned `HEAD` on webhook creation: any 200 will do, and a
/// `HEAD` answer has no body.
pub(crate) fn trello_handshake(_: &[u8], _: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "HEAD",
        headers: Vec::new(),
        body: Vec::new(),
        extra_query: None,
        expect: Some(Expected::Text(Vec::new())),
    })
}

pub(crate) fn slack_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = slack::url_verification_body(input.id);
    let headers = owned(slack::sign(secret, input.now, &body));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"challenge": input.id})),
    ))
}

pub(crate) fn zoom_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = zoom::url_validation_body(input.id, input.now.saturating_mul(1000));
    let headers = owned(zoom::sign(secret, input.now, &body));
    let encrypted = hex::encode(crate::verify::hmac_common::mac::<hmac::Hmac<sha2::Sha256>>(
        secret,
        &[input.id.as_bytes()],
    ));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"plainToken": input.id, "encryptedToken": encrypted})),
    ))
}

pub(crate) fn twitch_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = json!({"challenge": input.id, "subscription": {"type": input.event}})
        .to_string()
        .into_bytes();
    let headers = twitch_headers(secret, input, "webhook_callback_verification", &body)?;
    Ok(handshake_post(
        headers,
        body,
        Expected::Text(input.id.as_bytes().to_vec()),
    ))
}

pub(crate) fn discord_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let seed = ed25519_seed(secret).ok_or(SignError::Key(ED25519_PRIVATE_KEY))?;
    let body = json!({"id": input.id, "type": 1, "application_id": "0", "token": "hookwarden",
                      "version": 1})
    .to_string()
    .into_bytes();
    let headers = owned(discord::sign(&seed, input.now, &body));
    Ok(handshake_post(
        headers,
        body,
        Expected::Json(json!({"type": 1})),
    ))
}

/// Meta's subscription handshake: `secret` is the verify token.
pub(crate) fn meta_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let token = std::str::from_utf8(secret).map_err(|_| SignError::Key("UTF-8 text"))?;
    Ok(Delivery {
        method: "GET",
        headers: Vec::new(),
        body: Vec::new(),
        extra_query: Some(meta::subscription_query(token, input.id)),
        expect: Some(Expected::Text(input.id.as_bytes().to_vec())),
    })
}
