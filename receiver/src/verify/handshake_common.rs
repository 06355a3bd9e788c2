//! Pieces shared by the presets whose provider sends a shared secret
//! verbatim instead of a signature (Okta's authorization header, Event
//! Grid's query parameter, Microsoft Graph's `clientState`) and by the
//! presets whose handshake is a query parameter (Dropbox, X, Graph).

use super::Rejection;

/// The value of the query parameter `name`, URL-decoded; `Ok(None)` when
/// absent. A repeated parameter is ambiguous (which one would be answered or
/// checked?) and refused as [`Rejection::HandshakeMalformed`].
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, Rejection> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == name && found.replace(value.into_owned()).is_some() {
            return Err(Rejection::HandshakeMalformed);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded_and_a_repeated_one_refused() {
        assert_eq!(
            query_param(Some("a=1&b=x%20y+z"), "b"),
            Ok(Some("x y z".to_owned()))
        );
        assert_eq!(query_param(Some("a=1"), "b"), Ok(None));
        assert_eq!(query_param(None, "b"), Ok(None));
        assert_eq!(
            query_param(Some("b=1&b=2"), "b"),
            Err(Rejection::HandshakeMalformed)
        );
    }
}
