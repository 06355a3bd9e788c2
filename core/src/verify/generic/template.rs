//! `verification.hmac.signedContent`: the template of what the HMAC signs,
//! parsed once at startup into [`Part`]s, and its checks against the rest
//! of the configuration.

use hookwarden_crds::HmacCheck;

/// One piece of what an HMAC check signs, parsed once from `signedContent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    /// Text kept byte for byte.
    Literal(Vec<u8>),
    /// `{method}`: the request's method.
    Method,
    /// `{url}`: the public URL with the request's raw query.
    Url,
    /// `{pathAndQuery}`: the request target as received.
    PathAndQuery,
    /// `{timestamp}`: the timestamp's text exactly as sent.
    Timestamp,
    /// `{id}`: the id header's value.
    Id,
    /// `{header:<name>}` (the name lower-cased): that header's value.
    Header(String),
    /// `{body}`: the raw body.
    Body,
}

/// Why a `signedContent` template cannot be used; a startup error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` is not a placeholder.
    #[error(
        "unknown placeholder {{{0}}}; the placeholders are {{method}}, {{url}}, {{pathAndQuery}}, {{timestamp}}, {{id}}, {{header:<Name>}} and {{body}} (write {{{{ and }}}} for literal braces)"
    )]
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    #[error("the `{{` at byte {0} is not closed (write {{{{ for a literal brace)")]
    Unclosed(usize),
    /// A `}` that closes nothing.
    #[error("the `}}` at byte {0} closes nothing (write }}}} for a literal brace)")]
    LoneBrace(usize),
    /// `{header:...}` with something that is not a header name.
    #[error("{{header:{0}}} does not name a valid header")]
    BadHeaderName(String),
    /// A placeholder whose value the check has no way to know.
    #[error("{{{placeholder}}} needs {needs}")]
    Needs {
        /// The placeholder, e.g. `timestamp`.
        placeholder: &'static str,
        /// What must be configured, e.g. `verification.hmac.timestampHeader`.
        needs: &'static str,
    },
    /// Without `{body}` the body could be changed in flight.
    #[error(
        "it must contain {{body}}: a signature that does not cover the body authenticates nothing of it"
    )]
    NoBody,
    /// A header configured for signing that the template leaves unsigned:
    /// a timestamp nobody signed cannot refuse a replay.
    #[error("{field} is set, so it must be signed: add {{{placeholder}}}")]
    Unsigned {
        /// The field, e.g. `verification.hmac.timestampHeader`.
        field: &'static str,
        /// Its placeholder, e.g. `timestamp`.
        placeholder: &'static str,
    },
}

/// Parses a `signedContent` template: `{{`/`}}` are literal braces, any
/// other `{...}` is a placeholder, everything else is kept byte for byte.
pub(super) fn parse_template(text: &str) -> Result<Vec<Part>, TemplateError> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' if bytes.get(at + 1) == Some(&b'{') => {
                literal.push(b'{');
                at += 2;
            }
            b'}' if bytes.get(at + 1) == Some(&b'}') => {
                literal.push(b'}');
                at += 2;
            }
            b'}' => return Err(TemplateError::LoneBrace(at)),
            b'{' => {
                // `{` and `}` are ASCII, so these are char boundaries.
                let name_start = at + 1;
                let end = text[name_start..]
                    .find(['{', '}'])
                    .map(|offset| name_start + offset)
                    .filter(|&end| bytes[end] == b'}')
                    .ok_or(TemplateError::Unclosed(at))?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(placeholder(&text[name_start..end])?);
                at = end + 1;
            }
            byte => {
                literal.push(byte);
                at += 1;
            }
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

pub(super) fn placeholder(name: &str) -> Result<Part, TemplateError> {
    Ok(match name {
        "method" => Part::Method,
        "url" => Part::Url,
        "pathAndQuery" => Part::PathAndQuery,
        "timestamp" => Part::Timestamp,
        "id" => Part::Id,
        "body" => Part::Body,
        other => match other.strip_prefix("header:") {
            Some(header) => {
                let parsed = http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| TemplateError::BadHeaderName(header.to_owned()))?;
                Part::Header(parsed.as_str().to_owned())
            }
            None => return Err(TemplateError::UnknownPlaceholder(other.to_owned())),
        },
    })
}

/// What a check without `signedContent` signs: `[<id>.][<timestamp>.]<body>`.
pub(super) fn default_template(check: &HmacCheck) -> Vec<Part> {
    let mut parts = Vec::with_capacity(5);
    if check.id_header.is_some() {
        parts.extend([Part::Id, Part::Literal(b".".to_vec())]);
    }
    if has_timestamp(check) {
        parts.extend([Part::Timestamp, Part::Literal(b".".to_vec())]);
    }
    parts.push(Part::Body);
    parts
}

/// Whether the check has a timestamp: its own header, or a key of the
/// signature header.
pub(super) fn has_timestamp(check: &HmacCheck) -> bool {
    check.timestamp_header.is_some()
        || check
            .key_value
            .as_ref()
            .is_some_and(|kv| kv.timestamp_key.is_some())
}

/// Every placeholder can be filled, and everything configured to be signed
/// is signed.
pub(super) fn validate_template(
    parts: &[Part],
    check: &HmacCheck,
    has_public_url: bool,
) -> Result<(), TemplateError> {
    let uses = |wanted: &Part| parts.contains(wanted);
    if !uses(&Part::Body) {
        return Err(TemplateError::NoBody);
    }
    let requirements = [
        (
            Part::Timestamp,
            "timestamp",
            has_timestamp(check),
            "verification.hmac.timestampHeader (or keyValue.timestampKey)",
        ),
        (
            Part::Id,
            "id",
            check.id_header.is_some(),
            "verification.hmac.idHeader",
        ),
    ];
    for (part, placeholder, configured, field) in requirements {
        match (uses(&part), configured) {
            (true, false) => {
                return Err(TemplateError::Needs {
                    placeholder,
                    needs: field,
                });
            }
            (false, true) => return Err(TemplateError::Unsigned { field, placeholder }),
            _ => {}
        }
    }
    if uses(&Part::Url) && !has_public_url {
        return Err(TemplateError::Needs {
            placeholder: "url",
            needs: "spec.publicUrl, or spec.ingress (host and path)",
        });
    }
    Ok(())
}
