//! Every example manifest in `examples/` loads as receiver configuration
//! (or, for a `WebhookSubscription`, as the manifest the forwarder reads).

#[test]
fn every_example_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read example");
            if text.contains("\nkind: WebhookSubscription\n") {
                hookwarden_crds::subscription_from_yaml(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                continue;
            }
            hookwarden_receiver::config::load_endpoint(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(loaded > 0, "no example manifests in {}", dir.display());
}
