//! The Service `<name>-receiver`: the stable in-cluster address of the
//! receivers, the backend of the endpoint's Ingress and the scrape target of
//! their metrics.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildError, Owner};

/// The receiver Service: port 80 to the pods' `http` port, 9090 to `metrics`.
pub fn service(owner: &Owner) -> Result<Service, BuildError> {
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Ok(Service {
        metadata: owner.metadata(),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(owner.selector_labels()),
            ports: Some(vec![port("http", 80), port("metrics", 9090)]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::super::fixtures::*;
    use super::super::{HTTP_PORT, METRICS_PORT, build, selector_labels};

    #[test]
    fn routes_http_and_metrics_to_the_receiver_pods() {
        let endpoint = endpoint("github");
        let children = build(&endpoint, &secrets_for(&endpoint), &settings()).expect("builds");
        let spec = children.service.spec.as_ref().expect("spec");
        assert_eq!(spec.selector.as_ref(), Some(&selector_labels("github")));
        let ports: Vec<(&str, i32, IntOrString)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.as_deref().unwrap_or_default(),
                    p.port,
                    p.target_port.clone().unwrap_or(IntOrString::Int(0)),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("http", 80, IntOrString::String("http".to_owned())),
                ("metrics", 9090, IntOrString::String("metrics".to_owned())),
            ]
        );
        // The named target ports exist on the receiver container.
        let container_ports: Vec<(String, i32)> = children
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .map(|p| &p.containers[0])
            .and_then(|c| c.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.container_port))
            .collect();
        assert_eq!(
            container_ports,
            [
                ("http".to_owned(), HTTP_PORT),
                ("metrics".to_owned(), METRICS_PORT)
            ]
        );
    }
}
