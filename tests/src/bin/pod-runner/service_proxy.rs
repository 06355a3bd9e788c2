//! The Services of the cluster, as kube-proxy would serve them: their
//! ClusterIPs are loopback addresses here (`--service-cluster-ip-range
//! 127.2.0.0/16`), so a listener on each ClusterIP and port forwards every
//! connection (TCP, bytes untouched) to one ready pod of the Service's
//! selector, round robin; the EndpointSlices that kube-proxy would read
//! cannot hold loopback pod IPs (the API refuses them), so the ready pods
//! come from the runner itself, which knows each pod's readiness first hand.
//! A Service without a selector is served when its
//! [`BACKENDS_ANNOTATION`] names backends (a test's own
//! server on the host, where a user would write an EndpointSlice).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::runtime::watcher;

use super::{Context, log};

pub(super) async fn run(context: Arc<Context>) {
    let services: Api<Service> = Api::all(context.client.clone());
    let mut events = watcher(services, watcher::Config::default()).boxed();
    // uid → (resourceVersion-independent key of what is served, listeners)
    let mut served: HashMap<String, (String, Vec<tokio::task::JoinHandle<()>>)> = HashMap::new();
    while let Some(event) = events.next().await {
        let (service, present) = match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => (s, true),
            Ok(watcher::Event::Delete(s)) => (s, false),
            Ok(_) => continue,
            Err(error) => {
                log(format!("service watch: {error}"));
                continue;
            }
        };
        let Some(uid) = service.metadata.uid.clone() else {
            continue;
        };
        let key = if present { serving_key(&service) } else { None };
        if served.get(&uid).map(|(k, _)| Some(k)) == Some(key.as_ref()) {
            continue;
        }
        if let Some((_, listeners)) = served.remove(&uid) {
            listeners.iter().for_each(tokio::task::JoinHandle::abort);
        }
        if let Some(key) = key {
            let listeners = listen(&context, &service).await;
            served.insert(uid, (key, listeners));
        }
    }
}

/// The annotation naming the backends (`ip:port`, comma-separated) of
/// a Service without a selector: the stand-in for the EndpointSlice a
/// user writes for a backend outside the pod network, which the API
/// refuses when its addresses are loopback ones (a test's server).
pub(super) const BACKENDS_ANNOTATION: &str = "hookwarden.dev/pod-runner-backends";

/// The backends a selector-less Service's annotation names.
fn annotated_backends(service: &Service) -> Vec<std::net::SocketAddrV4> {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BACKENDS_ANNOTATION))
        .map(|list| {
            list.split(',')
                .filter_map(|b| b.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What a Service asks to be served: ClusterIP, ports, and its
/// selector or annotated backends.
fn serving_key(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    let ip: Ipv4Addr = spec.cluster_ip.as_ref()?.parse().ok()?;
    let selected = spec.selector.as_ref().is_some_and(|s| !s.is_empty());
    let backends = annotated_backends(service);
    if !ip.is_loopback() || (!selected && backends.is_empty()) {
        return None;
    }
    serde_json::to_string(&(ip, &spec.ports, &spec.selector, backends)).ok()
}

async fn listen(context: &Arc<Context>, service: &Service) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let Some(spec) = service.spec.clone() else {
        return handles;
    };
    let Some(ip) = spec
        .cluster_ip
        .as_ref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return handles;
    };
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let backends = Arc::new(annotated_backends(service));
    for port in spec.ports.iter().flatten() {
        if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            continue;
        }
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let listener = match tokio::net::TcpListener::bind((ip, number)).await {
            Ok(listener) => listener,
            Err(error) => {
                log(format!(
                    "service {namespace}/{:?}: cannot listen on {ip}:{number}: {error}",
                    service.metadata.name
                ));
                continue;
            }
        };
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        let (context, namespace, selector, backends) = (
            context.clone(),
            namespace.clone(),
            selector.clone(),
            backends.clone(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        handles.push(tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let backend = if selector.is_empty() {
                    // Annotated backends: the target port is theirs.
                    backends
                        .get(next.fetch_add(1, Ordering::Relaxed) % backends.len().max(1))
                        .map(|b| (*b.ip(), b.port()))
                } else {
                    pick(&context, &namespace, &selector, &target, &next)
                };
                tokio::spawn(async move {
                    let Some(backend) = backend else { return };
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        }));
    }
    handles
}

/// One ready pod of the selector (round robin) and its target port.
fn pick(
    context: &Context,
    namespace: &str,
    selector: &BTreeMap<String, String>,
    target: &IntOrString,
    next: &AtomicUsize,
) -> Option<(Ipv4Addr, u16)> {
    let endpoints = context.endpoints.lock().ok()?;
    let mut ready: Vec<(Ipv4Addr, u16)> = endpoints
        .values()
        .filter(|e| {
            e.namespace == namespace && selector.iter().all(|(k, v)| e.labels.get(k) == Some(v))
        })
        .filter_map(|e| {
            let port = match target {
                IntOrString::Int(n) => u16::try_from(*n).ok()?,
                IntOrString::String(name) => *e.ports.get(name)?,
            };
            Some((e.ip, port))
        })
        .collect();
    if ready.is_empty() {
        return None;
    }
    ready.sort();
    Some(ready[next.fetch_add(1, Ordering::Relaxed) % ready.len()])
}
