//! Types the other resources share.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the endpoint's namespace (standalone: the file
/// `<secrets-dir>/<name>/<key>`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}
