//! The binary started from each example manifest serves its own path.
//!
//! Before, `spec.ingress.path` was ignored at start (only a later reload
//! applied it): behind the operator's Ingress, an endpoint on `/stripe`
//! answered 404 to every delivery.

use std::path::Path;

use hookwarden_tests::NatsServer;
use hyper::StatusCode;

use crate::binary::ReceiverProcess;

/// A secret of the shape the preset takes.
fn secret_for(provider: hookwarden_crds::Provider) -> Vec<u8> {
    match provider {
        hookwarden_crds::Provider::StandardWebhooks | hookwarden_crds::Provider::Svix => {
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec()
        }
        _ => b"an-example-secret-value".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_example_is_served_on_its_own_path_from_the_start() {
    let nats = NatsServer::start().await.expect("nats-server");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut served = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("example");
        let endpoint = match hookwarden_crds::from_yaml(&text) {
            Ok(endpoint) => endpoint,
            // A WebhookSubscription: the forwarder's tests run it.
            Err(hookwarden_crds::ManifestError::WrongKind { kind, .. })
                if kind == "WebhookSubscription" =>
            {
                continue;
            }
            Err(err) => panic!("{}: {err}", path.display()),
        };
        if endpoint.spec.generate_secret && endpoint.spec.secret_refs.is_empty() {
            // Its only secret is the one the operator generates.
            continue;
        }
        let secret = secret_for(endpoint.spec.provider);
        let refs = hookwarden_receiver::reload::secret_refs(&endpoint.spec);
        let secrets: Vec<(&str, &str, &[u8])> = refs
            .iter()
            .map(|r| (r.name.as_str(), r.key.as_str(), secret.as_slice()))
            .collect();
        // Published source ranges (`allowedSources`) come from saved lists,
        // as when the provider is unreachable at start: one documentation
        // range each, so the example starts without the network.
        let lists = tempfile::tempdir().expect("tempdir");
        let sources = hookwarden_receiver::ranges::sources_of(&endpoint.spec)
            .unwrap_or_else(|(i, e)| panic!("{}: allowedSources[{i}]: {e}", path.display()));
        for source in &sources {
            std::fs::write(
                lists.path().join(format!("{}.txt", source.key())),
                "192.0.2.0/24\n",
            )
            .expect("saved list");
        }
        let lists_dir = lists.path().to_string_lossy().into_owned();
        let mut env = vec![("RUST_LOG", "warn")];
        if !sources.is_empty() {
            env.push(("HOOKWARDEN_SOURCE_RANGES_DIR", lists_dir.as_str()));
        }
        let receiver = ReceiverProcess::spawn(nats.url(), &text, &secrets, &env);
        receiver.ready().await;
        let own = endpoint
            .spec
            .ingress
            .as_ref()
            .map_or("/".to_owned(), |ingress| ingress.path.clone());
        let headers = [("content-type", "application/json")];
        let answer = receiver.send_to("POST", &own, &headers, b"{}").await;
        assert_ne!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{}: {own} is served: {:?}",
            path.display(),
            answer.body
        );
        assert!(
            answer.status.is_client_error(),
            "{}: an unsigned delivery is refused: {}",
            path.display(),
            answer.status
        );
        let other = if own == "/" { "/elsewhere" } else { "/" };
        let elsewhere = receiver.send_to("POST", other, &headers, b"{}").await;
        assert_eq!(
            elsewhere.status,
            StatusCode::NOT_FOUND,
            "{}: {other} is not the endpoint",
            path.display()
        );
        served.push(own);
    }
    assert!(
        served.iter().any(|p| p == "/stripe") && served.iter().any(|p| p == "/twilio/sms"),
        "the examples with an ingress path were tried: {served:?}"
    );
}
