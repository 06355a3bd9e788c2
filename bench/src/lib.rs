//! Load benchmark tooling (`make bench`, see `bench/run.sh` and
//! `docs/benchmarks.md`).
//!
//! Every benchmark request is a distinct GitHub delivery: a 1 KiB JSON body
//! that carries its own delivery id, signed by the `hookwarden` CLI's GitHub
//! preset ([`hookwarden_cli::sign`]), so each request is a real JetStream
//! publish rather than a de-duplicated repeat. The signing is done here,
//! ahead of the run, so the load generators (wrk, vegeta) only replay bytes.
//!
//! Two file formats are written:
//! - **wrk** (`bench/wrk-presigned.lua` reads it): a body template holding
//!   [`ID_PLACEHOLDER`] once, and one line per request, tab-separated: the
//!   delivery id, then every header as `Name: value`. The body of a request
//!   is the template with the placeholder replaced by its id. Signatures
//!   are small, bodies are not: this keeps a 300 000-request file at ~60 MB.
//! - **vegeta**: vegeta's JSON target format, one target per line with the
//!   body in base64.

use std::io::{self, Write};

use base64::Engine;
use hookwarden_cli::{Delivery, Input};

/// The size of every benchmark body, in bytes.
pub const BODY_BYTES: usize = 1024;

/// Where the delivery id goes in the body template.
pub const ID_PLACEHOLDER: &str = "@DELIVERY_ID@";

/// The GitHub event type of every benchmark delivery.
pub const EVENT: &str = "push";

/// Why request files cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    /// The id prefix would make ids unfit for a header or the body.
    #[error("the id prefix {0:?} may only hold letters, digits, '-' and '_'")]
    Prefix(String),
    /// The id prefix is too long to fit a 1 KiB body.
    #[error("the id prefix {0:?} is too long")]
    PrefixTooLong(String),
    /// The CLI's signer refused.
    #[error("signing delivery {id}: {message}")]
    Sign { id: String, message: String },
    /// A header value cannot be written on a tab-separated line.
    #[error("header {0} of delivery {1} holds a tab or line break")]
    Header(String, String),
    /// Writing the output failed.
    #[error("writing {what}: {source}")]
    Write {
        what: &'static str,
        source: io::Error,
    },
}

/// The delivery id of request `n`: fixed width, so every body has the same
/// length.
pub fn delivery_id(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n:012}")
}

/// The body template for ids of `id_len` bytes: a JSON object shaped like a
/// small GitHub push, padded so that every body is exactly [`BODY_BYTES`].
pub fn body_template(id_len: usize) -> Result<String, PresignError> {
    let head = format!(
        "{{\"ref\":\"refs/heads/main\",\"delivery\":\"{ID_PLACEHOLDER}\",\
         \"repository\":{{\"full_name\":\"hookwarden/bench\"}},\"padding\":\""
    );
    let tail = "\"}";
    let fixed = head.len() - ID_PLACEHOLDER.len() + id_len + tail.len();
    let pad = BODY_BYTES
        .checked_sub(fixed)
        .ok_or_else(|| PresignError::PrefixTooLong(format!("{id_len} bytes")))?;
    Ok(format!("{head}{}{tail}", "x".repeat(pad)))
}

/// The body of the delivery with id `id`.
pub fn body(template: &str, id: &str) -> Vec<u8> {
    template.replacen(ID_PLACEHOLDER, id, 1).into_bytes()
}

/// Request `n`, signed with `secret` by the CLI's GitHub preset.
pub fn signed(
    secret: &[u8],
    template: &str,
    prefix: &str,
    n: u64,
    now: i64,
) -> Result<(String, Delivery), PresignError> {
    let id = delivery_id(prefix, n);
    let input = Input {
        event: EVENT,
        id: &id,
        body: Some(body(template, &id)),
        now,
        // GitHub does not sign the URL.
        url: "",
        spec: None,
        token_key: None,
    };
    let delivery =
        hookwarden_cli::sign("github", secret, &input).map_err(|message| PresignError::Sign {
            id: id.clone(),
            message,
        })?;
    Ok((id, delivery))
}

fn check_prefix(prefix: &str) -> Result<String, PresignError> {
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PresignError::Prefix(prefix.to_owned()));
    }
    body_template(delivery_id(prefix, 0).len())
}

fn write_err(what: &'static str) -> impl Fn(io::Error) -> PresignError {
    move |source| PresignError::Write { what, source }
}

/// Writes `count` requests in the wrk format: the template to `template_out`
/// and one line per request to `lines_out`.
pub fn write_wrk(
    secret: &[u8],
    prefix: &str,
    count: u64,
    now: i64,
    template_out: &mut impl Write,
    lines_out: &mut impl Write,
) -> Result<(), PresignError> {
    let template = check_prefix(prefix)?;
    template_out
        .write_all(template.as_bytes())
        .map_err(write_err("the body template"))?;
    for n in 0..count {
        let (id, delivery) = signed(secret, &template, prefix, n, now)?;
        let mut line = id.clone();
        for (name, value) in &delivery.headers {
            if [name, value].iter().any(|s| s.contains(['\t', '\r', '\n'])) {
                return Err(PresignError::Header(name.clone(), id));
            }
            line.push('\t');
            line.push_str(name);
            line.push_str(": ");
            line.push_str(value);
        }
        line.push('\n');
        lines_out
            .write_all(line.as_bytes())
            .map_err(write_err("the request lines"))?;
    }
    Ok(())
}

/// Writes `count` requests to `url` as vegeta JSON targets, one per line.
pub fn write_vegeta(
    secret: &[u8],
    prefix: &str,
    count: u64,
    now: i64,
    url: &str,
    out: &mut impl Write,
) -> Result<(), PresignError> {
    let template = check_prefix(prefix)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for n in 0..count {
        let (_, delivery) = signed(secret, &template, prefix, n, now)?;
        let mut header = serde_json::Map::new();
        for (name, value) in delivery.headers {
            header.insert(name, serde_json::json!([value]));
        }
        let target = serde_json::json!({
            "method": "POST",
            "url": url,
            "header": header,
            "body": b64.encode(&delivery.body),
        });
        writeln!(out, "{target}").map_err(write_err("the vegeta targets"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use hookwarden_crds::Provider;
    use hookwarden_receiver::secrets::Secret;
    use hookwarden_receiver::verify;

    use super::*;

    const SECRET: &[u8] = b"bench-secret-0123456789abcdef";

    fn verifier() -> Box<dyn verify::Verifier> {
        verify::for_provider(Provider::Github, vec![Secret::from(SECRET)], None)
            .expect("a GitHub verifier")
    }

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn bodies_are_one_kib_of_json_with_their_id() {
        let template = check_prefix("run-a").expect("template");
        for n in [0, 7, 999_999_999_999] {
            let id = delivery_id("run-a", n);
            let body = body(&template, &id);
            assert_eq!(body.len(), BODY_BYTES);
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(json["delivery"], id.as_str());
        }
    }

    /// What the load generators replay is what the receiver accepts: each
    /// wrk line, rebuilt the way `wrk-presigned.lua` rebuilds it, verifies
    /// with the receiver's GitHub verifier, and ids and signatures are
    /// unique; a changed body is refused.
    #[test]
    fn wrk_requests_verify_with_the_receivers_github_verifier() {
        let (mut template, mut lines) = (Vec::new(), Vec::new());
        write_wrk(SECRET, "run-a", 50, 0, &mut template, &mut lines).expect("write");
        let template = String::from_utf8(template).expect("UTF-8 template");
        let lines = String::from_utf8(lines).expect("UTF-8 lines");
        let verifier = verifier();
        let (mut ids, mut signatures) = (Vec::new(), Vec::new());
        for line in lines.lines() {
            let mut fields = line.split('\t');
            let id = fields.next().expect("id");
            let pairs: Vec<(&str, &str)> = fields
                .map(|f| f.split_once(": ").expect("Name: value"))
                .collect();
            let headers = header_map(&pairs);
            let body = body(&template, id);
            let verified = verifier.verify(&headers, &body).expect("verifies");
            assert_eq!(verified.delivery_id.as_deref(), Some(id));
            assert_eq!(verified.event.as_deref(), Some(EVENT));
            let mut forged = body.clone();
            forged[BODY_BYTES - 3] ^= 1;
            assert!(verifier.verify(&headers, &forged).is_err());
            ids.push(id.to_owned());
            signatures.push(headers["x-hub-signature-256"].clone());
        }
        assert_eq!(ids.len(), 50);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 50, "delivery ids repeat");
        signatures.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        signatures.dedup();
        assert_eq!(signatures.len(), 50, "signatures repeat");
    }

    #[test]
    fn vegeta_targets_verify_with_the_receivers_github_verifier() {
        let mut out = Vec::new();
        write_vegeta(SECRET, "run-b", 5, 0, "https://127.0.0.1:1/", &mut out).expect("write");
        let verifier = verifier();
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(text.lines().count(), 5);
        for line in text.lines() {
            let target: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(target["method"], "POST");
            let body = base64::engine::general_purpose::STANDARD
                .decode(target["body"].as_str().expect("body"))
                .expect("base64");
            assert_eq!(body.len(), BODY_BYTES);
            let header = target["header"].as_object().expect("header");
            let pairs: Vec<(&str, &str)> = header
                .iter()
                .map(|(name, values)| (name.as_str(), values[0].as_str().expect("value")))
                .collect();
            verifier
                .verify(&header_map(&pairs), &body)
                .expect("verifies");
        }
    }

    #[test]
    fn prefixes_that_would_break_a_header_are_refused() {
        let mut sink = Vec::new();
        for prefix in ["", "a b", "a\tb", "x\"y"] {
            assert!(
                write_vegeta(SECRET, prefix, 1, 0, "https://h/", &mut sink).is_err(),
                "{prefix:?}"
            );
        }
        assert!(matches!(
            check_prefix(&"p".repeat(2000)),
            Err(PresignError::PrefixTooLong(_))
        ));
    }
}
