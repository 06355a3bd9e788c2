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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::sign::path_and_query;
    use super::super::tests::{NOW, PUBLIC, headers, hmac_check, now, secrets};
    use super::super::*;
    use super::*;
    use crate::verify::DEFAULT_TIMESTAMP_TOLERANCE_SECS;

    const TEMPLATE_KEY: &str = "template-key";
    const TARGET: &str = "/hooks/in?a=1&b=%20";
    const TEMPLATE_BODY: &[u8] = br#"{"a":1}"#;

    fn template_verifier(
        edit: impl FnOnce(&mut HmacCheck),
        public_url: Option<&str>,
    ) -> Result<GenericVerifier, VerifierError> {
        GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((hmac_check(edit), secrets(&[TEMPLATE_KEY]))),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                public_url: public_url.map(|u| PublicUrl::parse(u).expect("url")),
                ..GenericChecks::default()
            },
            now,
        )
    }

    fn check_request(
        verifier: &GenericVerifier,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, Rejection> {
        let method: http::Method = method.parse().expect("method");
        let uri: http::Uri = target.parse().expect("uri");
        match verifier.check(&Incoming {
            method: &method,
            uri: &uri,
            headers,
            body,
        })? {
            Verdict::Deliver(verified) => Ok(verified),
            Verdict::Handshake(h) => panic!("no handshake: {h:?}"),
        }
    }

    #[test]
    fn templates_parse_into_parts_with_literal_braces() {
        assert_eq!(
            parse_template("{{x}}:{method}\n{header:X-Request-Id}{body}").expect("valid"),
            vec![
                Part::Literal(b"{x}:".to_vec()),
                Part::Method,
                Part::Literal(b"\n".to_vec()),
                Part::Header("x-request-id".to_owned()),
                Part::Body,
            ]
        );
        assert_eq!(
            parse_template("{url}{pathAndQuery}{timestamp}{id}").expect("valid"),
            vec![Part::Url, Part::PathAndQuery, Part::Timestamp, Part::Id]
        );
        for (text, error) in [
            (
                "{body}.{bdoy}",
                TemplateError::UnknownPlaceholder("bdoy".into()),
            ),
            ("{body", TemplateError::Unclosed(0)),
            ("{bo{dy}", TemplateError::Unclosed(0)),
            ("{body}}", TemplateError::LoneBrace(6)),
            ("{header:X Y}", TemplateError::BadHeaderName("X Y".into())),
            ("{header:}", TemplateError::BadHeaderName(String::new())),
        ] {
            assert_eq!(parse_template(text), Err(error), "{text}");
        }
        let message = TemplateError::UnknownPlaceholder("bdoy".into()).to_string();
        assert!(
            message.contains("{bdoy}") && message.contains("{pathAndQuery}"),
            "{message}"
        );
    }

    #[test]
    fn unusable_templates_are_startup_errors() {
        let error = |edit: fn(&mut HmacCheck), url: Option<&str>| {
            template_verifier(edit, url)
                .expect_err("refused")
                .to_string()
        };
        let message = error(|c| c.signed_content = Some("{method}.{nope}".into()), None);
        assert!(
            message.starts_with("verification.hmac.signedContent: unknown placeholder {nope}"),
            "{message}"
        );
        assert!(error(|c| c.signed_content = Some("{method}".into()), None).contains("{body}"));
        let message = error(
            |c| c.signed_content = Some("{timestamp}.{body}".into()),
            None,
        );
        assert!(message.contains("timestampHeader"), "{message}");
        let message = error(|c| c.signed_content = Some("{id}.{body}".into()), None);
        assert!(message.contains("idHeader"), "{message}");
        let message = error(|c| c.signed_content = Some("{url}.{body}".into()), None);
        assert!(message.contains("spec.publicUrl"), "{message}");
        let message = error(
            |c| {
                c.signed_content = Some("{body}".into());
                c.timestamp_header = Some("X-Timestamp".into());
            },
            None,
        );
        assert!(
            message.contains(
                "timestampHeader (or keyValue.timestampKey) is set, so it must be signed"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_template_signs_the_request_line_timestamp_and_a_header() {
        // printf 'POST\nhttps://hooks.example.com/hooks/in?a=1&b=%%20\n1700000000\nreq-1\n{"a":1}' \
        //   | openssl dgst -sha256 -hmac 'template-key' -hex
        const KNOWN: &str = "412065c95c363582aed30ca36ab64376cca27d0fc373668d2e5f71331ad06cd3";
        let verifier = template_verifier(
            |c| {
                c.signed_content =
                    Some("{method}\n{url}\n{timestamp}\n{header:X-Request-Id}\n{body}".into());
                c.timestamp_header = Some("X-Timestamp".into());
            },
            Some(PUBLIC),
        )
        .expect("verifier");
        let good = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", "1700000000"),
            ("x-request-id", "req-1"),
        ]);
        let at = |method: &str, target: &str, headers: &HeaderMap, body: &[u8]| {
            check_request(&verifier, method, target, headers, body)
        };
        assert!(at("POST", TARGET, &good, TEMPLATE_BODY).is_ok());
        let mismatch = Err(Rejection::SignatureMismatch);
        assert_eq!(at("PUT", TARGET, &good, TEMPLATE_BODY), mismatch);
        assert_eq!(
            at("POST", "/hooks/in?a=1&b=%21", &good, TEMPLATE_BODY),
            mismatch
        );
        assert_eq!(at("POST", TARGET, &good, br#"{"a":2}"#), mismatch);
        let other_id = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", "1700000000"),
            ("x-request-id", "req-2"),
        ]);
        assert_eq!(at("POST", TARGET, &other_id, TEMPLATE_BODY), mismatch);
        let no_id = headers(&[("x-signature", KNOWN), ("x-timestamp", "1700000000")]);
        assert_eq!(
            at("POST", TARGET, &no_id, TEMPLATE_BODY),
            Err(Rejection::SignatureMalformed)
        );
        let mut twice = good.clone();
        twice.append("x-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(
            at("POST", TARGET, &twice, TEMPLATE_BODY),
            Err(Rejection::SignatureMalformed)
        );
        // The window still holds for a templated timestamp.
        let stale = headers(&[
            ("x-signature", KNOWN),
            ("x-timestamp", &(NOW - 301).to_string()),
            ("x-request-id", "req-1"),
        ]);
        assert_eq!(
            at("POST", TARGET, &stale, TEMPLATE_BODY),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let wrong_key = GenericVerifier::with_clock(
            GenericChecks {
                hmac: Some((
                    hmac_check(|c| {
                        c.signed_content = Some(
                            "{method}\n{url}\n{timestamp}\n{header:X-Request-Id}\n{body}".into(),
                        );
                        c.timestamp_header = Some("X-Timestamp".into());
                    }),
                    secrets(&["other-key"]),
                )),
                timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
                public_url: Some(PublicUrl::parse(PUBLIC).expect("url")),
                ..GenericChecks::default()
            },
            now,
        )
        .expect("verifier");
        assert_eq!(
            check_request(&wrong_key, "POST", TARGET, &good, TEMPLATE_BODY),
            mismatch
        );
    }

    #[test]
    fn literal_text_and_the_request_target_are_signed_byte_for_byte() {
        // printf '{x}:POST /hooks/in?a=1&b=%%20:{"a":1}' | openssl dgst -sha256 -hmac 'template-key' -hex
        const KNOWN: &str = "496d9fc6155e57c13278007d41c5dd3d574c755af28a9c3652c5ada21bc57d1f";
        let verifier = template_verifier(
            |c| c.signed_content = Some("{{x}}:{method} {pathAndQuery}:{body}".into()),
            None,
        )
        .expect("no public URL needed");
        let good = headers(&[("x-signature", KNOWN)]);
        assert!(check_request(&verifier, "POST", TARGET, &good, TEMPLATE_BODY).is_ok());
        assert_eq!(
            check_request(
                &verifier,
                "POST",
                "/hooks/in?a=1&b=%20&c",
                &good,
                TEMPLATE_BODY
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn the_signer_signs_what_a_template_asks_for() {
        let check = hmac_check(|c| {
            c.signed_content =
                Some("{id}|{method}|{url}|{pathAndQuery}|{timestamp}|{header:X-Event}|{header:X-Trace}|{body}".into());
            c.timestamp_header = Some("X-Timestamp".into());
            c.id_header = Some("X-Id".into());
        });
        let checks = GenericChecks {
            hmac: Some((check, secrets(&[TEMPLATE_KEY]))),
            event_header: Some("X-Event".into()),
            timestamp_tolerance_secs: DEFAULT_TIMESTAMP_TOLERANCE_SECS,
            public_url: Some(PublicUrl::parse(PUBLIC).expect("url")),
            ..GenericChecks::default()
        };
        let signed = sign(
            &checks,
            &SignRequest {
                id: "d-1",
                event: "order.paid",
                timestamp: NOW,
                method: "POST",
                url: &format!("https://hooks.example.com{TARGET}"),
                body: TEMPLATE_BODY,
            },
        )
        .expect("signed");
        let mut map = HeaderMap::new();
        for (name, value) in &signed {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        assert_eq!(
            map["x-trace"], "d-1",
            "an unknown signed header carries the id"
        );
        let verifier = GenericVerifier::with_clock(checks, now).expect("verifier");
        let ok = check_request(&verifier, "POST", TARGET, &map, TEMPLATE_BODY).expect("verifies");
        assert_eq!(ok.event.as_deref(), Some("order.paid"));
        assert_eq!(ok.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(
            check_request(&verifier, "POST", "/hooks/in", &map, TEMPLATE_BODY),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(path_and_query("https://h.example.com"), "/");
        assert_eq!(path_and_query("https://h.example.com?x=1"), "/?x=1");
        assert_eq!(path_and_query("http://h:1/a/b?x"), "/a/b?x");
    }
}
