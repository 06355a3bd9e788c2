//! The committed CRD YAML must be exactly what the Rust types generate.

#[test]
fn committed_crds_match_the_types() {
    for (which, file) in hookwarden_crds::CRDS {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = hookwarden_crds::crd_yaml_of(which)
            .expect("a listed CRD")
            .expect("CRD renders");
        assert!(
            committed == generated,
            "{path} is out of date with the Rust types; regenerate it with\n  make crds"
        );
    }
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

    let crd = hookwarden_crds::WebhookSubscription::crd();
    assert_eq!(crd.spec.group, "hookwarden.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["whs".to_owned()]));
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Destination", "Lag", "Ready", "Age"]);

    let crd = hookwarden_crds::WebhookReceiverPool::crd();
    assert_eq!(crd.spec.group, "hookwarden.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["whp".to_owned()]));
    assert_eq!(crd.spec.versions[0].name, "v1alpha1");
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Endpoints", "Ready", "Age"]);
}

#[test]
fn only_formats_kubernetes_knows() {
    // The API server warns about (and clients ignore) formats such as
    // schemars' `uint32`; integers must say int32 or int64.
    let yaml = [
        hookwarden_crds::crd_yaml().expect("CRD renders"),
        hookwarden_crds::subscription_crd_yaml().expect("CRD renders"),
        hookwarden_crds::pool_crd_yaml().expect("CRD renders"),
    ]
    .concat();
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

#[test]
fn provider_all_lists_every_variant_of_the_schema() {
    // The CRD's enum of spec.provider is generated from the type itself, so
    // it names every variant; `Provider::ALL` is written out and must match.
    let schema = serde_json::to_value(schemars::schema_for!(hookwarden_crds::Provider))
        .expect("schema renders");
    let mut from_schema: Vec<String> = Vec::new();
    let mut stack = vec![&schema];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(names)) = map.get("enum") {
                    from_schema.extend(names.iter().filter_map(|n| n.as_str().map(str::to_owned)));
                }
                if let Some(serde_json::Value::String(name)) = map.get("const") {
                    from_schema.push(name.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    let mut listed: Vec<String> = hookwarden_crds::Provider::ALL
        .iter()
        .map(|p| p.manifest_name())
        .collect();
    let count = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), count, "Provider::ALL lists a provider twice");
    from_schema.sort();
    from_schema.dedup();
    assert_eq!(listed, from_schema);
    for provider in hookwarden_crds::Provider::ALL {
        assert_eq!(
            hookwarden_crds::Provider::from_manifest_name(&provider.manifest_name()),
            Some(*provider)
        );
        // as_str spells each name out: it must be serde's.
        assert_eq!(
            serde_json::to_value(provider).expect("serialises"),
            serde_json::Value::String(provider.as_str().to_owned())
        );
    }
}

/// Every `enum` and `const` string of `schema`, sorted and deduplicated.
fn schema_names(schema: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(list)) = map.get("enum") {
                    names.extend(list.iter().filter_map(|n| n.as_str().map(str::to_owned)));
                }
                if let Some(serde_json::Value::String(name)) = map.get("const") {
                    names.push(name.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn range_provider_all_lists_every_variant_of_the_schema() {
    // Like `Provider::ALL`: written out, so it must match the generated enum.
    let schema = serde_json::to_value(schemars::schema_for!(hookwarden_crds::RangeProvider))
        .expect("schema renders");
    let mut listed: Vec<String> = hookwarden_crds::RangeProvider::ALL
        .iter()
        .map(|p| p.manifest_name().to_owned())
        .collect();
    let count = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!(
        listed.len(),
        count,
        "RangeProvider::ALL lists a provider twice"
    );
    assert_eq!(listed, schema_names(&schema));
    for provider in hookwarden_crds::RangeProvider::ALL {
        // The serde spelling is the manifest name.
        assert_eq!(
            serde_json::to_value(provider).expect("serialises"),
            serde_json::Value::String(provider.manifest_name().to_owned())
        );
        assert_eq!(
            hookwarden_crds::RangeProvider::from_manifest_name(provider.manifest_name()),
            Some(*provider)
        );
    }
}

#[test]
fn allowed_sources_carry_their_cel_rules() {
    let yaml = hookwarden_crds::crd_yaml().expect("CRD renders");
    for rule in [
        "has(self.provider) != has(self.url)",
        "has(self.url) == has(self.jsonPath)",
        "self.url.startsWith(",
    ] {
        assert!(yaml.contains(rule), "{rule} in the CRD");
    }
}
