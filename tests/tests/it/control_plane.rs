//! The local control plane is a real one: the controllers, scheduler, kwok,
//! RBAC and server-side apply all behave as in a cluster.

use std::time::Duration;

use hookwarden_tests::{TestNamespace, eventually, kubeconfig_path};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

const WAIT: Duration = Duration::from_secs(90);

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

#[tokio::test]
async fn deployment_pods_run_on_the_fake_node_and_are_garbage_collected() {
    let ns = TestNamespace::create("deploy").await.expect("namespace");
    let deployment: Deployment = from_json(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }));
    let deployments = ns.api::<Deployment>();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment created");

    let pods = ns.api::<Pod>();
    let running = eventually("2 Running pods", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        (running.len() == 2).then_some(running)
    })
    .await;
    for pod in &running {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        assert_eq!(
            node,
            Some("kwok-node-0"),
            "pod scheduled onto the kwok node"
        );
    }
    let replica_sets = ns.api::<ReplicaSet>();
    assert_eq!(
        replica_sets
            .list(&ListParams::default())
            .await
            .expect("list rs")
            .items
            .len(),
        1
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("deployment deleted");
    eventually("ReplicaSet and Pods garbage-collected", WAIT, || async {
        let rs = replica_sets.list(&ListParams::default()).await.ok()?;
        let left = pods.list(&ListParams::default()).await.ok()?;
        (rs.items.is_empty() && left.items.is_empty()).then_some(())
    })
    .await;
}

/// A client that authenticates with a service account's token instead of the
/// admin certificate.
async fn client_with_token(token: String) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn rbac_denies_a_service_account_what_its_role_does_not_grant() {
    let ns = TestNamespace::create("rbac").await.expect("namespace");
    let accounts = ns.api::<ServiceAccount>();
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("reader"),
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("service account");
    let role: Role = from_json(serde_json::json!({
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }));
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: RoleBinding = from_json(serde_json::json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name()}],
    }));
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding");

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .expect("token issued with the service-account signing key");
    let token = issued
        .status
        .and_then(|s| s.token)
        .expect("token in status");
    let reader = client_with_token(token).await;

    // Granted: list configmaps here (the binding reaches the authorizer's cache quickly).
    let configmaps: Api<ConfigMap> = Api::namespaced(reader.clone(), ns.name());
    eventually("the role binding to take effect", WAIT, || async {
        configmaps.list(&ListParams::default()).await.ok()
    })
    .await;

    let forbidden = |result: Result<_, kube::Error>| match result {
        Err(kube::Error::Api(status)) => status.code == 403,
        _ => false,
    };
    let secrets: Api<Secret> = Api::namespaced(reader.clone(), ns.name());
    assert!(
        forbidden(secrets.list(&ListParams::default()).await.map(|_| ())),
        "secrets are not granted"
    );
    let write = configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("x"),
                ..ConfigMap::default()
            },
        )
        .await;
    assert!(forbidden(write.map(|_| ())), "create is not granted");
    let elsewhere: Api<ConfigMap> = Api::namespaced(reader, "default");
    assert!(
        forbidden(elsewhere.list(&ListParams::default()).await.map(|_| ())),
        "other namespaces are not granted"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers_and_conflicts() {
    let ns = TestNamespace::create("ssa").await.expect("namespace");
    let configmaps = ns.api::<ConfigMap>();
    let desired = |value: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"mode": value},
        })
    };
    configmaps
        .patch(
            "settings",
            &PatchParams::apply("hookwarden-a"),
            &Patch::Apply(desired("one")),
        )
        .await
        .expect("first apply");
    let applied = configmaps.get("settings").await.expect("get");
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("hookwarden-a".to_owned(), "Apply".to_owned())),
        "{managers:?}"
    );

    let conflict = configmaps
        .patch(
            "settings",
            &PatchParams::apply("hookwarden-b"),
            &Patch::Apply(desired("two")),
        )
        .await;
    assert!(
        matches!(conflict, Err(kube::Error::Api(ref s)) if s.code == 409),
        "{conflict:?}"
    );

    let forced = configmaps
        .patch(
            "settings",
            &PatchParams::apply("hookwarden-b").force(),
            &Patch::Apply(desired("two")),
        )
        .await
        .expect("forced apply");
    assert_eq!(
        forced.data.and_then(|d| d.get("mode").cloned()).as_deref(),
        Some("two")
    );
}
