//! The certificate step of an endpoint's pass: its cert-manager
//! Certificate applied when its spec wants one and cert-manager is
//! installed, deleted when no longer wanted, and its state reported.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use super::apply::Owned;
use super::error::{ApplyError, ReconcileError};
use super::status::{self, CertificateState};
use crate::FIELD_MANAGER;
use crate::resources;

/// Applies the cert-manager Certificate when wanted and cert-manager is
/// installed, and reports it; deletes a Certificate no longer wanted.
pub(super) async fn reconcile_certificate(
    owned: &Owned<'_>,
    wanted: Option<&DynamicObject>,
) -> Result<Option<CertificateState>, ReconcileError> {
    // An endpoint that neither wants a Certificate nor reported one last
    // pass has none to delete: no API request for it (most endpoints).
    let reported = owned
        .endpoint
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == status::CERTIFICATE_READY);
    if wanted.is_none() && !reported {
        return Ok(None);
    }
    let installed = certificates_served(&owned.ctx.client).await?;
    let resource = resources::certificate_resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(owned.ctx.client.clone(), owned.namespace, &resource);
    let secret = resources::issued_secret_name(owned.name);
    let Some(certificate) = wanted else {
        if installed {
            owned.prune(&api, &resource).await?;
        }
        return Ok(None);
    };
    if !installed {
        tracing::info!("a certificate issuer is set but cert-manager is not installed");
        return Ok(Some(CertificateState::CertManagerNotInstalled { secret }));
    }
    let applied = api
        .patch(
            &certificate.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(certificate),
        )
        .await
        .map_err(|source| ApplyError {
            kind: "Certificate".to_owned(),
            namespace: owned.namespace.to_owned(),
            name: certificate.name_any(),
            source,
        })?;
    let ready = applied
        .data
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("Ready"))
        });
    Ok(Some(CertificateState::Requested {
        secret,
        ready: ready
            .and_then(|c| c.get("status").and_then(serde_json::Value::as_str))
            .map(|s| s == "True"),
        message: ready
            .and_then(|c| c.get("message").and_then(serde_json::Value::as_str))
            .map(str::to_owned),
    }))
}

/// Whether cert-manager's Certificate CRD is installed and established.
pub(super) async fn certificates_served(client: &Client) -> Result<bool, ReconcileError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .get_opt(resources::CERTIFICATE_CRD)
        .await
        .map_err(|source| ReconcileError::Discover {
            crd: resources::CERTIFICATE_CRD,
            source,
        })?;
    Ok(crd.is_some_and(|crd| {
        crd.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    }))
}
