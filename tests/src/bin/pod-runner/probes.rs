//! The readiness and liveness probes the kubelet runs (httpGet and
//! tcpSocket against the pod IP): one attempt, passed or not. The
//! thresholds and periods around it are the lifecycle's.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One probe against the pod IP: Ok(true) passed.
pub(super) async fn probe(probe: &Probe, container: &Container, ip: Ipv4Addr) -> bool {
    let timeout =
        Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let attempt = async {
        if let Some(get) = &probe.http_get {
            let port = port_of(&get.port)?;
            let host = get.host.clone().unwrap_or_else(|| ip.to_string());
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .ok()?;
            let path = get.path.clone().unwrap_or_else(|| "/".to_owned());
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/hookwarden\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = Vec::new();
            let _ = stream.take(4096).read_to_end(&mut response).await;
            let text = String::from_utf8_lossy(&response);
            let code: u16 = text.split(' ').nth(1)?.parse().ok()?;
            Some((200..400).contains(&code))
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = port_of(&tcp.port)?;
            Some(tokio::net::TcpStream::connect((ip, port)).await.is_ok())
        } else {
            // exec and grpc probes are not supported: never passes.
            Some(false)
        }
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
