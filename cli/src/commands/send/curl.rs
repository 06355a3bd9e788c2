//! `send --print-curl`: the curl command that sends a delivery, in which
//! the shell reads every secret from its file.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookwarden_cli::Delivery;

use crate::commands::output::redact;

/// A secret the delivery may carry, and the file it was read from: what
/// the command has the shell read instead of printing it.
#[derive(Debug)]
pub struct KnownSecret {
    pub value: Vec<u8>,
    pub file: PathBuf,
}

/// What of `send`'s arguments the command repeats.
#[derive(Debug)]
pub struct CurlOptions<'a> {
    /// `--url` as given (a GET with secret parameters adds them with `-G`).
    pub url: &'a str,
    pub insecure: bool,
    pub cacert: Option<&'a Path>,
    pub connect_to: Option<&'a str>,
    /// `--body` when it is a file (not standard input).
    pub body_file: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum CurlError {
    #[error(
        "--print-curl cannot write this delivery without showing a secret; send it without --print-curl"
    )]
    WouldShowSecret,
}

/// The curl command that sends `delivery` to `url` (`--url` with the
/// signer's query): a header that holds a secret (GitLab's token, a
/// `generic` token) becomes `"$(cat FILE)"`, HTTP Basic is encoded from the
/// file by `base64`, a query parameter that is one (Meta's verify token)
/// is `--data-urlencode 'name@FILE'`. Should a secret still show in the
/// command, it is refused rather than printed.
pub fn command(
    options: &CurlOptions<'_>,
    url: &str,
    delivery: &Delivery,
    known: &[KnownSecret],
) -> Result<String, CurlError> {
    let mut parts = vec![
        "curl".to_owned(),
        "-sS".to_owned(),
        // `-X HEAD` would make curl wait for a body that never comes.
        if delivery.method == "HEAD" {
            "--head".to_owned()
        } else {
            format!("-X {}", delivery.method)
        },
    ];
    if options.insecure {
        parts.push("--insecure".to_owned());
    }
    if let Some(cacert) = options.cacert {
        parts.push(format!(
            "--cacert {}",
            shell_quote(&cacert.display().to_string())
        ));
    }
    if let Some(connect_to) = options.connect_to {
        // curl's form: HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT, empty = any.
        parts.push(format!(
            "--connect-to {}",
            shell_quote(&format!("::{connect_to}"))
        ));
    }
    for (name, value) in &delivery.headers {
        match basic_from_file(name, value, known) {
            Some(word) => parts.push(format!("-H {word}")),
            None => parts.push(format!(
                "-H {}",
                shell_word(&format!("{name}: {value}"), known)
            )),
        }
    }
    // A body file is sent byte for byte; an exact literal otherwise.
    match options.body_file {
        _ if delivery.method == "GET" || delivery.method == "HEAD" => {}
        // Mailgun and Adyen sign inside the body: the file is not sent as is.
        Some(path) if std::fs::read(path).ok().as_ref() == Some(&delivery.body) => {
            parts.push(format!("--data-binary @{}", shell_quote(path)));
        }
        _ => parts.push(format!(
            "--data-binary {}",
            shell_quote(&String::from_utf8_lossy(&delivery.body))
        )),
    }
    // A GET's parameters with a secret among them (Meta's subscription
    // handshake): curl reads and encodes it from the file.
    let secret_query = delivery.extra_query.as_deref().filter(|query| {
        delivery.method == "GET"
            && form_urlencoded::parse(query.as_bytes())
                .any(|(_, v)| known.iter().any(|k| k.value == v.as_bytes()))
    });
    match secret_query {
        Some(query) => {
            parts.push("-G".to_owned());
            for (name, value) in form_urlencoded::parse(query.as_bytes()) {
                let from_file = known.iter().find(|k| k.value == value.as_bytes());
                parts.push(format!(
                    "--data-urlencode {}",
                    match from_file {
                        Some(k) => shell_quote(&format!("{name}@{}", k.file.display())),
                        None => shell_quote(&format!("{name}={value}")),
                    }
                ));
            }
            parts.push(shell_quote(options.url));
        }
        None => parts.push(shell_quote(url)),
    }
    let command = parts.join(" \\\n  ");
    if redact(&command) != command {
        return Err(CurlError::WouldShowSecret);
    }
    Ok(command)
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as one shell word: single-quoted, or, when it holds known
/// secrets, double-quoted with each read from its file by `$(cat FILE)`.
/// (`$(...)` drops trailing newlines, which no header value can hold.)
fn shell_word(text: &str, known: &[KnownSecret]) -> String {
    let mut rest = text.as_bytes();
    let mut word = String::new();
    let mut spliced = false;
    loop {
        // The earliest secret; of two at the same place, the longer.
        let found = known
            .iter()
            .filter_map(|k| find(rest, &k.value).map(|at| (at, k)))
            .min_by_key(|(at, k)| (*at, std::cmp::Reverse(k.value.len())));
        let Some((at, secret)) = found else {
            break;
        };
        word.push_str(&double_quote_escape(&String::from_utf8_lossy(&rest[..at])));
        word.push_str(&format!(
            "$(cat {})",
            shell_quote(&secret.file.display().to_string())
        ));
        rest = &rest[at + secret.value.len()..];
        spliced = true;
    }
    if !spliced {
        return shell_quote(text);
    }
    word.push_str(&double_quote_escape(&String::from_utf8_lossy(rest)));
    format!("\"{word}\"")
}

/// An `Authorization: Basic` header whose password is a known secret, as a
/// shell word that encodes `user:` and the file's bytes (a trailing newline
/// included) with `base64`.
fn basic_from_file(name: &str, value: &str, known: &[KnownSecret]) -> Option<String> {
    if !name.eq_ignore_ascii_case("authorization") {
        return None;
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let secret = known.iter().find(|k| k.value == password)?;
    let user = String::from_utf8(user.to_vec()).ok()?;
    Some(format!(
        "\"{}: Basic $({{ printf '%s' {}; cat {}; }} | base64 | tr -d '\\n')\"",
        double_quote_escape(name),
        shell_quote(&format!("{user}:")),
        shell_quote(&secret.file.display().to_string()),
    ))
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `text` for inside a POSIX shell's double quotes.
fn double_quote_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::output::register_secret;

    fn options(url: &str) -> CurlOptions<'_> {
        CurlOptions {
            url,
            insecure: false,
            cacert: None,
            connect_to: None,
            body_file: None,
        }
    }

    fn delivery(method: &'static str, headers: &[(&str, &str)], body: &str) -> Delivery {
        Delivery {
            method,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            extra_query: None,
            expect: None,
        }
    }

    /// A secret of this test only (the filter is process-wide), read from `file`.
    fn known(value: &str, file: &str) -> KnownSecret {
        register_secret(value.as_bytes());
        KnownSecret {
            value: value.as_bytes().to_vec(),
            file: PathBuf::from(file),
        }
    }

    #[test]
    fn a_post_without_secrets_is_single_quoted_words_one_per_line() {
        let sent = delivery(
            "POST",
            &[("X-Hub-Signature-256", "sha256=00ff")],
            r#"{"it's":1}"#,
        );
        let command = command(&options("https://h/p"), "https://h/p?x=1", &sent, &[])
            .expect("no secret shows");
        assert_eq!(
            command,
            "curl \\\n  -sS \\\n  -X POST \\\n  -H 'X-Hub-Signature-256: sha256=00ff' \\\n  \
             --data-binary '{\"it'\\''s\":1}' \\\n  'https://h/p?x=1'"
        );
    }

    #[test]
    fn tls_and_connect_to_options_are_repeated() {
        let options = CurlOptions {
            insecure: true,
            cacert: Some(Path::new("/etc/ca it's.pem")),
            connect_to: Some("127.0.0.1:8443"),
            ..options("https://h/p")
        };
        let command = command(&options, "https://h/p", &delivery("POST", &[], ""), &[])
            .expect("no secret shows");
        assert!(command.contains("--insecure"), "{command}");
        assert!(
            command.contains(r"--cacert '/etc/ca it'\''s.pem'"),
            "{command}"
        );
        assert!(
            command.contains("--connect-to '::127.0.0.1:8443'"),
            "{command}"
        );
    }

    #[test]
    fn a_header_holding_a_secret_reads_it_from_its_file() {
        let secret = known("curl-test-token-1", "/s/gitlab/token");
        let sent = delivery("POST", &[("X-Gitlab-Token", "curl-test-token-1")], "{}");
        let command = command(&options("https://h/p"), "https://h/p", &sent, &[secret])
            .expect("the secret is read from its file");
        assert!(
            command.contains(r#"-H "X-Gitlab-Token: $(cat '/s/gitlab/token')""#),
            "{command}"
        );
        assert!(!command.contains("curl-test-token-1"), "{command}");
    }

    #[test]
    fn basic_auth_is_encoded_from_the_password_file() {
        let secret = known("curl-test-password-2", "/s/basic/password");
        let header = format!("Basic {}", BASE64.encode("ci:curl-test-password-2"));
        let sent = delivery("POST", &[("Authorization", &header)], "{}");
        let command = command(&options("https://h/p"), "https://h/p", &sent, &[secret])
            .expect("the password is read from its file");
        assert!(
            command.contains(
                r#"-H "Authorization: Basic $({ printf '%s' 'ci:'; cat '/s/basic/password'; } | base64 | tr -d '\n')""#
            ),
            "{command}"
        );
    }

    #[test]
    fn a_get_with_a_secret_parameter_has_curl_encode_it_from_the_file() {
        let secret = known("curl-test-verify-3", "/s/meta/verify-token");
        let mut sent = delivery("GET", &[], "");
        sent.extra_query =
            Some("hub.mode=subscribe&hub.verify_token=curl-test-verify-3&hub.challenge=c".into());
        let command = command(
            &options("https://h/meta"),
            "https://h/meta?hub.mode=subscribe&hub.verify_token=curl-test-verify-3&hub.challenge=c",
            &sent,
            &[secret],
        )
        .expect("the token is read from its file");
        assert_eq!(
            command,
            "curl \\\n  -sS \\\n  -X GET \\\n  -G \\\n  --data-urlencode 'hub.mode=subscribe' \\\n  \
             --data-urlencode 'hub.verify_token@/s/meta/verify-token' \\\n  \
             --data-urlencode 'hub.challenge=c' \\\n  'https://h/meta'"
        );
    }

    #[test]
    fn head_has_no_body_and_no_x_head() {
        let command = command(
            &options("https://h/p"),
            "https://h/p",
            &delivery("HEAD", &[], "ignored"),
            &[],
        )
        .expect("no secret shows");
        assert!(command.contains("--head"), "{command}");
        assert!(!command.contains("-X HEAD"), "{command}");
        assert!(!command.contains("--data-binary"), "{command}");
    }

    #[test]
    fn a_body_file_sent_as_is_is_named_not_inlined() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("body.json");
        std::fs::write(&path, r#"{"a":1}"#).expect("body file");
        let path = path.to_str().expect("UTF-8 path");
        let options = CurlOptions {
            body_file: Some(path),
            ..options("https://h/p")
        };
        let same = command(
            &options,
            "https://h/p",
            &delivery("POST", &[], r#"{"a":1}"#),
            &[],
        )
        .expect("no secret shows");
        assert!(same.contains(&format!("--data-binary @'{path}'")), "{same}");
        // Signed inside the body (Mailgun, Adyen): what is sent is not the file.
        let changed = command(
            &options,
            "https://h/p",
            &delivery("POST", &[], r#"{"a":1,"signature":"x"}"#),
            &[],
        )
        .expect("no secret shows");
        assert!(
            changed.contains(r#"--data-binary '{"a":1,"signature":"x"}'"#),
            "{changed}"
        );
    }

    #[test]
    fn a_secret_that_cannot_come_from_a_file_is_refused_not_printed() {
        let secret = known("curl-test-secret-4", "/s/secret");
        let sent = delivery("POST", &[], r#"{"echo":"curl-test-secret-4"}"#);
        assert!(matches!(
            command(&options("https://h/p"), "https://h/p", &sent, &[secret]),
            Err(CurlError::WouldShowSecret)
        ));
    }

    #[test]
    fn of_two_secrets_at_one_place_the_longer_is_read() {
        let short = known("curl-test-5", "/s/short");
        let long = known("curl-test-5-longer", "/s/long");
        let word = shell_word("X: curl-test-5-longer and curl-test-5", &[short, long]);
        assert_eq!(word, r#""X: $(cat '/s/long') and $(cat '/s/short')""#);
    }

    #[test]
    fn double_quoted_text_escapes_what_the_shell_expands() {
        assert_eq!(double_quote_escape(r#"a"b$c`d\e"#), r#"a\"b\$c\`d\\e"#);
    }
}
