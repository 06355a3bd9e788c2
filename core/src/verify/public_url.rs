//! The public URL a provider called, for the presets that sign it (Twilio,
//! Square).
//!
//! The receiver only sees the request as the ingress forwarded it: its own
//! scheme (often plain HTTP behind a TLS-terminating ingress), its own host
//! and port. So the part before the query comes from the spec, never from
//! the request:
//!
//! - `spec.publicUrl` when set (scheme, host, port if any, path; a query or
//!   fragment written there is refused, see below);
//! - else `https://<spec.ingress.host><spec.ingress.path>`: the operator's
//!   Ingress routes that prefix to the receiver without rewriting it, and the
//!   receiver accepts deliveries on exactly `ingress.path`, so the path the
//!   provider called is the configured one.
//!
//! The query is the one of the request, byte for byte as received: the
//! provider calls the configured URL with its query string, ingresses pass
//! the query through unchanged, and Twilio adds `bodySHA256=` to it for JSON
//! bodies, so no static value could hold it. For the same reason a query in
//! `spec.publicUrl` is refused at startup instead of being silently ignored.

use hookwarden_crds::WebhookEndpointSpec;

/// Why no public URL could be built from the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicUrlError {
    /// `spec.publicUrl` is not an `http(s)://host[:port][/path]` URL.
    #[error("spec.publicUrl is not usable: {0}")]
    Invalid(&'static str),
}

/// Scheme, host, port and path of the URL the provider calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
    path: String,
}

impl PublicUrl {
    /// `spec.publicUrl`, else the Ingress's host and path; `None` when the
    /// spec has neither.
    pub fn from_spec(spec: &WebhookEndpointSpec) -> Result<Option<Self>, PublicUrlError> {
        if let Some(text) = &spec.public_url {
            return Self::parse(text).map(Some);
        }
        Ok(spec.ingress.as_ref().map(|ingress| Self {
            scheme: "https",
            host: ingress.host.clone(),
            port: None,
            path: ingress.path.clone(),
        }))
    }

    /// Parses `http(s)://host[:port][/path]`. User information, a query and
    /// a fragment are refused; the path is kept byte for byte (no
    /// normalisation: the provider signs it as written).
    pub fn parse(text: &str) -> Result<Self, PublicUrlError> {
        let invalid = PublicUrlError::Invalid;
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "only visible ASCII is allowed (percent-encode the rest)",
            ));
        }
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err(invalid("it must start with https:// or http://"));
        };
        if text.contains('?') || text.contains('#') {
            return Err(invalid(
                "it must not carry a query or fragment: the query of each request is used as received",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid(
                "user information (user:password@) is not supported",
            ));
        }
        // An IPv6 literal is bracketed; its colons are not the port's.
        let port_colon = match authority.rfind(']') {
            Some(end) => authority[end..].find(':').map(|at| end + at),
            None => authority.rfind(':'),
        };
        let (host, port) = match port_colon {
            Some(at) => {
                let digits = &authority[at + 1..];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("the port is not a number"));
                }
                let port = digits
                    .parse::<u16>()
                    .map_err(|_| invalid("the port is out of range"))?;
                (&authority[..at], Some(port))
            }
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The path as configured (possibly empty: the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL the provider called, with the request's raw `query`.
    pub fn with_query(&self, query: Option<&str>) -> String {
        self.render(self.port, query)
    }

    /// Twilio's two spellings of the URL, as its `RequestValidator` tries
    /// them: without any port, and with the port (the scheme's default,
    /// 443 or 80, when none is written).
    pub fn without_and_with_port(&self, query: Option<&str>) -> [String; 2] {
        let default = if self.scheme == "https" { 443 } else { 80 };
        [
            self.render(None, query),
            self.render(Some(self.port.unwrap_or(default)), query),
        ]
    }

    fn render(&self, port: Option<u16>, query: Option<&str>) -> String {
        let mut url = format!("{}://{}", self.scheme, self.host);
        if let Some(port) = port {
            url.push(':');
            url.push_str(&port.to_string());
        }
        url.push_str(&self.path);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WebhookEndpointSpec {
        let manifest = format!(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\nmetadata: {{name: e}}\nspec:\n  provider: twilio\n{yaml}"
        );
        hookwarden_crds::from_yaml(&manifest)
            .expect("manifest")
            .spec
    }

    #[test]
    fn public_url_wins_over_the_ingress() {
        let url = PublicUrl::from_spec(&spec(
            "  publicUrl: https://hooks.example.com:8443/sms/in\n  ingress: {host: other.example.com, path: /x}\n",
        ))
        .expect("valid")
        .expect("present");
        assert_eq!(
            url.with_query(Some("a=1&b=%20")),
            "https://hooks.example.com:8443/sms/in?a=1&b=%20"
        );
        assert_eq!(
            url.with_query(None),
            "https://hooks.example.com:8443/sms/in"
        );
    }

    #[test]
    fn the_ingress_gives_an_https_url_with_its_path() {
        let url = PublicUrl::from_spec(&spec(
            "  ingress: {host: hooks.example.com, path: /twilio}\n",
        ))
        .expect("valid")
        .expect("present");
        assert_eq!(
            url.with_query(Some("bodySHA256=ab")),
            "https://hooks.example.com/twilio?bodySHA256=ab"
        );
        let root = PublicUrl::from_spec(&spec("  ingress: {host: hooks.example.com}\n"))
            .expect("valid")
            .expect("present");
        assert_eq!(root.with_query(None), "https://hooks.example.com/");
    }

    #[test]
    fn neither_field_is_none() {
        assert_eq!(PublicUrl::from_spec(&spec("")), Ok(None));
    }

    #[test]
    fn twilio_spellings_add_the_default_port_or_drop_the_written_one() {
        let plain = PublicUrl::parse("https://mycompany.com/myapp.php").expect("valid");
        assert_eq!(
            plain.without_and_with_port(Some("foo=1")),
            [
                "https://mycompany.com/myapp.php?foo=1".to_owned(),
                "https://mycompany.com:443/myapp.php?foo=1".to_owned()
            ]
        );
        let http = PublicUrl::parse("http://mycompany.com").expect("valid");
        assert_eq!(
            http.without_and_with_port(None),
            [
                "http://mycompany.com".to_owned(),
                "http://mycompany.com:80".to_owned()
            ]
        );
        let ported = PublicUrl::parse("https://[2001:db8::1]:1234/x").expect("valid");
        assert_eq!(
            ported.without_and_with_port(None),
            [
                "https://[2001:db8::1]/x".to_owned(),
                "https://[2001:db8::1]:1234/x".to_owned()
            ]
        );
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        for (text, reason) in [
            ("ftp://a.example.com/", "https://"),
            ("https://a.example.com/?x=1", "query"),
            ("https://a.example.com/#f", "query or fragment"),
            ("https://user:pw@a.example.com/", "user information"),
            ("https://a.example.com:99999/", "out of range"),
            ("https://a.example.com:x/", "not a number"),
            ("https:///path", "host is empty"),
            ("https://a.example.com/ x", "visible ASCII"),
        ] {
            let err = PublicUrl::parse(text).expect_err(text);
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }
}
