//! What identifies a version of the endpoint's files: the secrets its
//! manifest names and a hash of them all.

use std::path::Path;

use hookwarden_crds::{SecretKeyRef, WebhookEndpointSpec};
use sha2::{Digest, Sha256};

use crate::ranges;
use crate::ranges::local::LocalRanges;
use crate::secrets;

/// Every secret the spec refers to, in any check.
pub fn secret_refs(spec: &WebhookEndpointSpec) -> Vec<&SecretKeyRef> {
    let mut refs: Vec<&SecretKeyRef> = spec.secret_refs.iter().collect();
    if let Some(verification) = &spec.verification {
        let checks = [
            verification.token.as_ref().map(|c| &c.secret_refs),
            verification.basic_auth.as_ref().map(|c| &c.secret_refs),
            verification.hmac.as_ref().map(|c| &c.secret_refs),
        ];
        refs.extend(checks.into_iter().flatten().flatten());
    }
    if let Some(handshake) = &spec.handshake {
        refs.extend(&handshake.verify_token_refs);
    }
    refs
}

/// A hash of the manifest and of every secret file it names (a missing file
/// hashes differently from an empty one), so any change, including a
/// symlink swap, is noticed.
pub fn fingerprint(endpoint: &Path, secrets_dir: &Path) -> [u8; 32] {
    fingerprint_with(endpoint, secrets_dir, None)
}

/// As [`fingerprint`], and the saved files of the manifest's
/// `allowedSources` lists and the version of the lists in memory, so a
/// changed list is a changed configuration.
pub fn fingerprint_with(
    endpoint: &Path,
    secrets_dir: &Path,
    ranges: Option<&LocalRanges>,
) -> [u8; 32] {
    fingerprint_in(
        endpoint,
        &secrets::SecretsLayout::PerSecret(secrets_dir.to_owned()),
        ranges,
    )
}

/// As [`fingerprint_with`], the secrets' files where `layout` has them.
pub fn fingerprint_in(
    endpoint: &Path,
    layout: &secrets::SecretsLayout,
    ranges: Option<&LocalRanges>,
) -> [u8; 32] {
    fingerprint_reading(endpoint, layout, ranges, &mut |path| {
        std::fs::read(path).ok()
    })
}

/// As [`fingerprint_in`], every file read through `read` (`None`: missing
/// or unreadable), so a caller can note what each file was when read
/// ([`crate::pool::stamps`]).
pub fn fingerprint_reading(
    endpoint: &Path,
    layout: &secrets::SecretsLayout,
    ranges: Option<&LocalRanges>,
    read: &mut dyn FnMut(&Path) -> Option<Vec<u8>>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    let manifest = read(endpoint);
    feed(&mut hash, manifest.as_deref());
    let parsed = manifest
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| hookwarden_crds::from_yaml(&text).ok());
    if let Some(endpoint) = parsed {
        for secret in secret_refs(&endpoint.spec) {
            let content = layout.path(secret).and_then(|path| read(&path));
            feed(&mut hash, content.as_deref());
        }
        if let (Some(ranges), Ok(sources)) = (ranges, ranges::sources_of(&endpoint.spec)) {
            for source in &sources {
                let content = ranges.file_of(source).and_then(|file| read(&file));
                feed(&mut hash, content.as_deref());
            }
        }
    }
    if let Some(ranges) = ranges {
        hash.update(ranges.version().to_be_bytes());
    }
    hash.finalize().into()
}

fn feed(hash: &mut Sha256, content: Option<&[u8]>) {
    match content {
        Some(bytes) => {
            hash.update([1]);
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        None => hash.update([0]),
    }
}
