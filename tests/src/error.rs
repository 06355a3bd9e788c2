use std::path::PathBuf;

/// What went wrong while setting up a real service for a test. Every variant
/// says what failed and, where there is one, where its log is.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// A pinned tool binary has not been built yet.
    #[error("{tool} not found at {}: build it with `make tools` (tests/tools/install.sh {tool})", path.display())]
    ToolMissing { tool: String, path: PathBuf },

    /// A system program (a Debian package) is not installed.
    #[error(
        "{tool} is not installed: install the Debian package {package} (`tests/tools/deps.sh` does)"
    )]
    SystemToolMissing { tool: String, package: String },

    /// A process could not be spawned at all.
    #[error("cannot start {what} ({}): {source}", binary.display())]
    Spawn {
        what: String,
        binary: PathBuf,
        source: std::io::Error,
    },

    /// A process exited before it became ready.
    #[error("{what} exited while starting ({status}); log: {}\n{tail}", log.display())]
    ExitedEarly {
        what: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    /// A process ran but did not become ready in time; it has been stopped.
    #[error("{what} did not become ready within {timeout_ms} ms; it was stopped; log: {}\n{tail}", log.display())]
    NotReady {
        what: String,
        timeout_ms: u128,
        log: PathBuf,
        tail: String,
    },

    /// The requested port is taken by something else.
    #[error("port {port} for {what} is already in use on 127.0.0.1; log: {}", log.display())]
    PortInUse {
        what: String,
        port: u16,
        log: PathBuf,
    },

    /// The local control plane is not running or not reachable.
    #[error("the local Kubernetes control plane is not reachable ({detail}); start it with `make cluster-up` (kubeconfig: {})", kubeconfig.display())]
    ClusterUnavailable { kubeconfig: PathBuf, detail: String },

    /// A Kubernetes API call made by the support code failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// Test fixtures (keys, credentials) could not be made.
    #[error("{what}: {detail}")]
    Setup { what: String, detail: String },

    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl SupportError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
