//! NATS server URLs as the `nats` CLI and the Go client read them: one
//! server or a comma-separated list, each
//! `[nats|tls|ws|wss://][user:password@|token@]host[:port]`, the userinfo
//! percent-encoded.
//!
//! async-nats (0.51) parses a URL's userinfo but never sends it: a server
//! that checks credentials answers `authorization violation` to
//! `nats://user:password@host`. So the credentials are taken out of the URL
//! here and handed to the client as options (`user_and_password`, `token`),
//! and the client only ever sees the servers without them, which also keeps
//! them out of its own logs of the addresses it dials. The password or
//! token goes into the log registry ([`crate::logging`]) for the lines that
//! still carry it (the client's `CONNECT` trace).

use std::fmt;

use async_nats::{ConnectOptions, ServerAddr};
use percent_encoding::percent_decode_str;

use crate::redact::redact_url;

/// Why a NATS URL cannot be used. Never shows the credentials: the URL is
/// always shown redacted.
#[derive(Debug, thiserror::Error)]
pub enum NatsUrlError {
    /// A server address cannot be parsed.
    #[error("NATS URL {shown} is invalid: {reason}")]
    Invalid {
        /// The URL, credentials replaced by `***`.
        shown: String,
        /// What is wrong (the URL parser's message, without the URL).
        reason: String,
    },
    /// The percent-decoded user, password or token is not UTF-8, which the
    /// NATS protocol's JSON `CONNECT` cannot carry.
    #[error("NATS URL {shown}: the credentials are not UTF-8 once percent-decoded")]
    NotUtf8 {
        /// The URL, credentials replaced by `***`.
        shown: String,
    },
    /// Servers of one list carry different credentials; a client presents
    /// one set to every server it connects to.
    #[error(
        "NATS URL {shown}: the servers carry different credentials; a NATS client presents the same ones to every server of the list"
    )]
    DifferentCredentials {
        /// The URL, credentials replaced by `***`.
        shown: String,
    },
}

/// Why connecting to NATS failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsConnectError {
    /// The URL cannot be used.
    #[error(transparent)]
    Url(#[from] NatsUrlError),
    /// The server could not be reached or refused the credentials.
    #[error("cannot connect to NATS at {shown}: {source}")]
    Connect {
        /// The URL, credentials replaced by `***`.
        shown: String,
        /// The client's error.
        source: async_nats::ConnectError,
    },
}

impl NatsConnectError {
    /// The client's error kind, when the server was contacted.
    pub fn kind(&self) -> Option<async_nats::ConnectErrorKind> {
        match self {
            Self::Url(_) => None,
            Self::Connect { source, .. } => Some(source.kind()),
        }
    }
}

/// The credentials of a URL's userinfo, decoded.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    /// `user:password@` (the password may be empty, as in Go's client).
    UserPassword { user: String, password: String },
    /// `token@`.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"[redacted]")
                .finish(),
            Self::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// A parsed NATS URL: the servers without credentials, and the credentials.
#[derive(Clone)]
pub struct NatsUrl {
    servers: Vec<ServerAddr>,
    credentials: Option<Credentials>,
    shown: String,
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsUrl")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl NatsUrl {
    /// Parses `url`, and registers its password or token (decoded, and as
    /// written) with the log registry of this process.
    pub fn parse(url: &str) -> Result<Self, NatsUrlError> {
        let shown = redact_url(url);
        let mut servers = Vec::new();
        let mut credentials: Option<Credentials> = None;
        for server in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (address, userinfo) = split_userinfo(server);
            let parsed = address
                .parse::<ServerAddr>()
                .map_err(|e| NatsUrlError::Invalid {
                    shown: shown.clone(),
                    reason: e.to_string(),
                })?;
            servers.push(parsed);
            let Some(userinfo) = userinfo else {
                continue;
            };
            // The password (or the token) as written, percent-encoded or not.
            let written = userinfo
                .split_once(':')
                .map_or(userinfo, |(_, password)| password);
            crate::logging::register_secret(written.as_bytes());
            let these = decode(userinfo).ok_or_else(|| NatsUrlError::NotUtf8 {
                shown: shown.clone(),
            })?;
            match &these {
                Credentials::UserPassword { password, .. } => {
                    crate::logging::register_secret(password.as_bytes());
                }
                Credentials::Token(token) => crate::logging::register_secret(token.as_bytes()),
            }
            match &credentials {
                Some(earlier) if *earlier != these => {
                    return Err(NatsUrlError::DifferentCredentials { shown });
                }
                _ => credentials = Some(these),
            }
        }
        if servers.is_empty() {
            return Err(NatsUrlError::Invalid {
                shown,
                reason: "no server".to_owned(),
            });
        }
        Ok(Self {
            servers,
            credentials,
            shown,
        })
    }

    /// The URL as it may be shown: credentials replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the URL carries credentials.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `options` with the URL's credentials, if it has any. They are
    /// presented to every server, the discovered ones included.
    pub fn apply(&self, options: ConnectOptions) -> ConnectOptions {
        match &self.credentials {
            None => options,
            Some(Credentials::UserPassword { user, password }) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Some(Credentials::Token(token)) => options.token(token.clone()),
        }
    }

    /// Connects with `options` and the URL's credentials.
    pub async fn connect(
        &self,
        options: ConnectOptions,
    ) -> Result<async_nats::Client, NatsConnectError> {
        self.apply(options)
            .connect(self.servers.clone())
            .await
            .map_err(|source| NatsConnectError::Connect {
                shown: self.shown.clone(),
                source,
            })
    }
}

/// Parses `url` and connects with `options` and its credentials.
pub async fn connect(
    url: &str,
    options: ConnectOptions,
) -> Result<async_nats::Client, NatsConnectError> {
    NatsUrl::parse(url)?.connect(options).await
}

/// `server` without its userinfo, and the userinfo as written: what comes
/// before the last `@` of the authority (which ends at the first `/`), as
/// Go's `net/url` and [`redact_url`] split it.
fn split_userinfo(server: &str) -> (String, Option<&str>) {
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, server),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (server.to_owned(), None);
    };
    let without = &rest[at + 1..];
    let address = match scheme {
        Some(scheme) => format!("{scheme}://{without}"),
        None => without.to_owned(),
    };
    (address, Some(&rest[..at]))
}

/// The credentials of a userinfo: `user:password` (split at the first
/// `:`, so a password may hold more) or a token, percent-decoded. `None`
/// when a decoded part is not UTF-8.
fn decode(userinfo: &str) -> Option<Credentials> {
    let text = |part: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .ok()
            .map(String::from)
    };
    Some(match userinfo.split_once(':') {
        Some((user, password)) => Credentials::UserPassword {
            user: text(user)?,
            password: text(password)?,
        },
        None => Credentials::Token(text(userinfo)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(url: &str) -> Option<Credentials> {
        NatsUrl::parse(url).expect("parses").credentials
    }

    fn user_password(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials::UserPassword {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    #[test]
    fn userinfo_becomes_decoded_credentials_and_leaves_the_servers() {
        assert_eq!(
            credentials("nats://hook:s3cret@nats.x.svc:4222"),
            user_password("hook", "s3cret")
        );
        assert_eq!(
            credentials("nats://hook:p%40ss%3Aw%2Frd%25@127.0.0.1:4222"),
            user_password("hook", "p@ss:w/rd%")
        );
        assert_eq!(
            credentials("nats://hook:p@ss@127.0.0.1"),
            user_password("hook", "p@ss"),
            "the last @ ends the userinfo"
        );
        assert_eq!(credentials("nats://hook:@h"), user_password("hook", ""));
        assert_eq!(
            credentials("tls://t0k%2Ben@h:4443"),
            Some(Credentials::Token("t0k+en".to_owned()))
        );
        assert_eq!(credentials("h:4222"), None);
        assert_eq!(credentials("u:p@h:4222"), user_password("u", "p"));

        let url = NatsUrl::parse("nats://hook:s3cret@a:4222, nats://b:4223").expect("list");
        let servers: Vec<&str> = url.servers.iter().map(ServerAddr::as_url_str).collect();
        assert_eq!(servers, ["nats://a:4222", "nats://b:4223"]);
        assert!(url.has_credentials());
        assert_eq!(url.shown(), "nats://***@a:4222, nats://b:4223");
        let tls = NatsUrl::parse("tls://tok@h:4443").expect("tls");
        assert!(tls.servers[0].tls_required());
        assert!(!tls.servers[0].has_user_pass());
    }

    #[test]
    fn errors_and_debug_never_show_the_credentials() {
        let url = NatsUrl::parse("nats://hook:s3cret@h:4222").expect("parses");
        assert!(!format!("{url:?}").contains("s3cret"), "{url:?}");
        for (bad, what) in [
            (
                "nats://a:s3cret@h1:4222,nats://b:s3cret@h2:4222",
                "different",
            ),
            ("nats://hook:s3cret@h:notaport", "invalid"),
            ("http://hook:s3cret@h:4222", "invalid"),
            ("nats://hook:s3cret%FF@h:4222", "UTF-8"),
            (" , ", "no server"),
        ] {
            let err = NatsUrl::parse(bad).expect_err(bad);
            let text = format!("{err} {err:?}");
            assert!(text.contains(what), "{bad}: {text}");
            assert!(!text.contains("s3cret"), "{bad}: {text}");
        }
    }

    #[test]
    fn the_password_and_token_are_registered_as_decoded_and_as_written() {
        NatsUrl::parse("nats://hook:url-p%40ss@h:4222").expect("parses");
        NatsUrl::parse("nats://url-t0ken@h:4222").expect("parses");
        let line = "url-p@ss url-p%40ss url-t0ken";
        let redacted = crate::logging::registry()
            .redact(line.as_bytes())
            .into_owned();
        let redacted = String::from_utf8(redacted).expect("utf-8");
        // Other tests of this process add their secrets to the same
        // registry: only these values are checked.
        assert_eq!(redacted.matches("[redacted]").count(), 3, "{redacted}");
        for value in ["url-p@ss", "url-p%40ss", "url-t0ken"] {
            assert!(!redacted.contains(value), "{redacted}");
        }
    }
}
