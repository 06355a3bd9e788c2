//! Prints one CRD of the API as YAML: `crdgen endpoint`, `crdgen
//! subscription` and `crdgen pool` are the one source of `crds/*.yaml` and
//! of the chart's copies.

fn main() -> std::process::ExitCode {
    let which = std::env::args().nth(1).unwrap_or_default();
    match hookwarden_crds::crd_yaml_of(&which) {
        Some(Ok(yaml)) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Some(Err(err)) => {
            eprintln!("crdgen: cannot render the CRD: {err}");
            std::process::ExitCode::FAILURE
        }
        None => {
            let names: Vec<&str> = hookwarden_crds::CRDS
                .iter()
                .map(|(name, _)| *name)
                .collect();
            eprintln!("usage: crdgen <{}>", names.join("|"));
            std::process::ExitCode::FAILURE
        }
    }
}
