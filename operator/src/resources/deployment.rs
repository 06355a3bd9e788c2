//! The Deployment `<name>-receiver`: hardened receiver pods that read the
//! rendered configuration Secret.

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::api::apps::v1::Deployment;

use super::pod::{self, CONFIG_DIR, Mount, Workload, item};
use super::{
    BuildError, ENDPOINT_FILE, HTTP_PORT, METRICS_PORT, Owner, Settings, referenced_secrets,
    secret_data_key,
};

/// The receiver Deployment of `endpoint`, annotated with `config_hash`.
pub fn deployment(
    endpoint: &WebhookEndpoint,
    owner: &Owner,
    settings: &Settings,
    config_hash: &str,
) -> Result<Deployment, BuildError> {
    // Each referenced key lands where the receiver looks for it:
    // `<secrets-dir>/<secret name>/<key>`, the layout of a mounted Secret.
    let mut items = vec![item(ENDPOINT_FILE, ENDPOINT_FILE)];
    items.extend(
        referenced_secrets(&endpoint.spec)
            .iter()
            .map(|(secret, key)| {
                item(
                    &secret_data_key(secret, key),
                    &format!("secrets/{secret}/{key}"),
                )
            }),
    );
    let mut args = vec![
        "serve".to_owned(),
        "--endpoint".to_owned(),
        format!("{CONFIG_DIR}/{ENDPOINT_FILE}"),
        "--secrets-dir".to_owned(),
        format!("{CONFIG_DIR}/secrets"),
    ];
    let env = pod::with_env(
        pod::nats_url(owner, settings.nats_url(endpoint), &mut args),
        &settings.workload_env,
    );
    args.extend([
        "--listen".to_owned(),
        format!("0.0.0.0:{HTTP_PORT}"),
        // TLS ends at the ingress controller in front of the Service.
        "--tls-mode".to_owned(),
        "behind-ingress".to_owned(),
        "--metrics-listen".to_owned(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]);
    pod::deployment(
        owner,
        Workload {
            container: "receiver",
            image: &settings.receiver_image,
            args,
            env,
            ports: serde_json::json!([
                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ]),
            resources: endpoint.spec.resources.as_ref(),
            mount: Mount::Items(items),
            // With autoscaling the HorizontalPodAutoscaler owns `replicas`:
            // the operator leaves the field out of its apply, or each pass
            // would undo the autoscaler's decision.
            replicas: endpoint
                .spec
                .autoscaling
                .is_none()
                .then_some(endpoint.spec.replicas),
        },
        config_hash,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, PodSpec};

    use super::super::fixtures::*;
    use super::super::{
        CONFIG_HASH_ANNOTATION, NATS_URL_KEY, build, config_hash, labels, selector_labels,
    };
    use super::*;

    fn pod_spec(deployment: &Deployment) -> &PodSpec {
        deployment.spec.template.spec.as_ref().expect("pod spec")
    }

    fn container(deployment: &Deployment) -> &Container {
        let containers = &pod_spec(deployment).containers;
        assert_eq!(containers.len(), 1);
        &containers[0]
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_autoscaler() {
        let endpoint = endpoint("exposed");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        assert_eq!(children.deployment.spec.replicas, None);
        let json = serde_json::to_value(&children.deployment).expect("serializes");
        assert!(json["spec"].get("replicas").is_none(), "{json}");
    }

    #[test]
    fn runs_the_receiver_with_the_mounted_configuration() {
        let endpoint = endpoint("github");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let deployment = &children.deployment;
        let spec = &deployment.spec;
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.selector.match_labels.as_ref(),
            Some(&selector_labels("github"))
        );
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        assert_eq!(template_labels, Some(&labels("github")));

        let container = container(deployment);
        assert_eq!(
            container.image.as_deref(),
            Some("ghcr.io/hookwarden/receiver:test")
        );
        assert_eq!(
            container.args.as_deref().unwrap_or_default(),
            [
                "serve",
                "--endpoint",
                "/etc/hookwarden/endpoint.yaml",
                "--secrets-dir",
                "/etc/hookwarden/secrets",
                "--nats-url",
                "nats://nats.nats.svc:4222",
                "--listen",
                "0.0.0.0:8080",
                "--tls-mode",
                "behind-ingress",
                "--metrics-listen",
                "0.0.0.0:9090",
            ]
        );
        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_path, "/etc/hookwarden");
        assert_eq!(mounts[0].read_only, Some(true));

        let volumes = pod_spec(deployment).volumes.as_deref().unwrap_or_default();
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].name, mounts[0].name);
        let source = volumes[0].secret.as_ref().expect("secret volume");
        assert_eq!(source.secret_name.as_deref(), Some("github-receiver"));
        let items: BTreeMap<&str, &str> = source
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(
            items,
            BTreeMap::from([
                ("endpoint.yaml", "endpoint.yaml"),
                (
                    "secret.github-webhook-next_secret",
                    "secrets/github-webhook-next/secret"
                ),
                (
                    "secret.github-webhook_secret",
                    "secrets/github-webhook/secret"
                ),
            ])
        );
        // Every item names a key the rendered Secret really has.
        let data = children.secret.data.as_ref().expect("data");
        assert_eq!(data.len(), items.len());
        assert!(items.keys().all(|k| data.contains_key(*k)));
    }

    #[test]
    fn spec_replicas_and_nats_url_override_the_defaults() {
        let endpoint = endpoint("generic-hmac");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let deployment = &children.deployment;
        assert_eq!(deployment.spec.replicas, Some(3));
        let args = container(deployment).args.clone().unwrap_or_default();
        let url = args
            .iter()
            .position(|a| a == "--nats-url")
            .and_then(|i| args.get(i + 1));
        assert_eq!(url.map(String::as_str), Some("nats://nats.shop.svc:4222"));
    }

    #[test]
    fn the_tracing_variables_the_operator_passes_on_are_set_on_the_receiver() {
        let endpoint = endpoint("github");
        let traced = Settings {
            nats_url: "nats://app:hunter2@nats.nats.svc:4222".to_owned(),
            workload_env: vec![(
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                "http://collector.obs.svc:4318".to_owned(),
            )],
            ..settings()
        };
        let children = build(&endpoint, &secrets_for(&endpoint), &traced).expect("builds");
        let env = container(&children.deployment)
            .env
            .clone()
            .unwrap_or_default();
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["HOOKWARDEN_NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"],
            "after the NATS URL from its Secret"
        );
        assert_eq!(
            env[1].value.as_deref(),
            Some("http://collector.obs.svc:4318")
        );
    }

    #[test]
    fn a_nats_url_with_credentials_reaches_the_pods_only_through_the_rendered_secret() {
        let endpoint = endpoint("github");
        let plain = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        assert!(container(&plain.deployment).env.is_none());
        let with_password = Settings {
            nats_url: "nats://app:hunter2@nats.nats.svc:4222".to_owned(),
            ..settings()
        };
        let children = build(&endpoint, &secrets_for(&endpoint), &with_password).expect("builds");
        let deployment = serde_json::to_string(&children.deployment).expect("serializes");
        assert!(!deployment.contains("hunter2"), "{deployment}");
        let container = container(&children.deployment);
        let args = container.args.as_deref().unwrap_or_default();
        assert!(!args.iter().any(|a| a.contains("nats")), "{args:?}");
        let env = container.env.as_deref().unwrap_or_default();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name, "HOOKWARDEN_NATS_URL");
        let from = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from a Secret");
        assert_eq!(from.name, "github-receiver");
        assert_eq!(from.key, NATS_URL_KEY);
        let data = children.secret.data.as_ref().expect("data");
        assert_eq!(
            data.get(NATS_URL_KEY).map(|v| v.0.as_slice()),
            Some(b"nats://app:hunter2@nats.nats.svc:4222".as_slice())
        );
        // Mounted as a file it would be one more copy: only the env reads it.
        let volumes = pod_spec(&children.deployment)
            .volumes
            .as_deref()
            .unwrap_or_default();
        let items = volumes[0]
            .secret
            .as_ref()
            .and_then(|s| s.items.as_deref())
            .unwrap_or_default();
        assert!(items.iter().all(|i| i.key != NATS_URL_KEY));
        // Changing the password rolls the pods.
        assert_ne!(
            config_hash(&children.secret),
            config_hash(&plain.secret),
            "the URL is part of the configuration hash"
        );
    }

    #[test]
    fn pods_are_hardened() {
        let endpoint = endpoint("github");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let pod = pod_spec(&children.deployment);
        assert_eq!(pod.automount_service_account_token, Some(false));
        let pod_security = pod.security_context.as_ref().expect("pod securityContext");
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(65532));
        assert_eq!(
            pod_security
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );

        let container = container(&children.deployment);
        let security = container
            .security_context
            .as_ref()
            .expect("securityContext");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.run_as_user, Some(65532));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );

        let probe_of = |probe: Option<&k8s_openapi::api::core::v1::Probe>| {
            let get = probe
                .and_then(|p| p.http_get.as_ref())
                .expect("httpGet probe");
            (get.path.clone().unwrap_or_default(), get.port.clone())
        };
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(
            probe_of(container.readiness_probe.as_ref()),
            ("/readyz".to_owned(), IntOrString::Int(9090))
        );
        assert_eq!(
            probe_of(container.liveness_probe.as_ref()),
            ("/healthz".to_owned(), IntOrString::Int(9090))
        );

        let resources = container.resources.as_ref().expect("resources");
        for quantities in [&resources.requests, &resources.limits] {
            let quantities = quantities.as_ref().expect("requests and limits");
            assert!(quantities.contains_key("cpu") && quantities.contains_key("memory"));
        }
    }

    #[test]
    fn spec_resources_replace_the_defaults() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut endpoint = endpoint("github");
        let defaults = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let resources = container(&defaults.deployment)
            .resources
            .clone()
            .expect("resources");
        let requests = resources.requests.expect("requests");
        assert_eq!(requests.get("cpu"), Some(&Quantity("50m".to_owned())));
        assert_eq!(requests.get("memory"), Some(&Quantity("64Mi".to_owned())));

        endpoint.spec.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_owned(),
                Quantity("250m".to_owned()),
            )])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("1Gi".to_owned()),
            )])),
            ..Default::default()
        });
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let resources = container(&children.deployment)
            .resources
            .clone()
            .expect("resources");
        assert_eq!(
            resources.requests,
            Some(BTreeMap::from([(
                "cpu".to_owned(),
                Quantity("250m".to_owned())
            )])),
            "replaced as a whole: no default memory request"
        );
        assert_eq!(
            resources.limits,
            Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("1Gi".to_owned())
            )]))
        );
    }

    #[test]
    fn nats_credentials_are_mounted_where_the_receiver_reads_them() {
        let mut endpoint = endpoint("github");
        endpoint.spec.nats.credentials_secret_ref = Some(hookwarden_crds::SecretKeyRef {
            name: "nats-user".to_owned(),
            key: "user.creds".to_owned(),
        });
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let volumes = pod_spec(&children.deployment)
            .volumes
            .clone()
            .unwrap_or_default();
        let items: BTreeMap<String, String> = volumes[0]
            .secret
            .as_ref()
            .and_then(|s| s.items.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|i| (i.key, i.path))
            .collect();
        assert_eq!(
            items.get("secret.nats-user_user.creds").map(String::as_str),
            Some("secrets/nats-user/user.creds"),
            "{items:?}"
        );
        // Only the referenced key of that Secret, rendered from its value.
        assert_eq!(items.keys().filter(|k| k.contains("nats-user")).count(), 1);
        let data = children.secret.data.as_ref().expect("data");
        assert_eq!(
            data.get("secret.nats-user_user.creds").map(|v| v.0.clone()),
            Some(b"nats-user/user.creds-value".to_vec())
        );
    }

    #[test]
    fn the_template_carries_the_config_hash() {
        let endpoint = endpoint("github");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let annotations = children
            .deployment
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        assert_eq!(
            annotations.get(CONFIG_HASH_ANNOTATION),
            Some(&config_hash(&children.secret))
        );
    }
}
