//! Server-side apply of an endpoint's children, and the pruning of those
//! its spec no longer wants (only those it controls).

use std::sync::Arc;

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::error::{ApplyError, ReconcileError};
use crate::FIELD_MANAGER;
use crate::resources::{MANAGED_BY_SELECTOR, child_name};

pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Server-side applies `object` as [`FIELD_MANAGER`], forcing ownership of
/// the fields it sets: the operator is the one writer of its children.
pub(super) async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, ApplyError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| ApplyError {
        kind: K::kind(&()).into_owned(),
        namespace: namespace.to_owned(),
        name,
        source,
    })
}

/// Applies or deletes the children of one endpoint that come and go with
/// its spec.
pub(super) struct Owned<'a> {
    pub(super) ctx: &'a Context,
    pub(super) endpoint: &'a WebhookEndpoint,
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
}

impl Owned<'_> {
    /// The label selector of this endpoint's managed children.
    fn selector(&self) -> String {
        format!(
            "{MANAGED_BY_SELECTOR},app.kubernetes.io/instance={}",
            self.name
        )
    }

    /// Applies `wanted`, or deletes every child of kind `K` of this
    /// endpoint when it is `None`, as found in the watch cache `cache` (a
    /// child created since is announced by the same watch, and its event
    /// brings the next pass).
    pub(super) async fn apply_or_prune<K>(
        &self,
        wanted: Option<&K>,
        cache: &Store<PartialObjectMeta<K>>,
    ) -> Result<(), ReconcileError>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        match wanted {
            Some(object) => {
                apply(&self.ctx.client, self.namespace, object).await?;
                Ok(())
            }
            None => {
                // The watch selects the managed-by label; the instance label
                // and namespace narrow it to this endpoint.
                let children = cache.state().into_iter().filter(|child| {
                    child.namespace().as_deref() == Some(self.namespace)
                        && child
                            .labels()
                            .get("app.kubernetes.io/instance")
                            .map(String::as_str)
                            == Some(self.name)
                });
                let api: Api<K> = Api::namespaced(self.ctx.client.clone(), self.namespace);
                self.delete_controlled(&api, &(), children).await
            }
        }
    }

    /// Deletes every receiver child of this endpoint (it moved into a
    /// pool): the Deployment, Service, rendered Secret and NetworkPolicy
    /// by name, the optional ones through their watch caches. Its Ingress,
    /// Certificate and generated Secret stay.
    pub(super) async fn prune_dedicated(&self) -> Result<(), ReconcileError> {
        let child = child_name(self.name);
        self.prune_named(
            &Api::<Deployment>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<Service>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<Secret>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        self.prune_named(
            &Api::<NetworkPolicy>::namespaced(self.ctx.client.clone(), self.namespace),
            &child,
        )
        .await?;
        let caches = &self.ctx.caches;
        self.apply_or_prune(None::<&PodDisruptionBudget>, &caches.budgets)
            .await?;
        self.apply_or_prune(None::<&HorizontalPodAutoscaler>, &caches.autoscalers)
            .await
    }

    /// Deletes the child `name` in `api` when this endpoint controls it.
    async fn prune_named<K>(&self, api: &Api<K>, name: &str) -> Result<(), ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let child = api
            .get_metadata_opt(name)
            .await
            .map_err(|source| self.prune_failed::<K>(&(), source))?;
        self.delete_controlled(api, &(), child.map(Arc::new)).await
    }

    /// Deletes the children in `api` that carry this endpoint's labels and
    /// are controlled by it, listing them first (for kinds not watched).
    pub(super) async fn prune<K>(
        &self,
        api: &Api<K>,
        dt: &K::DynamicType,
    ) -> Result<(), ReconcileError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let children = api
            .list_metadata(&ListParams::default().labels(&self.selector()))
            .await
            .map_err(|source| self.prune_failed::<K>(dt, source))?;
        self.delete_controlled(api, dt, children.into_iter().map(Arc::new))
            .await
    }

    fn prune_failed<K: Resource>(
        &self,
        dt: &K::DynamicType,
        source: kube::Error,
    ) -> ReconcileError {
        ReconcileError::Prune {
            kind: K::kind(dt).into_owned(),
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            source,
        }
    }

    /// Deletes those of `children` controlled by this endpoint (a label
    /// alone could be copied by anyone); already gone is fine.
    async fn delete_controlled<K, C>(
        &self,
        api: &Api<K>,
        dt: &K::DynamicType,
        children: impl IntoIterator<Item = C>,
    ) -> Result<(), ReconcileError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
        C: std::ops::Deref,
        C::Target: ResourceExt,
    {
        let uid = self.endpoint.uid();
        for child in children {
            let controlled = child
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
            if !controlled {
                continue;
            }
            let child_name = child.name_any();
            match api.delete(&child_name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(kind = %K::kind(dt), child = %child_name, "deleted a child the spec no longer wants");
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(self.prune_failed::<K>(dt, source)),
            }
        }
        Ok(())
    }
}
