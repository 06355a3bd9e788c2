//! The signers of the presets a shared token authenticates (Okta, Azure
//! Event Grid with its Entra token, Microsoft Graph), and their handshakes.

use serde_json::json;

use super::{
    Delivery, ENTRA_KID, Expected, SignError, SignInput, body_or, handshake_post, header,
    json_post, owned, rfc3339, rsa_key,
};
use crate::verify::{azure_event_grid, entra, microsoft_graph, okta};

pub(crate) fn okta(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let body = input
        .body
        .clone()
        .unwrap_or_else(|| okta::delivery_body(input.id, input.event));
    Ok(json_post(okta_headers(secret, input), body))
}

/// Okta's secret header: `spec.okta.authHeader`, else `Authorization`.
pub(super) fn okta_headers(secret: &[u8], input: &SignInput<'_>) -> Vec<(String, String)> {
    let mut headers = owned(okta::sign(secret));
    if let Some(name) = input
        .spec
        .and_then(|spec| spec.okta.as_ref())
        .and_then(|okta| okta.auth_header.as_deref())
    {
        for (header, _) in &mut headers {
            *header = name.to_owned();
        }
    }
    headers
}

/// Okta's one-time verification GET, authenticated like a delivery.
pub(crate) fn okta_handshake(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "GET",
        headers: {
            let mut headers = okta_headers(secret, input);
            headers.push((
                "X-Okta-Verification-Challenge".to_owned(),
                input.id.to_owned(),
            ));
            headers
        },
        body: Vec::new(),
        extra_query: None,
        expect: Some(Expected::Json(json!({"verification": input.id}))),
    })
}

pub(crate) fn azure_event_grid(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let body = body_or(
        input,
        json!([{"id": input.id, "eventType": input.event, "subject": "/hookwarden",
                "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
                "eventTime": rfc3339(input.now)?, "data": {}, "dataVersion": "1",
                "metadataVersion": "1"}]),
    );
    let (query, headers) = azure_event_grid::sign(secret);
    let entra = entra_header(input.token_key.unwrap_or(secret), input)?;
    if let Some(entra) = &entra
        && input.token_key.is_none()
    {
        return Ok(json_post(
            owned(vec![headers[0].clone(), entra.clone()]),
            body,
        ));
    }
    // The secret, and with `token_key` the token as well.
    let mut delivery = json_post(owned(headers), body);
    if let Some((name, value)) = entra {
        delivery.headers.push(header(name, &value));
    }
    match event_grid_secret_header(input) {
        // A delivery property header instead of `?code=`.
        Some(name) => delivery.headers.push((
            name.to_owned(),
            String::from_utf8_lossy(secret).into_owned(),
        )),
        None => delivery.extra_query = Some(query),
    }
    Ok(delivery)
}

/// `spec.azure.secretHeader`, when the spec names one.
pub(super) fn event_grid_secret_header<'a>(input: &SignInput<'a>) -> Option<&'a str> {
    input
        .spec
        .and_then(|spec| spec.azure.as_ref())
        .and_then(|azure| azure.secret_header.as_deref())
}

/// With `spec.azure.entra`, Event Grid's bearer token instead of the
/// secret: the secret file then holds the RSA private key (PKCS#8 PEM)
/// whose JWK the tenant's key set lists under [`ENTRA_KID`]. (A spec that
/// also lists `secretRefs` needs both, which one secret file cannot hold:
/// such a delivery is built by `azure_event_grid::entra_header` and
/// `secret_query` together.)
pub(super) fn entra_header(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Option<(&'static str, String)>, SignError> {
    let Some(entra) = input
        .spec
        .and_then(|spec| spec.azure.as_ref())
        .and_then(|azure| azure.entra.as_ref())
    else {
        return Ok(None);
    };
    let key = rsa_key(secret)?;
    Ok(Some(azure_event_grid::entra_header(
        &key,
        ENTRA_KID,
        &entra.tenant_id,
        &entra.audience,
        input.now,
    )))
}

/// Event Grid's subscription validation event, carrying the secret like a
/// delivery, answered with its code.
pub(crate) fn azure_event_grid_handshake(
    secret: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    let (query, headers) = azure_event_grid::sign(secret);
    let entra = entra_header(input.token_key.unwrap_or(secret), input)?;
    let mut delivery = handshake_post(
        owned(match (&entra, input.token_key) {
            (Some(entra), None) => vec![entra.clone()],
            (Some(entra), Some(_)) => {
                let mut headers = headers;
                headers.push(entra.clone());
                headers
            }
            (None, _) => headers,
        }),
        azure_event_grid::validation_body(input.id),
        Expected::Json(json!({"validationResponse": input.id})),
    );
    // The secret too, unless the token alone is what the spec takes.
    if entra.is_none() || input.token_key.is_some() {
        match event_grid_secret_header(input) {
            Some(name) => delivery.headers.push((
                name.to_owned(),
                String::from_utf8_lossy(secret).into_owned(),
            )),
            None => delivery.extra_query = Some(query),
        }
    }
    Ok(delivery)
}

/// A Graph change notification carrying the secret as its `clientState`.
///
/// With `graph.validationTokens` in the spec, a rich notification: its
/// `validationTokens` hold one token for the spec's tenant and app, signed
/// with `token_key` as Microsoft Graph Change Tracking's (which `send`
/// then needs; the receiver refuses such a delivery without tokens).
pub(crate) fn microsoft_graph(secret: &[u8], input: &SignInput<'_>) -> Result<Delivery, SignError> {
    let client_state = std::str::from_utf8(secret).map_err(|_| SignError::Key("UTF-8 text"))?;
    let validation = input
        .spec
        .and_then(|spec| spec.graph.as_ref())
        .and_then(|graph| graph.validation_tokens.as_ref());
    let tokens = match (validation, input.token_key) {
        (None, _) => Vec::new(),
        (Some(_), None) => return Err(SignError::TokenKeyNeeded("graph.validationTokens")),
        (Some(validation), Some(key)) => vec![entra::token(
            &rsa_key(key)?,
            ENTRA_KID,
            &entra::Claims {
                tenant: &validation.tenant_id,
                audience: &validation.app_id,
                client: entra::GRAPH_CHANGE_TRACKING_APP_ID,
                iat: input.now,
                v2: false,
            },
        )],
    };
    let body = match &input.body {
        Some(body) => body.clone(),
        None => {
            let mut body = json!({"value": [{"id": input.id, "changeType": input.event,
                                  "clientState": client_state,
                                  "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                                  "resource": "users/hookwarden/messages/1",
                                  "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95"}]});
            if !tokens.is_empty() {
                body["validationTokens"] = tokens.into();
            }
            body.to_string().into_bytes()
        }
    };
    Ok(json_post(Vec::new(), body))
}

/// Graph's unsigned validation POST, answered with its token as text.
pub(crate) fn microsoft_graph_handshake(
    _: &[u8],
    input: &SignInput<'_>,
) -> Result<Delivery, SignError> {
    Ok(Delivery {
        method: "POST",
        headers: vec![header("Content-Type", "text/plain")],
        body: Vec::new(),
        extra_query: Some(microsoft_graph::validation_query(input.id)),
        expect: Some(Expected::Text(input.id.as_bytes().to_vec())),
    })
}
