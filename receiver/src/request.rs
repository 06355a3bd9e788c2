//! What requests an endpoint takes (`spec.request`): its HTTP methods, its
//! media types and its body cap. Pure rules, checked before the body is read.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use hookwarden_crds::{HttpMethod, RequestSpec};

/// The default cap on a delivery's body. GitHub caps payloads at 25 MB but
/// almost all are far smaller; the cap bounds the memory a single request
/// can take before it is verified.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The methods, media types and body cap of one endpoint version.
#[derive(Debug, Clone)]
pub struct RequestRules {
    /// Never empty: `POST` when the spec names none.
    methods: Vec<Method>,
    /// The `Allow` header of a 405: the methods, comma-separated.
    allow: HeaderValue,
    /// Lower-case media types without parameters; empty: any.
    content_types: Vec<String>,
    /// The largest body accepted, in bytes.
    body_limit: usize,
    /// Whether `body_limit` is `spec.request.maxBodyBytes` (else the flag).
    body_limit_from_spec: bool,
}

impl Default for RequestRules {
    /// `POST` only, any content type, [`DEFAULT_BODY_LIMIT`].
    fn default() -> Self {
        Self::posts(DEFAULT_BODY_LIMIT)
    }
}

/// Why `spec.request` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A listed content type is not a media type; ignoring it could turn the
    /// list into an empty one, which accepts any type.
    #[error(
        "spec.request.contentTypes[{index}]: {value:?} is not a media type (type/subtype, e.g. application/json)"
    )]
    ContentType {
        /// Which entry.
        index: usize,
        /// The entry as written.
        value: String,
    },
}

/// Where an endpoint's body cap came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimitSource {
    /// `spec.request.maxBodyBytes`.
    Spec,
    /// `--max-body-bytes` (the process default).
    Flag,
}

impl BodyLimitSource {
    /// The setting's name as the user wrote it.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Spec => "spec.request.maxBodyBytes",
            Self::Flag => "--max-body-bytes",
        }
    }
}

impl RequestRules {
    /// `POST` only, any content type, bodies up to `body_limit` bytes.
    pub fn posts(body_limit: usize) -> Self {
        Self {
            methods: vec![Method::POST],
            allow: HeaderValue::from_static("POST"),
            content_types: Vec::new(),
            body_limit,
            body_limit_from_spec: false,
        }
    }

    /// The rules of `spec.request`; the manifest's `maxBodyBytes` wins over
    /// `default_body_limit` (the `--max-body-bytes` flag): the manifest is
    /// the per-endpoint source of truth, the flag the process default.
    pub fn from_spec(
        spec: Option<&RequestSpec>,
        default_body_limit: usize,
    ) -> Result<Self, RequestError> {
        let mut methods: Vec<Method> = Vec::new();
        for listed in spec.map(|s| s.methods.as_slice()).unwrap_or_default() {
            let listed = method(*listed);
            if !methods.contains(&listed) {
                methods.push(listed);
            }
        }
        if methods.is_empty() {
            methods.push(Method::POST);
        }
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut content_types = Vec::new();
        for (index, value) in spec
            .map(|s| s.content_types.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let media = media_type(value).ok_or_else(|| RequestError::ContentType {
                index,
                value: value.clone(),
            })?;
            content_types.push(media);
        }
        let from_spec = spec
            .and_then(|s| s.max_body_bytes)
            .and_then(|n| usize::try_from(n).ok());
        Ok(Self {
            methods,
            // Method names are tokens, always a valid header value.
            allow: HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("POST")),
            content_types,
            body_limit: from_spec.unwrap_or(default_body_limit),
            body_limit_from_spec: from_spec.is_some(),
        })
    }

    /// The same rules with `default_body_limit` as the process default: it
    /// applies unless the manifest set `maxBodyBytes`.
    #[must_use]
    pub fn with_default_body_limit(mut self, default_body_limit: usize) -> Self {
        if !self.body_limit_from_spec {
            self.body_limit = default_body_limit;
        }
        self
    }

    /// Where the body cap came from.
    pub fn body_limit_source(&self) -> BodyLimitSource {
        if self.body_limit_from_spec {
            BodyLimitSource::Spec
        } else {
            BodyLimitSource::Flag
        }
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The accepted methods, as the `Allow` header of a 405 lists them.
    pub fn allow(&self) -> &HeaderValue {
        &self.allow
    }

    /// Whether `method` is one of the endpoint's methods.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// Whether the request's `Content-Type` is acceptable: always when no
    /// media types are configured; otherwise its media type (parameters
    /// ignored, case-insensitive) must be listed, and a missing, repeated or
    /// unreadable `Content-Type` is not acceptable.
    pub fn allows_content_type(&self, headers: &HeaderMap) -> bool {
        if self.content_types.is_empty() {
            return true;
        }
        let mut values = headers.get_all(header::CONTENT_TYPE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        value
            .to_str()
            .ok()
            .and_then(media_type)
            .is_some_and(|media| self.content_types.contains(&media))
    }
}

fn method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Get => Method::GET,
        HttpMethod::Delete => Method::DELETE,
    }
}

/// The media type of a `Content-Type` value: `type/subtype` in lower case,
/// without parameters (`Application/JSON; charset=utf-8` is
/// `application/json`). `None` when it is not of that shape.
pub fn media_type(value: &str) -> Option<String> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    (token(kind) && token(subtype)).then(|| essence.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(methods: &[HttpMethod], types: &[&str], max: Option<u32>) -> RequestSpec {
        RequestSpec {
            methods: methods.to_vec(),
            content_types: types.iter().map(|t| (*t).to_owned()).collect(),
            max_body_bytes: max,
            store_headers: Vec::new(),
        }
    }

    fn content_type(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            media_type(" application/x-www-form-urlencoded ").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            media_type("application/vnd.api+json;v=2").as_deref(),
            Some("application/vnd.api+json")
        );
        for bad in ["", "json", "/json", "application/", "a b/c", "text/plain x"] {
            assert_eq!(media_type(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn post_only_by_default() {
        let rules = RequestRules::from_spec(None, 1000).expect("rules");
        assert!(rules.allows_method(&Method::POST));
        assert!(!rules.allows_method(&Method::GET));
        assert_eq!(rules.allow(), "POST");
        assert_eq!(rules.body_limit(), 1000);
        assert!(rules.allows_content_type(&HeaderMap::new()), "any type");
    }

    #[test]
    fn configured_methods_are_allowed_and_listed() {
        let rules = RequestRules::from_spec(
            Some(&spec(&[HttpMethod::Put, HttpMethod::Get], &[], None)),
            1000,
        )
        .expect("rules");
        assert!(rules.allows_method(&Method::PUT));
        assert!(rules.allows_method(&Method::GET));
        assert!(!rules.allows_method(&Method::POST), "not listed");
        assert_eq!(rules.allow(), "PUT, GET");
    }

    #[test]
    fn the_spec_body_cap_wins_over_the_flag() {
        let rules = RequestRules::from_spec(Some(&spec(&[], &[], Some(4096))), 1000)
            .expect("rules")
            .with_default_body_limit(2000);
        assert_eq!(rules.body_limit(), 4096);
        assert_eq!(rules.body_limit_source(), BodyLimitSource::Spec);
        let rules = RequestRules::from_spec(Some(&spec(&[], &[], None)), 1000)
            .expect("rules")
            .with_default_body_limit(2000);
        assert_eq!(rules.body_limit(), 2000);
        assert_eq!(rules.body_limit_source(), BodyLimitSource::Flag);
    }

    #[test]
    fn listed_content_types_only() {
        let rules = RequestRules::from_spec(
            Some(&spec(
                &[],
                &["Application/JSON", "application/x-www-form-urlencoded"],
                None,
            )),
            1000,
        )
        .expect("rules");
        assert!(rules.allows_content_type(&content_type(&["application/json"])));
        assert!(rules.allows_content_type(&content_type(&["APPLICATION/json; charset=UTF-8"])));
        assert!(rules.allows_content_type(&content_type(&["application/x-www-form-urlencoded"])));
        assert!(!rules.allows_content_type(&content_type(&["text/plain"])));
        assert!(!rules.allows_content_type(&content_type(&["application/jsonp"])));
        assert!(!rules.allows_content_type(&HeaderMap::new()), "missing");
        assert!(
            !rules.allows_content_type(&content_type(&["application/json", "text/plain"])),
            "repeated"
        );
        assert!(
            !rules.allows_content_type(&content_type(&["json"])),
            "malformed"
        );
    }

    #[test]
    fn a_listed_type_that_is_not_a_media_type_is_an_error() {
        let err =
            RequestRules::from_spec(Some(&spec(&[], &["application/json", "json"], None)), 1000)
                .expect_err("not a media type");
        assert_eq!(
            err.to_string(),
            "spec.request.contentTypes[1]: \"json\" is not a media type (type/subtype, e.g. application/json)"
        );
    }
}
