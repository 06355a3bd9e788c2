//! A pod's container turned into a process, as the kubelet and a container
//! runtime would run it: the workspace binary of its image, its command
//! line and environment, in a network namespace of its own with the pod
//! IP, in a private mount namespace with its volumes and files mounted,
//! as its user; and the undoing of all that. Apart from the pod's
//! lifecycle: this is the translation of the spec, which grows with each
//! field of it the runner learns, while the lifecycle stays as it is.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::{environment, expand_vars};
use super::volumes::{materialise_volumes, refresh_volumes};
use super::{Context, Result, Settings, cluster_dns};

/// Our images and the workspace binary each runs (the image's entrypoint).
const IMAGES: [(&str, &str); 2] = [
    ("ghcr.io/hookwarden/receiver", "hookwarden-receiver"),
    ("ghcr.io/hookwarden/operator", "hookwarden-operator"),
];

/// The PATH of our distroless images.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a pod runs: the workspace binary for its image.
pub(super) fn binary_for(settings: &Settings, image: &str) -> Option<PathBuf> {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = match repository.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repository,
    };
    IMAGES
        .iter()
        .find(|(image, _)| *image == repository)
        .map(|(_, binary)| settings.bin_dir.join(binary))
}

/// A started pod's process and network.
pub(super) struct Running {
    pub(super) child: tokio::process::Child,
    pub(super) ip: Ipv4Addr,
    pub(super) netns: String,
    pub(super) pod_dir: PathBuf,
    /// Refreshes the pod's Secret and ConfigMap volumes while it runs.
    _refresh: AbortOnDrop,
    _files_refresh: AbortOnDrop,
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) async fn start(
    context: &Arc<Context>,
    pod: &Pod,
    container: &Container,
    binary: &Path,
) -> Result<Running> {
    let settings = &context.settings;
    let uid = pod.metadata.uid.clone().ok_or("pod without uid")?;
    let pod_dir = settings.state_dir.join("pods").join(&uid);
    std::fs::create_dir_all(&pod_dir)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_security = spec.security_context.clone().unwrap_or_default();
    let container_security = container.security_context.clone().unwrap_or_default();
    let run_as_user = container_security.run_as_user.or(pod_security.run_as_user);
    let run_as_group = container_security
        .run_as_group
        .or(pod_security.run_as_group)
        .or(run_as_user);
    let fs_group = pod_security.fs_group;

    let env = environment(context, pod, container).await?;
    let volumes = materialise_volumes(context, pod, &pod_dir, fs_group).await?;
    let refresh = AbortOnDrop(tokio::spawn(refresh_volumes(
        context.clone(),
        pod.clone(),
        pod_dir.clone(),
        fs_group,
    )));

    let ip = context
        .addresses
        .lock()
        .map_err(|_| "address lock poisoned")?
        .allocate()
        .ok_or("the node's pod CIDR is full")?;
    let netns = format!("hw-{}", &uid[..uid.len().min(23)]);
    let status = tokio::process::Command::new(&settings.podnet)
        .args(["add", &netns, &ip.to_string()])
        .env("NODE_IP", settings.node_ip.to_string())
        .status()
        .await?;
    if !status.success() {
        release(context, ip);
        return Err(format!(
            "{} add {netns} {ip} failed: {status}",
            settings.podnet.display()
        )
        .into());
    }

    // Its /etc/hosts (as the kubelet and the cluster DNS would have it)
    // and its image's CA bundle, each bind-mounted from `files/<n>`.
    let files_dir = pod_dir.join("files");
    let files = cluster_dns::files(
        pod,
        ip,
        &*context.names.lock().map_err(|_| "names lock poisoned")?,
    );
    let written = std::fs::create_dir_all(&files_dir).and_then(|()| {
        files.iter().enumerate().try_for_each(|(i, (_, content))| {
            cluster_dns::update(&files_dir.join(i.to_string()), "", content)
        })
    });
    if let Err(error) = written {
        teardown(context, &netns, ip, &pod_dir).await;
        return Err(error.into());
    }
    let files_refresh = AbortOnDrop(tokio::spawn(cluster_dns::keep_current(
        context.clone(),
        pod.clone(),
        ip,
        files_dir.clone(),
        files.clone(),
    )));

    // The container's command line: `command` replaces the image's
    // entrypoint (our binary), `args` its arguments; $(VAR) from the env.
    let expand = |s: &String| expand_vars(s, &env);
    let mut argv: Vec<String> = match &container.command {
        Some(command) if !command.is_empty() => {
            let mut command: Vec<String> = command.iter().map(expand).collect();
            let entrypoint = format!(
                "/usr/local/bin/{}",
                binary
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            );
            if command[0] == entrypoint {
                command[0] = binary.display().to_string();
            }
            command
        }
        _ => vec![binary.display().to_string()],
    };
    argv.extend(container.args.iter().flatten().map(expand));

    // In the pod's network namespace, a private mount namespace: bind the
    // volumes at their mount paths, then become the pod's user and exec.
    let mut script = String::from("set -e\n");
    for (i, (target, _)) in files.iter().enumerate() {
        writeln!(
            script,
            "mount --bind {} {}",
            shell_quote(&files_dir.join(i.to_string()).display().to_string()),
            shell_quote(target)
        )?;
    }
    for (source, target, read_only) in &volumes {
        let (source, target) = (
            shell_quote(&source.display().to_string()),
            shell_quote(target),
        );
        writeln!(script, "mkdir -p {target} 2>/dev/null || true")?;
        writeln!(script, "mount --bind {source} {target}")?;
        if *read_only {
            writeln!(script, "mount -o remount,bind,ro {target}")?;
        }
    }
    let mut exec = vec!["exec".to_owned()];
    if let Some(user) = run_as_user {
        exec.extend([
            "setpriv".to_owned(),
            format!("--reuid={user}"),
            format!("--regid={}", run_as_group.unwrap_or(user)),
        ]);
        match fs_group {
            Some(group) => exec.push(format!("--groups={group}")),
            None => exec.push("--clear-groups".to_owned()),
        }
        exec.push("--".to_owned());
    }
    exec.push("\"$@\"".to_owned());
    script.push_str(&exec.join(" "));
    script.push('\n');
    let script_path = pod_dir.join("start.sh");
    std::fs::write(&script_path, script)?;

    let log_path = settings.state_dir.join("logs").join(format!(
        "{}_{}_{}.log",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        container.name
    ));
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let err = out.try_clone()?;
    let mut command = tokio::process::Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .args([
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
        ])
        .arg(&script_path)
        .args(&argv)
        .env_clear()
        .env("PATH", IMAGE_PATH)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(container.working_dir.as_deref().unwrap_or("/"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    command.as_std_mut().process_group(0);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            teardown(context, &netns, ip, &pod_dir).await;
            return Err(error.into());
        }
    };
    Ok(Running {
        child,
        ip,
        netns,
        pod_dir,
        _refresh: refresh,
        _files_refresh: files_refresh,
    })
}

fn release(context: &Context, ip: Ipv4Addr) {
    if let Ok(mut addresses) = context.addresses.lock() {
        addresses.release(ip);
    }
}

pub(super) async fn teardown(context: &Context, netns: &str, ip: Ipv4Addr, pod_dir: &Path) {
    let _ = tokio::process::Command::new(&context.settings.podnet)
        .args(["del", netns, &ip.to_string()])
        .status()
        .await;
    release(context, ip);
    let _ = std::fs::remove_dir_all(pod_dir);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_our_binaries() {
        let settings = Settings {
            node: "n".to_owned(),
            bin_dir: PathBuf::from("/bin-dir"),
            state_dir: PathBuf::new(),
            podnet: PathBuf::new(),
            node_ip: Ipv4Addr::LOCALHOST,
            api_host: String::new(),
            api_port: String::new(),
        };
        assert_eq!(
            binary_for(&settings, "ghcr.io/hookwarden/receiver:0.1.0"),
            Some(PathBuf::from("/bin-dir/hookwarden-receiver"))
        );
        assert_eq!(
            binary_for(&settings, "ghcr.io/hookwarden/operator@sha256:00"),
            Some(PathBuf::from("/bin-dir/hookwarden-operator"))
        );
        assert_eq!(binary_for(&settings, "docker.io/library/nginx:1"), None);
    }
}
