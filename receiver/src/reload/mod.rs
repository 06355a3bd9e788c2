//! Building the endpoint's pipeline from its files, and rebuilding it when
//! they change.
//!
//! Kubernetes updates a mounted Secret in place by swapping a symlink, so
//! the receiver cannot rely on file events; it polls instead: every few
//! seconds it hashes the manifest and every secret file the manifest names,
//! and when the hash changes it builds a new pipeline. A broken new
//! configuration (bad YAML, a missing or empty secret, a bad CIDR) is logged
//! and the running one keeps serving; nothing is dropped either way.

mod build;
mod error;
mod fingerprint;
mod watch;

pub use self::build::{
    Checked, HEADER_HEADROOM, Sources, check, check_endpoint, check_fetching, check_with_fetcher,
    load, log_source_restriction, prepare_ranges,
};
pub use self::error::LoadError;
pub use self::fingerprint::{
    fingerprint, fingerprint_in, fingerprint_reading, fingerprint_with, secret_refs,
};
pub use self::watch::{DEFAULT_RELOAD_INTERVAL, MAX_RETRY_INTERVAL, retry_delay, watch};

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::request::BodyLimitSource;

    use super::build::check_body_limit;
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let interval = Duration::from_secs(2);
        let delays: Vec<u64> = (1..=8)
            .map(|n| retry_delay(interval, n).as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(interval, u32::MAX), MAX_RETRY_INTERVAL);
    }

    const MANIFEST: &str = "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
        metadata: {name: gh}\nspec:\n  provider: generic\n  secretRefs: [{name: s, key: a}]\n  \
        verification: {hmac: {signatureHeader: X-Sig, secretRefs: [{name: h, key: b}]}}\n";

    #[test]
    fn a_body_cap_above_max_payload_is_refused_naming_both() {
        let path = Path::new("endpoint.yaml");
        let err = check_body_limit(path, 2_000_000, BodyLimitSource::Spec, 1_048_576)
            .expect_err("over max_payload");
        let text = err.to_string();
        for part in [
            "2000000",
            "1048576",
            "spec.request.maxBodyBytes",
            "endpoint.yaml",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(check_body_limit(path, 1_048_576, BodyLimitSource::Flag, 1_048_576).is_ok());
        assert!(
            check_body_limit(path, 2_000_000, BodyLimitSource::Flag, 0).is_ok(),
            "unknown max_payload"
        );
    }

    #[test]
    fn every_referenced_secret_is_listed() {
        let endpoint = hookwarden_crds::from_yaml(MANIFEST).expect("manifest");
        let refs: Vec<String> = secret_refs(&endpoint.spec)
            .iter()
            .map(|r| format!("{}/{}", r.name, r.key))
            .collect();
        assert_eq!(refs, ["s/a", "h/b"]);
    }

    #[test]
    fn the_fingerprint_follows_the_manifest_and_every_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("endpoint.yaml");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(secrets.join("h")).expect("mkdir");
        std::fs::write(&manifest, MANIFEST).expect("write");
        let missing = fingerprint(&manifest, &secrets);
        std::fs::write(secrets.join("h/b"), "").expect("write");
        let empty = fingerprint(&manifest, &secrets);
        assert_ne!(missing, empty, "a missing file differs from an empty one");
        std::fs::write(secrets.join("h/b"), "key-1").expect("write");
        let first = fingerprint(&manifest, &secrets);
        assert_eq!(
            first,
            fingerprint(&manifest, &secrets),
            "stable while nothing changes"
        );
        std::fs::write(secrets.join("h/b"), "key-2").expect("write");
        assert_ne!(
            first,
            fingerprint(&manifest, &secrets),
            "a rotated secret is noticed"
        );
        let rotated = fingerprint(&manifest, &secrets);
        std::fs::write(&manifest, MANIFEST.replace("X-Sig", "X-Signature")).expect("write");
        assert_ne!(
            rotated,
            fingerprint(&manifest, &secrets),
            "a changed manifest is noticed"
        );
    }
}
