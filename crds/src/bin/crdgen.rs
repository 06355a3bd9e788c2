//! Prints the `WebhookEndpoint` CRD as YAML: the one source of
//! `crds/webhookendpoint.yaml` and of the chart's copy.

fn main() -> std::process::ExitCode {
    match hookwarden_crds::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("crdgen: cannot render the CRD: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
