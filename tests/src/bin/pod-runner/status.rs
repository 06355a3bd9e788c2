//! What the runner writes of a pod's status, as a kubelet would:
//! `Running` with its IPs and `Ready` as its probe says, or `Failed` with
//! the reason. One place, so every status a test reads has one shape.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Context, Result};

/// RFC 3339 time, to the second, for Pod status fields.
pub(super) fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(super) fn pod_api(context: &Context, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        context.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

pub(super) async fn set_failed(
    context: &Context,
    pod: &Pod,
    reason: &str,
    message: Option<&str>,
) -> Result<()> {
    let now = rfc3339_now();
    let containers: Vec<_> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 1, "reason": reason, "message": message, "finishedAt": now}}})
        })
        .collect();
    let status = json!({"status": {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": reason, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": reason, "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }});
    patch_status(context, pod, &status).await
}

pub(super) async fn patch_status(
    context: &Context,
    pod: &Pod,
    status: &serde_json::Value,
) -> Result<()> {
    pod_api(context, pod)
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await?;
    Ok(())
}

pub(super) fn running_status(
    container: &Container,
    ip: Ipv4Addr,
    node_ip: Ipv4Addr,
    ready: bool,
    started: &str,
    now: &str,
) -> serde_json::Value {
    let status = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running",
        "hostIP": node_ip.to_string(),
        "hostIPs": [{"ip": node_ip.to_string()}],
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "startTime": started,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
            {"type": "Ready", "status": status, "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": ready,
            "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}},
        }],
    }})
}
