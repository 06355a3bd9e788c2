//! Test support: real services, started and stopped by the tests themselves.
//!
//! - [`NatsServer`]: a private `nats-server -js` on a port the server picks,
//!   with its own store directory, stopped on drop; [`NatsCluster`]: three
//!   of them routed into a JetStream cluster, for replicated streams and
//!   the faults they must survive (kill, restart, pause one node).
//! - [`EndpointFiles`]: a manifest and its secrets on disk, as a receiver
//!   reads them; [`InProcessReceiver`]: the receiver started on them in this
//!   process, the way its binary starts; [`SecretVolume`]: files updated
//!   the way the kubelet updates a mounted Secret (a pool's directory).
//! - [`ListServer`]: an HTTPS server on loopback standing in for the hosts
//!   where providers publish their source ranges and signing keys;
//!   [`TestCa`]: the CA of its TLS certificate and of test signing
//!   certificates.
//! - [`Nginx`]: a private nginx reverse proxy configured like ingress-nginx's
//!   defaults (TLS termination, `X-Forwarded-For`), stopped on drop.
//! - [`Jaeger`]: a private Jaeger v2 (OTLP/HTTP in, query API out, spans
//!   in memory), the trace backend of the tracing tests, stopped on drop.
//! - [`TestNamespace`]: a fresh, randomly named namespace in the shared local
//!   control plane (`make cluster-up`), deleted on drop, with a `kube::Client`;
//!   [`TestNamespace::create_on_process_node`] for one whose pods run as real
//!   processes ([`deployed`]).
//!
//! The binaries are the pinned builds from `tests/tools/install.sh`
//! (see [`tools`]). Nothing here depends on a fixed port being free or on
//! another test's state.
//!
//! Small helpers every test crate uses: [`eventually`] (poll with a
//! deadline), [`free_port`], [`condition`] (a status condition of an
//! endpoint or subscription).
#![forbid(unsafe_code)]

mod cluster;
mod conditions;
pub mod deployed;
mod error;
mod files;
mod jaeger;
mod list_server;
mod nats;
mod nats_cluster;
pub mod nats_jwt;
mod nginx;
mod ports;
mod process;
pub mod promql;
pub mod receiver;
mod secret_volume;
mod test_ca;
pub mod tools;
mod wait;

pub use cluster::{TestNamespace, kubeconfig_path, shared_client};
pub use conditions::{HasConditions, condition, condition_is_true};
pub use error::SupportError;
pub use files::EndpointFiles;
pub use jaeger::{Jaeger, TraceSpan};
pub use list_server::{ListAnswer, ListServer, save_list_for_operator};
pub use nats::{Frozen, NatsServer, NatsServerBuilder, UrlAuth, percent_encode};
pub use nats_cluster::{NatsCluster, Placement};
pub use nginx::{Forwarded, Nginx, NginxBuilder, XForwarded};
pub use ports::{RefusingPort, free_port};
pub use process::ManagedProcess;
pub use receiver::InProcessReceiver;
pub use secret_volume::{SecretVolume, write_atomic};
pub use test_ca::TestCa;
pub use wait::eventually;
