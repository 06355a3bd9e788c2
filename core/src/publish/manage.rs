//! Stream management: creating, updating and checking an endpoint's
//! JetStream stream (and its quarantine stream), where it is placed and
//! how full it is.

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, stream};

use super::*;

/// Why the endpoint's stream is not usable. Each message names the stream
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnsureStreamError {
    /// NATS or JetStream did not answer.
    #[error("NATS did not answer about JetStream stream {stream}: {detail}")]
    Unreachable {
        /// The stream's name.
        stream: String,
        /// What the client said.
        detail: String,
    },
    /// The stream does not exist and may not be created here.
    #[error(
        "JetStream stream {stream} does not exist and spec.nats.createStream is false: create it with subjects {subjects}, or set createStream to true"
    )]
    NotFound {
        /// The stream's name.
        stream: String,
        /// The subjects it must take.
        subjects: String,
    },
    /// The stream exists but cannot take the endpoint's deliveries, or
    /// cannot be given the spec's settings.
    #[error("{0}")]
    Conflict(String),
    /// JetStream refused to create, read or update the stream.
    #[error("JetStream refused stream {stream}: {detail}")]
    Rejected {
        /// The stream's name.
        stream: String,
        /// JetStream's own description.
        detail: String,
    },
}

/// What [`manage_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The stream did not exist and was created.
    Created,
    /// The stream existed with other settings and was updated.
    Updated,
    /// The stream already had the spec's settings.
    InSync,
    /// `createStream: false`: the stream exists and takes the subjects; its
    /// settings are left to whoever manages it.
    Unmanaged,
}

/// Where a stream's copies are and whether they keep up, from the
/// `cluster` section of its info: what the operator reports in
/// `StreamReady`, and what its stream audit compares between two checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The server leading the stream (the one that stores and
    /// acknowledges), when it has one.
    pub leader: Option<String>,
    /// The copies that are current: the leader, and the followers that are
    /// caught up and online.
    pub current: usize,
    /// The copies the stream has (`num_replicas`).
    pub replicas: usize,
}

impl Placement {
    /// The placement `info` describes. A server outside a cluster reports
    /// itself as the leader of its streams.
    pub fn of(info: &stream::Info) -> Self {
        let replicas = info.config.num_replicas.max(1);
        let Some(cluster) = &info.cluster else {
            return Self {
                leader: None,
                current: 0,
                replicas,
            };
        };
        let leader = cluster.leader.clone().filter(|name| !name.is_empty());
        let followers = cluster
            .replicas
            .iter()
            .filter(|peer| peer.current && !peer.offline)
            .count();
        Self {
            current: (usize::from(leader.is_some()) + followers).min(replicas),
            leader,
            replicas,
        }
    }
}

impl Placement {
    /// Whether JetStream can store into the stream now: a leader with a
    /// majority of the copies current. A replicated stream that lost its
    /// quorum still answers `STREAM.INFO` (nats-server 2.15: "1 of 3
    /// replicas current, leader n1" until the leader steps down, then "no
    /// leader"), but stores nothing: every publish times out. A stream of
    /// one copy that answered stores.
    pub fn stores(&self) -> bool {
        self.replicas <= 1 || (self.leader.is_some() && self.current > self.replicas / 2)
    }
}

impl std::fmt::Display for Placement {
    /// E.g. `3 of 3 replicas current, leader n2`; `1 replica, on n1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.leader, self.replicas) {
            (Some(leader), 1) => write!(f, "1 replica, on {leader}"),
            (Some(leader), replicas) => write!(
                f,
                "{} of {replicas} replicas current, leader {leader}",
                self.current
            ),
            (None, 1) => f.write_str("1 replica, no leader"),
            (None, replicas) => write!(
                f,
                "{} of {replicas} replicas current, no leader",
                self.current
            ),
        }
    }
}

/// Reads the stream; `None` when it does not exist.
pub(super) async fn lookup(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<Option<stream::Config>, EnsureStreamError> {
    Ok(lookup_info(jetstream, target)
        .await?
        .map(|info| info.config))
}

/// The target stream's info (configuration and state), `None` if it does
/// not exist.
async fn lookup_info(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<Option<stream::Info>, EnsureStreamError> {
    match jetstream.get_stream(&target.stream).await {
        Ok(stream) => Ok(Some(stream.cached_info().clone())),
        Err(err) => match err.kind() {
            GetStreamErrorKind::JetStream(js)
                if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            GetStreamErrorKind::JetStream(js) => Err(EnsureStreamError::Rejected {
                stream: target.stream.clone(),
                detail: js.to_string(),
            }),
            _ => Err(EnsureStreamError::Unreachable {
                stream: target.stream.clone(),
                detail: err.to_string(),
            }),
        },
    }
}

pub(super) fn create_error(
    target: &Target,
    err: &jetstream::context::CreateStreamError,
) -> EnsureStreamError {
    match err.kind() {
        CreateStreamErrorKind::JetStream(js) => EnsureStreamError::Rejected {
            stream: target.stream.clone(),
            detail: js.to_string(),
        },
        _ => EnsureStreamError::Unreachable {
            stream: target.stream.clone(),
            detail: err.to_string(),
        },
    }
}

pub(super) fn not_found(target: &Target) -> EnsureStreamError {
    EnsureStreamError::NotFound {
        stream: target.stream.clone(),
        subjects: target.subjects(),
    }
}

pub(super) fn uncovered(target: &Target, existing: &stream::Config) -> EnsureStreamError {
    EnsureStreamError::Conflict(format!(
        "JetStream stream {} takes subjects {:?}, which do not include {}: deliveries could not be stored; add the subjects to the stream or set spec.nats.stream to another name",
        target.stream,
        existing.subjects,
        target.subjects()
    ))
}

/// Makes the stream match the spec, as the operator does on every pass:
/// created when absent, updated when its limits differ, left alone (but
/// checked) with `createStream: false`. A stream is never deleted here.
/// The quarantine stream (`spec.quarantine`) is created or updated after
/// it: the operator's credentials may create streams where a receiver's may
/// not.
pub async fn manage_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<ManagedStream, EnsureStreamError> {
    let managed = manage_delivery_stream(jetstream, target).await?;
    if let Some(quarantine) = &target.quarantine {
        manage_quarantine_stream(jetstream, quarantine).await?;
    }
    Ok(managed)
}

/// What [`manage_stream`] did, and where the delivery stream is then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedStream {
    /// Created, updated, in sync, or left to whoever manages it.
    pub outcome: StreamOutcome,
    /// The stream's placement as JetStream's answer described it (a stream
    /// just created may have no leader yet).
    pub placement: Placement,
}

/// The placement after a create or update: the answer's, unless it names
/// no leader (a server outside a cluster leaves its answer's `cluster`
/// section out; a new replicated stream may still be electing), then the
/// stream's info read once more. Otherwise the first audit would find the
/// stream "moved" and start a pass for nothing.
async fn placement_after_change(
    jetstream: &jetstream::Context,
    target: &Target,
    answer: &stream::Info,
) -> Placement {
    let placement = Placement::of(answer);
    if placement.leader.is_some() {
        return placement;
    }
    match lookup_info(jetstream, target).await {
        Ok(Some(info)) => Placement::of(&info),
        _ => placement,
    }
}

/// Creates the quarantine stream, or updates its limits to the spec's.
async fn manage_quarantine_stream(
    jetstream: &jetstream::Context,
    quarantine: &crate::quarantine::QuarantineTarget,
) -> Result<(), EnsureStreamError> {
    let wanted = quarantine.stream_config();
    let failed = |detail: String| EnsureStreamError::Rejected {
        stream: quarantine.stream.clone(),
        detail,
    };
    match jetstream.get_stream(&quarantine.stream).await {
        Ok(stream) => {
            if !quarantine_in_sync(&stream.cached_info().config, &wanted) {
                jetstream
                    .update_stream(wanted)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            Ok(())
        }
        Err(err) if matches!(err.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
            jetstream
                .create_stream(wanted)
                .await
                .map(|_| ())
                .map_err(|e| failed(e.to_string()))
        }
        Err(err) => Err(EnsureStreamError::Unreachable {
            stream: quarantine.stream.clone(),
            detail: err.to_string(),
        }),
    }
}

fn quarantine_in_sync(existing: &stream::Config, wanted: &stream::Config) -> bool {
    existing.subjects == wanted.subjects
        && existing.max_age == wanted.max_age
        && existing.max_bytes == wanted.max_bytes
}

async fn manage_delivery_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<ManagedStream, EnsureStreamError> {
    let managed = |outcome, info: &stream::Info| ManagedStream {
        outcome,
        placement: Placement::of(info),
    };
    let Some(existing) = lookup_info(jetstream, target).await? else {
        if !target.settings.create {
            return Err(not_found(target));
        }
        return match jetstream.create_stream(target.stream_config()).await {
            Ok(stream) => Ok(ManagedStream {
                outcome: StreamOutcome::Created,
                placement: placement_after_change(jetstream, target, stream.cached_info()).await,
            }),
            Err(err) => Err(create_error(target, &err)),
        };
    };
    if !target.settings.create {
        return if target.covered_by(&existing.config) {
            Ok(managed(StreamOutcome::Unmanaged, &existing))
        } else {
            Err(uncovered(target, &existing.config))
        };
    }
    match target.plan_update(&existing.config) {
        StreamPlan::InSync => Ok(managed(StreamOutcome::InSync, &existing)),
        StreamPlan::Conflict(message) => Err(EnsureStreamError::Conflict(message)),
        StreamPlan::Update(config) => match jetstream.update_stream(*config).await {
            Ok(info) => Ok(ManagedStream {
                outcome: StreamOutcome::Updated,
                placement: placement_after_change(jetstream, target, &info).await,
            }),
            Err(err) => Err(create_error(target, &err)),
        },
    }
}

/// Whether the stream is what [`manage_stream`] would leave it, found without
/// changing anything: the operator's periodic drift check of a ready
/// endpoint. `false` when the stream is missing, has other limits, or (with
/// `createStream: false`) does not take the endpoint's subjects.
pub async fn stream_in_sync(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<bool, EnsureStreamError> {
    Ok(check_stream(jetstream, target).await?.in_sync)
}

/// A stream's use against its limits: what a full stream (503
/// `stream_full`) is near. JetStream's "no limit" is -1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamUsage {
    /// Bytes stored.
    pub bytes: u64,
    /// Messages stored.
    pub messages: u64,
    /// `max_bytes`, -1 for none.
    pub max_bytes: i64,
    /// `max_msgs`, -1 for none.
    pub max_messages: i64,
}

impl StreamUsage {
    /// The usage in a stream's info.
    pub fn of(info: &stream::Info) -> Self {
        Self {
            bytes: info.state.bytes,
            messages: info.state.messages,
            max_bytes: info.config.max_bytes,
            max_messages: info.config.max_messages,
        }
    }
}

/// What one look at the target's stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCheck {
    /// Whether the stream (and its quarantine stream) are as the target
    /// wants them ([`stream_in_sync`]).
    pub in_sync: bool,
    /// The delivery stream's use, `None` if it does not exist.
    pub usage: Option<StreamUsage>,
    /// Where its replicas are, when it is in sync.
    pub placement: Option<Placement>,
}

/// [`stream_in_sync`], with the stream's use against its limits and its
/// placement, from the same one request for the delivery stream.
pub async fn check_stream(
    jetstream: &jetstream::Context,
    target: &Target,
) -> Result<StreamCheck, EnsureStreamError> {
    let Some(info) = lookup_info(jetstream, target).await? else {
        return Ok(StreamCheck {
            in_sync: false,
            usage: None,
            placement: None,
        });
    };
    let usage = Some(StreamUsage::of(&info));
    let existing = &info.config;
    let delivery_in_sync = if target.settings.create {
        matches!(target.plan_update(existing), StreamPlan::InSync)
    } else {
        target.covered_by(existing)
    };
    let quarantine_in_sync = match &target.quarantine {
        None => true,
        Some(quarantine) => match jetstream.get_stream(&quarantine.stream).await {
            Ok(stream) => {
                quarantine_in_sync(&stream.cached_info().config, &quarantine.stream_config())
            }
            Err(_) => false,
        },
    };
    let in_sync = delivery_in_sync && quarantine_in_sync;
    Ok(StreamCheck {
        in_sync,
        usage,
        placement: in_sync.then(|| Placement::of(&info)),
    })
}
