//! A NATS operator-mode (decentralised JWT) setup minted in process: an
//! operator, a system account, an account with JetStream and one user of
//! it, as `nsc` would make them, so tests can run a real `nats-server` that
//! only accepts `.creds` files.
//!
//! A NATS JWT is `base64url(header).base64url(claims).base64url(signature)`
//! with header `{"typ":"JWT","alg":"ed25519-nkey"}`, signed with the
//! issuer's NKey (Ed25519); the operator signs accounts, an account signs
//! its users.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;

/// Why a credential could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("signing a NATS JWT: {0}")]
pub struct MintError(String);

/// The keys and JWTs of one operator-mode server, and the user's creds.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The operator's JWT (the server's `operator` setting).
    pub operator_jwt: String,
    /// The system account's public key and JWT.
    pub system_account: (String, String),
    /// The application account's public key and JWT (JetStream enabled).
    pub account: (String, String),
    /// The user's `.creds` file text: its JWT and NKey seed.
    pub user_creds: String,
}

impl Setup {
    /// Fresh keys for everything.
    pub fn mint() -> Result<Self, MintError> {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "hookwarden-test",
            serde_json::json!({"type": "operator", "version": 2}),
        )?;
        let system_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            serde_json::json!({"type": "account", "version": 2, "limits": unlimited(false)}),
        )?;
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "APP",
            serde_json::json!({"type": "account", "version": 2, "limits": unlimited(true)}),
        )?;
        let user_jwt = jwt(
            &account,
            &user.public_key(),
            "receiver",
            serde_json::json!({
                "type": "user", "version": 2,
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            }),
        )?;
        let seed = user.seed().map_err(|e| MintError(e.to_string()))?;
        Ok(Self {
            operator_jwt,
            system_account: (system.public_key(), system_jwt),
            account: (account.public_key(), account_jwt),
            user_creds: creds_file(&user_jwt, &seed),
        })
    }

    /// The `nats-server` configuration lines, with the operator JWT in the
    /// file `operator`.
    pub fn server_config(&self, operator: &Path) -> String {
        format!(
            "operator: {operator:?}\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {sys}: {sys_jwt}\n  {acc}: {acc_jwt}\n}}\n",
            operator = operator.display().to_string(),
            sys = self.system_account.0,
            sys_jwt = self.system_account.1,
            acc = self.account.0,
            acc_jwt = self.account.1,
        )
    }
}

/// Account limits without bounds; JetStream on when `jetstream`.
fn unlimited(jetstream: bool) -> serde_json::Value {
    let storage = if jetstream { -1 } else { 0 };
    serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": storage, "disk_storage": storage, "streams": -1, "consumer": -1,
    })
}

fn jwt(
    issuer: &KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
) -> Result<String, MintError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = serde_json::json!({
        "jti": format!("{:032X}", rand::random::<u128>()),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = issuer
        .sign(signing_input.as_bytes())
        .map_err(|e| MintError(e.to_string()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The layout `nsc generate creds` writes and NATS clients read.
fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}
