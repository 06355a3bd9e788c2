//! The saved raw HTTP/1.1 request `verify --request` reads.

use hyper::http::header::{InvalidHeaderName, InvalidHeaderValue};
use hyper::http::method::InvalidMethod;
use hyper::http::uri::InvalidUri;
use hyper::http::{HeaderMap, HeaderName, HeaderValue};

/// What is wrong with a saved request: which part, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SavedRequestError {
    #[error("the request ends before the blank line after the headers")]
    Incomplete,
    #[error("not an HTTP/1.1 request: {0}")]
    NotHttp(#[source] httparse::Error),
    #[error("request method: {0}")]
    Method(#[source] InvalidMethod),
    #[error("request target: {0}")]
    Target(#[source] InvalidUri),
    #[error("header {name:?}: {source}")]
    HeaderName {
        name: String,
        source: InvalidHeaderName,
    },
    #[error("header {name:?}: {source}")]
    HeaderValue {
        name: String,
        source: InvalidHeaderValue,
    },
    #[error("Content-Length is not a number")]
    ContentLength,
    #[error("the body is {actual} bytes, Content-Length says {declared}")]
    ShortBody { actual: usize, declared: usize },
}

/// A saved request: method, request target, headers and body.
#[derive(Debug)]
pub struct SavedRequest {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl SavedRequest {
    /// Parses request line, headers (at most 128) and body: the body is
    /// `Content-Length` bytes when the header is there (what follows is
    /// ignored), else everything after the blank line.
    pub fn parse(raw: &[u8]) -> Result<Self, SavedRequestError> {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut slots);
        let head_len = match request.parse(raw) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Err(SavedRequestError::Incomplete),
            Err(e) => return Err(SavedRequestError::NotHttp(e)),
        };
        let method = request
            .method
            .unwrap_or("POST")
            .parse::<hyper::Method>()
            .map_err(SavedRequestError::Method)?;
        let uri = request
            .path
            .unwrap_or("/")
            .parse::<hyper::Uri>()
            .map_err(SavedRequestError::Target)?;
        let mut headers = HeaderMap::new();
        for header in request.headers.iter() {
            let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|source| {
                SavedRequestError::HeaderName {
                    name: header.name.to_owned(),
                    source,
                }
            })?;
            let value = HeaderValue::from_bytes(header.value).map_err(|source| {
                SavedRequestError::HeaderValue {
                    name: header.name.to_owned(),
                    source,
                }
            })?;
            headers.append(name, value);
        }
        let rest = raw.get(head_len..).unwrap_or_default();
        let body = match headers.get(hyper::header::CONTENT_LENGTH) {
            Some(length) => {
                let declared: usize = length
                    .to_str()
                    .ok()
                    .and_then(|l| l.trim().parse().ok())
                    .ok_or(SavedRequestError::ContentLength)?;
                rest.get(..declared)
                    .ok_or(SavedRequestError::ShortBody {
                        actual: rest.len(),
                        declared,
                    })?
                    .to_vec()
            }
            None => rest.to_vec(),
        };
        Ok(Self {
            method,
            uri,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_method_target_headers_and_content_length_bytes_of_body() {
        let raw = b"POST /hooks/github?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\
                    Content-Length: 7\r\n\r\n{\"a\":1}trailing";
        let saved = SavedRequest::parse(raw).expect("a request");
        assert_eq!(saved.method, hyper::Method::POST);
        assert_eq!(saved.uri, "/hooks/github?x=1");
        let repeated: Vec<_> = saved.headers.get_all("x-a").iter().collect();
        assert_eq!(repeated, ["1", "2"], "repeated headers are all kept");
        assert_eq!(saved.body, b"{\"a\":1}");
    }

    #[test]
    fn without_content_length_the_body_is_everything_after_the_blank_line() {
        let saved = SavedRequest::parse(b"PUT / HTTP/1.1\r\nHost: h\r\n\r\nline 1\nline 2\n")
            .expect("a request");
        assert_eq!(saved.method, hyper::Method::PUT);
        assert_eq!(saved.body, b"line 1\nline 2\n");
    }

    #[test]
    fn bare_newlines_are_accepted_as_a_saved_file_may_have_them() {
        let saved =
            SavedRequest::parse(b"POST / HTTP/1.1\nContent-Length: 2\n\nok").expect("a request");
        assert_eq!(saved.body, b"ok");
    }

    #[test]
    fn a_request_without_the_blank_line_is_incomplete() {
        assert!(matches!(
            SavedRequest::parse(b"POST / HTTP/1.1\r\nHost: h\r\n"),
            Err(SavedRequestError::Incomplete)
        ));
    }

    #[test]
    fn what_is_not_http_is_refused() {
        assert!(matches!(
            SavedRequest::parse(b"\x00\x01 not a request\r\n\r\n"),
            Err(SavedRequestError::NotHttp(_))
        ));
    }

    #[test]
    fn content_length_must_be_a_number_and_the_body_that_long() {
        assert!(matches!(
            SavedRequest::parse(b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\nbody"),
            Err(SavedRequestError::ContentLength)
        ));
        let short = SavedRequest::parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nbody");
        assert!(matches!(
            short,
            Err(SavedRequestError::ShortBody {
                actual: 4,
                declared: 10
            })
        ));
        assert_eq!(
            short.map(|_| ()).expect_err("short").to_string(),
            "the body is 4 bytes, Content-Length says 10"
        );
    }

    #[test]
    fn errors_name_the_header_never_its_value() {
        let error = SavedRequest::parse(b"POST / HTTP/1.1\r\nX-Token: s3cr\x7fet\r\n\r\n")
            .map(|_| ())
            .expect_err("a control character in a value");
        assert!(!error.to_string().contains("s3cr"), "{error}");
    }
}
