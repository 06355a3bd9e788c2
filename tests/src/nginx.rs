//! A private nginx reverse proxy per test, configured like ingress-nginx's
//! defaults, in front of a plain-HTTP upstream (the receiver in
//! `--tls-mode behind-ingress`).
//!
//! What it writes upstream is what ingress-nginx's template writes without
//! `use-forwarded-headers`: `X-Forwarded-For $remote_addr` (the client's own
//! `X-Forwarded-For` is replaced), `X-Real-IP $remote_addr`,
//! `X-Forwarded-Proto $scheme` (and `X-Forwarded-Host`, `-Port`,
//! `-Scheme`, `X-Scheme`, `X-Request-ID`, `X-Original-URI`), `Host`, HTTP/1.1
//! upstream. Every other request header, a client's RFC 7239 `Forwarded`
//! included, is passed through untouched, as ingress-nginx, Envoy and
//! Traefik do. [`XForwarded::Append`] is the `compute-full-forwarded-for`
//! variant (`$proxy_add_x_forwarded_for`: the client's list, then its
//! address). [`Forwarded`] makes it an RFC 7239 proxy instead, for
//! endpoints configured to believe `Forwarded`.
//!
//! nginx comes from the Debian package `nginx` (`tests/tools/deps.sh`
//! installs it). It runs as one process (`master_process off`) so stopping
//! it leaves no worker behind, with its prefix, configuration, logs, pid
//! file and temp directories in a private directory.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::{ManagedProcess, SupportError, free_port};

/// How nginx writes the `X-Forwarded-*` family (and `X-Real-IP`) upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XForwarded {
    /// `X-Forwarded-For: $remote_addr`: the client's own header is replaced
    /// (ingress-nginx's default).
    #[default]
    Replace,
    /// `X-Forwarded-For: $proxy_add_x_forwarded_for`: the client's list,
    /// then its address (ingress-nginx with `compute-full-forwarded-for`).
    Append,
    /// None of them: the client's go through untouched, as behind a proxy
    /// that speaks only RFC 7239 (see [`Forwarded`]).
    PassThrough,
}

/// Whether nginx writes RFC 7239 `Forwarded` upstream. ingress-nginx never
/// does; an RFC 7239 proxy in front of an endpoint with
/// `forwardedHeaders: Forwarded` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forwarded {
    /// The client's own `Forwarded` goes through untouched (ingress-nginx).
    #[default]
    PassThrough,
    /// `Forwarded: for=<client>;proto=<scheme>`, the client's replaced.
    Replace,
    /// The client's `Forwarded` elements, then `for=<client>;proto=<scheme>`.
    Append,
}

/// Options for [`Nginx`]; see [`Nginx::builder`].
#[derive(Debug, Clone)]
pub struct NginxBuilder {
    upstream: SocketAddr,
    x_forwarded: XForwarded,
    forwarded: Forwarded,
    binary: Option<PathBuf>,
    ready_timeout: Duration,
}

/// How often a start is retried when a port picked as free was taken in
/// between by another test.
const PORT_ATTEMPTS: usize = 3;

impl NginxBuilder {
    /// How `X-Forwarded-*` are written (default [`XForwarded::Replace`]).
    pub fn x_forwarded(mut self, mode: XForwarded) -> Self {
        self.x_forwarded = mode;
        self
    }

    /// Whether `Forwarded` is written (default [`Forwarded::PassThrough`]).
    pub fn forwarded(mut self, mode: Forwarded) -> Self {
        self.forwarded = mode;
        self
    }

    /// Runs this binary instead of the one on `PATH` (or `/usr/sbin/nginx`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// How long nginx may take to listen (default 15 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts nginx and waits until both ports accept connections.
    pub async fn start(self) -> Result<Nginx, SupportError> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => find_nginx()?,
        };
        let mut work = TempDir::with_prefix("hookwarden-nginx-")
            .map_err(SupportError::io("cannot create a temp dir"))?;
        let dir = work.path();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).map_err(|e| {
                SupportError::Setup {
                    what: "generating nginx's self-signed certificate".to_owned(),
                    detail: e.to_string(),
                }
            })?;
        let certificate_pem = cert.pem();
        let certificate_der = cert.der().to_vec();
        std::fs::write(dir.join("tls.crt"), &certificate_pem)
            .map_err(SupportError::io("cannot write nginx's tls.crt"))?;
        std::fs::write(dir.join("tls.key"), signing_key.serialize_pem())
            .map_err(SupportError::io("cannot write nginx's tls.key"))?;

        let error_log = dir.join("error.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            // nginx cannot listen on port 0 and report the port, so free
            // ports are picked here; another test may take one in between,
            // which the retry below absorbs.
            let (http, https) = (free_port()?, free_port()?);
            let config = self.config(dir, http, https);
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, config)
                .map_err(SupportError::io("cannot write nginx.conf"))?;
            let args = [
                "-p".to_owned(),
                format!("{}/", dir.display()),
                "-c".to_owned(),
                conf_path.display().to_string(),
                // Before the configuration is read nginx logs to its
                // compiled-in path, which a non-root user cannot open.
                "-e".to_owned(),
                error_log.display().to_string(),
            ];
            let mut process = ManagedProcess::spawn("nginx", &binary, &args, &error_log)?;
            let result = process
                .wait_until(self.ready_timeout, || async move {
                    let http = SocketAddr::from(([127, 0, 0, 1], http));
                    let https = SocketAddr::from(([127, 0, 0, 1], https));
                    let listening =
                        TcpStream::connect(http).is_ok() && TcpStream::connect(https).is_ok();
                    listening.then_some(())
                })
                .await;
            match result {
                Ok(()) => {
                    return Ok(Nginx {
                        process: Some(process),
                        http: SocketAddr::from(([127, 0, 0, 1], http)),
                        https: SocketAddr::from(([127, 0, 0, 1], https)),
                        certificate_pem,
                        certificate_der,
                        work,
                    });
                }
                Err(SupportError::ExitedEarly { tail, .. })
                    if tail.contains("Address already in use") && attempt < PORT_ATTEMPTS => {}
                Err(err) => {
                    // Keep the directory, and so the log the error names.
                    work.disable_cleanup(true);
                    return Err(match err {
                        SupportError::ExitedEarly { tail, log, .. }
                            if tail.contains("Address already in use") =>
                        {
                            SupportError::PortInUse {
                                what: "nginx".to_owned(),
                                port: http,
                                log,
                            }
                        }
                        other => other,
                    });
                }
            }
        }
    }

    fn config(&self, dir: &Path, http: u16, https: u16) -> String {
        let dir = dir.display();
        let upstream = self.upstream;
        let xff = |value: &str| {
            format!(
                "proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For {value};
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Scheme $scheme;
            proxy_set_header X-Scheme $scheme;"
            )
        };
        let x_forwarded = match self.x_forwarded {
            XForwarded::Replace => xff("$remote_addr"),
            XForwarded::Append => xff("$proxy_add_x_forwarded_for"),
            XForwarded::PassThrough => String::new(),
        };
        let forwarded = match self.forwarded {
            Forwarded::PassThrough => "",
            Forwarded::Replace => {
                "proxy_set_header Forwarded \"for=$hookwarden_forwarded_for;proto=$scheme\";"
            }
            Forwarded::Append => "proxy_set_header Forwarded $hookwarden_add_forwarded;",
        };
        // The proxy headers are those of ingress-nginx's nginx.tmpl for a
        // location without use-forwarded-headers (where $pass_access_scheme
        // is $scheme and $best_http_host is $http_host, else $host).
        format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    log_format hookwarden '$remote_addr "$request" $status upstream=$upstream_addr '
                          'xff="$http_x_forwarded_for" forwarded="$http_forwarded" '
                          'x_real_ip="$http_x_real_ip"';
    access_log {dir}/access.log hookwarden;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # RFC 7239 wants an IPv6 node quoted and bracketed.
    map $remote_addr $hookwarden_forwarded_for {{
        ~:      "\"[$remote_addr]\"";
        default $remote_addr;
    }}
    map $http_forwarded $hookwarden_add_forwarded {{
        ""      "for=$hookwarden_forwarded_for;proto=$scheme";
        default "$http_forwarded, for=$hookwarden_forwarded_for;proto=$scheme";
    }}
    # ingress-nginx's proxy-body-size default.
    client_max_body_size 1m;
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl http2;
        server_name _;
        ssl_certificate {dir}/tls.crt;
        ssl_certificate_key {dir}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $request_id;
            {x_forwarded}
            proxy_set_header X-Original-URI $request_uri;
            # httpoxy, as ingress-nginx does.
            proxy_set_header Proxy "";
            {forwarded}
            proxy_pass http://{upstream};
        }}
    }}
}}
"#
        )
    }
}

/// A running nginx in front of one upstream, stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    process: Option<ManagedProcess>,
    http: SocketAddr,
    https: SocketAddr,
    certificate_pem: String,
    certificate_der: Vec<u8>,
    // Last: removed after the process is stopped.
    work: TempDir,
}

impl Nginx {
    /// Options for a proxy to `upstream` (a plain-HTTP server).
    pub fn builder(upstream: SocketAddr) -> NginxBuilder {
        NginxBuilder {
            upstream,
            x_forwarded: XForwarded::default(),
            forwarded: Forwarded::default(),
            binary: None,
            ready_timeout: Duration::from_secs(15),
        }
    }

    /// Starts a proxy to `upstream` with the ingress-nginx defaults.
    pub async fn start(upstream: SocketAddr) -> Result<Self, SupportError> {
        Self::builder(upstream).start().await
    }

    /// The plain-HTTP listener (`X-Forwarded-Proto: http`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The HTTPS listener (`X-Forwarded-Proto: https`), TLS 1.2/1.3, ALPN
    /// h2 and http/1.1, with the certificate of [`Nginx::certificate_pem`].
    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    /// The self-signed certificate (for `localhost`) the HTTPS listener
    /// presents, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The same certificate, DER (what a rustls root store takes).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// nginx's error log (and its stdout and stderr).
    pub fn error_log(&self) -> PathBuf {
        self.work.path().join("error.log")
    }

    /// The access log: client address, request, status, upstream, and the
    /// forwarding headers the client sent.
    pub fn access_log(&self) -> PathBuf {
        self.work.path().join("access.log")
    }

    /// nginx's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ManagedProcess::pid)
    }
}

/// `nginx` on `PATH`, else Debian's `/usr/sbin/nginx` (not on a non-root
/// user's `PATH`).
fn find_nginx() -> Result<PathBuf, SupportError> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"));
    on_path
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|path| path.is_file())
        .ok_or_else(|| SupportError::SystemToolMissing {
            tool: "nginx".to_owned(),
            package: "nginx".to_owned(),
        })
}
