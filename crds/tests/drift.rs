//! The committed CRD YAML must be exactly what the Rust types generate.

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/webhookendpoint.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = hookwarden_crds::crd_yaml().expect("CRD renders");
    assert!(
        committed == generated,
        "{path} is out of date with the Rust types; regenerate it with\n  \
         cargo run -p hookwarden-crds --bin crdgen > crds/webhookendpoint.yaml"
    );
}

#[test]
fn crd_names_and_columns() {
    use kube::CustomResourceExt;
    let crd = hookwarden_crds::WebhookEndpoint::crd();
    assert_eq!(crd.spec.group, "hookwarden.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["whe".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["URL", "Provider", "Ready", "Age"]);
}
