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

#[test]
fn only_formats_kubernetes_knows() {
    // The API server warns about (and clients ignore) formats such as
    // schemars' `uint32`; integers must say int32 or int64.
    let yaml = hookwarden_crds::crd_yaml().expect("CRD renders");
    for line in yaml
        .lines()
        .filter(|l| l.trim_start().starts_with("format:"))
    {
        let format = line.trim_start().trim_start_matches("format:").trim();
        assert!(
            ["int32", "int64", "date-time", "byte", "double", "float"].contains(&format),
            "unrecognised format {format:?} in the CRD"
        );
    }
}
