//! A private `nats-server -js` per test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::tools::require_tool;
use crate::{ManagedProcess, SupportError};

/// Options for [`NatsServer`]; see [`NatsServer::builder`].
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    binary: Option<PathBuf>,
    port: Option<u16>,
    store_dir: Option<PathBuf>,
    ready_timeout: Duration,
    max_payload: Option<u32>,
    creds: bool,
    auth: Option<UrlAuth>,
}

/// Credentials a NATS client can put in its server URL, and that a server
/// started with [`NatsServerBuilder::require_user_password`] or
/// [`NatsServerBuilder::require_token`] demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAuth {
    /// `nats://user:password@host`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `nats://token@host`.
    Token(String),
}

impl UrlAuth {
    /// The `authorization` block of the server's configuration. The values
    /// are written as JSON strings, which the NATS configuration format
    /// reads as quoted strings.
    fn server_config(&self) -> String {
        let quote = |text: &str| serde_json::Value::from(text).to_string();
        match self {
            Self::UserPassword { user, password } => format!(
                "authorization {{\n  user: {}\n  password: {}\n}}\n",
                quote(user),
                quote(password)
            ),
            Self::Token(token) => format!("authorization {{\n  token: {}\n}}\n", quote(token)),
        }
    }

    /// The userinfo part of a URL (`user:password@`, `token@`), every byte
    /// outside RFC 3986's unreserved set percent-encoded, as `url::Url`,
    /// Go's `net/url` and the `nats` CLI decode it.
    pub fn userinfo(&self) -> String {
        match self {
            Self::UserPassword { user, password } => {
                format!("{}:{}@", percent_encode(user), percent_encode(password))
            }
            Self::Token(token) => format!("{}@", percent_encode(token)),
        }
    }
}

/// Percent-encodes every byte but `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl NatsServerBuilder {
    /// Runs the server in operator (JWT) mode: clients must present the
    /// user credentials of [`NatsServer::creds`] (a `.creds` file's text);
    /// [`NatsServer::connect`] does. The operator, account and user keys are
    /// minted afresh for each server (see [`crate::nats_jwt`]).
    pub fn require_creds(mut self) -> Self {
        self.creds = true;
        self
    }

    /// Requires every client to log in as `user` with `password` (the
    /// server's `authorization` block); [`NatsServer::connect`] does, and
    /// [`NatsServer::url_with_auth`] carries them in the URL.
    pub fn require_user_password(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(UrlAuth::UserPassword {
            user: user.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Requires every client to present `token`; see
    /// [`NatsServerBuilder::require_user_password`].
    pub fn require_token(mut self, token: &str) -> Self {
        self.auth = Some(UrlAuth::Token(token.to_owned()));
        self
    }

    /// Runs this binary instead of the pinned `nats-server` build.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Listens on this port instead of one the server picks itself.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Keeps JetStream's files here instead of a fresh temporary directory.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// How long the server may take to accept JetStream requests (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The server's `max_payload` in bytes (default: the server's 1 MiB).
    pub fn max_payload(mut self, bytes: u32) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// Starts the server and waits until JetStream answers.
    pub async fn start(self) -> Result<NatsServer, SupportError> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => require_tool("nats-server")?,
        };
        let work = TempDir::with_prefix("hookwarden-nats-")
            .map_err(SupportError::io("cannot create a temp dir"))?;
        let store = match &self.store_dir {
            Some(dir) => dir.clone(),
            None => work.path().join("jetstream"),
        };
        let auth = if self.creds {
            Some(
                crate::nats_jwt::Setup::mint().map_err(|e| SupportError::Setup {
                    what: "minting NATS JWT credentials".to_owned(),
                    detail: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let mut server = NatsServer {
            auth,
            process: None,
            url: String::new(),
            port: self.port,
            store,
            binary,
            options: self,
            work,
        };
        server.launch().await?;
        Ok(server)
    }
}

/// A running `nats-server` with JetStream enabled, stopped on drop.
#[derive(Debug)]
pub struct NatsServer {
    auth: Option<crate::nats_jwt::Setup>,
    process: Option<ManagedProcess>,
    url: String,
    port: Option<u16>,
    store: PathBuf,
    binary: PathBuf,
    options: NatsServerBuilder,
    // Last: removed after the process is stopped.
    work: TempDir,
}

impl NatsServer {
    /// Options for a server; `NatsServer::builder().start()` is [`NatsServer::start`].
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder {
            binary: None,
            port: None,
            store_dir: None,
            ready_timeout: Duration::from_secs(30),
            max_payload: None,
            creds: false,
            auth: None,
        }
    }

    /// Starts a server on a port of its choosing with a fresh store.
    pub async fn start() -> Result<Self, SupportError> {
        Self::builder().start().await
    }

    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ManagedProcess::pid)
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.work.path().join("nats-server.log")
    }

    /// The user credentials (`.creds` file text) of a server started with
    /// [`NatsServerBuilder::require_creds`].
    pub fn creds(&self) -> Option<&str> {
        self.auth.as_ref().map(|auth| auth.user_creds.as_str())
    }

    /// What a server started with [`NatsServerBuilder::require_user_password`]
    /// or [`NatsServerBuilder::require_token`] demands.
    pub fn url_auth(&self) -> Option<&UrlAuth> {
        self.options.auth.as_ref()
    }

    /// The client URL with the credentials the server demands in its
    /// userinfo (percent-encoded), e.g. `nats://user:p%40ss@127.0.0.1:41234`;
    /// without any, [`NatsServer::url`].
    pub fn url_with_auth(&self) -> String {
        match (&self.options.auth, self.url.split_once("://")) {
            (Some(auth), Some((scheme, rest))) => format!("{scheme}://{}{rest}", auth.userinfo()),
            _ => self.url.clone(),
        }
    }

    /// A connected client (with the credentials, if the server needs them).
    pub async fn connect(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        connect(&self.url, self.creds(), self.options.auth.as_ref()).await
    }

    /// Crashes the server (SIGKILL), as a resilience test needs.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the server gracefully (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Stops the server if it runs, and starts it again on the same port
    /// with the same store, so clients reconnect and stored data is kept.
    pub async fn restart(&mut self) -> Result<(), SupportError> {
        self.stop();
        self.launch().await
    }

    async fn launch(&mut self) -> Result<(), SupportError> {
        let ports_dir = self.work.path().join("ports");
        // A stale ports file of an earlier run must not be mistaken for this one's.
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)
            .map_err(SupportError::io("cannot create the ports dir"))?;
        let port = self.port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let mut args = vec![
            "--addr".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port,
            "--jetstream".to_owned(),
            "--store_dir".to_owned(),
            self.store.display().to_string(),
            "--ports_file_dir".to_owned(),
            ports_dir.display().to_string(),
            "--server_name".to_owned(),
            "hookwarden-test".to_owned(),
        ];
        // Only settable in a config file.
        let mut conf = String::new();
        if let Some(bytes) = self.options.max_payload {
            conf.push_str(&format!("max_payload: {bytes}\n"));
        }
        if let Some(auth) = &self.auth {
            let operator = self.work.path().join("operator.jwt");
            std::fs::write(&operator, &auth.operator_jwt)
                .map_err(SupportError::io("cannot write operator.jwt"))?;
            conf.push_str(&auth.server_config(&operator));
        }
        if let Some(auth) = &self.options.auth {
            conf.push_str(&auth.server_config());
        }
        if !conf.is_empty() {
            let path = self.work.path().join("nats-server.conf");
            std::fs::write(&path, conf)
                .map_err(SupportError::io("cannot write nats-server.conf"))?;
            args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        let mut process = ManagedProcess::spawn("nats-server", &self.binary, &args, &self.log())?;
        let creds = self.creds().map(str::to_owned);
        let url_auth = self.options.auth.clone();
        let result = process
            .wait_until(self.options.ready_timeout, || {
                let found = read_ports_file(&ports_dir);
                let creds = creds.clone();
                let url_auth = url_auth.clone();
                async move {
                    let candidate = found?;
                    jetstream_answers(&candidate, creds.as_deref(), url_auth.as_ref())
                        .await
                        .then_some(candidate)
                }
            })
            .await;
        let url = match result {
            Ok(url) => url,
            Err(err) => {
                // Keep the work dir, and so the log the error points to.
                self.work.disable_cleanup(true);
                return Err(match err {
                    SupportError::ExitedEarly { tail, log, .. }
                        if tail.contains("address already in use") =>
                    {
                        SupportError::PortInUse {
                            what: "nats-server".to_owned(),
                            port: self.port.unwrap_or_default(),
                            log,
                        }
                    }
                    other => other,
                });
            }
        };
        self.port = port_of(&url);
        self.url = url;
        self.process = Some(process);
        Ok(())
    }
}

/// The client URL from the ports file nats-server writes once it listens.
fn read_ports_file(dir: &Path) -> Option<String> {
    Ports::read(dir).map(|ports| ports.client)
}

/// What nats-server's ports file (`--ports_file_dir`) says it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ports {
    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    pub client: String,
    /// The route (cluster) URL, when the server has a `cluster` block.
    pub cluster: Option<String>,
    /// The monitoring URL, when monitoring is on.
    pub monitoring: Option<String>,
}

impl Ports {
    /// Reads the ports file in `dir`; `None` until the server has written it.
    pub(crate) fn read(dir: &Path) -> Option<Self> {
        let entry = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
        let text = std::fs::read_to_string(entry.path()).ok()?;
        let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
        let first = |key: &str| ports[key][0].as_str().map(str::to_owned);
        Some(Self {
            client: first("nats")?,
            cluster: first("cluster"),
            monitoring: first("monitoring"),
        })
    }
}

/// The port of a URL such as `nats://127.0.0.1:41234`.
pub(crate) fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next().and_then(|p| p.parse().ok())
}

/// Connects with the credentials given explicitly: async-nats 0.51 does not
/// use a URL's userinfo, so tests never rely on it.
pub(crate) async fn connect(
    url: impl async_nats::ToServerAddrs,
    creds: Option<&str>,
    url_auth: Option<&UrlAuth>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let options = match creds {
        Some(creds) => async_nats::ConnectOptions::with_credentials(creds).map_err(|e| {
            async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::Authentication, e)
        })?,
        None => async_nats::ConnectOptions::new(),
    };
    let options = match url_auth {
        Some(UrlAuth::UserPassword { user, password }) => {
            options.user_and_password(user.clone(), password.clone())
        }
        Some(UrlAuth::Token(token)) => options.token(token.clone()),
        None => options,
    };
    options.connect(url).await
}

/// Whether JetStream answers an account-info request at `url` within 2 s:
/// the server is up and (in a cluster) has a meta leader.
pub(crate) async fn jetstream_answers(
    url: &str,
    creds: Option<&str>,
    url_auth: Option<&UrlAuth>,
) -> bool {
    let attempt = async {
        let client = connect(url, creds, url_auth).await.ok()?;
        async_nats::jetstream::new(client)
            .query_account()
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(_))
    )
}

/// Resumes a SIGSTOPped process when dropped, so a failing assertion
/// cannot leave nats-server frozen.
#[derive(Debug)]
pub struct Frozen(nix::unistd::Pid);

impl Frozen {
    /// SIGSTOPs the process `pid` (a nats-server) and waits until all its
    /// threads are stopped.
    pub(crate) fn freeze(pid: Option<u32>) -> Self {
        let pid = pid
            .and_then(|p| i32::try_from(p).ok())
            .map(nix::unistd::Pid::from_raw)
            .expect("nats-server pid");
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        // kill(2) returns once the signal is queued; threads running on
        // other CPUs stop a moment later and could still store a publish.
        // Wait until every thread of the server reports state T (stopped).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid.as_raw()) {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not stop within 5 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Self(pid)
    }
}

/// Whether every thread of `pid` is stopped, read from `/proc/<pid>/task/*/stat`.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            // The state follows the parenthesised command name, which may hold spaces.
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
            .is_some_and(|state| state == 'T' || state == 't')
    })
}

impl Frozen {
    /// Resumes the process now (SIGCONT); dropping the guard does the same.
    pub fn resume(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

impl NatsServer {
    /// Stops the server with SIGSTOP (alive, its socket open, answering
    /// nothing) until the returned guard is dropped.
    ///
    /// # Panics
    /// When the server is not running or does not stop within 5 s.
    pub fn freeze(&self) -> Frozen {
        Frozen::freeze(self.pid())
    }
}
