//! Name resolution for the pods, as a cluster's DNS gives it: kwok's node
//! has no CoreDNS, and a pod's process resolves names through its
//! `/etc/hosts` (glibc's `files` source), so each pod gets one of its own,
//! bind-mounted over `/etc/hosts` in its mount namespace and kept current:
//!
//! - what the kubelet writes: `localhost`, the pod's IP and hostname, then
//!   the pod's `spec.hostAliases`;
//! - what CoreDNS would answer for the cluster's Services:
//!   `<service>.<namespace>.svc.cluster.local`, `<service>.<namespace>.svc`,
//!   `<service>.<namespace>` and, in the pod's own namespace, `<service>`
//!   (the names a pod's search path makes work) → the ClusterIP;
//! - what CoreDNS would forward upstream, for names outside the cluster
//!   (a provider's key host, say): ConfigMaps labelled
//!   `hookwarden.dev/pod-runner=upstream-hosts` hold `/etc/hosts` lines
//!   under the key `hosts`. A
//!   test puts one in its own namespace, so its entries go with it. This is
//!   the stand-in of a cluster's upstream resolver, as CoreDNS's `hosts`
//!   plugin would serve it; it never changes what a Service name means.
//!
//! A Service's name stays known after the Service is deleted (a lookup of
//! a gone Service is nobody's test), so the file only grows while Services
//! come and go, and growing is an append: a lookup never reads a file cut
//! short. It is rewritten in place only when an address or an upstream
//! entry changed.
//!
//! The same way, a pod's image CA bundle (`/etc/ssl/certs/ca-certificates.crt`,
//! where our distroless images keep it) is the host's plus the PEM
//! certificates of ConfigMaps labelled `hookwarden.dev/pod-runner=image-ca`
//! (key `ca.crt`): the stand-in for an image built with a private CA, so a
//! pod trusts a test's HTTPS server (a provider's key host) as it trusts
//! the public ones, with nothing in its spec changed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::Api;
use kube::runtime::watcher;

use super::{Context, VOLUME_REFRESH, log, pod_name};

/// The label of the ConfigMaps the runner reads, and its values:
/// [`UPSTREAM_HOSTS`] (`/etc/hosts` lines under the key `hosts`) or
/// [`IMAGE_CA`] (a PEM certificate under the key `ca.crt`).
pub(super) const LABEL: &str = "hookwarden.dev/pod-runner";
pub(super) const UPSTREAM_HOSTS: &str = "upstream-hosts";
pub(super) const IMAGE_CA: &str = "image-ca";
/// Where our distroless images (and Debian's) keep their CA bundle,
/// the first file `rustls-native-certs` (openssl-probe) looks for.
pub(super) const IMAGE_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CLUSTER_DOMAIN: &str = "cluster.local";

/// What the cluster's DNS knows.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Services in the order they were first seen: (namespace, name, ClusterIP).
    services: Vec<(String, String, Ipv4Addr)>,
    /// ConfigMap uid → its `/etc/hosts` lines, in the order seen.
    upstream: Vec<(String, String)>,
    /// ConfigMap uid → a CA certificate (PEM), in the order seen.
    image_cas: Vec<(String, String)>,
    /// The host's CA bundle, what an image ships.
    host_bundle: Option<String>,
}

impl Names {
    pub(super) fn service(&mut self, service: &Service) {
        let (Some(namespace), Some(name)) = (
            service.metadata.namespace.clone(),
            service.metadata.name.clone(),
        ) else {
            return;
        };
        let Some(ip) = service
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_ref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            return;
        };
        match self
            .services
            .iter_mut()
            .find(|(ns, n, _)| *ns == namespace && *n == name)
        {
            Some(entry) => entry.2 = ip,
            None => self.services.push((namespace, name, ip)),
        }
    }

    pub(super) fn upstream(&mut self, uid: String, hosts: Option<String>) {
        set_entry(&mut self.upstream, uid, hosts);
    }

    pub(super) fn image_ca(&mut self, uid: String, pem: Option<String>) {
        set_entry(&mut self.image_cas, uid, pem);
    }

    /// The CA bundle of a pod's image: the host's, then the test CAs.
    pub(super) fn ca_bundle(&self) -> Option<String> {
        let mut bundle = self.host_bundle.clone()?;
        for (_, pem) in &self.image_cas {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(pem);
        }
        Some(bundle)
    }
}

/// Sets (`Some`), replaces or removes (`None`) `uid`'s entry, keeping
/// the order the entries were first seen in.
fn set_entry(entries: &mut Vec<(String, String)>, uid: String, value: Option<String>) {
    match (entries.iter().position(|(u, _)| *u == uid), value) {
        (Some(i), Some(value)) => entries[i].1 = value,
        (Some(i), None) => {
            entries.remove(i);
        }
        (None, Some(value)) => entries.push((uid, value)),
        (None, None) => {}
    }
}

/// Keeps `names` current from the API: every Service with a ClusterIP,
/// every ConfigMap labelled [`LABEL`].
pub(super) async fn run(context: Arc<Context>) {
    let services: Api<Service> = Api::all(context.client.clone());
    let maps: Api<ConfigMap> = Api::all(context.client.clone());
    let mut services = watcher(services, watcher::Config::default()).boxed();
    let mut maps = watcher(maps, watcher::Config::default().labels(LABEL)).boxed();
    if let Ok(mut names) = context.names.lock() {
        names.host_bundle = std::fs::read_to_string(IMAGE_CA_BUNDLE).ok();
    }
    loop {
        tokio::select! {
            event = services.next() => match event {
                Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                    if let Ok(mut names) = context.names.lock() {
                        names.service(&s);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => log(format!("cluster DNS: service watch: {error}")),
                None => return,
            },
            event = maps.next() => {
                let (map, present) = match event {
                    Some(Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m))) => (m, true),
                    Some(Ok(watcher::Event::Delete(m))) => (m, false),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        log(format!("cluster DNS: ConfigMap watch: {error}"));
                        continue;
                    }
                    None => return,
                };
                let Some(uid) = map.metadata.uid.clone() else { continue };
                let kind = map.metadata.labels.as_ref().and_then(|l| l.get(LABEL)).cloned();
                let value = |key: &str| {
                    present
                        .then(|| map.data.as_ref().and_then(|d| d.get(key)).cloned())
                        .flatten()
                };
                let Ok(mut names) = context.names.lock() else { return };
                match kind.as_deref() {
                    Some(UPSTREAM_HOSTS) => names.upstream(uid, value("hosts")),
                    Some(IMAGE_CA) => names.image_ca(uid, value("ca.crt")),
                    _ => {}
                }
            }
        }
    }
}

/// The pod's `/etc/hosts`: the kubelet's part, then the cluster DNS's.
pub(super) fn hosts_file(pod: &Pod, ip: Ipv4Addr, names: &Names) -> String {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .or(pod.metadata.name.as_deref())
        .unwrap_or_default();
    let mut out = String::from(
        "# Kubernetes-managed hosts file (the hookwarden pod runner's).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    let _ = writeln!(out, "{ip}\t{hostname}");
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let hostnames = alias.hostnames.clone().unwrap_or_default();
            if !hostnames.is_empty() {
                let _ = writeln!(out, "{}\t{}", alias.ip, hostnames.join(" "));
            }
        }
    }
    let _ = writeln!(
        out,
        "\n# The cluster DNS's upstream (ConfigMaps labelled {LABEL}={UPSTREAM_HOSTS})."
    );
    for (_, hosts) in &names.upstream {
        for line in hosts.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("\n# The cluster's Services.\n");
    for (service_namespace, name, ip) in &names.services {
        let _ = write!(
            out,
            "{ip}\t{name}.{service_namespace}.svc.{CLUSTER_DOMAIN} \
             {name}.{service_namespace}.svc {name}.{service_namespace}"
        );
        if service_namespace == namespace {
            let _ = write!(out, " {name}");
        }
        out.push('\n');
    }
    out
}

/// The files a pod's mount namespace gets from the runner: its
/// `/etc/hosts` and, when the host has one, its image's CA bundle, as
/// (where the pod sees it, its content now).
pub(super) fn files(pod: &Pod, ip: Ipv4Addr, names: &Names) -> Vec<(&'static str, String)> {
    let mut files = vec![("/etc/hosts", hosts_file(pod, ip, names))];
    if let Some(bundle) = names.ca_bundle() {
        files.push((IMAGE_CA_BUNDLE, bundle));
    }
    files
}

/// Keeps each of `written` (the pod's files, at `dir/<n>` as written at
/// its start) current, until the pod's directory is gone.
pub(super) async fn keep_current(
    context: Arc<Context>,
    pod: Pod,
    ip: Ipv4Addr,
    dir: PathBuf,
    mut written: Vec<(&'static str, String)>,
) {
    loop {
        tokio::time::sleep(VOLUME_REFRESH).await;
        if !dir.exists() {
            return;
        }
        let wanted = match context.names.lock() {
            Ok(names) => files(&pod, ip, &names),
            Err(_) => return,
        };
        for (i, (target, content)) in wanted.into_iter().enumerate() {
            let Some((_, old)) = written.get_mut(i).filter(|(t, _)| *t == target) else {
                continue;
            };
            if *old == content {
                continue;
            }
            match update(&dir.join(i.to_string()), old, &content) {
                Ok(()) => *old = content,
                Err(error) => log(format!("{}: {target} not updated: {error}", pod_name(&pod))),
            }
        }
    }
}

/// In place (the file is bind-mounted; a new file would not be seen):
/// an append when the new text only adds to the old, else a rewrite.
pub(super) fn update(path: &Path, old: &str, new: &str) -> std::io::Result<()> {
    match new.strip_prefix(old).filter(|_| !old.is_empty()) {
        Some(added) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(added.as_bytes()),
        None => {
            std::fs::write(path, new)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(namespace: &str, name: &str, ip: &str) -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": ip},
        }))
        .expect("service")
    }

    #[test]
    fn hosts_name_services_aliases_and_upstream_entries() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "forwarder-7d9"},
            "spec": {
                "containers": [],
                "hostAliases": [{"ip": "127.3.0.9", "hostnames": ["legacy.example"]}],
            },
        }))
        .expect("pod");
        let mut names = Names::default();
        names.service(&service("shop", "billing", "127.2.0.7"));
        names.service(&service("other", "ledger", "127.2.0.8"));
        names.service(&service("shop", "headless", "None"));
        names.upstream(
            "uid-1".to_owned(),
            Some(
                "# a comment
127.3.1.1 sns.us-east-1.amazonaws.com
"
                .to_owned(),
            ),
        );
        let hosts = hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        let lines: Vec<&str> = hosts.lines().collect();
        assert!(lines.contains(&"127.0.0.1\tlocalhost"), "{hosts}");
        assert!(lines.contains(&"127.1.9.5\tforwarder-7d9"), "{hosts}");
        assert!(lines.contains(&"127.3.0.9\tlegacy.example"), "{hosts}");
        assert!(
            lines.contains(&"127.3.1.1 sns.us-east-1.amazonaws.com"),
            "{hosts}"
        );
        assert!(!hosts.contains("a comment"), "{hosts}");
        // Own namespace: the short name too; another's: qualified only.
        assert!(
            lines.contains(
                &"127.2.0.7\tbilling.shop.svc.cluster.local billing.shop.svc billing.shop billing"
            ),
            "{hosts}"
        );
        assert!(
            lines.contains(
                &"127.2.0.8\tledger.other.svc.cluster.local ledger.other.svc ledger.other"
            ),
            "{hosts}"
        );
        assert!(!hosts.contains("headless"), "{hosts}");

        // A new Service appends; a moved one or a changed upstream rewrites.
        let before = hosts;
        names.service(&service("shop", "orders", "127.2.0.9"));
        let grown = hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(grown.starts_with(&before));
        names.service(&service("shop", "billing", "127.2.0.10"));
        let moved = hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(!moved.starts_with(&grown) && moved.contains("127.2.0.10\tbilling.shop"));
        names.upstream("uid-1".to_owned(), None);
        let gone = hosts_file(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert!(!gone.contains("sns.us-east-1"), "{gone}");

        // Without a host bundle no image bundle is mounted; with one, the
        // test CAs follow it.
        assert_eq!(names.ca_bundle(), None);
        let files = files(&pod, Ipv4Addr::new(127, 1, 9, 5), &names);
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn hosts_are_updated_in_place() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("hosts");
        update(&path, "", "a\n").expect("first");
        let inode = std::fs::metadata(&path).expect("meta").ino();
        update(&path, "a\n", "a\nb\n").expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\nb\n");
        update(&path, "a\nb\n", "c\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "c\n");
        // The same file: a bind mount of it sees every change.
        assert_eq!(std::fs::metadata(&path).expect("meta").ino(), inode);
    }
}
