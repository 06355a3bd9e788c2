//! The private nginx writes upstream what ingress-nginx writes, so the
//! receiver's adversarial tests behind it test what a deployment has in
//! front: checked here against a bare upstream that returns the request
//! head it received, with curl as the client (from 127.0.0.5, forging every
//! forwarding header).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use hookwarden_tests::{Forwarded, Nginx, SupportError, XForwarded};

/// Where the client connects from.
const CLIENT: &str = "127.0.0.5";
/// What the client claims to be.
const FORGED: &str = "127.0.0.9";

/// A plain-HTTP upstream that answers `requests` requests, one per
/// connection, and hands over each request head (lines, names lower-cased).
fn upstream(requests: usize) -> (SocketAddr, mpsc::Receiver<Vec<(String, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let (heads, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                let text = line.trim_end();
                let entry = match text.split_once(':') {
                    Some((name, value)) => (name.to_ascii_lowercase(), value.trim().to_owned()),
                    None => (String::new(), text.to_owned()),
                };
                head.push(entry);
                line.clear();
            }
            let _ = heads.send(head);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (addr, received)
}

/// `curl` from [`CLIENT`] to nginx (`https` or `http`) with every forwarding
/// header forged; the head the upstream got.
fn forged_request(
    nginx: &Nginx,
    https: bool,
    received: &mpsc::Receiver<Vec<(String, String)>>,
) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, nginx.certificate_pem()).expect("write the certificate");
    let (port, scheme) = if https {
        (nginx.https_addr().port(), "https")
    } else {
        (nginx.http_addr().port(), "http")
    };
    let forwarded = format!("Forwarded: for={FORGED};proto=https");
    let xff = format!("X-Forwarded-For: {FORGED}");
    let real_ip = format!("X-Real-IP: {FORGED}");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--interface", CLIENT])
        .arg("--cacert")
        .arg(&ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", &forwarded, "-H", &xff, "-H", &real_ip])
        .args(["-H", "X-Forwarded-Proto: https", "-d", "{}"])
        .arg(format!("{scheme}://localhost:{port}/hook"))
        .output()
        .expect("curl runs (tests/tools/deps.sh installs it)");
    assert!(
        output.status.success(),
        "curl through nginx failed: {}\nnginx log: {}",
        String::from_utf8_lossy(&output.stderr),
        nginx.error_log().display()
    );
    assert_eq!(output.stdout, b"ok", "the upstream's answer comes back");
    received
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream got the request")
}

/// Every value of header `name` in `head`.
fn values<'a>(head: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    head.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn nginx_writes_what_ingress_nginx_writes_and_passes_forwarded_through() {
    let (addr, received) = upstream(2);
    let nginx = Nginx::start(addr).await.expect("nginx starts");
    for (https, scheme) in [(false, "http"), (true, "https")] {
        let head = forged_request(&nginx, https, &received);
        assert_eq!(head[0].1, "POST /hook HTTP/1.1", "HTTP/1.1 upstream");
        // The client's X-Forwarded-For, X-Real-IP and X-Forwarded-Proto are
        // replaced by what nginx saw.
        assert_eq!(values(&head, "x-forwarded-for"), [CLIENT], "{scheme}");
        assert_eq!(values(&head, "x-real-ip"), [CLIENT], "{scheme}");
        assert_eq!(values(&head, "x-forwarded-proto"), [scheme]);
        // The client's Forwarded goes through untouched, as with
        // ingress-nginx: the header the attack tests forge.
        let forwarded = format!("for={FORGED};proto=https");
        assert_eq!(values(&head, "forwarded"), [forwarded.as_str()]);
        let port = if https {
            nginx.https_addr().port()
        } else {
            nginx.http_addr().port()
        };
        assert_eq!(values(&head, "host"), [format!("localhost:{port}")]);
    }
}

#[tokio::test]
async fn nginx_appends_x_forwarded_for_or_forwarded_when_asked() {
    let (addr, received) = upstream(1);
    let nginx = Nginx::builder(addr)
        .x_forwarded(XForwarded::Append)
        .start()
        .await
        .expect("nginx starts");
    let head = forged_request(&nginx, true, &received);
    assert_eq!(
        values(&head, "x-forwarded-for"),
        [format!("{FORGED}, {CLIENT}")],
        "compute-full-forwarded-for: the client's list, then its address"
    );

    let (addr, received) = upstream(1);
    let nginx = Nginx::builder(addr)
        .x_forwarded(XForwarded::PassThrough)
        .forwarded(Forwarded::Append)
        .start()
        .await
        .expect("nginx starts");
    let head = forged_request(&nginx, false, &received);
    assert_eq!(
        values(&head, "forwarded"),
        [format!("for={FORGED};proto=https, for={CLIENT};proto=http")],
        "an RFC 7239 proxy appends its element"
    );
    // It writes none of the X-Forwarded-* family: the client's go through.
    assert_eq!(values(&head, "x-forwarded-for"), [FORGED]);
    assert_eq!(values(&head, "x-real-ip"), [FORGED]);
    assert_eq!(values(&head, "x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn an_nginx_that_cannot_start_names_its_log() {
    let err = Nginx::builder("127.0.0.1:9".parse().expect("address"))
        .binary("/bin/false")
        .start()
        .await
        .expect_err("/bin/false is no nginx");
    let message = err.to_string();
    match err {
        SupportError::ExitedEarly { log, .. } => {
            assert!(log.ends_with("error.log"), "{message}");
            assert!(message.contains(&log.display().to_string()), "{message}");
        }
        other => panic!("expected ExitedEarly, got {other}"),
    }
}
