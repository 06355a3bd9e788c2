//! The endpoint's JetStream stream: created with the spec's settings,
//! updated when they change, checked when `createStream` is false, and
//! reported as `StreamReady`. The stream's definition and the JetStream
//! calls are the receiver's ([`hookwarden_core::publish`]), so the
//! operator and the receivers agree on names, subjects and settings.
//!
//! A stream is never deleted, not even with its endpoint: it holds
//! deliveries nobody may have consumed yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream;
use hookwarden_core::nats_url::NatsUrl;
use hookwarden_core::publish::{
    self, EnsureStreamError, Placement, StreamOutcome, Target, connect_options,
};
use hookwarden_core::redact::redact_url;
use hookwarden_core::secrets::Secret;
use hookwarden_crds::WebhookEndpoint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sha2::{Digest, Sha256};

use super::status::StreamState;
use crate::resources::{ResolvedSecrets, Settings};

/// How long connecting to NATS, and each JetStream request, may take.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's own NATS credentials: a `.creds` file's text. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct Credentials(Secret);

impl Credentials {
    /// Wraps the content of a `.creds` file, and keeps its JWT and seed out
    /// of every log line from now on.
    pub fn new(creds: Vec<u8>) -> Self {
        hookwarden_core::logging::register_creds(&String::from_utf8_lossy(&creds));
        Self(Secret::from(creds))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// Open NATS connections, one per server URL and credentials, kept across
/// passes (a client reconnects by itself after an outage).
pub struct Connections {
    operator_credentials: Option<Credentials>,
    clients: Mutex<HashMap<String, async_nats::Client>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("operator_credentials", &self.operator_credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// No connections yet; `operator_credentials` for the default NATS.
    pub fn new(operator_credentials: Option<Credentials>) -> Self {
        Self {
            operator_credentials,
            clients: Mutex::default(),
        }
    }

    fn cached(&self, key: &str) -> Option<async_nats::Client> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn remember(&self, key: String, client: async_nats::Client) {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, client);
    }

    /// A client of `url` with `credentials` (a `.creds` file and the
    /// reference it was read from), kept for later passes. Without
    /// credentials, the operator's own are used, but only when `url` is
    /// the operator's default NATS (`default_nats`), the one they were
    /// given for. `consequence` says in a failure's message what the
    /// failure means for the user's workload.
    pub async fn client(
        &self,
        url: &str,
        credentials: Option<(hookwarden_crds::SecretKeyRef, Secret)>,
        default_nats: bool,
        consequence: &str,
    ) -> Result<async_nats::Client, NatsFailure> {
        let operator_ref = hookwarden_crds::SecretKeyRef {
            name: "<operator>".to_owned(),
            key: "--nats-credentials-file".to_owned(),
        };
        let credentials = match credentials {
            Some(credentials) => Some(credentials),
            None if default_nats => self
                .operator_credentials
                .as_ref()
                .map(|c| (operator_ref, c.0.clone())),
            None => None,
        };
        let options =
            connect_options(credentials.as_ref().map(|(r, s)| (r, s))).map_err(|error| {
                NatsFailure {
                    reason: "CredentialsInvalid",
                    message: error.to_string(),
                }
            })?;
        let key = format!(
            "{url}\n{}",
            credentials
                .as_ref()
                .map(|(_, s)| hex::encode(Sha256::digest(s.expose())))
                .unwrap_or_default()
        );
        if let Some(client) = self.cached(&key) {
            return Ok(client);
        }
        // The URL's user and password (or token) are passed explicitly:
        // the client would not send them.
        let nats_url = NatsUrl::parse(url).map_err(|error| NatsFailure {
            reason: "NatsUnreachable",
            message: error.to_string(),
        })?;
        let connected = nats_url
            .connect(
                options
                    .name("hookwarden-operator")
                    .connection_timeout(NATS_TIMEOUT),
            )
            .await;
        match connected {
            Ok(client) => {
                self.remember(key, client.clone());
                Ok(client)
            }
            Err(error) => {
                use async_nats::ConnectErrorKind::{Authentication, AuthorizationViolation};
                let (reason, hint) = match error.kind() {
                    Some(AuthorizationViolation | Authentication) => (
                        "NatsUnauthorized",
                        "check spec.nats.credentialsSecretRef (or the operator's NATS credentials for the default NATS: --nats-credentials-file, or the user and password in --nats-url)",
                    ),
                    _ => (
                        "NatsUnreachable",
                        "check spec.nats.url (or the operator's --nats-url) and that NATS runs",
                    ),
                };
                Err(NatsFailure {
                    reason,
                    message: format!("{error}; {consequence}; {hint}"),
                })
            }
        }
    }
}

/// Why no NATS client could be had: a condition's reason and message
/// (which name the server, never a credential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsFailure {
    /// `CredentialsInvalid`, `NatsUnauthorized` or `NatsUnreachable`.
    pub reason: &'static str,
    /// For a person.
    pub message: String,
}

fn state(ready: bool, reason: &'static str, message: String) -> StreamState {
    StreamState {
        ready,
        reason,
        message,
    }
}

/// A stream found in sync on a later pass for the same generation keeps the
/// outcome of the pass that created or updated it: the condition keeps
/// saying how the stream got there, and the status is not rewritten (nor the
/// endpoint requeued by its own status change) on every pass; only a change
/// of the stream's placement changes the message.
pub fn keep_earlier_outcome(
    outcome: StreamOutcome,
    previous: Option<&Condition>,
    generation: Option<i64>,
) -> StreamOutcome {
    if outcome != StreamOutcome::InSync {
        return outcome;
    }
    let Some(previous) = previous else {
        return outcome;
    };
    if previous.status != "True" || previous.observed_generation != generation {
        return outcome;
    }
    match previous.reason.as_str() {
        "StreamCreated" => StreamOutcome::Created,
        "StreamUpdated" => StreamOutcome::Updated,
        _ => outcome,
    }
}

/// The `StreamReady` reason and message of a stream JetStream answered
/// for, e.g. `JetStream stream S on nats://n1:4222,nats://n2:4222 created
/// (subjects s.>); 3 of 3 replicas current, leader n2`. Not ready
/// (`StreamNoQuorum`) when it cannot store ([`Placement::stores`]): a
/// replicated stream without a majority still answers, and an endpoint
/// whose deliveries all get 503 must not say Ready.
pub fn ready_state(
    outcome: StreamOutcome,
    target: &Target,
    shown: &str,
    placement: &Placement,
) -> StreamState {
    if !placement.stores() {
        return state(
            false,
            "StreamNoQuorum",
            format!(
                "JetStream stream {} on {shown} has no quorum: {placement}; every delivery is refused (503) until a majority of its replicas is current again",
                target.stream
            ),
        );
    }
    let (reason, what) = match outcome {
        StreamOutcome::Created => ("StreamCreated", "created"),
        StreamOutcome::Updated => ("StreamUpdated", "updated to the spec's settings"),
        StreamOutcome::InSync => ("StreamInSync", "has the spec's settings"),
        StreamOutcome::Unmanaged => (
            "Unmanaged",
            "exists and takes the endpoint's subjects; createStream is false, so its settings are left to whoever manages it",
        ),
    };
    state(
        true,
        reason,
        format!(
            "JetStream stream {} on {shown} {what} (subjects {}); {placement}",
            target.stream,
            target.subjects()
        ),
    )
}

/// A ready stream and the JetStream connection it was managed over: what the
/// stream audit needs to check it later without the API server.
#[derive(Clone, Debug)]
pub struct Managed {
    /// JetStream on the endpoint's NATS, with the endpoint's credentials.
    pub jetstream: jetstream::Context,
    /// The endpoint's stream and subjects as this pass managed them.
    pub target: Target,
    /// Where the stream was, as this pass reported it in `StreamReady`:
    /// the audit starts a pass when it finds it elsewhere.
    pub placement: Placement,
}

/// Brings the endpoint's stream in line with its spec and says how it went
/// (`previous`: the `StreamReady` condition the status has now); with a
/// ready stream, how to check it later. Never an error: an unreachable NATS
/// is a condition, not a failed pass.
pub async fn reconcile(
    connections: &Connections,
    endpoint: &WebhookEndpoint,
    resolved: &ResolvedSecrets,
    settings: &Settings,
    previous: Option<&Condition>,
) -> (StreamState, Option<Managed>) {
    let mut managed = None;
    let state = manage(
        connections,
        endpoint,
        resolved,
        settings,
        previous,
        &mut managed,
    )
    .await;
    let ready = state.ready;
    (state, managed.filter(|_| ready))
}

async fn manage(
    connections: &Connections,
    endpoint: &WebhookEndpoint,
    resolved: &ResolvedSecrets,
    settings: &Settings,
    previous: Option<&Condition>,
    managed: &mut Option<Managed>,
) -> StreamState {
    let target = match Target::for_endpoint(&endpoint.into()) {
        Ok(target) => target,
        // Validation refuses these before any pass gets here.
        Err(error) => return state(false, "InvalidSpec", error.to_string()),
    };
    let nats = &endpoint.spec.nats;
    let url = nats.url.as_deref().unwrap_or(&settings.nats_url);
    let shown = redact_url(url);
    let credentials = nats.credentials_secret_ref.as_ref().and_then(|reference| {
        resolved
            .get(&reference.name, &reference.key)
            .map(|bytes| (reference.clone(), Secret::from(bytes)))
    });
    let client = match connections
        .client(
            url,
            credentials,
            nats.url.is_none(),
            "receivers answer 503 until they can store deliveries",
        )
        .await
    {
        Ok(client) => client,
        Err(failure) => return state(false, failure.reason, failure.message),
    };
    let mut jetstream = jetstream::new(client);
    jetstream.set_timeout(NATS_TIMEOUT);
    let stream = &target.stream;
    match publish::manage_stream(&jetstream, &target).await {
        Ok(done) => {
            let outcome =
                keep_earlier_outcome(done.outcome, previous, endpoint.metadata.generation);
            let ready = ready_state(outcome, &target, &shown, &done.placement);
            tracing::debug!(%stream, reason = ready.reason, placement = %done.placement, "stream reconciled");
            *managed = Some(Managed {
                jetstream: jetstream.clone(),
                target: target.clone(),
                placement: done.placement,
            });
            ready
        }
        Err(error) => {
            let reason = match &error {
                EnsureStreamError::Unreachable { .. } => "NatsUnreachable",
                EnsureStreamError::NotFound { .. } => "StreamNotFound",
                EnsureStreamError::Conflict(_) => "StreamConflict",
                EnsureStreamError::Rejected { .. } => "StreamRejected",
            };
            tracing::info!(%error, reason, "stream not ready");
            state(false, reason, format!("{error} (NATS {shown})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info_in_messages() {
        assert_eq!(
            redact_url("nats://user:pa55@nats.x.svc:4222"),
            "nats://***@nats.x.svc:4222"
        );
        assert_eq!(redact_url("nats://tok@n:4222/p@x"), "nats://***@n:4222/p@x");
        assert_eq!(redact_url("nats://n:4222"), "nats://n:4222");
        assert_eq!(redact_url("n:4222"), "n:4222");
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let creds = Credentials::new(b"SUAB-seed".to_vec());
        assert!(!format!("{creds:?}").contains("SUAB"));
        let connections = Connections::new(Some(creds));
        assert!(!format!("{connections:?}").contains("SUAB"));
    }

    fn condition(reason: &str, generation: i64) -> Condition {
        Condition {
            type_: "StreamReady".to_owned(),
            status: "True".to_owned(),
            reason: reason.to_owned(),
            message: format!("{reason} message"),
            observed_generation: Some(generation),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    #[test]
    fn in_sync_keeps_how_the_stream_got_there_for_the_same_generation() {
        use StreamOutcome::{Created, InSync, Updated};
        let created = condition("StreamCreated", 1);
        assert_eq!(
            keep_earlier_outcome(InSync, Some(&created), Some(1)),
            Created
        );
        assert_eq!(
            keep_earlier_outcome(InSync, Some(&condition("StreamUpdated", 1)), Some(1)),
            Updated
        );
        assert_eq!(
            keep_earlier_outcome(InSync, Some(&created), Some(2)),
            InSync,
            "a new generation that needed no change is simply in sync"
        );
        assert_eq!(keep_earlier_outcome(InSync, None, Some(1)), InSync);
        assert_eq!(
            keep_earlier_outcome(Updated, Some(&created), Some(1)),
            Updated,
            "only InSync is replaced"
        );
        let mut failed = condition("StreamCreated", 1);
        failed.status = "False".to_owned();
        assert_eq!(keep_earlier_outcome(InSync, Some(&failed), Some(1)), InSync);
    }

    #[test]
    fn the_ready_message_says_where_the_stream_is_and_how_its_replicas_keep_up() {
        let endpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: gh, namespace: ci}\nspec: {provider: github, nats: {replicas: 3}}\n",
        )
        .expect("endpoint");
        let target = Target::for_endpoint(&endpoint).expect("target");
        let placement = Placement {
            leader: Some("n2".to_owned()),
            current: 2,
            replicas: 3,
        };
        let ready = ready_state(
            StreamOutcome::Created,
            &target,
            "nats://n1:4222,nats://n2:4222",
            &placement,
        );
        assert!(ready.ready);
        assert_eq!(ready.reason, "StreamCreated");
        assert_eq!(
            ready.message,
            format!(
                "JetStream stream {} on nats://n1:4222,nats://n2:4222 created (subjects {}); 2 of 3 replicas current, leader n2",
                target.stream,
                target.subjects()
            )
        );
        // The same outcome elsewhere is another message: the status follows
        // the stream's placement.
        let moved = Placement {
            leader: Some("n3".to_owned()),
            current: 3,
            replicas: 3,
        };
        assert_ne!(
            ready_state(StreamOutcome::Created, &target, "n", &moved).message,
            ready_state(StreamOutcome::Created, &target, "n", &placement).message
        );
    }

    #[test]
    fn a_replicated_stream_without_a_majority_is_not_ready() {
        let endpoint = hookwarden_crds::from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {name: gh, namespace: ci}\nspec: {provider: github, nats: {replicas: 3}}\n",
        )
        .expect("endpoint");
        let target = Target::for_endpoint(&endpoint).expect("target");
        let placed = |leader: Option<&str>, current, replicas| Placement {
            leader: leader.map(str::to_owned),
            current,
            replicas,
        };
        // What nats-server 2.15 answered in the two-of-three-lost test: the
        // old leader alone, then no leader at all.
        for lost in [
            placed(Some("n1"), 1, 3),
            placed(None, 0, 3),
            placed(None, 2, 3),
        ] {
            let state = ready_state(StreamOutcome::InSync, &target, "n", &lost);
            assert!(!state.ready, "{lost}");
            assert_eq!(state.reason, "StreamNoQuorum");
            assert!(
                state.message.contains(&lost.to_string()),
                "{}",
                state.message
            );
        }
        for stores in [
            placed(Some("n1"), 2, 3),
            placed(Some("n1"), 3, 5),
            placed(Some("n1"), 1, 1),
            placed(None, 0, 1),
        ] {
            assert!(
                ready_state(StreamOutcome::InSync, &target, "n", &stores).ready,
                "{stores}"
            );
        }
    }
}
