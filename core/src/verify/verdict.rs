//! What a verification concludes: a delivery to store or a handshake to
//! answer ([`Verdict`]), or why the request was refused ([`Rejection`],
//! with its stable reason code).

use super::keys;

/// What to do with a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A delivery: store it.
    Deliver(Verified),
    /// A provider's endpoint-verification handshake, verified where the
    /// provider signs it: answer it; store it only if `publish`.
    Handshake(Handshake),
}

/// A verified handshake and the answer the provider expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// What verification learned; the event is always `handshake`.
    pub verified: Verified,
    /// The answer's `Content-Type`.
    pub content_type: &'static str,
    /// The answer's body.
    pub body: Vec<u8>,
    /// Also store the request (`spec.handshake.publish`).
    pub publish: bool,
    /// Response headers the answer needs besides `Content-Type` (the
    /// CloudEvents `OPTIONS` handshake answers in `WebHook-Allowed-Origin`).
    pub headers: Vec<(&'static str, String)>,
}

/// The event type handshakes are reported (and published) under.
pub const HANDSHAKE_EVENT: &str = "handshake";

impl Handshake {
    /// The verdict answering a handshake with `body`, not published.
    pub(crate) fn answer(verified: Verified, content_type: &'static str, body: Vec<u8>) -> Verdict {
        Verdict::Handshake(Self {
            verified: Verified {
                event: Some(HANDSHAKE_EVENT.to_owned()),
                ..verified
            },
            content_type,
            body,
            publish: false,
            headers: Vec::new(),
        })
    }
}

/// A challenge a handshake echoes back: at most 1024 bytes of visible ASCII
/// (what providers send), anything else is refused rather than reflected.
pub(crate) fn challenge(value: Option<&str>) -> Result<String, Rejection> {
    let value = value.ok_or(Rejection::HandshakeMalformed)?;
    if value.is_empty() || value.len() > 1024 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::HandshakeMalformed);
    }
    Ok(value.to_owned())
}

/// What a successful verification learned about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The provider's event type (e.g. GitHub's `push`), if it sent one.
    pub event: Option<String>,
    /// The provider's unique id of this delivery, if it sent one. Redeliveries
    /// of the same event keep it, which is what makes de-duplication work.
    pub delivery_id: Option<String>,
    /// Which of the configured secrets matched (its index in `secretRefs`),
    /// so operators can tell when a rotated-out secret is no longer used.
    pub secret_index: usize,
}

/// Why a delivery was refused. Each variant has a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The signature header is absent.
    #[error("signature_missing")]
    SignatureMissing,
    /// The signature header is present but cannot be a valid signature
    /// (repeated, wrong scheme prefix, not hex, wrong length).
    #[error("signature_malformed")]
    SignatureMalformed,
    /// The signature is well-formed but no configured secret produces it.
    #[error("signature_mismatch")]
    SignatureMismatch,
    /// The signed timestamp header is absent.
    #[error("timestamp_missing")]
    TimestampMissing,
    /// The signed timestamp is not Unix seconds.
    #[error("timestamp_malformed")]
    TimestampMalformed,
    /// The signed timestamp is too old or too far in the future (a replay,
    /// or a badly wrong clock).
    #[error("timestamp_out_of_tolerance")]
    TimestampOutOfTolerance,
    /// The shared-token header is absent.
    #[error("token_missing")]
    TokenMissing,
    /// The shared token is not one of the accepted ones (or is repeated).
    #[error("token_mismatch")]
    TokenMismatch,
    /// No HTTP Basic credentials were sent.
    #[error("basic_auth_missing")]
    BasicAuthMissing,
    /// The HTTP Basic credentials are wrong or malformed.
    #[error("basic_auth_mismatch")]
    BasicAuthMismatch,
    /// The signature verified, but the body does not match the hash the
    /// signed URL carries (Twilio's `bodySHA256`).
    #[error("body_hash_mismatch")]
    BodyHashMismatch,
    /// A handshake (verified where signed) lacks what must be answered, or
    /// is not the provider's documented shape.
    #[error("handshake_malformed")]
    HandshakeMalformed,
    /// The key the delivery names could not be fetched (network failure,
    /// timeout, no usable key, or the fetch bounds): answered 503 so the
    /// provider retries.
    #[error("key_unavailable")]
    KeyUnavailable,
    /// The delivery names a key URL outside the provider's hosts; nothing
    /// was fetched.
    #[error("key_url_not_allowed")]
    KeyUrlNotAllowed,
    /// The signing certificate the delivery names was fetched from the
    /// provider's host but fails the provider's own checks
    /// ([`keys::certificate`]): expired, not yet valid, for another
    /// subject, or not chained to a trusted root. The
    /// URL is then not fetched again for a while and gets the same answer.
    #[error("{}", self.code())]
    KeyCertificate(keys::CertificateFault),
    /// The signature verified, but the sender is not one the endpoint
    /// accepts (an SNS topic outside `spec.aws.topicArns`, another Google
    /// service account).
    #[error("sender_not_allowed")]
    SenderNotAllowed,
}

impl Rejection {
    /// The stable, machine-readable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampMissing => "timestamp_missing",
            Self::TimestampMalformed => "timestamp_malformed",
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::TokenMissing => "token_missing",
            Self::TokenMismatch => "token_mismatch",
            Self::BasicAuthMissing => "basic_auth_missing",
            Self::BasicAuthMismatch => "basic_auth_mismatch",
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::HandshakeMalformed => "handshake_malformed",
            Self::KeyUnavailable => "key_unavailable",
            Self::KeyUrlNotAllowed => "key_url_not_allowed",
            Self::KeyCertificate(fault) => match fault {
                keys::CertificateFault::Expired => "key_certificate_expired",
                keys::CertificateFault::NotYetValid => "key_certificate_not_yet_valid",
                keys::CertificateFault::WrongSubject => "key_certificate_wrong_subject",
                keys::CertificateFault::Untrusted => "key_certificate_untrusted",
            },
            Self::SenderNotAllowed => "sender_not_allowed",
        }
    }
}

impl From<keys::KeyError> for Rejection {
    /// A URL outside the host rule is the sender's fault, as is a refused
    /// certificate; anything else about the fetch is retried later.
    fn from(error: keys::KeyError) -> Self {
        match error {
            keys::KeyError::NotAllowed => Self::KeyUrlNotAllowed,
            keys::KeyError::Unavailable(_) => Self::KeyUnavailable,
            keys::KeyError::Certificate(fault) => Self::KeyCertificate(fault),
        }
    }
}
