//! The request headers as verifiers read them: a header that must occur
//! once, an informational one (event type, delivery id) kept only when
//! sane, and the default check made before the body is read.

use http::HeaderMap;

use super::Rejection;

/// No provider's signature header comes near this; anything longer is
/// refused as malformed before it is parsed.
pub(crate) const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// The default [`super::Verifier::precheck`]: at least one of `names` (the
/// headers a signature or token is read from) is present; each present one
/// occurs once and is of sane length. No names: nothing to check before the
/// body.
pub(crate) fn credential_header_present(
    headers: &HeaderMap,
    names: &[&str],
) -> Result<(), Rejection> {
    if names.is_empty() {
        return Ok(());
    }
    let mut present = false;
    for name in names {
        match single_header(headers, name) {
            Err(()) => return Err(Rejection::SignatureMalformed),
            Ok(Some(value)) if value.len() > MAX_SIGNATURE_HEADER_LEN => {
                return Err(Rejection::SignatureMalformed);
            }
            Ok(Some(_)) => present = true,
            Ok(None) => {}
        }
    }
    if present {
        Ok(())
    } else {
        Err(Rejection::SignatureMissing)
    }
}

/// The value of a header that must occur at most once.
///
/// `Ok(None)` when absent, `Err(())` when repeated or not visible ASCII: an
/// attacker who adds a second copy of a header must not be able to choose
/// which one is used.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(Some).map_err(|_| ())
}

/// An informational header (event type, delivery id): used only if it occurs
/// exactly once, is visible ASCII, non-empty and at most 256 bytes. These
/// values end up in NATS headers and subjects, so anything odd is dropped
/// rather than passed on.
pub(crate) fn info_header(headers: &HeaderMap, name: &str) -> Option<String> {
    single_header(headers, name)
        .ok()
        .flatten()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}

/// An informational value taken from a signed body (event type, delivery
/// id), under the same rules as [`info_header`]: visible ASCII, non-empty
/// after trimming, at most 256 bytes; anything else is dropped.
pub(crate) fn info_value(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    .then(|| value.to_owned())
}
