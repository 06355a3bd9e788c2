//! Fetching one published list: a conditional HTTPS GET through the
//! client the key fetcher uses ([`crate::verify::keys::https`]), then the
//! strict parser of its format and the plausibility rules.
//!
//! Bounded on every side: a connect and a total timeout, a cap on the
//! document's size, no redirects (a `3xx` is a failure), only a URL that
//! passed [`crate::verify::keys::url::range_list_url`], and only to a
//! public address (a manifest's `url` cannot reach into the cluster).
//! `If-None-Match`/`If-Modified-Since` are sent with what the last good
//! answer carried, so an unchanged list costs the provider a `304`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{
    ETAG, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use ipnet::IpNet;

use super::formats::FormatError;
use super::plausibility::{self, Implausible};
use super::{ListSource, SavedList, texts};
use crate::verify::keys::https::{GetLimits, HttpsClient};

/// The largest document read. AWS's `ip-ranges.json`, the biggest list
/// supported, is about 2 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// The longest `ETag` or `Last-Modified` kept and sent back.
const MAX_VALIDATOR_LEN: usize = 256;

/// Why a list was not refreshed; the last good one stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one the fetcher GETs.
    #[error("the URL is not fetched (https on port 443 to a DNS name only)")]
    NotAllowed,
    /// No answer, or not one to read (timeout, TLS, refused, too large).
    #[error("{0}")]
    Http(&'static str),
    /// An answer other than `200` or `304` (redirects are not followed).
    #[error("the server answered {0}")]
    Status(u16),
    /// A `304` without a previous answer to keep.
    #[error("the server answered 304 to an unconditional request")]
    UnexpectedNotModified,
    /// The document does not parse.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The document parses, but the list is not believable.
    #[error(transparent)]
    Implausible(#[from] Implausible),
}

/// A good answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The list to keep from now on.
    pub saved: SavedList,
    /// Its ranges.
    pub networks: Vec<IpNet>,
    /// What changed against the previous list: `None` when nothing did
    /// (a `304`, or the same ranges), `Some((added, removed))` otherwise
    /// (everything added when there was no previous list).
    pub changes: Option<(Vec<IpNet>, Vec<IpNet>)>,
}

/// Fetches lists.
#[derive(Debug)]
pub struct RangeFetcher {
    client: HttpsClient,
    limits: GetLimits,
}

impl Default for RangeFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeFetcher {
    /// The bounds used: 5 s to connect, 30 s for a whole fetch (a 2 MiB
    /// document on a slow link), [`MAX_DOCUMENT_BYTES`], public addresses
    /// only.
    pub const LIMITS: GetLimits = GetLimits {
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        max_body_bytes: MAX_DOCUMENT_BYTES,
        public_only: true,
    };

    /// The system's roots, DNS.
    pub fn new() -> Self {
        Self {
            client: HttpsClient::new(),
            limits: Self::LIMITS,
        }
    }

    /// FOR TESTS ONLY: trusts `roots` and connects to `routes[host]` for
    /// the hosts of the lists (see [`HttpsClient::with_test_routes`]), with
    /// `total_timeout` instead of 30 s. Nothing in a manifest, a flag or
    /// the environment reaches this: the binaries never call it.
    pub fn with_test_routes(
        roots: rustls::RootCertStore,
        routes: HashMap<String, SocketAddr>,
        total_timeout: Duration,
    ) -> Self {
        Self {
            client: HttpsClient::with_test_routes(roots, routes),
            limits: GetLimits {
                total_timeout,
                ..Self::LIMITS
            },
        }
    }

    /// Fetches `source`, conditionally on `previous` (its last good
    /// answer), and returns the list to keep from now on, at `now` (Unix
    /// seconds). Any failure leaves `previous` as it is.
    pub async fn fetch(
        &self,
        source: &ListSource,
        previous: Option<&SavedList>,
        now: i64,
    ) -> Result<Fetched, FetchError> {
        let url = source.url().ok_or(FetchError::NotAllowed)?;
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        if let Some(previous) = previous {
            for (name, value) in [
                (IF_NONE_MATCH, &previous.etag),
                (IF_MODIFIED_SINCE, &previous.last_modified),
            ] {
                if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.push((name, value));
                }
            }
        }
        let answer = self
            .client
            .get(&url, &headers, self.limits)
            .await
            .map_err(FetchError::Http)?;
        let previous_networks = previous.and_then(|p| p.networks().ok());
        if answer.status == StatusCode::NOT_MODIFIED {
            let (Some(previous), Some(networks)) = (previous, previous_networks) else {
                return Err(FetchError::UnexpectedNotModified);
            };
            return Ok(Fetched {
                saved: SavedList {
                    fetched_at: now,
                    ..previous.clone()
                },
                networks,
                changes: None,
            });
        }
        if answer.status != StatusCode::OK {
            return Err(FetchError::Status(answer.status.as_u16()));
        }
        let networks = source.parse(&answer.body)?;
        plausibility::check(&networks, previous_networks.as_deref())?;
        let validator = |name| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= MAX_VALIDATOR_LEN)
                .map(str::to_owned)
        };
        let changes = match &previous_networks {
            Some(before) if *before == networks => None,
            Some(before) => Some(super::diff(before, &networks)),
            None => Some((networks.clone(), Vec::new())),
        };
        let changed_at = match (&changes, previous) {
            (None, Some(previous)) => previous.changed_at,
            _ => now,
        };
        Ok(Fetched {
            saved: SavedList {
                source: source.describe(),
                cidrs: texts(&networks),
                fetched_at: now,
                changed_at,
                etag: validator(ETAG),
                last_modified: validator(LAST_MODIFIED),
            },
            networks,
            changes,
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A list server on 127.0.0.1 port 0 with a test CA: answers can be
    //! changed while it runs, and it records the conditional headers.

    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use hyper::Request;
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::verify::keys::test_server::tls_listener;

    /// One canned answer.
    #[derive(Debug, Clone)]
    pub(crate) struct Canned {
        pub(crate) status: u16,
        pub(crate) body: Vec<u8>,
        pub(crate) etag: Option<String>,
        /// Wait this long before answering.
        pub(crate) delay: Duration,
    }

    impl Canned {
        pub(crate) fn ok(body: impl Into<Vec<u8>>) -> Self {
            Self {
                status: 200,
                body: body.into(),
                etag: None,
                delay: Duration::ZERO,
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct ListServer {
        pub(crate) address: SocketAddr,
        roots: rustls::RootCertStore,
        hosts: Vec<String>,
        /// Path → answer.
        pub(crate) answers: Arc<Mutex<HashMap<String, Canned>>>,
        /// `If-None-Match` of each request, in order.
        pub(crate) conditions: Arc<Mutex<Vec<Option<String>>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for ListServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl ListServer {
        pub(crate) async fn start(hosts: &[&str]) -> Self {
            let (acceptor, roots, listener, address) = tls_listener(hosts).await;
            let answers: Arc<Mutex<HashMap<String, Canned>>> = Arc::default();
            let conditions: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
            let task = {
                let answers = Arc::clone(&answers);
                let conditions = Arc::clone(&conditions);
                tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let acceptor = acceptor.clone();
                        let answers = Arc::clone(&answers);
                        let conditions = Arc::clone(&conditions);
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let service = hyper::service::service_fn(
                                move |request: Request<hyper::body::Incoming>| {
                                    let path = request.uri().path().to_owned();
                                    let condition = request
                                        .headers()
                                        .get(IF_NONE_MATCH)
                                        .and_then(|v| v.to_str().ok())
                                        .map(str::to_owned);
                                    conditions.lock().expect("lock").push(condition.clone());
                                    let canned = answers.lock().expect("lock").get(&path).cloned();
                                    async move {
                                        let canned = canned.unwrap_or(Canned {
                                            status: 404,
                                            body: Vec::new(),
                                            etag: None,
                                            delay: Duration::ZERO,
                                        });
                                        tokio::time::sleep(canned.delay).await;
                                        let not_modified =
                                            canned.etag.is_some() && canned.etag == condition;
                                        let mut response = hyper::Response::builder()
                                            .status(if not_modified { 304 } else { canned.status });
                                        if let Some(etag) = &canned.etag {
                                            response = response.header(ETAG, etag);
                                        }
                                        let body = if not_modified {
                                            Vec::new()
                                        } else {
                                            canned.body
                                        };
                                        response.body(http_body_util::Full::new(Bytes::from(body)))
                                    }
                                },
                            );
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    }
                })
            };
            Self {
                address,
                roots,
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                answers,
                conditions,
                task,
            }
        }

        pub(crate) fn serve(&self, path: &str, canned: Canned) {
            self.answers
                .lock()
                .expect("lock")
                .insert(path.to_owned(), canned);
        }

        pub(crate) fn fetcher(&self, total_timeout: Duration) -> RangeFetcher {
            RangeFetcher::with_test_routes(
                self.roots.clone(),
                self.hosts
                    .iter()
                    .map(|h| (h.clone(), self.address))
                    .collect(),
                total_timeout,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{Canned, ListServer};
    use super::*;

    const HOST: &str = "api.github.com";

    fn github() -> ListSource {
        ListSource::Github {
            service: "hooks".to_owned(),
        }
    }

    fn meta(hooks: &[&str]) -> Vec<u8> {
        serde_json::json!({"verifiable_password_authentication": false, "hooks": hooks, "web": ["140.82.112.0/20"]})
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn a_good_list_then_a_conditional_refresh() {
        let server = ListServer::start(&[HOST]).await;
        let fetcher = server.fetcher(Duration::from_secs(5));
        server.serve(
            "/meta",
            Canned {
                etag: Some("\"v1\"".to_owned()),
                ..Canned::ok(include_bytes!("testdata/github-meta.json").to_vec())
            },
        );
        let first = fetcher.fetch(&github(), None, 100).await.expect("fetched");
        assert_eq!(first.networks.len(), 6);
        assert_eq!(first.saved.etag.as_deref(), Some("\"v1\""));
        assert_eq!(first.changes.as_ref().map(|c| c.0.len()), Some(6));
        let again = fetcher
            .fetch(&github(), Some(&first.saved), 200)
            .await
            .expect("304");
        assert_eq!(again.changes, None);
        assert_eq!(again.saved.fetched_at, 200);
        assert_eq!(again.saved.changed_at, 100);
        assert_eq!(again.networks, first.networks);
        let conditions = server.conditions.lock().expect("lock").clone();
        assert_eq!(conditions, [None, Some("\"v1\"".to_owned())]);
    }

    #[tokio::test]
    async fn changes_are_reported_and_failures_refused() {
        let server = ListServer::start(&[HOST]).await;
        let fetcher = server.fetcher(Duration::from_secs(2));
        server.serve("/meta", Canned::ok(meta(&["127.0.0.0/8", "10.0.0.0/8"])));
        let first = fetcher.fetch(&github(), None, 1).await.expect("fetched");
        server.serve("/meta", Canned::ok(meta(&["127.0.0.0/8", "192.0.2.0/24"])));
        let second = fetcher
            .fetch(&github(), Some(&first.saved), 2)
            .await
            .expect("changed");
        let (added, removed) = second.changes.clone().expect("changes");
        assert_eq!(texts(&added), ["192.0.2.0/24"]);
        assert_eq!(texts(&removed), ["10.0.0.0/8"]);

        for (canned, what) in [
            (
                Canned {
                    status: 500,
                    ..Canned::ok(Vec::new())
                },
                "a 500",
            ),
            (
                Canned {
                    status: 302,
                    ..Canned::ok(Vec::new())
                },
                "a redirect",
            ),
            (Canned::ok(b"{\"hooks\": \"nope\"}".to_vec()), "malformed"),
            (Canned::ok(meta(&[])), "empty"),
            (Canned::ok(meta(&["0.0.0.0/0"])), "the internet"),
            (Canned::ok(vec![b' '; MAX_DOCUMENT_BYTES + 1]), "too large"),
            (
                Canned {
                    delay: Duration::from_secs(10),
                    ..Canned::ok(meta(&["127.0.0.0/8"]))
                },
                "slow",
            ),
        ] {
            server.serve("/meta", canned);
            assert!(
                fetcher
                    .fetch(&github(), Some(&second.saved), 3)
                    .await
                    .is_err(),
                "{what}"
            );
        }
        let shrink = [
            "1.0.0.0/24",
            "2.0.0.0/24",
            "3.0.0.0/24",
            "4.0.0.0/24",
            "5.0.0.0/24",
        ];
        server.serve("/meta", Canned::ok(meta(&shrink)));
        let five = fetcher.fetch(&github(), None, 4).await.expect("five");
        server.serve("/meta", Canned::ok(meta(&shrink[..2])));
        assert!(matches!(
            fetcher.fetch(&github(), Some(&five.saved), 5).await,
            Err(FetchError::Implausible(Implausible::Shrank { .. }))
        ));
    }

    #[tokio::test]
    async fn lists_are_fetched_only_from_allowed_urls_and_names() {
        // Nothing listens on the real name here, and a route does not make
        // a name that fails the rule fetchable.
        let server = ListServer::start(&["ranges.example.com"]).await;
        let fetcher = server.fetcher(Duration::from_secs(2));
        server.serve("/r.json", Canned::ok(br#"{"r": ["127.0.0.0/8"]}"#.to_vec()));
        let source = ListSource::from_spec(&hookwarden_crds::AllowedSource {
            url: Some("https://ranges.example.com/r.json".to_owned()),
            json_path: Some("$.r".to_owned()),
            ..Default::default()
        })
        .expect("source");
        let fetched = fetcher.fetch(&source, None, 1).await.expect("fetched");
        assert_eq!(texts(&fetched.networks), ["127.0.0.0/8"]);
        // The system's roots do not include the test CA.
        let untrusting = RangeFetcher::with_test_routes(
            rustls::RootCertStore::empty(),
            HashMap::from([("ranges.example.com".to_owned(), server.address)]),
            Duration::from_secs(2),
        );
        assert!(untrusting.fetch(&source, None, 1).await.is_err());
    }
}
