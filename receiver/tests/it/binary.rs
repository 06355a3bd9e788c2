//! The real `hookwarden-receiver serve` process, with its log captured as
//! it is written (so a test can wait for a reload) and a small HTTP client.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookwarden_tests::free_port;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// How long the process may take to start, reload or stop.
pub const WAIT: Duration = Duration::from_secs(20);

/// How the process serves its public port (`--tls-mode`): both plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainMode {
    /// `insecure-http`: every request is taken as it comes.
    InsecureHttp,
    /// `behind-ingress`: as the operator starts it behind the Ingress, only
    /// requests a trusted proxy reports as HTTPS are accepted.
    BehindIngress,
}

impl PlainMode {
    fn flag(self) -> &'static str {
        match self {
            Self::InsecureHttp => "insecure-http",
            Self::BehindIngress => "behind-ingress",
        }
    }
}

/// A running receiver over plain HTTP, killed on drop.
pub struct ReceiverProcess {
    child: tokio::process::Child,
    pub listen: String,
    pub ops: String,
    log: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    endpoint: PathBuf,
    _dir: tempfile::TempDir,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// An answer of the receiver.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The whole answer `response`.
    pub async fn of(response: hyper::Response<hyper::body::Incoming>) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Self {
            status,
            headers,
            body,
        }
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// `method http://listen/path` with `headers` and `body` (a `Host` header
/// among them routes it in a pool).
pub fn request(
    listen: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> hyper::Request<Full<Bytes>> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{listen}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request")
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().expect("log");
            log.push_str(&line);
            log.push('\n');
        }
    })
}

impl ReceiverProcess {
    /// Starts `serve` for `manifest`, with `secrets` as
    /// `(secret name, key, content)` files and `env` added to the process
    /// environment (e.g. `RUST_LOG`).
    pub fn spawn(
        nats_url: &str,
        manifest: &str,
        secrets: &[(&str, &str, &[u8])],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_in(PlainMode::InsecureHttp, nats_url, manifest, secrets, env)
    }

    /// As [`ReceiverProcess::spawn`], in `mode`.
    pub fn spawn_in(
        mode: PlainMode,
        nats_url: &str,
        manifest: &str,
        secrets: &[(&str, &str, &[u8])],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = dir.path().join("endpoint.yaml");
        std::fs::write(&endpoint, manifest).expect("manifest");
        for (name, key, content) in secrets {
            let path = dir.path().join("secrets").join(name).join(key);
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(path, content).expect("secret");
        }
        let secrets = dir.path().join("secrets");
        let source = [
            ("HOOKWARDEN_ENDPOINT", endpoint.as_os_str()),
            ("HOOKWARDEN_SECRETS_DIR", secrets.as_os_str()),
        ];
        Self::launch(mode, nats_url, &source, endpoint.clone(), dir, env, None)
    }

    /// As [`ReceiverProcess::spawn`], the binary resolving host names with
    /// `hosts` as its `/etc/hosts`: it runs in its own mount namespace
    /// (`unshare --mount`, root only) where that file is bind-mounted over
    /// `/etc/hosts`, so a provider's host name can reach a loopback server
    /// while the binary is the one shipped, unchanged.
    pub fn spawn_resolving(
        hosts: &Path,
        nats_url: &str,
        manifest: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = dir.path().join("endpoint.yaml");
        std::fs::write(&endpoint, manifest).expect("manifest");
        let secrets = dir.path().join("secrets");
        let source = [
            ("HOOKWARDEN_ENDPOINT", endpoint.as_os_str()),
            ("HOOKWARDEN_SECRETS_DIR", secrets.as_os_str()),
        ];
        Self::launch(
            PlainMode::InsecureHttp,
            nats_url,
            &source,
            endpoint.clone(),
            dir,
            env,
            Some(hosts),
        )
    }

    /// `serve --pool-dir pool_dir` (a pool of every endpoint in it), with
    /// `env` added to the process environment.
    pub fn spawn_pool(
        mode: PlainMode,
        nats_url: &str,
        pool_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = [("HOOKWARDEN_POOL_DIR", pool_dir.as_os_str())];
        Self::launch(mode, nats_url, &source, pool_dir.to_owned(), dir, env, None)
    }

    fn launch(
        mode: PlainMode,
        nats_url: &str,
        source: &[(&str, &std::ffi::OsStr)],
        endpoint: PathBuf,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        hosts: Option<&Path>,
    ) -> Self {
        let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let ops = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let binary = env!("CARGO_BIN_EXE_hookwarden-receiver");
        let mut command = match hosts {
            None => tokio::process::Command::new(binary),
            Some(hosts) => {
                // unshare and sh exec: the pid stays the binary's.
                let mut command = tokio::process::Command::new("unshare");
                command
                    .args(["--mount", "sh", "-c"])
                    .arg(r#"mount --bind "$0" /etc/hosts && exec "$1" "$2""#)
                    .arg(hosts)
                    .arg(binary);
                command
            }
        };
        let mut child = command
            .arg("serve")
            .envs(source.iter().copied())
            .env("HOOKWARDEN_NATS_URL", nats_url)
            .env("HOOKWARDEN_LISTEN", &listen)
            .env("HOOKWARDEN_METRICS_LISTEN", &ops)
            .env("HOOKWARDEN_TLS_MODE", mode.flag())
            .env("HOOKWARDEN_RELOAD_INTERVAL_SECS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("receiver starts");
        let log = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout"), Arc::clone(&log)),
            capture(child.stderr.take().expect("stderr"), Arc::clone(&log)),
        ];
        Self {
            child,
            listen,
            ops,
            log,
            readers,
            endpoint,
            _dir: dir,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The process's resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// The public listener's address.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        self.listen.parse().expect("listen address")
    }

    /// The audit lines (target `hookwarden::audit`) logged so far.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "hookwarden::audit")
            .collect()
    }

    /// Waits for the audit line of the request answered with
    /// `x-request-id: request_id`, and returns it.
    pub async fn audit_line(&self, request_id: &str) -> serde_json::Value {
        let what = format!("the audit line of request {request_id}");
        hookwarden_tests::eventually(&what, WAIT, || async {
            self.audit_lines()
                .into_iter()
                .find(|line| line["request_id"] == request_id)
        })
        .await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        let url = format!("http://{}/readyz", self.ops);
        hookwarden_tests::eventually("/readyz to answer 200", WAIT, || async {
            let response = self.http.get(url.parse().expect("uri")).await.ok()?;
            (response.status() == StatusCode::OK).then_some(())
        })
        .await;
    }

    /// Replaces the manifest at once (rename), like a Secret update.
    pub fn replace_manifest(&self, manifest: &str) {
        let tmp = self.endpoint.with_extension("tmp");
        std::fs::write(&tmp, manifest).expect("write");
        std::fs::rename(&tmp, &self.endpoint).expect("rename");
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub async fn logged(&self, needle: &str, count: usize) {
        let what = format!("{count} log line(s) with {needle:?}");
        hookwarden_tests::eventually(&what, WAIT, || async {
            (self.log().matches(needle).count() >= count).then_some(())
        })
        .await;
    }

    /// Sends `method /` with `headers` and `body`.
    pub async fn send(&self, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send_to(method, "/", headers, body).await
    }

    /// Sends `method path` with `headers` and `body`.
    pub async fn send_to(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.send_request(request(&self.listen, method, path, headers, body))
            .await
    }

    /// Sends `request` (e.g. from [`request`]).
    pub async fn send_request(&self, request: hyper::Request<Full<Bytes>>) -> Reply {
        let response = tokio::time::timeout(WAIT, self.http.request(request))
            .await
            .expect("the receiver answers in time")
            .expect("HTTP response");
        Reply::of(response).await
    }

    /// The operations port's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.ops);
        let response = self
            .http
            .get(url.parse().expect("uri"))
            .await
            .expect("metrics");
        let body = response.into_body().collect().await.expect("body");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    /// Stops the process with SIGTERM; its exit status and whole log.
    pub async fn stop(self) -> (ExitStatus, String) {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .expect("pid");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
        self.exited().await
    }

    /// Waits for the process to exit on its own; its exit status and log.
    pub async fn exited(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the receiver exits in time")
            .expect("exit status");
        // The readers finish once the pipes close.
        for reader in std::mem::take(&mut self.readers) {
            tokio::time::timeout(WAIT, reader)
                .await
                .expect("the log pipes close")
                .expect("log reader");
        }
        (status, self.log())
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> &Path {
        &self.endpoint
    }

    /// Replaces the secret `name`/`key` at once (write, then rename), as the
    /// kubelet swaps a mounted Secret.
    pub fn write_secret(&self, name: &str, key: &str, content: &[u8]) {
        let dir = self._dir.path().join("secrets").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let tmp = dir.join(format!(".{key}.tmp"));
        std::fs::write(&tmp, content).expect("write");
        std::fs::rename(&tmp, dir.join(key)).expect("rename");
    }

    /// `GET` on the operations port: the status and body text.
    pub async fn ops_get(&self, path: &str) -> (StatusCode, String) {
        let url = format!("http://{}{path}", self.ops);
        let response = tokio::time::timeout(WAIT, self.http.get(url.parse().expect("uri")))
            .await
            .expect("the operations port answers in time")
            .expect("operations port");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    }
}
