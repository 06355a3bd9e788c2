//! The status conditions of our custom resources, as tests read them.

use hookwarden_crds::{WebhookEndpoint, WebhookSubscription};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A resource whose status has conditions.
pub trait HasConditions {
    /// Its conditions; none before the operator wrote a status.
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for WebhookEndpoint {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|status| status.conditions.as_slice())
            .unwrap_or_default()
    }
}

impl HasConditions for WebhookSubscription {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|status| status.conditions.as_slice())
            .unwrap_or_default()
    }
}

/// The condition of type `type_` of `resource`, if its status has one.
pub fn condition(resource: &impl HasConditions, type_: &str) -> Option<Condition> {
    resource
        .conditions()
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Whether `resource` has condition `type_` with status `True`.
pub fn condition_is_true(resource: &impl HasConditions, type_: &str) -> bool {
    resource
        .conditions()
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
