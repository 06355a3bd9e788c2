//! The optional children against the real control plane: Ingress,
//! NetworkPolicy, PodDisruptionBudget, HorizontalPodAutoscaler, the
//! cert-manager Certificate and the generated verification Secret.
//!
//! Other worktrees install their (possibly older) WebhookEndpoint CRD on the
//! same control plane, which would prune fields it does not know. Every
//! endpoint here is therefore applied right after installing this CRD, and
//! read back until the API server kept the new fields.

use std::time::Duration;

use hookwarden_crds::{IssuerKind, IssuerRef, WebhookEndpoint};
use hookwarden_operator::ops::Ops;
use hookwarden_tests::{TestNamespace, condition};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Api, ResourceExt};

use crate::{eventually, install_crds, start_operator, start_operator_with};

const CERT_CRD: &str = "certificates.cert-manager.io";
/// Marks the stand-in cert-manager CRD these tests install, so they only
/// ever delete their own.
const TEST_CRD_LABEL: &str = "hookwarden.dev/test-stand-in";

/// Applies endpoint `name` with `spec`, re-installing this CRD first and
/// until the stored spec has every top-level field of `spec` (an older CRD
/// installed meanwhile by another worktree would have pruned them).
async fn apply_endpoint(
    ns: &TestNamespace,
    name: &str,
    spec: serde_json::Value,
) -> WebhookEndpoint {
    let api = ns.api::<WebhookEndpoint>();
    let endpoint = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookEndpoint",
        "metadata": {"name": name},
        "spec": spec,
    });
    let wanted: Vec<String> = spec
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for _ in 0..5 {
        install_crds(ns).await;
        api.patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&endpoint),
        )
        .await
        .expect("endpoint applied");
        let raw: Api<DynamicObject> = Api::namespaced_with(
            ns.client(),
            ns.name(),
            &ApiResource::erase::<WebhookEndpoint>(&()),
        );
        let stored = raw.get(name).await.expect("endpoint read back");
        if wanted.iter().all(|k| stored.data["spec"].get(k).is_some()) {
            return api.get(name).await.expect("endpoint");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the API server kept pruning fields of {spec}: an older CRD keeps being installed");
}

fn assert_controlled_by(owners: &[OwnerReference], endpoint: &WebhookEndpoint) {
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(Some(&owners[0].uid), endpoint.uid().as_ref());
    assert_eq!(owners[0].kind, "WebhookEndpoint");
    assert_eq!(owners[0].controller, Some(true));
}

async fn secret(ns: &TestNamespace, name: &str, value: &str) {
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"secret": value},
    });
    ns.api::<Secret>()
        .patch(
            name,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("user Secret applied");
}

#[tokio::test]
async fn ingress_policy_budget_and_autoscaler_follow_the_spec() {
    let ns = TestNamespace::create("exposure").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    secret(&ns, "gh", "exposure-s3cr3t").await;
    let exposed = serde_json::json!({
        "provider": "github",
        "replicas": 2,
        "secretRefs": [{"name": "gh", "key": "secret"}],
        "ingress": {
            "host": "hooks.example.test",
            "path": "/gh",
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "2m"},
        },
        "tls": {"secretName": "my-cert"},
        "networkPolicy": {"ingressNamespace": "traefik"},
    });
    let endpoint = apply_endpoint(&ns, "gh", exposed).await;

    let ingresses = ns.api::<Ingress>();
    let policies = ns.api::<NetworkPolicy>();
    let budgets = ns.api::<PodDisruptionBudget>();
    let autoscalers = ns.api::<HorizontalPodAutoscaler>();
    let ingress = eventually("the Ingress", || async {
        ingresses.get_opt("gh-receiver").await.ok().flatten()
    })
    .await;
    assert_controlled_by(ingress.owner_references(), &endpoint);
    let spec = ingress.spec.clone().expect("ingress spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &spec.rules.unwrap_or_default()[0];
    assert_eq!(rule.host.as_deref(), Some("hooks.example.test"));
    let path = &rule.http.as_ref().expect("http").paths[0];
    assert_eq!(path.path.as_deref(), Some("/gh"));
    let backend = path.backend.service.as_ref().expect("service backend");
    assert_eq!(backend.name, "gh-receiver");
    let tls = spec.tls.unwrap_or_default();
    assert_eq!(tls[0].secret_name.as_deref(), Some("my-cert"));
    assert_eq!(
        ingress
            .annotations()
            .get("nginx.ingress.kubernetes.io/proxy-body-size")
            .map(String::as_str),
        Some("2m")
    );

    let policy = eventually("the NetworkPolicy", || async {
        policies.get_opt("gh-receiver").await.ok().flatten()
    })
    .await;
    assert_controlled_by(policy.owner_references(), &endpoint);
    let policy = serde_json::to_value(&policy).expect("serializes");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "traefik"
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );

    let budget = eventually("the PodDisruptionBudget", || async {
        budgets.get_opt("gh-receiver").await.ok().flatten()
    })
    .await;
    assert_controlled_by(budget.owner_references(), &endpoint);

    let endpoints = ns.api::<WebhookEndpoint>();
    eventually("status.url", || async {
        let e = endpoints.get("gh").await.ok()?;
        (e.status?.url.as_deref() == Some("https://hooks.example.test/gh")).then_some(())
    })
    .await;

    // Autoscaling adds the autoscaler (the budget stays: min 2 replicas).
    apply_endpoint(
        &ns,
        "gh",
        serde_json::json!({
            "provider": "github",
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
        }),
    )
    .await;
    let hpa = eventually("the HorizontalPodAutoscaler", || async {
        autoscalers.get_opt("gh-receiver").await.ok().flatten()
    })
    .await;
    assert_controlled_by(hpa.owner_references(), &endpoint);
    let hpa_spec = hpa.spec;
    assert_eq!((hpa_spec.min_replicas, hpa_spec.max_replicas), (Some(2), 5));

    // Without ingress, autoscaling and with one replica, the Ingress, the
    // autoscaler and the budget go; the policy stays.
    apply_endpoint(
        &ns,
        "gh",
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
        }),
    )
    .await;
    eventually(
        "the Ingress, budget and autoscaler to be deleted",
        || async {
            let ingress = ingresses.get_opt("gh-receiver").await.ok()?;
            let budget = budgets.get_opt("gh-receiver").await.ok()?;
            let hpa = autoscalers.get_opt("gh-receiver").await.ok()?;
            (ingress.is_none() && budget.is_none() && hpa.is_none()).then_some(())
        },
    )
    .await;
    assert!(
        policies
            .get_opt("gh-receiver")
            .await
            .expect("get")
            .is_some(),
        "the NetworkPolicy is always wanted"
    );
    eventually("status.url to be cleared", || async {
        let e = endpoints.get("gh").await.ok()?;
        e.status?.url.is_none().then_some(())
    })
    .await;
}

fn certificate_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "Certificate",
    ));
    Api::namespaced_with(ns.client(), ns.name(), &resource)
}

/// Removes the stand-in cert-manager CRD of an earlier run (never a real
/// one); `false` when a real cert-manager is installed.
async fn remove_stand_in_cert_crd(crds: &Api<CustomResourceDefinition>) -> bool {
    let Some(existing) = crds.get_opt(CERT_CRD).await.expect("get CRD") else {
        return true;
    };
    if !existing.labels().contains_key(TEST_CRD_LABEL) {
        return false;
    }
    crds.delete(CERT_CRD, &DeleteParams::default())
        .await
        .expect("stand-in CRD deleted");
    eventually("the stand-in CRD to be gone", || async {
        crds.get_opt(CERT_CRD).await.ok()?.is_none().then_some(())
    })
    .await;
    true
}

#[tokio::test]
async fn issuer_ref_without_cert_manager_is_reported_then_a_certificate_is_requested() {
    let ns = TestNamespace::create("certs").await.expect("namespace");
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
    let absent = remove_stand_in_cert_crd(&crds).await;
    let operator = start_operator(&ns).await;
    secret(&ns, "gh", "certs-s3cr3t").await;
    let spec = serde_json::json!({
        "provider": "github",
        "replicas": 1,
        "secretRefs": [{"name": "gh", "key": "secret"}],
        "ingress": {"host": "certs.example.test"},
        "tls": {"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}},
    });
    let endpoint = apply_endpoint(&ns, "tls", spec).await;
    let endpoints = ns.api::<WebhookEndpoint>();
    let certificates = certificate_api(&ns);

    if absent {
        let reported = eventually("CertificateReady=False", || async {
            let e = endpoints.get("tls").await.ok()?;
            let c = condition(&e, "CertificateReady")?;
            (c.status == "False").then_some((c, e))
        })
        .await;
        let (cert, _) = reported;
        assert_eq!(cert.reason, "CertManagerNotInstalled");
        assert!(
            cert.message.contains("install cert-manager"),
            "{}",
            cert.message
        );
        // Once the receiver is available, the certificate is what Ready waits for.
        eventually("Ready=False/CertificateNotReady", || async {
            let e = endpoints.get("tls").await.ok()?;
            let ready = condition(&e, "Ready")?;
            (ready.status == "False" && ready.reason == "CertificateNotReady").then_some(())
        })
        .await;
        // The Ingress is there, pointing at the Secret cert-manager would write.
        let ingress = ns
            .api::<Ingress>()
            .get("tls-receiver")
            .await
            .expect("Ingress");
        let tls = ingress.spec.and_then(|s| s.tls).unwrap_or_default();
        assert_eq!(tls[0].secret_name.as_deref(), Some("tls-tls"));
        assert!(
            certificates.list(&ListParams::default()).await.is_err(),
            "no Certificate API without the CRD"
        );
    } else {
        eprintln!("a real cert-manager is installed: the absent case is not checked");
    }

    // A minimal stand-in of cert-manager's CRD.
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CERT_CRD, "labels": {TEST_CRD_LABEL: "true"}},
        "spec": {
            "group": "cert-manager.io",
            "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate", "listKind": "CertificateList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    }))
    .expect("CRD manifest");
    if absent {
        crds.patch(
            CERT_CRD,
            &PatchParams::apply("hookwarden-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("stand-in CRD installed");
    }
    eventually("the Certificate API to be served", || async {
        certificates
            .list(&ListParams::default())
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    // Any change of the endpoint starts a pass that finds cert-manager.
    endpoints
        .patch(
            "tls",
            &PatchParams::apply("hookwarden-test-touch"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "hookwarden.dev/v1alpha1",
                "kind": "WebhookEndpoint",
                "metadata": {"name": "tls", "annotations": {"test/touch": "1"}},
            })),
        )
        .await
        .expect("touched");
    let certificate = eventually("the Certificate", || async {
        certificates.get_opt("tls-receiver").await.ok().flatten()
    })
    .await;
    assert_controlled_by(certificate.owner_references(), &endpoint);
    assert_eq!(
        certificate.data["spec"],
        serde_json::json!({
            "secretName": "tls-tls",
            "dnsNames": ["certs.example.test"],
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        })
    );
    // No cert-manager controller runs: the certificate is not issued yet.
    let cert = eventually("CertificateReady=Unknown", || async {
        let e = endpoints.get("tls").await.ok()?;
        let c = condition(&e, "CertificateReady")?;
        (c.status == "Unknown").then_some(c)
    })
    .await;
    assert_eq!(cert.reason, "Issuing");

    // An operator started while cert-manager is installed watches
    // Certificates: once its first pass is done, cert-manager issuing the
    // certificate starts the next one at once (not a timer, 5 minutes).
    // Stopped, not only dropped: a pass of the first still in flight (its
    // nats-server gone, it can take a while) would otherwise write its
    // older view of the certificate over the second's.
    operator.stop().await;
    let ops = hookwarden_operator::ops::Ops::default();
    let _operator = start_operator_with(&ns, ops.clone(), |_| {}).await;
    // Its first passes (the list, then every child watch's list) done:
    // no pass for 2 s.
    let passes = || {
        ops.metrics.reconcile_count(
            hookwarden_operator::ops::ReconcileKind::Endpoint,
            hookwarden_operator::ops::ReconcileResult::Ok,
        )
    };
    eventually("the new operator's first passes", || async {
        let before = passes();
        tokio::time::sleep(Duration::from_secs(2)).await;
        (before > 0 && passes() == before).then_some(())
    })
    .await;
    certificates
        .patch_status(
            "tls-receiver",
            &PatchParams::apply("cert-manager-stand-in"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "status": {"conditions": [{
                    "type": "Ready", "status": "True", "reason": "Ready",
                    "message": "Certificate is up to date and has not expired",
                }]},
            })),
        )
        .await
        .expect("issued by the stand-in");
    let issued = eventually("CertificateReady=True", || async {
        let e = endpoints.get("tls").await.ok()?;
        let c = condition(&e, "CertificateReady")?;
        (c.status == "True").then_some(c)
    })
    .await;
    assert_eq!(issued.reason, "Issued");

    // An own TLS Secret instead: the Certificate goes, and so does the condition.
    apply_endpoint(
        &ns,
        "tls",
        serde_json::json!({
            "provider": "github",
            "replicas": 1,
            "secretRefs": [{"name": "gh", "key": "secret"}],
            "ingress": {"host": "certs.example.test"},
            "tls": {"secretName": "my-cert"},
        }),
    )
    .await;
    eventually("the Certificate to be deleted", || async {
        certificates
            .get_opt("tls-receiver")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("CertificateReady to be gone", || async {
        let e = endpoints.get("tls").await.ok()?;
        condition(&e, "CertificateReady").is_none().then_some(())
    })
    .await;

    if absent {
        crds.delete(CERT_CRD, &DeleteParams::default())
            .await
            .expect("stand-in CRD removed");
    }
}

#[tokio::test]
async fn the_default_class_and_issuer_apply_to_ingresses_that_name_none() {
    let ns = TestNamespace::create("defaults").await.expect("namespace");
    let _operator = start_operator_with(&ns, Ops::default(), |config| {
        config.settings.default_ingress_class = Some("default-class".to_owned());
        config.settings.default_issuer = Some(IssuerRef {
            name: "default-ca".to_owned(),
            kind: IssuerKind::ClusterIssuer,
        });
    })
    .await;
    secret(&ns, "gh", "defaults-s3cr3t").await;
    let bare = serde_json::json!({
        "provider": "github",
        "replicas": 1,
        "secretRefs": [{"name": "gh", "key": "secret"}],
        "ingress": {"host": "bare.example.test"},
    });
    apply_endpoint(&ns, "bare", bare).await;
    let own = serde_json::json!({
        "provider": "github",
        "replicas": 1,
        "secretRefs": [{"name": "gh", "key": "secret"}],
        "ingress": {"host": "own.example.test", "className": "nginx"},
        "tls": {"secretName": "my-cert"},
    });
    apply_endpoint(&ns, "own", own).await;

    let ingresses = ns.api::<Ingress>();
    let endpoints = ns.api::<WebhookEndpoint>();
    // The defaults fill what the endpoint leaves out: the class, and TLS
    // from the default issuer into <name>-tls, so the URL is https.
    let bare_ingress = eventually("the Ingress of bare", || async {
        ingresses.get_opt("bare-receiver").await.ok().flatten()
    })
    .await;
    let spec = bare_ingress.spec.unwrap_or_default();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("default-class"));
    let tls = spec.tls.unwrap_or_default();
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].secret_name.as_deref(), Some("bare-tls"));
    let url = eventually("status.url of bare", || async {
        endpoints.get("bare").await.ok()?.status?.url
    })
    .await;
    assert_eq!(url, "https://bare.example.test/");
    // Whether or not a cert-manager CRD is served, the Certificate is
    // accounted for as for an explicit issuerRef.
    eventually("CertificateReady of bare", || async {
        condition(&endpoints.get("bare").await.ok()?, "CertificateReady")
    })
    .await;

    // An endpoint's own class and tls win.
    let own_ingress = eventually("the Ingress of own", || async {
        ingresses.get_opt("own-receiver").await.ok().flatten()
    })
    .await;
    let spec = own_ingress.spec.unwrap_or_default();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let tls = spec.tls.unwrap_or_default();
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].secret_name.as_deref(), Some("my-cert"));
    let url = eventually("status.url of own", || async {
        endpoints.get("own").await.ok()?.status?.url
    })
    .await;
    assert_eq!(url, "https://own.example.test/");
}

#[tokio::test]
async fn a_generated_secret_is_created_once_named_in_status_and_never_exposed() {
    let ns = TestNamespace::create("gensecret").await.expect("namespace");
    let _operator = start_operator(&ns).await;
    let spec = |replicas: i32| serde_json::json!({"provider": "github", "replicas": replicas, "generateSecret": true});
    apply_endpoint(&ns, "gen", spec(2)).await;
    let secrets = ns.api::<Secret>();
    let endpoints = ns.api::<WebhookEndpoint>();
    let value = |s: &Secret, key: &str| -> Option<String> {
        let v = s.data.as_ref()?.get(key)?;
        Some(String::from_utf8_lossy(&v.0).into_owned())
    };
    let generated = eventually("the generated Secret", || async {
        secrets.get_opt("gen-webhook-secret").await.ok().flatten()
    })
    .await;
    let endpoint = endpoints.get("gen").await.expect("endpoint");
    assert_controlled_by(generated.owner_references(), &endpoint);
    let first = value(&generated, "secret").expect("key secret");
    assert_eq!(first.len(), 64, "32 bytes in hex");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    eventually("status.secretName", || async {
        let e = endpoints.get("gen").await.ok()?;
        (e.status?.secret_name.as_deref() == Some("gen-webhook-secret")).then_some(())
    })
    .await;
    // The receivers verify with it.
    let rendered = eventually("the rendered config with the generated secret", || async {
        let s = secrets.get_opt("gen-receiver").await.ok()??;
        value(&s, "secret.gen-webhook-secret_secret")
    })
    .await;
    assert_eq!(rendered, first);

    // Another generation is reconciled; the value stays.
    let changed = apply_endpoint(&ns, "gen", spec(1)).await;
    let generation = changed.metadata.generation;
    eventually("the new generation to be observed", || async {
        let e = endpoints.get("gen").await.ok()?;
        (e.status?.observed_generation == generation).then_some(())
    })
    .await;
    let again = secrets
        .get("gen-webhook-secret")
        .await
        .expect("still there");
    assert_eq!(value(&again, "secret"), Some(first.clone()));
    assert_eq!(again.resource_version(), generated.resource_version());

    // Never in a condition or an Event.
    let e = endpoints.get("gen").await.expect("endpoint");
    for c in e.status.iter().flat_map(|s| &s.conditions) {
        assert!(
            !c.message.contains(&first),
            "condition leaks the secret: {c:?}"
        );
    }
    for event in ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
    {
        let text = format!("{:?} {:?}", event.note, event.reason);
        assert!(!text.contains(&first), "Event leaks the secret: {event:?}");
    }
}

/// The API server's refusal of endpoint `name` with `spec`. An older CRD
/// installed meanwhile would prune the new fields and accept it: ours is
/// installed again and the apply retried then.
async fn refusal(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> String {
    let api = ns.api::<WebhookEndpoint>();
    let bad = serde_json::json!({
        "apiVersion": "hookwarden.dev/v1alpha1",
        "kind": "WebhookEndpoint",
        "metadata": {"name": name},
        "spec": spec,
    });
    for _ in 0..5 {
        install_crds(ns).await;
        match api
            .patch(
                name,
                &PatchParams::apply("hookwarden-test"),
                &Patch::Apply(&bad),
            )
            .await
        {
            Err(err) => return err.to_string(),
            Ok(_) => {
                api.delete(name, &DeleteParams::default())
                    .await
                    .expect("accepted by an older CRD; deleted");
            }
        }
    }
    panic!("the API server never applied the CEL rules to {spec}");
}

#[tokio::test]
async fn the_api_server_refuses_conflicting_tls_inverted_autoscaling_bounds_and_credentials_in_urls()
 {
    let ns = TestNamespace::create("cel").await.expect("namespace");
    let both = refusal(
        &ns,
        "both",
        serde_json::json!({
            "provider": "github",
            "ingress": {"host": "both.example.test"},
            "tls": {"issuerRef": {"name": "le"}, "secretName": "mine"},
        }),
    )
    .await;
    assert!(
        both.contains("set exactly one of tls.issuerRef and tls.secretName"),
        "{both}"
    );
    let neither = refusal(
        &ns,
        "neither",
        serde_json::json!({
            "provider": "github",
            "ingress": {"host": "neither.example.test"},
            "tls": {},
        }),
    )
    .await;
    assert!(
        neither.contains("set exactly one of tls.issuerRef and tls.secretName"),
        "{neither}"
    );
    let inverted = refusal(
        &ns,
        "inverted",
        serde_json::json!({
            "provider": "github",
            "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
        }),
    )
    .await;
    assert!(
        inverted.contains("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"),
        "{inverted}"
    );
    let credentials = refusal(
        &ns,
        "credentials",
        serde_json::json!({
            "provider": "github",
            "nats": {"url": "nats://app:hunter2@nats.nats.svc:4222"},
        }),
    )
    .await;
    assert!(
        credentials.contains("spec.nats.url must not carry credentials"),
        "{credentials}"
    );
    assert!(
        !credentials.contains("hunter2"),
        "the refusal repeats the password: {credentials}"
    );
}
