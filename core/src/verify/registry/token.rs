//! The descriptors of the presets a shared token authenticates, not a
//! signature (Okta, Azure Event Grid, Microsoft Graph), and the header
//! settings of their specs.

use hookwarden_crds::Provider;

use super::{Build, Covers, HandshakeSupport, Preset, body_hmac};
use crate::verify::sending::{self, Signer};
use crate::verify::{VerifierError, azure_event_grid, entra, microsoft_graph, okta};

/// A header name from the spec (`field`), lower-cased; `None` when unset.
pub(super) fn header_setting(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<http::HeaderName>, VerifierError> {
    value
        .map(|name| {
            http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).map_err(
                |_| VerifierError::Invalid {
                    field,
                    reason: "not a valid header name",
                },
            )
        })
        .transpose()
}

/// A preset authenticated by a shared token, not a signature.
pub(super) const fn token(
    provider: Provider,
    build: Build,
    sign: Signer,
    handshake: HandshakeSupport,
    scheme: &'static str,
    reference: &'static str,
) -> Preset {
    Preset {
        covers: Covers::Token,
        handshake: Some(handshake),
        ..body_hmac(provider, build, sign, scheme, reference)
    }
}

pub(super) static OKTA: Preset = token(
    Provider::Okta,
    |s, o| {
        let header = header_setting(
            o.preset
                .okta
                .as_ref()
                .and_then(|k| k.auth_header.as_deref()),
            "spec.okta.authHeader",
        )?
        .unwrap_or(http::HeaderName::from_static(okta::DEFAULT_AUTH_HEADER));
        Ok(Box::new(okta::OktaVerifier::with_header(s, header)?))
    },
    sending::okta,
    HandshakeSupport {
        describe: "GET `X-Okta-Verification-Challenge` (authenticated)",
        authenticated: true,
        sign: sending::okta_handshake,
    },
    "`Authorization`: the shared secret itself",
    "https://developer.okta.com/docs/concepts/event-hooks/",
);

pub(super) static AZURE_EVENT_GRID: Preset = token(
    Provider::AzureEventGrid,
    |s, o| {
        let credential = match header_setting(
            o.preset
                .azure
                .as_ref()
                .and_then(|a| a.secret_header.as_deref()),
            "spec.azure.secretHeader",
        )? {
            Some(header) => azure_event_grid::Credential::Header(header),
            None => azure_event_grid::Credential::Query(
                azure_event_grid::DEFAULT_QUERY_PARAMETER.to_owned(),
            ),
        };
        let Some(entra) = o.preset.azure.as_ref().and_then(|a| a.entra.as_ref()) else {
            return Ok(Box::new(
                azure_event_grid::AzureEventGridVerifier::with_credential(s, credential)?,
            ));
        };
        let check = entra::EntraCheck::new(
            &entra::EntraSettings {
                provider: "azure-event-grid",
                tenant_field: "spec.azure.entra.tenantId",
                audience_field: "spec.azure.entra.audience",
                tenant: &entra.tenant_id,
                audience: &entra.audience,
                client: entra::EVENT_GRID_APP_ID,
            },
            entra::DEFAULT_LEEWAY_SECS,
            o.clock,
            o.preset.fetcher(),
        )?;
        Ok(Box::new(
            azure_event_grid::AzureEventGridVerifier::with_entra(s, credential, Some(check))?,
        ))
    },
    sending::azure_event_grid,
    HandshakeSupport {
        describe: "`SubscriptionValidationEvent` and CloudEvents `OPTIONS` (authenticated)",
        authenticated: true,
        sign: sending::azure_event_grid_handshake,
    },
    "`?code=`: the shared secret itself, in the query; and/or (`spec.azure.entra`) an RS256 Microsoft Entra ID bearer token of the tenant's JWKS issued to Event Grid: `aud`, `iss`, `appid`",
    "https://learn.microsoft.com/en-us/azure/event-grid/security-authentication",
);

pub(super) static MICROSOFT_GRAPH: Preset = token(
    Provider::MicrosoftGraph,
    |s, o| {
        let Some(graph) = o
            .preset
            .graph
            .as_ref()
            .and_then(|g| g.validation_tokens.as_ref())
        else {
            return Ok(Box::new(microsoft_graph::MicrosoftGraphVerifier::new(s)?));
        };
        let check = entra::EntraCheck::new(
            &entra::EntraSettings {
                provider: "microsoft-graph",
                tenant_field: "spec.graph.validationTokens.tenantId",
                audience_field: "spec.graph.validationTokens.appId",
                tenant: &graph.tenant_id,
                audience: &graph.app_id,
                client: entra::GRAPH_CHANGE_TRACKING_APP_ID,
            },
            entra::DEFAULT_LEEWAY_SECS,
            o.clock,
            o.preset.fetcher(),
        )?;
        Ok(Box::new(
            microsoft_graph::MicrosoftGraphVerifier::with_validation_tokens(s, Some(check))?,
        ))
    },
    sending::microsoft_graph,
    HandshakeSupport {
        describe: "POST `validationToken` echoed (unsigned)",
        authenticated: false,
        sign: sending::microsoft_graph_handshake,
    },
    "body `clientState` of every notification: the shared secret itself; optionally (`spec.graph.validationTokens`) every rich notification `validationTokens` JWT of the tenant's Entra JWKS",
    "https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
);
