//! The part of an endpoint's pass when `spec.pool` names a pool
//! ([`reconcile_member`]), and its `ConfigApplied` condition from what the
//! pool's last pass recorded ([`observe_config_applied`]).

use hookwarden_crds::{WebhookEndpoint, WebhookReceiverPool};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::pool_status::known_reason;
use super::status::{self, Observed, ReceiverState, SpecState};
use super::{
    Context, Exposure, Owned, ReconcileError, observe_receiver, reconcile_certificate, secrets,
    stream, write_status, write_status_with,
};
use crate::resources;
use crate::resources::pool::{
    Members, config_shards, desired_pool_replicas, member_stream_endpoint, pool_child_name,
    recorded_members, shard_of, shard_secret_name,
};

/// `ConfigApplied` of member `endpoint` of pool `pool`, from what the
/// pool's last pass recorded in its Secret (`members`).
pub fn observe_config_applied(
    endpoint: &WebhookEndpoint,
    pool: &str,
    members: &Members,
) -> Observed {
    let pending = || Observed {
        type_: status::CONFIG_APPLIED,
        status: "Unknown",
        reason: "Pending",
        message: format!(
            "waiting for pool {pool:?} to take generation {} of the configuration",
            endpoint.metadata.generation.unwrap_or_default()
        ),
    };
    match members.get(&endpoint.name_any()) {
        None => pending(),
        Some(state) if state.generation != endpoint.metadata.generation => pending(),
        Some(state) if state.applied => Observed {
            type_: status::CONFIG_APPLIED,
            status: "True",
            reason: "Applied",
            message: format!(
                "pool {pool:?} serves generation {} of the configuration",
                state.generation.unwrap_or_default()
            ),
        },
        Some(state) => Observed {
            type_: status::CONFIG_APPLIED,
            status: "False",
            reason: known_reason(&state.reason),
            message: format!(
                "{}; {}",
                if state.message.is_empty() {
                    // Left out of a full annotation
                    // (`members_annotation`); the Event keeps it.
                    format!(
                        "refused ({}): the pool's Events on this endpoint say why",
                        state.reason
                    )
                } else {
                    state.message.clone()
                },
                if state.served {
                    format!("pool {pool:?} keeps serving the last configuration it accepted")
                } else {
                    format!("pool {pool:?} does not serve this endpoint")
                }
            ),
        },
    }
}

/// The part of an endpoint's pass when `spec.pool` names `pool_name`:
/// the stream, the Ingress (to the pool's Service) and the Certificate as
/// for a dedicated receiver; no receiver children of its own (those left
/// from before are removed once the pool serves the endpoint, so the
/// dedicated receivers keep delivering until then); status from the
/// pool's pods and what the pool recorded for the endpoint.
pub(super) async fn reconcile_member(
    endpoint: &WebhookEndpoint,
    ctx: &Context,
    namespace: &str,
    name: &str,
    pool_name: &str,
    secret_name: Option<String>,
) -> Result<Action, ReconcileError> {
    let observe_failed = |kind: &str, object: &str| {
        let (namespace, name) = (namespace.to_owned(), format!("{kind} {object}"));
        move |source| ReconcileError::Observe {
            namespace,
            name,
            source,
        }
    };
    let pools: Api<WebhookReceiverPool> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(pool) = pools
        .get_opt(pool_name)
        .await
        .map_err(observe_failed("WebhookReceiverPool", pool_name))?
    else {
        let spec = SpecState::PoolNotFound {
            message: format!(
                "WebhookReceiverPool {pool_name:?} (spec.pool) does not exist in namespace {namespace:?}; create it or fix the reference. Receivers this endpoint had before are left running"
            ),
        };
        let receiver = observe_receiver(ctx, endpoint, namespace, name).await?;
        write_status(ctx, endpoint, &spec, receiver, None).await?;
        return Ok(Action::await_change());
    };
    // Its stream is managed with the pool's NATS login: without it, on a
    // NATS that requires one, the operator could not check the stream the
    // pool's pods store into, and the member would never be Ready.
    let effective = member_stream_endpoint(
        &resources::effective_endpoint(endpoint, &ctx.settings),
        &pool,
    );
    let child = pool_child_name(pool_name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let pool_pods = deployments
        .get_opt(&child)
        .await
        .map_err(observe_failed("Deployment", &child))?
        .map(|deployment| {
            let status = deployment.status.unwrap_or_default();
            ReceiverState {
                desired: desired_pool_replicas(&pool),
                available: status.available_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
            }
        });
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // What the pool's last pass decided about this endpoint, in the
    // annotation of its shard.
    let shard = shard_secret_name(pool_name, shard_of(name, config_shards(&pool)));
    let members = secret_api
        .get_metadata_opt(&shard)
        .await
        .map_err(observe_failed("Secret", &shard))?
        .map(|secret| recorded_members(secret.annotations()))
        .unwrap_or_default();
    let config_applied = observe_config_applied(endpoint, pool_name, &members);
    let applied = config_applied.status == "True";
    let resolved = match secrets::resolve(&secret_api, namespace, &effective.spec).await {
        Ok(resolved) => resolved,
        Err(error) => {
            let Some(reason) = error.reason() else {
                return Err(error.into());
            };
            // The pool's login is no reference of the member's own: say
            // whose it is.
            let pools_login = pool
                .spec
                .nats
                .credentials_secret_ref
                .as_ref()
                .is_some_and(|login| login.name == error.secret_name());
            let message = if pools_login {
                format!(
                    "the NATS login of pool {pool_name:?} (its spec.nats.credentialsSecretRef), with which its members' streams are managed: {error}"
                )
            } else {
                error.to_string()
            };
            let spec = SpecState::SecretsUnresolved { reason, message };
            write_status_with(
                ctx,
                endpoint,
                &spec,
                pool_pods,
                None,
                None,
                Some(config_applied),
            )
            .await?;
            return Ok(Action::requeue(super::MISSING_SECRET_RETRY));
        }
    };
    let owner = match resources::Owner::of(endpoint) {
        Ok(owner) => owner,
        Err(error) => return super::build_failed(endpoint, ctx, namespace, name, &error).await,
    };
    let (ingress, certificate) = match resources::ingress(&effective, &owner, &ctx.settings)
        .and_then(|ingress| Ok((ingress, resources::certificate(&effective, &owner)?)))
    {
        Ok(built) => built,
        Err(error) => return super::build_failed(endpoint, ctx, namespace, name, &error).await,
    };
    let owned = Owned {
        ctx,
        endpoint,
        namespace,
        name,
    };
    let dedicated = observe_receiver(ctx, endpoint, namespace, name).await?;
    // Until the pool serves the endpoint, receivers it had of its own keep
    // its route.
    if applied || dedicated.is_none() {
        owned
            .apply_or_prune(ingress.as_ref(), &ctx.caches.ingresses)
            .await?;
    }
    if applied {
        owned.prune_dedicated().await?;
    }
    let certificate = reconcile_certificate(&owned, certificate.as_ref()).await?;
    let previous = endpoint.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == status::STREAM_READY)
    });
    let (stream, managed) =
        stream::reconcile(&ctx.nats, &effective, &resolved, &ctx.settings, previous).await;
    let next = match managed {
        None => Action::requeue(super::STREAM_RETRY),
        Some(managed) if applied => {
            ctx.audit.watch(ObjectRef::from_obj(endpoint), managed);
            Action::await_change()
        }
        // The pool's next pass, or its pods, bring the next pass of this
        // endpoint (both are watched).
        Some(_) => Action::await_change(),
    };
    let exposure = Exposure {
        url: effective
            .spec
            .ingress
            .as_ref()
            .map(|ingress| resources::public_url(ingress, effective.spec.tls.as_ref())),
        secret_name,
        certificate,
        stream: Some(stream),
    };
    let keys = resources::referenced_secrets(&effective.spec).len();
    write_status_with(
        ctx,
        endpoint,
        &SpecState::Resolved { keys },
        pool_pods,
        Some(&exposure),
        None,
        Some(config_applied),
    )
    .await?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::endpoint;
    use crate::resources::pool::MemberState;

    fn members(state: MemberState) -> Members {
        Members::from([("github".to_owned(), state)])
    }

    #[test]
    fn config_applied_follows_what_the_pool_recorded_for_this_generation() {
        let mut github = endpoint("github");
        github.metadata.generation = Some(3);
        let pending = observe_config_applied(&github, "shared", &Members::new());
        assert_eq!((pending.status, pending.reason), ("Unknown", "Pending"));
        let applied = MemberState {
            generation: Some(3),
            applied: true,
            served: true,
            ..MemberState::default()
        };
        let now = observe_config_applied(&github, "shared", &members(applied.clone()));
        assert_eq!((now.status, now.reason), ("True", "Applied"));
        let older = MemberState {
            generation: Some(2),
            ..applied
        };
        let stale = observe_config_applied(&github, "shared", &members(older));
        assert_eq!(stale.status, "Unknown");
        let refused = MemberState {
            generation: Some(3),
            applied: false,
            served: true,
            reason: "SecretNotFound".to_owned(),
            message: "Secret \"gone\" does not exist".to_owned(),
        };
        let refused = observe_config_applied(&github, "shared", &members(refused));
        assert_eq!(
            (refused.status, refused.reason),
            ("False", "SecretNotFound")
        );
        assert!(
            refused.message.contains("keeps serving"),
            "{}",
            refused.message
        );
        let odd = MemberState {
            generation: Some(3),
            reason: "Whatever".to_owned(),
            ..MemberState::default()
        };
        let odd = observe_config_applied(&github, "shared", &members(odd));
        assert_eq!(odd.reason, "Refused");
        assert!(odd.message.contains("does not serve"), "{}", odd.message);
        assert!(
            odd.message
                .starts_with("refused (Whatever): the pool's Events"),
            "a message left out of a full annotation: {}",
            odd.message
        );
    }
}
