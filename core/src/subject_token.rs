//! One token of a NATS subject made of provider- or user-chosen text: what
//! the delivery subjects ([`crate::publish`]), the quarantine's
//! ([`crate::quarantine`]) and the forwarder's ([`crate::forward`]) share,
//! below all of them.

/// Replaces every character outside `[A-Za-z0-9_-]` by `_`, so provider- or
/// user-chosen text can never add subject tokens (`.`) or wildcards (`*`, `>`).
pub fn sanitize_token(text: &str) -> String {
    let mut token = String::with_capacity(text.len());
    push_sanitized(&mut token, text);
    token
}

/// [`sanitize_token`] of `text`, appended to `out` (one char per char, so
/// never longer than `text`).
pub(crate) fn push_sanitized(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
}
