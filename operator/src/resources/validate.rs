//! Checks the CRD schema cannot express: the names of the children derive
//! from the endpoint's name and must be valid names themselves.

use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use super::{Route, Settings, TlsSource, child_name};

/// The longest Service name (an RFC 1035 label).
const MAX_SERVICE_NAME: usize = 63;

/// Why an endpoint cannot be reconciled as written. It waits for a change of
/// its spec: retrying would not help.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// The endpoint is not namespaced (never true of one from the API server).
    #[error("the WebhookEndpoint has no namespace")]
    MissingNamespace,
    /// `<name>-receiver` does not fit a Service name.
    #[error(
        "the name {name:?} is too long: the receiver Service {child:?} would exceed {MAX_SERVICE_NAME} characters; use a name of at most {} characters",
        MAX_SERVICE_NAME - "-receiver".len()
    )]
    NameTooLong {
        /// The endpoint's name.
        name: String,
        /// The child name it would give.
        child: String,
    },
    /// TLS is the Ingress's: without `ingress` it has nothing to protect.
    #[error(
        "spec.tls is set without spec.ingress; add spec.ingress (host and path) or remove spec.tls"
    )]
    TlsWithoutIngress,
    /// The CRD's CEL rule refuses this; an endpoint stored under an older
    /// CRD may still have it.
    #[error("spec.tls must set exactly one of issuerRef and secretName")]
    TlsSourceNotExactlyOne,
    /// Service names are RFC 1035 labels: a letter first, no dots.
    #[error(
        "the name {name:?} cannot name a Service: it must start with a letter and contain only lowercase letters, digits and '-'"
    )]
    NameNotALabel {
        /// The endpoint's name.
        name: String,
    },
    /// The CRD's CEL rule refuses this too; the URL would reach every
    /// receiver Deployment's arguments, readable to anyone who can list
    /// Deployments. The message never repeats the URL.
    #[error(
        "spec.nats.url must not carry credentials (user:password@ or token@); give a NATS .creds file in a Secret named by spec.nats.credentialsSecretRef"
    )]
    NatsUrlCredentials,
    /// `spec.nats` names an invalid subject prefix or stream, or stream
    /// limits JetStream refuses.
    #[error(transparent)]
    Nats(#[from] hookwarden_core::publish::TargetError),
    /// The receiver could not build its verifier from this spec whatever
    /// its Secrets hold (a preset's required setting is missing, a header
    /// name is invalid, a handshake may not be stored, ...). The message is
    /// the receiver's own, which never shows a secret.
    #[error("{0}")]
    Verification(String),
    /// An `allowedSources` entry cannot be used.
    #[error("spec.allowedSources[{index}]: {source}")]
    Source {
        /// Which entry.
        index: usize,
        /// Why.
        source: hookwarden_core::ranges::SourceError,
    },
}

/// An endpoint [`validate`] accepted, with the namespace, name and TLS
/// source it was found to have and the conditions of its status as this
/// pass read it: the steps after validation use these instead of looking
/// again.
#[derive(Debug)]
pub struct ValidEndpoint<'a> {
    endpoint: &'a WebhookEndpoint,
    namespace: String,
    name: String,
    tls: Option<TlsSource>,
    previous: &'a [Condition],
}

impl<'a> ValidEndpoint<'a> {
    /// Validates `endpoint` ([`validate`]) before anything is read or
    /// applied.
    pub fn check(endpoint: &'a WebhookEndpoint) -> Result<Self, ValidateError> {
        let Some(namespace) = endpoint.namespace() else {
            return Err(ValidateError::MissingNamespace);
        };
        let name = endpoint.name_any();
        let tls = check_spec(endpoint, &name)?;
        Ok(Self {
            endpoint,
            namespace,
            name,
            tls,
            previous: endpoint
                .status
                .as_ref()
                .map(|status| status.conditions.as_slice())
                .unwrap_or_default(),
        })
    }

    /// The endpoint as the API server gave it.
    pub fn endpoint(&self) -> &'a WebhookEndpoint {
        self.endpoint
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its public route, `None` without `spec.ingress`: the Ingress's TLS
    /// is the source `spec.tls` names, else, with `settings`' default
    /// issuer, a Certificate from that.
    pub fn route(&self, settings: &Settings) -> Option<Route<'a>> {
        Some(Route {
            ingress: self.endpoint.spec.ingress.as_ref()?,
            tls: self.tls.clone().or_else(|| settings.default_tls()),
        })
    }

    /// The condition `type_` of its status before this pass, if any.
    pub fn previous(&self, type_: &str) -> Option<&'a Condition> {
        self.previous
            .iter()
            .find(|condition| condition.type_ == type_)
    }
}

/// Validates `endpoint` before anything is read or applied.
pub fn validate(endpoint: &WebhookEndpoint) -> Result<(), ValidateError> {
    ValidEndpoint::check(endpoint).map(|_| ())
}

/// The checks of an endpoint named `name` beyond its namespace; its TLS
/// source when it has `spec.tls`.
fn check_spec(endpoint: &WebhookEndpoint, name: &str) -> Result<Option<TlsSource>, ValidateError> {
    let name = name.to_owned();
    let child = child_name(&name);
    if child.len() > MAX_SERVICE_NAME {
        return Err(ValidateError::NameTooLong { name, child });
    }
    let label = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !label {
        return Err(ValidateError::NameNotALabel { name });
    }
    let tls = match &endpoint.spec.tls {
        Some(tls) => {
            let source = TlsSource::of(tls).ok_or(ValidateError::TlsSourceNotExactlyOne)?;
            if endpoint.spec.ingress.is_none() {
                return Err(ValidateError::TlsWithoutIngress);
            }
            Some(source)
        }
        None => None,
    };
    if endpoint
        .spec
        .nats
        .url
        .as_deref()
        .is_some_and(|url| url.contains('@'))
    {
        return Err(ValidateError::NatsUrlCredentials);
    }
    // The receiver would refuse to start with it, and the stream could not
    // be managed.
    hookwarden_core::publish::Target::for_endpoint(&endpoint.into())?;
    // The CRD's CEL rules check the shape; these what a list can be.
    hookwarden_core::ranges::sources_of(&endpoint.spec)
        .map_err(|(index, source)| ValidateError::Source { index, source })?;
    verification(endpoint)?;
    Ok(tls)
}

/// Builds the receiver's verifier from the spec, with a well-formed key of
/// the preset's kind standing in for every Secret (their values are not
/// read here): what fails is the spec itself, which would keep every
/// receiver from starting. Errors that depend on what a Secret holds are
/// the receiver's to report.
fn verification(endpoint: &WebhookEndpoint) -> Result<(), ValidateError> {
    use hookwarden_core::secrets::Secret;
    use hookwarden_core::verify::{self, VerifierError, registry};
    let stand_in = registry::preset(endpoint.spec.provider)
        .key
        .test_key("operator validation")
        .verifying;
    // The generated Secret is added by the operator itself.
    let mut spec = endpoint.spec.clone();
    if spec.generate_secret {
        spec.secret_refs.push(hookwarden_crds::SecretKeyRef {
            name: "generated".to_owned(),
            key: "secret".to_owned(),
        });
    }
    let built = verify::for_endpoint(&spec, |refs| {
        Ok(refs
            .iter()
            .map(|_| Secret::from(stand_in.clone()))
            .collect())
    });
    match built {
        Ok(_)
        | Err(
            VerifierError::KeyEncoding { .. }
            | VerifierError::InvalidKey { .. }
            | VerifierError::Secret(_),
        ) => Ok(()),
        Err(other) => Err(ValidateError::Verification(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::endpoint;

    #[test]
    fn a_valid_endpoint_carries_its_namespace_name_and_previous_conditions() {
        let mut e = endpoint("github");
        e.status = Some(
            serde_json::from_value(serde_json::json!({
                "conditions": [{
                    "type": "StreamReady", "status": "True", "reason": "Created",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
                }],
            }))
            .expect("a status"),
        );
        let valid = ValidEndpoint::check(&e).expect("valid");
        assert_eq!((valid.namespace(), valid.name()), ("ci", "github"));
        assert_eq!(
            valid
                .previous(crate::reconcile::status::STREAM_READY)
                .map(|c| c.reason.as_str()),
            Some("Created")
        );
        assert!(valid.previous(crate::reconcile::status::READY).is_none());

        e.metadata.namespace = None;
        assert_eq!(
            ValidEndpoint::check(&e).map(|_| ()),
            Err(ValidateError::MissingNamespace)
        );
    }

    #[test]
    fn the_route_has_the_validated_tls_source_else_the_default_issuer() {
        use crate::resources::fixtures::settings;
        let exposed = endpoint("exposed");
        let route = ValidEndpoint::check(&exposed)
            .expect("valid")
            .route(&settings())
            .expect("an ingress");
        assert_eq!(route.ingress.host, "hooks.example.com");
        assert!(
            matches!(&route.tls, Some(TlsSource::Issuer(issuer)) if issuer.name == "letsencrypt"),
            "{route:?}"
        );
        assert_eq!(route.url(), "https://hooks.example.com/shop");

        let mut own = endpoint("exposed");
        own.spec.tls = Some(hookwarden_crds::TlsSpec {
            issuer_ref: None,
            secret_name: Some("mine".to_owned()),
        });
        let route = ValidEndpoint::check(&own)
            .expect("valid")
            .route(&settings());
        assert_eq!(
            route.and_then(|r| r.tls),
            Some(TlsSource::Secret("mine".to_owned()))
        );

        let mut plain = endpoint("exposed");
        plain.spec.tls = None;
        let valid = ValidEndpoint::check(&plain).expect("valid");
        let route = valid.route(&settings()).expect("an ingress");
        assert_eq!(
            (route.url(), route.tls),
            ("http://hooks.example.com/shop".to_owned(), None)
        );
        let default_issuer = hookwarden_crds::IssuerRef {
            name: "cluster-default".to_owned(),
            kind: hookwarden_crds::IssuerKind::ClusterIssuer,
        };
        let with_default = Settings {
            default_issuer: Some(default_issuer.clone()),
            ..settings()
        };
        assert_eq!(
            valid.route(&with_default).and_then(|r| r.tls),
            Some(TlsSource::Issuer(default_issuer)),
            "an Ingress without spec.tls gets the default issuer"
        );

        let github = endpoint("github");
        let valid = ValidEndpoint::check(&github).expect("valid");
        assert!(valid.route(&with_default).is_none(), "no Ingress, no route");
    }

    #[test]
    fn stream_settings_jetstream_refuses_are_invalid() {
        let mut e = endpoint("github");
        e.spec.nats.max_age_seconds = Some(60);
        e.spec.nats.duplicate_window_seconds = Some(120);
        let err = validate(&e).expect_err("window longer than max age");
        assert!(err.to_string().contains("duplicateWindowSeconds"), "{err}");
    }

    #[test]
    fn refuses_credentials_in_the_nats_url_without_repeating_them() {
        let mut e = endpoint("github");
        e.spec.nats.url = Some("nats://app:hunter2@nats.nats.svc:4222".to_owned());
        let err = validate(&e).expect_err("credentials in the URL");
        assert_eq!(err, ValidateError::NatsUrlCredentials);
        assert!(!err.to_string().contains("hunter2"), "{err}");
        e.spec.nats.url = Some("nats://nats.nats.svc:4222".to_owned());
        assert_eq!(validate(&e), Ok(()));
    }

    #[test]
    fn specs_the_receiver_could_never_start_with_are_invalid() {
        let mut e = endpoint("github");
        e.spec.provider = hookwarden_crds::Provider::AwsSns;
        e.spec.secret_refs.clear();
        let err = validate(&e).expect_err("no topic allowlist");
        assert!(err.to_string().contains("spec.aws.topicArns"), "{err}");
        e.spec.aws = Some(hookwarden_crds::AwsSnsSpec {
            topic_arns: vec!["arn:aws:sns:eu-west-1:123456789012:orders".to_owned()],
            ..Default::default()
        });
        assert_eq!(validate(&e), Ok(()));

        let mut e = endpoint("github");
        e.spec.provider = hookwarden_crds::Provider::Dropbox;
        e.spec.handshake = Some(hookwarden_crds::HandshakeSpec {
            publish: true,
            ..Default::default()
        });
        let err = validate(&e).expect_err("an unauthenticated handshake stored");
        assert!(err.to_string().contains("not authenticated"), "{err}");

        let mut e = endpoint("github");
        e.spec.provider = hookwarden_crds::Provider::Twilio;
        let err = validate(&e).expect_err("twilio signs the URL");
        assert!(err.to_string().contains("spec.publicUrl"), "{err}");
    }

    #[test]
    fn fixtures_are_valid() {
        assert_eq!(validate(&endpoint("github")), Ok(()));
        assert_eq!(validate(&endpoint("generic-hmac")), Ok(()));
        assert_eq!(validate(&endpoint("exposed")), Ok(()));
    }

    #[test]
    fn refuses_tls_without_ingress_or_without_exactly_one_source() {
        let mut e = endpoint("exposed");
        e.spec.ingress = None;
        assert_eq!(validate(&e), Err(ValidateError::TlsWithoutIngress));
        let mut e = endpoint("exposed");
        if let Some(tls) = e.spec.tls.as_mut() {
            tls.secret_name = Some("mine".to_owned());
        }
        assert_eq!(validate(&e), Err(ValidateError::TlsSourceNotExactlyOne));
        if let Some(tls) = e.spec.tls.as_mut() {
            tls.secret_name = None;
            tls.issuer_ref = None;
        }
        assert_eq!(validate(&e), Err(ValidateError::TlsSourceNotExactlyOne));
    }

    #[test]
    fn refuses_names_that_cannot_name_a_service() {
        let mut e = endpoint("github");
        e.metadata.name = Some("a".repeat(54));
        assert_eq!(validate(&e), Ok(()));
        e.metadata.name = Some("a".repeat(55));
        let err = validate(&e).expect_err("too long");
        assert!(err.to_string().contains("at most 54 characters"), "{err}");
        for bad in ["9lives", "git.hub"] {
            e.metadata.name = Some(bad.to_owned());
            assert_eq!(
                validate(&e),
                Err(ValidateError::NameNotALabel {
                    name: bad.to_owned()
                })
            );
        }
        e.metadata.name = Some("github".to_owned());
        e.metadata.namespace = None;
        assert_eq!(validate(&e), Err(ValidateError::MissingNamespace));
    }
}
