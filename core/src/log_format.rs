//! The JSON log line, formatted straight into the log layer's line buffer.
//!
//! tracing-subscriber's JSON format (`json().flatten_event(true)
//! .with_current_span(false)`) goes through serde: a map serializer per
//! line, a `fmt` adapter per `Debug` field, a `String` for the timestamp.
//! On the request path that was about a tenth of a delivery's instructions
//! (the audit line: docs/benchmarks.md). [`JsonLines`] writes the same
//! bytes itself, field by field into the buffer the layer reuses for every
//! line, escaping only the bytes JSON requires escaped. A line it does not
//! write exactly that way (an event inside a span, whose line lists the
//! spans; an event of the `log` crate, whose metadata is rewritten) is
//! handed to tracing-subscriber's own formatter, so every line reads the
//! same whichever wrote it (the tests compare the two byte for byte).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the events that `tracing-log` makes of `log` records.
const LOG_CRATE_TARGET: &str = "log";

/// The receiver's JSON log lines (see the module's documentation), with
/// timestamps from `T`.
#[derive(Debug)]
pub struct JsonLines<T = SystemTime> {
    timer: T,
    /// tracing-subscriber's formatter, configured alike, for the lines this
    /// one does not write itself.
    fallback: Format<Json, T>,
}

impl Default for JsonLines<SystemTime> {
    fn default() -> Self {
        Self::with_timer(SystemTime)
    }
}

impl<T: FormatTime + Clone> JsonLines<T> {
    /// Lines timestamped by `timer`.
    pub fn with_timer(timer: T) -> Self {
        let fallback = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_timer(timer.clone());
        Self { timer, fallback }
    }
}

impl<S, N, T> FormatEvent<S, N> for JsonLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let in_span =
            event.parent().and_then(|id| ctx.span(id)).is_some() || ctx.lookup_current().is_some();
        if in_span || meta.target() == LOG_CRATE_TARGET {
            return self.fallback.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        self.timer
            .format_time(&mut Writer::new(&mut Escaping(&mut writer)))?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_str_value(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each recorded field as `,"name":value`, as tracing-serde's map
/// visitor serializes it: strings and `Debug` values (and through them
/// errors, 128-bit integers and bytes) as JSON strings, integers and
/// booleans bare, floats as serde_json writes them.
struct Fields<'a, W: fmt::Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .out
                .write_char(',')
                .and_then(|()| write_str_value(self.out, field.name()))
                .and_then(|()| self.out.write_char(':'))
                .and_then(|()| value(self.out));
        }
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| write_str_value(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaping(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's float format (shortest round-trip, `null` for NaN
        // and infinities): rare in our lines, not worth a copy of it.
        self.entry(field, |out| {
            out.write_str(&serde_json::to_string(&value).map_err(|_| fmt::Error)?)
        });
    }
}

/// `text` as a JSON string, quotes included.
fn write_str_value(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, text)?;
    out.write_char('"')
}

/// `text` inside a JSON string, escaped as serde_json escapes it: `"`,
/// `\` and the control characters below U+0020 (short forms where JSON has
/// one, else `\u00xx`); everything else, non-ASCII included, as is.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let bytes = text.as_bytes();
    // Bytes of `text` written so far.
    let mut done = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        // One table look-up per byte: most lines need no escape at all.
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        // Every byte escaped is ASCII, so `done..at` is on char boundaries.
        out.write_str(&text[done..at])?;
        if escape == b'u' {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_char('\\')?;
            out.write_char(char::from(escape))?;
        }
        done = at + 1;
    }
    out.write_str(&text[done..])
}

/// For each byte, what follows the backslash of its escape (`u`: the
/// `\u00xx` form), or 0 where the byte is written as is.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Escapes whatever is formatted through it (a `Debug` value, the
/// timestamp) on its way into the line.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.0, text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer as _;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A fixed time, so two formatters' lines can be compared.
    #[derive(Debug, Clone)]
    struct FixedTime;

    impl FormatTime for FixedTime {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-07T04:28:03.748911Z")
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
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

    #[derive(Debug)]
    struct Failure;

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("it \"failed\"\n\tbadly")
        }
    }

    impl std::error::Error for Failure {}

    /// Every kind of field and value our lines carry, and those they might.
    fn log_everything() {
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let absent: Option<&str> = None;
        tracing::info!(
            target: "hookwarden::audit",
            request_id = "05f673660ad76745aecb24ae592b8f5e",
            client_ip = %ip,
            absent,
            present = Some("yes"),
            body_size = 1024_usize,
            secret_index = Some(0_usize),
            duplicate = false,
            latency_ms = u64::MAX,
            "webhook delivery"
        );
        tracing::warn!(
            text = "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \0 \
                    bs \u{8} ff \u{c} us \u{1f} del \u{7f} é 日本 🦀",
            debug = ?Some("a \"quoted\"\nvalue"),
            negative = -42_i64,
            wide = 170_141_183_460_469_231_731_687_303_715_884_105_727_i128,
            ratio = 0.1_f64,
            big = 1e21_f64,
            nan = f64::NAN,
            infinite = f64::INFINITY,
            error = &Failure as &(dyn std::error::Error + 'static),
            "a message with {} and \"quotes\"",
            "arguments"
        );
        tracing::error!(yes = true, "");
        tracing::debug!("no fields at all");
        let span = tracing::info_span!("outer", id = 7, note = "in a span");
        span.in_scope(|| tracing::info!(inside = 1, "in a span: tracing-subscriber's lines"));
    }

    fn lines<F>(format: F) -> String
    where
        F: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::JsonFields>
            + Send
            + Sync
            + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .event_format(format)
            .with_writer(buffer.clone());
        let subscriber = tracing_subscriber::registry()
            .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::TRACE));
        tracing::subscriber::with_default(subscriber, log_everything);
        String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8")
    }

    #[test]
    fn lines_are_byte_for_byte_tracing_subscribers_json() {
        let ours = lines(JsonLines::with_timer(FixedTime));
        let theirs = lines(
            tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_timer(FixedTime),
        );
        assert_eq!(ours.lines().count(), 5, "{ours}");
        for (ours, theirs) in ours.lines().zip(theirs.lines()) {
            assert_eq!(ours, theirs);
            serde_json::from_str::<serde_json::Value>(ours).expect("a JSON line");
        }
        assert_eq!(ours, theirs);
    }

    #[test]
    fn escaping_is_only_where_json_requires_it() {
        let mut out = String::new();
        write_escaped(&mut out, "plain é \u{7f} \"q\" \\ \n\u{1}").expect("write");
        assert_eq!(out, "plain é \u{7f} \\\"q\\\" \\\\ \\n\\u0001");
    }
}
