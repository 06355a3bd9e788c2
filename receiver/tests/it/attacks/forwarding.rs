//! Attack: forged forwarding headers, through a real reverse proxy.
//!
//! The receiver binary runs as the operator runs it behind an Ingress
//! (`--tls-mode behind-ingress`, its manifest), behind a real nginx that
//! writes what ingress-nginx writes, storing in a real nats-server. The
//! endpoint admits one source (127.0.0.9) and trusts only the proxy
//! (127.0.0.1, where nginx connects from). An outsider (127.0.0.5) sends
//! correctly signed deliveries, so nothing but the source and scheme checks
//! stands between it and the stream, with every forwarding header it can
//! forge: RFC 7239 `Forwarded` (which ingress-nginx passes through
//! untouched), `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`, as one
//! header line or several. It must be refused (`https_required` over plain
//! HTTP, `ip_not_allowed` over HTTPS), audited as itself, and never stored;
//! the allowed source is stored with its own address.

use std::net::{IpAddr, Ipv4Addr};

use crate::binary::Reply;
use crate::ingress::{BehindIngress, Scheme, reason, request_id, source_ip};
use crate::{SECRET, sign};
use hookwarden_tests::{Forwarded, NginxBuilder, XForwarded};
use hyper::StatusCode;

/// The one source the endpoint admits.
const ALLOWED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
/// A client outside the allowlist.
const OUTSIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
/// Where nginx connects to the receiver from: the only trusted proxy.
const PROXY: &str = "127.0.0.1";

/// A GitHub endpoint admitting only [`ALLOWED`], trusting only nginx, with
/// `extra` spec fields.
fn manifest(extra: &str) -> String {
    format!(
        "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookEndpoint\n\
         metadata: {{name: github, namespace: attacks}}\n\
         spec:\n  provider: github\n  secretRefs: [{{name: gh, key: secret}}]\n  \
         allowedSourceCidrs: [127.0.0.9/32]\n  trustedProxies: [127.0.0.1/32]\n{extra}"
    )
}

async fn start(extra: &str, proxy: impl FnOnce(NginxBuilder) -> NginxBuilder) -> BehindIngress {
    BehindIngress::start(
        &manifest(extra),
        &[("gh", "secret", SECRET.as_bytes())],
        proxy,
    )
    .await
}

/// A correctly signed GitHub delivery `id` from `from` with `forged`
/// headers on top.
async fn deliver(
    setup: &BehindIngress,
    from: IpAddr,
    scheme: Scheme,
    id: &str,
    forged: &[(&str, &str)],
) -> Reply {
    let body = format!("{{\"delivery\":\"{id}\"}}");
    let signature = sign(body.as_bytes());
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", id),
        ("x-hub-signature-256", signature.as_str()),
    ];
    headers.extend_from_slice(forged);
    setup
        .post_from(from, scheme, "/", &headers, body.as_bytes())
        .await
}

/// Every way a client can claim to be [`ALLOWED`] over HTTPS.
fn forgeries() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "Forwarded",
            vec![("forwarded", "for=127.0.0.9;proto=https")],
        ),
        (
            "Forwarded with a trusted hop after the forged one",
            vec![(
                "forwarded",
                "for=127.0.0.9;proto=https, for=127.0.0.1;proto=https",
            )],
        ),
        (
            "Forwarded as two header lines",
            vec![
                ("forwarded", "for=127.0.0.9;proto=https"),
                ("forwarded", "for=127.0.0.1;proto=https"),
            ],
        ),
        (
            "Forwarded with an IPv4-mapped IPv6 node",
            vec![("forwarded", "for=\"[::ffff:127.0.0.9]\";proto=https")],
        ),
        (
            "X-Forwarded-For, X-Real-IP and X-Forwarded-Proto",
            vec![
                ("x-forwarded-for", "127.0.0.9"),
                ("x-real-ip", "127.0.0.9"),
                ("x-forwarded-proto", "https"),
            ],
        ),
        (
            "X-Forwarded-For as two header lines",
            vec![
                ("x-forwarded-for", "127.0.0.9"),
                ("x-forwarded-for", "127.0.0.9, 127.0.0.1"),
                ("x-forwarded-proto", "https"),
            ],
        ),
        (
            "every header at once",
            vec![
                ("x-real-ip", "127.0.0.9"),
                ("x-forwarded-for", "127.0.0.9"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=127.0.0.9;proto=https"),
                ("x-forwarded-scheme", "https"),
                ("x-scheme", "https"),
            ],
        ),
    ]
}

/// Sends every forgery from [`OUTSIDER`] over plain HTTP and over HTTPS and
/// checks each answer and audit line; returns how many were sent.
async fn outsider_is_refused_whatever_it_forges(setup: &BehindIngress) -> usize {
    let mut sent = 0;
    for (what, forged) in forgeries() {
        for (scheme, status, expected) in [
            (Scheme::Http, StatusCode::FORBIDDEN, "https_required"),
            (Scheme::Https, StatusCode::FORBIDDEN, "ip_not_allowed"),
        ] {
            sent += 1;
            let id = format!("forged-{sent}");
            let reply = deliver(setup, OUTSIDER, scheme, &id, &forged).await;
            let body = String::from_utf8_lossy(&reply.body);
            assert_eq!(
                (reply.status, reason(&reply).as_str()),
                (status, expected),
                "{what} over {scheme:?} from {OUTSIDER}: {body}"
            );
            // The audit line names the real client, not the forged one.
            let audit = setup.receiver.audit_line(&request_id(&reply)).await;
            assert_eq!(audit["client_ip"], OUTSIDER.to_string(), "{what}: {audit}");
            assert_eq!(audit["peer_ip"], PROXY, "{what}: {audit}");
            assert_eq!(audit["reason"], expected, "{what}: {audit}");
        }
    }
    sent
}

/// ingress-nginx's defaults: the receiver believes `X-Forwarded-For` and
/// `X-Forwarded-Proto` (what nginx writes) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_ingress_nginx_forged_forwarding_headers_move_neither_client_nor_scheme() {
    let setup = start("", |proxy| proxy).await;
    let sent = outsider_is_refused_whatever_it_forges(&setup).await;
    assert!(sent >= 14, "every forgery over both schemes");

    // The allowed source over plain HTTP, claiming HTTPS: the scheme alone
    // is forged, and refused.
    for (what, forged) in [
        (
            "Forwarded",
            vec![("forwarded", "for=127.0.0.9;proto=https")],
        ),
        ("X-Forwarded-Proto", vec![("x-forwarded-proto", "https")]),
    ] {
        let reply = deliver(&setup, ALLOWED, Scheme::Http, "plain-http", &forged).await;
        assert_eq!(
            (reply.status, reason(&reply).as_str()),
            (StatusCode::FORBIDDEN, "https_required"),
            "{what} from {ALLOWED} over plain HTTP"
        );
    }

    // The allowed source over HTTPS, even naming someone else, is stored
    // as itself.
    let reply = deliver(
        &setup,
        ALLOWED,
        Scheme::Https,
        "legit",
        &[("forwarded", "for=127.0.0.5"), ("x-real-ip", "127.0.0.5")],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let audit = setup.receiver.audit_line(&request_id(&reply)).await;
    assert_eq!(audit["client_ip"], ALLOWED.to_string(), "{audit}");
    assert_eq!(audit["outcome"], "stored", "{audit}");

    let stored = setup.stored().await;
    let ids: Vec<_> = stored
        .iter()
        .map(|m| {
            m.headers
                .get("Hookwarden-Delivery-Id")
                .map(|v| v.as_str().to_owned())
        })
        .collect();
    assert_eq!(
        ids,
        [Some("legit".to_owned())],
        "only the legit delivery is stored"
    );
    assert_eq!(source_ip(&stored[0]), ALLOWED.to_string());
}

/// ingress-nginx with `compute-full-forwarded-for`: nginx appends the
/// client's address to the client's own `X-Forwarded-For`. Whatever the
/// client wrote left of it is its own claim, believed in no part and never
/// a reason to lose the client's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_appending_x_forwarded_for_the_client_list_is_never_believed() {
    let setup = start("", |proxy| proxy.x_forwarded(XForwarded::Append)).await;
    let sent = outsider_is_refused_whatever_it_forges(&setup).await;
    assert!(sent >= 14, "every forgery over both schemes");

    // Junk left of the hop nginx appends: before the fix it was parsed and
    // refused as a malformed header from the proxy (400, and the audit line
    // without a client address).
    for junk in [
        "not-an-ip",
        "127.0.0.9,,",
        "\u{fc}nknown, 127.0.0.9",
        "for=127.0.0.9",
        "",
    ] {
        let reply = deliver(
            &setup,
            OUTSIDER,
            Scheme::Https,
            "junk",
            &[("x-forwarded-for", junk)],
        )
        .await;
        assert_eq!(
            (reply.status, reason(&reply).as_str()),
            (StatusCode::FORBIDDEN, "ip_not_allowed"),
            "X-Forwarded-For {junk:?} from {OUTSIDER}"
        );
        let audit = setup.receiver.audit_line(&request_id(&reply)).await;
        assert_eq!(
            audit["client_ip"],
            OUTSIDER.to_string(),
            "{junk:?}: {audit}"
        );
    }

    // The allowed source with a list of its own is stored as itself.
    let reply = deliver(
        &setup,
        ALLOWED,
        Scheme::Https,
        "legit-appended",
        &[("x-forwarded-for", "203.0.113.7, not-an-ip")],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let stored = setup.stored().await;
    assert_eq!(stored.len(), 1, "only the legit delivery is stored");
    assert_eq!(source_ip(&stored[0]), ALLOWED.to_string());
}

/// An RFC 7239 proxy (it appends to `Forwarded` and writes no
/// `X-Forwarded-*`) in front of an endpoint configured for it
/// (`forwardedHeaders: Forwarded`): now `X-Forwarded-For`, `X-Real-IP` and
/// `X-Forwarded-Proto` are the client's own, passed through, and ignored;
/// `Forwarded` is walked right to left, so the client's own elements are
/// never reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_rfc7239_proxy_only_forwarded_is_believed() {
    let setup = start("  forwardedHeaders: Forwarded\n", |proxy| {
        proxy
            .x_forwarded(XForwarded::PassThrough)
            .forwarded(Forwarded::Append)
    })
    .await;
    let sent = outsider_is_refused_whatever_it_forges(&setup).await;
    assert!(sent >= 14, "every forgery over both schemes");

    let reply = deliver(
        &setup,
        ALLOWED,
        Scheme::Https,
        "legit-rfc7239",
        &[
            ("x-forwarded-for", "127.0.0.5"),
            ("x-forwarded-proto", "http"),
        ],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let stored = setup.stored().await;
    assert_eq!(stored.len(), 1, "only the legit delivery is stored");
    assert_eq!(source_ip(&stored[0]), ALLOWED.to_string());
}
