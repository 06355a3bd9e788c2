//! `spec.filter`: a CEL condition over the stored event, compiled once at
//! start (a bad expression stops the start with the parser's message) and
//! evaluated per event with two variables:
//!
//! - `headers`: the stored headers, names lower-cased, each its first value
//!   as a string (`headers["hookwarden-event"] == "push"`);
//! - `body`: the body parsed as JSON when it is JSON of at most
//!   [`MAX_FILTER_BODY`] bytes, else `null`.
//!
//! An event is delivered only when the expression is `true`. Anything else
//! — `false`, another type, or an evaluation error (a missing key of a body
//! of another shape, say) — counts as not matching: the event is
//! acknowledged and counted (`filtered`; errors also in
//! `hookwarden_forward_filter_errors_total`), never dead-lettered, since
//! the filter says which events the destination wants and an event it
//! cannot judge is not one it asked for. `has(body.x) && ...` avoids the
//! errors.
//!
//! The expression is bounded (4096 characters by the CRD); evaluation has
//! no loops beyond CEL's macros over the event's own (bounded) data.

use std::collections::HashMap;

/// Bodies larger than this are not parsed for the filter (`body` is
/// `null`): a filter must not cost more than the delivery.
pub const MAX_FILTER_BODY: usize = 1024 * 1024;

/// The longest expression (the CRD's bound, checked again standalone).
pub const MAX_EXPRESSION: usize = 4096;

/// The variables an expression may use.
const VARIABLES: [&str; 2] = ["headers", "body"];

/// Why a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Longer than [`MAX_EXPRESSION`].
    #[error("spec.filter is longer than {MAX_EXPRESSION} characters")]
    TooLong,
    /// Not CEL.
    #[error("spec.filter is not a valid CEL expression: {0}")]
    Parse(String),
    /// Uses a variable that is never set.
    #[error("spec.filter uses {0:?}; only `headers` and `body` are defined")]
    UnknownVariable(String),
}

/// A compiled filter.
pub struct Filter {
    program: cel::Program,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}

impl Filter {
    /// Compiles `expression`.
    pub fn compile(expression: &str) -> Result<Self, FilterError> {
        if expression.len() > MAX_EXPRESSION {
            return Err(FilterError::TooLong);
        }
        // The parser is a generated one; a panic inside it must not take
        // the process down with an unreadable message.
        let compiled = std::panic::catch_unwind(|| cel::Program::compile(expression))
            .map_err(|_| FilterError::Parse("the parser failed".to_owned()))?;
        let program = compiled.map_err(|e| FilterError::Parse(single_line(&e.to_string())))?;
        let references = program.references();
        if let Some(unknown) = references
            .variables()
            .into_iter()
            .find(|v| !VARIABLES.contains(v))
        {
            return Err(FilterError::UnknownVariable(unknown.to_owned()));
        }
        Ok(Self { program })
    }

    /// Whether the event with `headers` (lower-cased names) and `body`
    /// matches; `Err` with the reason when it cannot be evaluated.
    pub fn matches(&self, headers: &[(String, String)], body: &[u8]) -> Result<bool, String> {
        let mut map: HashMap<String, String> = HashMap::with_capacity(headers.len());
        for (name, value) in headers {
            map.entry(name.clone()).or_insert_with(|| value.clone());
        }
        let body = if body.len() <= MAX_FILTER_BODY {
            serde_json::from_slice::<serde_json::Value>(body).unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Null
        };
        let mut context = cel::Context::default();
        let headers = cel::to_value(map).map_err(|e| e.to_string())?;
        let body = cel::to_value(body).map_err(|e| e.to_string())?;
        context
            .add_variable("headers", headers)
            .map_err(|e| e.to_string())?;
        context
            .add_variable("body", body)
            .map_err(|e| e.to_string())?;
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(format!("the filter gave {:?}, not a bool", other.type_of())),
            Err(err) => Err(single_line(&err.to_string())),
        }
    }
}

fn single_line(text: &str) -> String {
    super::delivery::bounded_text(text, 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<(String, String)> {
        vec![
            ("hookwarden-event".into(), "invoice.paid".into()),
            ("hookwarden-provider".into(), "stripe".into()),
        ]
    }

    #[test]
    fn headers_and_the_json_body_decide() {
        let filter = Filter::compile(
            r#"headers["hookwarden-event"] == "invoice.paid" && body.amount >= 100"#,
        )
        .expect("compiles");
        assert_eq!(filter.matches(&headers(), br#"{"amount":150}"#), Ok(true));
        assert_eq!(filter.matches(&headers(), br#"{"amount":50}"#), Ok(false));
        let other = vec![("hookwarden-event".into(), "invoice.created".into())];
        assert_eq!(filter.matches(&other, br#"{"amount":150}"#), Ok(false));
    }

    #[test]
    fn a_body_that_is_not_json_is_null_and_errors_are_reported() {
        let filter = Filter::compile("body == null").expect("compiles");
        assert_eq!(filter.matches(&headers(), b"a=1&b=2"), Ok(true));
        let big = vec![b' '; MAX_FILTER_BODY + 1];
        assert_eq!(filter.matches(&headers(), &big), Ok(true));
        let strict = Filter::compile("body.amount > 1").expect("compiles");
        assert!(strict.matches(&headers(), br#"{"other":1}"#).is_err());
        let guarded = Filter::compile("has(body.amount) && body.amount > 1").expect("compiles");
        assert_eq!(guarded.matches(&headers(), br#"{"other":1}"#), Ok(false));
        let not_bool = Filter::compile("body").expect("compiles");
        assert!(not_bool.matches(&headers(), b"{}").is_err());
    }

    #[test]
    fn bad_expressions_refuse_to_compile() {
        assert!(matches!(
            Filter::compile("headers[\"a\"] =="),
            Err(FilterError::Parse(_))
        ));
        assert_eq!(
            Filter::compile("request.size > 1").err(),
            Some(FilterError::UnknownVariable("request".into()))
        );
        assert_eq!(
            Filter::compile(&"a".repeat(MAX_EXPRESSION + 1)).err(),
            Some(FilterError::TooLong)
        );
    }
}
