//! The process's logs, and the one place every known secret is taken out of
//! them, whichever crate wrote the line.
//!
//! Our own log lines never carry a secret by construction (`Secret`'s
//! `Debug`, redacted URLs, reason codes instead of values). Other crates'
//! lines do: at `debug` the NATS client prints the server address it dials,
//! at `trace` the whole `CONNECT` message with the password, token or JWT;
//! a future dependency may print something else. So every formatted line
//! passes through a [`SecretRegistry`] on its way out, which replaces every
//! known secret, in every form a formatter may have written it, by
//! [`REDACTED`].
//!
//! The registry of the process ([`registry`]) is filled by whoever reads a
//! secret: the loader of secret files ([`crate::secrets::load`], at start
//! and on every reload, so a rotated secret is covered before it is first
//! used), the NATS URL parser ([`crate::nats_url`]) with the URL's password
//! or token, the `.creds` parser with its JWT and seed, the operator with
//! the Secrets it reads. Secrets are never removed: a rotated-out secret may
//! still be valid somewhere and is no less secret for being old.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use aho_corasick::{AhoCorasick, MatchKind};
use arc_swap::ArcSwapOption;
use base64::Engine as _;
use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with in a log line.
pub const REDACTED: &str = "[redacted]";

/// What a line is replaced with if the matcher of the known secrets cannot
/// be built (only for absurd amounts of secret text): nothing is written
/// that was not checked.
const WITHHELD: &str = "[log line withheld: the secret filter could not be built]\n";

/// The secrets a process knows, and the matcher that finds them in text.
pub struct SecretRegistry {
    /// Every form of every secret added, to tell what is new.
    known: Mutex<Known>,
    /// The matcher of every form; `None` until a secret is added.
    matcher: ArcSwapOption<Matcher>,
}

#[derive(Default)]
struct Known {
    patterns: Vec<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
    /// The automata over `patterns`, each over the run of them from its
    /// `start` to the next one's (the last: to the end).
    levels: Vec<Level>,
    /// An automaton could not be built: lines stay withheld for good (its
    /// patterns are in no automaton).
    failed: bool,
}

/// One automaton of the matcher, over the known patterns from `start` on
/// (up to the next level's start).
struct Level {
    automaton: AhoCorasick,
    start: usize,
}

enum Matcher {
    /// Every known pattern is in exactly one of these automata.
    Ready(Vec<AhoCorasick>),
    /// An automaton could not be built: every line is withheld.
    Failed,
}

impl std::fmt::Debug for SecretRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .patterns
            .len();
        f.debug_struct("SecretRegistry")
            .field("patterns", &count)
            .finish_non_exhaustive()
    }
}

impl Default for SecretRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretRegistry {
    /// A registry that knows no secret yet.
    pub fn new() -> Self {
        Self {
            known: Mutex::default(),
            matcher: ArcSwapOption::empty(),
        }
    }

    /// Adds `secret` in every form it may take in a log line (see
    /// [`forms`]). Empty and whitespace-only values are ignored: they are
    /// no secret (the loader refuses them), and matching them would redact
    /// every blank in every line.
    pub fn add(&self, secret: &[u8]) {
        if secret.trim_ascii().is_empty() {
            return;
        }
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let first_new = known.patterns.len();
        for form in forms(secret) {
            if known.seen.insert(form.clone()) {
                known.patterns.push(form);
            }
        }
        if known.patterns.len() == first_new || known.failed {
            return;
        }
        // The new patterns get an automaton of their own, merged with the
        // levels before it as long as the last one holds no more patterns
        // than it (a binary counter): each pattern is built into an
        // automaton O(log n) times over the process's life and a line is
        // searched by O(log n) automata. Rebuilding one automaton of every
        // pattern per secret added made a pool of n endpoints take O(n²)
        // to start (minutes at 1,000 endpoints, never at 10,000).
        let mut start = first_new;
        while let Some(last) = known.levels.last() {
            if start - last.start > known.patterns.len() - start {
                break;
            }
            start = last.start;
            known.levels.pop();
        }
        // Leftmost-longest: where one secret contains another, the whole
        // longer one is replaced, not a part of it (across automata, by
        // merging overlapping matches: see `redact`). No prefilter: the
        // rare bytes it would look for (of hex and base64 forms) are common
        // in JSON log lines, and checking every candidate cost several
        // times the plain automaton's one pass over the line.
        let matcher = match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .prefilter(false)
            .build(&known.patterns[start..])
        {
            Ok(automaton) => {
                known.levels.push(Level { automaton, start });
                Matcher::Ready(known.levels.iter().map(|l| l.automaton.clone()).collect())
            }
            Err(_) => {
                known.failed = true;
                Matcher::Failed
            }
        };
        // Swapped while the lock is held, so two additions cannot leave the
        // older matcher in place.
        self.matcher.store(Some(Arc::new(matcher)));
    }

    /// Adds the user JWT and the NKey seed of a NATS `.creds` file (each
    /// block between its `-----BEGIN` and `------END` lines), and the whole
    /// text.
    pub fn add_creds(&self, creds: &str) {
        self.add(creds.as_bytes());
        let mut inside = false;
        for line in creds.lines().map(str::trim) {
            if line.starts_with("-----BEGIN") {
                inside = true;
            } else if line.starts_with("------END") || line.starts_with("-----END") {
                inside = false;
            } else if inside {
                self.add(line.as_bytes());
            }
        }
    }

    /// `line` with every known secret replaced by [`REDACTED`].
    pub fn redact<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        let matcher = self.matcher.load();
        match matcher.as_deref() {
            None => Cow::Borrowed(line),
            Some(Matcher::Failed) => Cow::Borrowed(WITHHELD.as_bytes()),
            Some(Matcher::Ready(automata)) => {
                let mut found: Vec<(usize, usize)> = automata
                    .iter()
                    .flat_map(|automaton| automaton.find_iter(line))
                    .map(|m| (m.start(), m.end()))
                    .collect();
                if found.is_empty() {
                    return Cow::Borrowed(line);
                }
                found.sort_unstable();
                let mut out = Vec::with_capacity(line.len());
                // Bytes of `line` dealt with so far.
                let mut done = 0;
                let mut matches = found.into_iter().peekable();
                while let Some((start, mut end)) = matches.next() {
                    // Overlapping matches (of two automata) are one
                    // secret's, or two secrets run together: one
                    // replacement for all of them.
                    while let Some(&(_, next_end)) = matches.peek().filter(|(s, _)| *s < end) {
                        end = end.max(next_end);
                        matches.next();
                    }
                    out.extend_from_slice(&line[done..start]);
                    out.extend_from_slice(REDACTED.as_bytes());
                    done = end;
                }
                out.extend_from_slice(&line[done..]);
                Cow::Owned(out)
            }
        }
    }
}

/// The forms `secret` may take in a log line: as is and without surrounding
/// whitespace (a trailing newline of a Secret file is part of the secret,
/// but a client library gets the value without it), each raw, base64
/// (standard and URL-safe), hex (both cases), percent-encoded (URLs), and
/// as text escaped the ways a formatter escapes
/// strings: JSON (`"` → `\"`), `Debug` (`{:?}`), and both nested (a
/// `Debug` value inside a JSON log line, a JSON document inside a `Debug`
/// string).
pub fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut bases = vec![secret.to_vec()];
    let trimmed = secret.trim_ascii();
    if !trimmed.is_empty() && trimmed.len() != secret.len() {
        bases.push(trimmed.to_vec());
    }
    let mut forms = Vec::new();
    for base in bases {
        // Without padding: a prefix of the padded form, so both match.
        forms.push(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(&base)
                .into_bytes(),
        );
        forms.push(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(&base)
                .into_bytes(),
        );
        forms.push(hex::encode(&base).into_bytes());
        forms.push(hex::encode_upper(&base).into_bytes());
        forms.push(percent_encode(&base).into_bytes());
        let text = String::from_utf8_lossy(&base).into_owned();
        let json = json_escape(&text);
        let debug = debug_escape(&text);
        forms.push(json_escape(&json).into_bytes());
        forms.push(json_escape(&debug).into_bytes());
        forms.push(debug_escape(&json).into_bytes());
        forms.push(debug_escape(&debug).into_bytes());
        forms.push(json.into_bytes());
        forms.push(debug.into_bytes());
        forms.push(text.into_bytes());
        forms.push(base);
    }
    let mut seen = HashSet::new();
    forms.retain(|form| !form.is_empty() && seen.insert(form.clone()));
    forms
}

/// Every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `text` as inside a JSON string.
fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    unquote(&quoted).to_owned()
}

/// `text` as inside a Rust `Debug` string.
fn debug_escape(text: &str) -> String {
    let quoted = format!("{text:?}");
    unquote(&quoted).to_owned()
}

fn unquote(quoted: &str) -> &str {
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(quoted)
}

/// The registry of this process.
pub fn registry() -> &'static Arc<SecretRegistry> {
    static REGISTRY: LazyLock<Arc<SecretRegistry>> = LazyLock::new(Arc::default);
    &REGISTRY
}

/// Adds `secret` to the registry of this process.
pub fn register_secret(secret: &[u8]) {
    registry().add(secret);
}

/// Adds a `.creds` file's JWT and seed to the registry of this process.
pub fn register_creds(creds: &str) {
    registry().add_creds(creds);
}

/// A [`MakeWriter`] whose writers pass every line through a registry before
/// handing it to `inner`.
#[derive(Debug, Clone)]
pub struct Redacting<M> {
    registry: Arc<SecretRegistry>,
    inner: M,
}

impl<M> Redacting<M> {
    /// Lines for `inner`, redacted with `registry`.
    pub fn new(registry: Arc<SecretRegistry>, inner: M) -> Self {
        Self { registry, inner }
    }
}

/// Standard output, redacted with the registry of this process.
pub fn redacting_stdout() -> Redacting<fn() -> std::io::Stdout> {
    Redacting::new(Arc::clone(registry()), std::io::stdout)
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            registry: &self.registry,
            pending: Vec::new(),
            inner: self.inner.make_writer(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter {
            registry: &self.registry,
            pending: Vec::new(),
            inner: self.inner.make_writer_for(meta),
        }
    }
}

/// Collects what a formatter writes and hands it on line by line, redacted:
/// a secret is only ever matched within one whole line, never split between
/// two writes. The rest is handed on when the writer is flushed or dropped
/// (the formatter makes one writer per event).
#[derive(Debug)]
pub struct RedactingWriter<'a, W: Write> {
    registry: &'a SecretRegistry,
    pending: Vec<u8>,
    inner: W,
}

impl<W: Write> RedactingWriter<'_, W> {
    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let rest = self.pending.split_off(upto);
        let line = std::mem::replace(&mut self.pending, rest);
        self.inner.write_all(&self.registry.redact(&line))
    }
}

impl<W: Write> Write for RedactingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter's usual write: whole lines at once, handed on
        // without a copy.
        if self.pending.is_empty() && buf.ends_with(b"\n") {
            self.inner.write_all(&self.registry.redact(buf))?;
            return Ok(buf.len());
        }
        self.pending.extend_from_slice(buf);
        if let Some(newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(newline + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<'_, W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write to.
        let _ = self.flush();
    }
}

/// Replaces the panic hook by one that writes what the default one does
/// (thread, location, message, and the backtrace when `RUST_BACKTRACE`
/// asks for one) through the registry of this process: a panic message may
/// carry whatever value a dependency formatted.
pub fn redact_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let mut text = format!("thread '{name}' {info}\n");
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            text.push_str(&format!("stack backtrace:\n{backtrace}\n"));
        }
        // The log lines before the panic come first.
        crate::log_writer::flush();
        let _ = std::io::stderr().write_all(&registry().redact(text.as_bytes()));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(registry: &SecretRegistry, line: &str) -> String {
        String::from_utf8(registry.redact(line.as_bytes()).into_owned()).expect("utf-8")
    }

    #[test]
    fn nothing_is_touched_before_a_secret_is_known() {
        let registry = SecretRegistry::new();
        assert!(matches!(registry.redact(b"a line"), Cow::Borrowed(_)));
        registry.add(b"");
        registry.add(b" \n\t");
        assert_eq!(
            redacted(&registry, "a line with spaces\n"),
            "a line with spaces\n"
        );
    }

    #[test]
    fn every_form_of_a_secret_is_replaced() {
        let registry = SecretRegistry::new();
        let secret = "pa\"ss\\w@rd/1\n";
        registry.add(secret.as_bytes());
        let debug_in_json = serde_json::json!({ "connect": format!("{:?}", Some(secret)) });
        let lines = [
            format!("raw {secret}"),
            format!("trimmed {} and more", secret.trim()),
            serde_json::json!({ "pass": secret }).to_string(),
            serde_json::json!({ "pass": secret.trim() }).to_string(),
            format!("{:?}", Some(secret.trim())),
            debug_in_json.to_string(),
            format!(
                "nats://user:{}@host",
                percent_encode(secret.trim().as_bytes())
            ),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret.trim())
            ),
        ];
        let base64 = base64::engine::general_purpose::STANDARD.encode(secret.trim());
        for line in lines {
            let out = redacted(&registry, &line);
            assert!(out.contains(REDACTED), "{line} -> {out}");
            for part in ["w@rd", "w%40rd", &base64] {
                assert!(!out.contains(part), "{part} left in {out} (from {line})");
            }
        }
    }

    #[test]
    fn the_longest_secret_wins_and_everything_else_stays() {
        let registry = SecretRegistry::new();
        registry.add(b"token-1");
        registry.add(b"token-12345");
        assert_eq!(
            redacted(&registry, "a=token-12345 b=token-1 c=token-2"),
            "a=[redacted] b=[redacted] c=token-2"
        );
    }

    #[test]
    fn many_secrets_added_one_by_one_are_all_redacted_by_few_automata() {
        let registry = SecretRegistry::new();
        registry.add(b"inner-secret");
        for n in 0..200 {
            registry.add(format!("pool-secret-{n:03}").as_bytes());
        }
        // Added last, in another automaton than the one it contains.
        registry.add(b"outer-inner-secret-outer");
        let levels = registry.known.lock().expect("known").levels.len();
        assert!(levels <= 10, "{levels} automata for 202 secrets");
        for n in [0, 99, 199] {
            assert_eq!(
                redacted(&registry, &format!("a=pool-secret-{n:03} b")),
                "a=[redacted] b"
            );
        }
        assert_eq!(
            redacted(&registry, "x=outer-inner-secret-outer y=inner-secret"),
            "x=[redacted] y=[redacted]"
        );
        // Two secrets run together overlap nothing: two replacements.
        assert_eq!(
            redacted(&registry, "pool-secret-001pool-secret-002"),
            "[redacted][redacted]"
        );
    }

    #[test]
    fn secrets_added_later_are_redacted_from_then_on() {
        let registry = SecretRegistry::new();
        registry.add(b"first-secret");
        assert_eq!(redacted(&registry, "second-secret"), "second-secret");
        registry.add(b"second-secret");
        assert_eq!(
            redacted(&registry, "first-secret second-secret"),
            "[redacted] [redacted]"
        );
    }

    #[test]
    fn a_creds_file_s_jwt_and_seed_are_redacted_on_their_own() {
        let registry = SecretRegistry::new();
        registry.add_creds(
            "-----BEGIN NATS USER JWT-----\neyJhbGciOi.jwt-part\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\nSUAEXAMPLESEED\n------END USER NKEY SEED------\n",
        );
        assert_eq!(
            redacted(&registry, "jwt=eyJhbGciOi.jwt-part seed=SUAEXAMPLESEED"),
            "jwt=[redacted] seed=[redacted]"
        );
        assert_eq!(
            redacted(&registry, "NKEYs are sensitive"),
            "NKEYs are sensitive",
            "only the blocks, not the prose around them"
        );
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_subscriber_writes_every_event_redacted_even_debug_fields_of_other_crates() {
        let registry = Arc::new(SecretRegistry::new());
        registry.add(b"s3cr\"et");
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(Redacting::new(Arc::clone(&registry), buffer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            #[derive(Debug)]
            #[allow(dead_code)]
            struct ConnectInfo {
                pass: Option<String>,
            }
            let info = ConnectInfo {
                pass: Some("s3cr\"et".to_owned()),
            };
            tracing::trace!(target: "async_nats::connection", ?info, "write operation: CONNECT");
            tracing::info!(password = "s3cr\"et", "plain field");
            tracing::warn!("in the message: s3cr\"et");
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(text.matches(REDACTED).count(), 3, "{text}");
        assert!(!text.contains("s3cr"), "{text}");
    }

    #[test]
    fn a_line_split_over_writes_is_matched_whole() {
        let registry = SecretRegistry::new();
        registry.add(b"split-secret");
        let mut out = Vec::new();
        {
            let mut writer = RedactingWriter {
                registry: &registry,
                pending: Vec::new(),
                inner: &mut out,
            };
            writer.write_all(b"a split-").expect("write");
            writer.write_all(b"secret b\nsplit-sec").expect("write");
            writer.write_all(b"ret").expect("write");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "a [redacted] b\n[redacted]"
        );
    }
}
