//! Access to the shared local control plane started by `make cluster-up`
//! (`tests/tools/cluster.sh`), and a fresh namespace per test.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::SupportError;
use crate::tools::cache_dir;

/// Label put on every namespace the tests create.
pub const TEST_NAMESPACE_LABEL: &str = "hookwarden.dev/test";

/// The kubeconfig of the local control plane: `$HOOKWARDEN_KUBECONFIG`, else
/// `$HOOKWARDEN_CLUSTER_DIR/kubeconfig`, else `~/.cache/hookwarden/cluster/kubeconfig`.
pub fn kubeconfig_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HOOKWARDEN_KUBECONFIG") {
        return PathBuf::from(path);
    }
    let dir = std::env::var_os("HOOKWARDEN_CLUSTER_DIR")
        .map_or_else(|| cache_dir().join("cluster"), PathBuf::from);
    dir.join("kubeconfig")
}

/// A client of the shared control plane, as its admin. Fails with a message
/// that says how to start it when it is not running.
pub async fn shared_client() -> Result<Client, SupportError> {
    let path = kubeconfig_path();
    let unavailable = |detail: String| SupportError::ClusterUnavailable {
        kubeconfig: path.clone(),
        detail,
    };
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| unavailable(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let client = Client::try_from(config).map_err(|e| unavailable(e.to_string()))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(client)
}

/// A namespace of its own for one test, deleted (with everything in it) on drop.
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `hw-<prefix>-<random>` in the shared control plane.
    pub async fn create(prefix: &str) -> Result<Self, SupportError> {
        Self::create_with(prefix, None).await
    }

    /// A namespace with `annotations` (the process node's selection,
    /// [`crate::deployed`]'s `create_on_process_node`).
    pub(crate) async fn create_with(
        prefix: &str,
        annotations: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<Self, SupportError> {
        let client = shared_client().await?;
        let name = format!("hw-{prefix}-{:08x}", rand::random::<u32>());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                annotations,
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(Self { name, client })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client of the control plane, as its admin.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An API handle for a namespaced resource in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime may be shutting down, and a kube Client is bound to
        // the runtime it was made in: delete from a runtime of our own.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = shared_client().await.ok()?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("hookwarden-tests: could not delete namespace {}", self.name);
        }
    }
}
