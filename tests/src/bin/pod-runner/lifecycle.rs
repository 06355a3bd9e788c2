//! One pod's life, from the first sight of it in the watch until it is
//! gone from the API: start it (or mark it `Failed` when it cannot run
//! here), supervise its process (probes, readiness, exit) and, once it is
//! deleted, stop the process within its grace period and remove it. Kept
//! apart from how a process is made (`process`) so the order of events
//! reads in one place.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use kube::api::{DeleteParams, Preconditions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::sync::watch;

use super::probes::probe;
use super::process::{Running, binary_for, start, teardown};
use super::status::{patch_status, pod_api, rfc3339_now, running_status, set_failed};
use super::{Context, Result, log, pod_name};

/// The lifecycle of one pod: from the first sight of it until it is gone.
pub(super) async fn run_pod(context: Arc<Context>, mut updates: watch::Receiver<Option<Pod>>) {
    let Some(pod) = updates.borrow().clone() else {
        return;
    };
    let name = pod_name(&pod);
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    let result = match phase.as_deref() {
        None | Some("Pending") if pod.metadata.deletion_timestamp.is_none() => {
            run_new_pod(&context, pod, &mut updates).await
        }
        Some("Running") if pod.metadata.deletion_timestamp.is_none() => {
            // Running without a process of ours: an earlier runner's.
            let result = set_failed(&context, &pod, "RunnerRestarted", None).await;
            match result {
                Ok(()) => wait_and_remove(&context, &mut updates).await,
                Err(e) => Err(e),
            }
        }
        _ => wait_and_remove(&context, &mut updates).await,
    };
    if let Err(error) = result {
        log(format!("{name}: {error}"));
    }
}

/// For a pod without a process: once it is being deleted, remove it.
async fn wait_and_remove(
    context: &Context,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    loop {
        let current = updates.borrow_and_update().clone();
        let Some(pod) = current else { return Ok(()) };
        if pod.metadata.deletion_timestamp.is_some() {
            return remove(context, &pod).await;
        }
        if updates.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// The kubelet's last word: the pod's containers are gone, delete it now.
async fn remove(context: &Context, pod: &Pod) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pod_api(context, pod)
        .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn run_new_pod(
    context: &Arc<Context>,
    pod: Pod,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    let name = pod_name(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let [container] = spec.containers.as_slice() else {
        set_failed(
            context,
            &pod,
            "Unsupported",
            Some("the pod runner runs pods of exactly one container"),
        )
        .await?;
        return wait_and_remove(context, updates).await;
    };
    let Some(binary) = binary_for(
        &context.settings,
        container.image.as_deref().unwrap_or_default(),
    ) else {
        let message = format!("image {:?} is not one of ours", container.image);
        set_failed(context, &pod, "UnsupportedImage", Some(&message)).await?;
        return wait_and_remove(context, updates).await;
    };
    let running = match start(context, &pod, container, &binary).await {
        Ok(running) => running,
        Err(error) => {
            log(format!("{name}: cannot start: {error}"));
            set_failed(context, &pod, "StartError", Some(&error.to_string())).await?;
            return wait_and_remove(context, updates).await;
        }
    };
    log(format!(
        "{name}: running {} as {} (pid {:?})",
        binary.display(),
        running.ip,
        running.child.id()
    ));
    supervise(context, pod, container.clone(), running, updates).await
}

async fn supervise(
    context: &Arc<Context>,
    mut pod: Pod,
    container: Container,
    mut running: Running,
    updates: &mut watch::Receiver<Option<Pod>>,
) -> Result<()> {
    let name = pod_name(&pod);
    let settings = &context.settings;
    let started = rfc3339_now();
    patch_status(
        context,
        &pod,
        &running_status(
            &container,
            running.ip,
            settings.node_ip,
            false,
            &started,
            &started,
        ),
    )
    .await?;
    let readiness = container.readiness_probe.clone();
    let liveness = container.liveness_probe.clone();
    let period = |p: &Option<Probe>| {
        Duration::from_secs(
            u64::try_from(
                p.as_ref()
                    .and_then(|p| p.period_seconds)
                    .unwrap_or(10)
                    .max(1),
            )
            .unwrap_or(10),
        )
    };
    let mut readiness_tick = tokio::time::interval(period(&readiness));
    let mut liveness_tick = tokio::time::interval(period(&liveness));
    let delay = |p: &Option<Probe>| {
        Duration::from_secs(
            u64::try_from(
                p.as_ref()
                    .and_then(|p| p.initial_delay_seconds)
                    .unwrap_or(0),
            )
            .unwrap_or(0),
        )
    };
    let readiness_from = tokio::time::Instant::now() + delay(&readiness);
    let liveness_from = tokio::time::Instant::now() + delay(&liveness);
    // No readiness probe: ready once running, as the kubelet says.
    let mut ready = false;
    let (mut passes, mut failures, mut live_failures) = (0, 0, 0);
    if readiness.is_none() {
        ready = true;
        context.set_endpoint(&pod, &container, Some(running.ip));
        patch_status(
            context,
            &pod,
            &running_status(
                &container,
                running.ip,
                settings.node_ip,
                true,
                &started,
                &rfc3339_now(),
            ),
        )
        .await?;
    }
    let exit = loop {
        tokio::select! {
            status = running.child.wait() => break status.ok(),
            _ = readiness_tick.tick(), if readiness.is_some() && tokio::time::Instant::now() >= readiness_from => {
                let Some(probe_spec) = &readiness else { continue };
                let ok = probe(probe_spec, &container, running.ip).await;
                let (now_ready, changed) = if ok {
                    passes += 1;
                    failures = 0;
                    let wanted = probe_spec.success_threshold.unwrap_or(1).max(1);
                    (ready || passes >= wanted, !ready && passes >= wanted)
                } else {
                    failures += 1;
                    passes = 0;
                    let allowed = probe_spec.failure_threshold.unwrap_or(3).max(1);
                    (ready && failures < allowed, ready && failures >= allowed)
                };
                if changed {
                    ready = now_ready;
                    log(format!("{name}: ready={ready}"));
                    context.set_endpoint(&pod, &container, ready.then_some(running.ip));
                    if let Err(error) = patch_status(context, &pod, &running_status(&container, running.ip, settings.node_ip, ready, &started, &rfc3339_now())).await {
                        log(format!("{name}: status: {error}"));
                        ready = !ready; // try again at the next probe
                    }
                }
            }
            _ = liveness_tick.tick(), if liveness.is_some() && tokio::time::Instant::now() >= liveness_from => {
                let Some(probe_spec) = &liveness else { continue };
                if probe(probe_spec, &container, running.ip).await {
                    live_failures = 0;
                } else {
                    live_failures += 1;
                    if live_failures >= probe_spec.failure_threshold.unwrap_or(3).max(1) {
                        log(format!("{name}: liveness probe failed {live_failures} times: killing"));
                        signal_group(&running.child, Signal::SIGKILL);
                    }
                }
            }
            changed = updates.changed() => {
                let current = if changed.is_ok() { updates.borrow_and_update().clone() } else { None };
                match current {
                    Some(latest) if latest.metadata.deletion_timestamp.is_none() => pod = latest,
                    Some(latest) => {
                        // Terminating: no new connections, as kube-proxy
                        // stops sending to a pod the moment it terminates.
                        context.set_endpoint(&pod, &container, None);
                        let grace = latest.metadata.deletion_grace_period_seconds.unwrap_or(30);
                        log(format!("{name}: deleted: stopping (grace {grace}s)"));
                        stop(&mut running.child, Duration::from_secs(u64::try_from(grace.max(0)).unwrap_or(30))).await;
                        teardown(context, &running.netns, running.ip, &running.pod_dir).await;
                        return remove(context, &latest).await;
                    }
                    None => {
                        // Gone from the API (or the runner is stopping).
                        context.set_endpoint(&pod, &container, None);
                        stop(&mut running.child, Duration::from_secs(10)).await;
                        teardown(context, &running.netns, running.ip, &running.pod_dir).await;
                        return Ok(());
                    }
                }
            }
        }
    };
    context.set_endpoint(&pod, &container, None);
    let code = exit.and_then(|s| s.code()).unwrap_or(-1);
    log(format!("{name}: process exited ({exit:?}): pod Failed"));
    teardown(context, &running.netns, running.ip, &running.pod_dir).await;
    let message = format!("the process exited with {exit:?}");
    let now = rfc3339_now();
    let status = json!({"status": {
        "phase": "Failed",
        "reason": "Error",
        "message": message,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Error", "startedAt": started, "finishedAt": now}},
        }],
    }});
    patch_status(context, &pod, &status).await?;
    wait_and_remove(context, updates).await
}

fn signal_group(child: &tokio::process::Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(-pid), signal);
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, grace: Duration) {
    signal_group(child, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(child, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
}
