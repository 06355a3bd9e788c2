//! Installing the `WebhookEndpoint`, `WebhookSubscription` and
//! `WebhookReceiverPool` CRDs, the same ones the chart ships.

use std::time::Duration;

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool, WebhookSubscription};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

use crate::FIELD_MANAGER;

/// Why the CRD could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The API server refused the CRD.
    #[error("applying CRD {name}: {source}")]
    Apply {
        /// The CRD's name.
        name: String,
        /// The API server's answer.
        source: kube::Error,
    },
    /// The API server accepted the CRD but did not serve it in time.
    #[error("CRD {name} was not Established within {timeout:?}")]
    NotEstablished {
        /// The CRD's name.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Applies every CRD of the operator (server-side, as [`FIELD_MANAGER`]) and
/// waits until the API server serves each. Safe to call again: an unchanged
/// CRD is a no-op.
pub async fn install(
    client: Client,
    timeout: Duration,
) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let mut installed = Vec::new();
    for crd in [
        WebhookEndpoint::crd(),
        WebhookSubscription::crd(),
        WebhookReceiverPool::crd(),
    ] {
        installed.push(install_one(client.clone(), crd, timeout).await?);
    }
    Ok(installed)
}

async fn install_one(
    client: Client,
    crd: CustomResourceDefinition,
    timeout: Duration,
) -> Result<CustomResourceDefinition, CrdError> {
    let name = crd.name_any();
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|source| CrdError::Apply {
            name: name.clone(),
            source,
        })?;
    match tokio::time::timeout(
        timeout,
        await_condition(api, &name, conditions::is_crd_established()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(applied),
        _ => Err(CrdError::NotEstablished { name, timeout }),
    }
}
