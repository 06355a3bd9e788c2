//! The process's log lines on their way to stdout: handed over by whoever
//! logs (a request's task writing its audit line), written by a thread of
//! their own in batches.
//!
//! One `write` per audit line was one system call per delivery on the
//! request path, and a stall of the whole worker thread whenever stdout's
//! reader was slow. Here a line is copied into a shared buffer under a
//! lock (no system call, unless the writer thread must be woken), and the
//! writer thread writes everything gathered once the first line waited
//! [`FLUSH_INTERVAL`], or at once when [`FLUSH_BYTES`] gathered.
//!
//! What a line "written" means (docs/security.md, Logging): a request's
//! audit line is in this buffer before its answer is sent, and on stdout
//! within [`FLUSH_INTERVAL`] unless stdout itself blocks. [`flush`] writes
//! everything handed over so far: the receiver calls it when it stops
//! (SIGTERM, an error) and in the panic hook. A process killed outright
//! (SIGKILL, the OOM killer) loses what it gathered and did not write yet:
//! at most the lines of the last [`FLUSH_INTERVAL`] (at most
//! [`CAPACITY`] bytes if stdout was blocked). Lines are never dropped: a
//! logger waits while [`CAPACITY`] bytes are waiting, as it waited on a
//! full pipe before.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for others before the batch is
/// written: at 20 000 deliveries/s, about ten lines per `write`.
pub const FLUSH_INTERVAL: Duration = Duration::from_micros(500);

/// The environment variable that sets another interval, in microseconds
/// (`0`: every line written at once, as before batching; tests set a long
/// one to see that [`flush`] at exit writes everything).
pub const FLUSH_INTERVAL_ENV: &str = "HOOKWARDEN_LOG_FLUSH_MICROS";

/// A batch this large is written at once, whatever the interval.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Loggers wait while this many bytes wait for the writer (stdout blocked):
/// memory stays bounded and no line is dropped.
pub const CAPACITY: usize = 1024 * 1024;

/// How long [`flush`] waits for stdout when the process stops.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The buffer between the loggers and the writer thread.
#[derive(Debug)]
pub struct LineBuffer {
    /// How long a batch gathers after its first line.
    interval: Duration,
    state: Mutex<State>,
    /// The writer waits here for lines (and, gathering, for a full batch or
    /// a flush request).
    gathered: Condvar,
    /// Loggers wait here while the buffer is at [`CAPACITY`].
    room: Condvar,
    /// [`LineBuffer::flush`] waits here for the writer.
    written: Condvar,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<u8>,
    /// Bytes handed over since the start.
    accepted: u64,
    /// Bytes the writer has written (or failed to: nowhere to report it).
    written: u64,
    /// Write what is pending now, without gathering more.
    flush_now: bool,
    /// No more lines: the writer ends once everything is written.
    closed: bool,
    /// The writer sleeps until woken (a quiet interval passed); else it
    /// wakes by itself every interval, and loggers need not wake it: every
    /// notification is a system call, whether anyone waits or not.
    parked: bool,
    /// Loggers waiting for room; [`LineBuffer::flush`] callers waiting.
    waiting_for_room: usize,
    waiting_for_written: usize,
}

impl LineBuffer {
    /// A buffer, and its writer thread writing to `sink` batches gathered
    /// for `interval`. `None` if the thread cannot be started (then write
    /// synchronously).
    pub fn start<W: Write + Send + 'static>(sink: W, interval: Duration) -> Option<Arc<Self>> {
        let buffer = Arc::new(Self {
            interval,
            state: Mutex::new(State {
                pending: Vec::with_capacity(16 * 1024),
                ..State::default()
            }),
            gathered: Condvar::new(),
            room: Condvar::new(),
            written: Condvar::new(),
        });
        let writer = Arc::clone(&buffer);
        std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || writer.run(sink))
            .ok()?;
        Some(buffer)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `bytes` (whole lines) to the writer; waits only while the
    /// buffer is full.
    pub fn push(&self, bytes: &[u8]) {
        let mut state = self.lock();
        while state.pending.len() >= CAPACITY && !state.closed {
            state.waiting_for_room += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting_for_room -= 1;
        }
        let was_full = state.pending.len() >= FLUSH_BYTES;
        state.pending.extend_from_slice(bytes);
        state.accepted += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        // Woken: a parked writer (the first line after a quiet interval), or
        // a gathering one once a batch is full.
        let wake = state.parked || (!was_full && state.pending.len() >= FLUSH_BYTES);
        state.parked = false;
        drop(state);
        if wake {
            self.gathered.notify_one();
        }
    }

    /// Waits until everything handed over so far is written, at most
    /// `timeout`; whether it was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let target = state.accepted;
        if state.written >= target {
            return true;
        }
        state.flush_now = true;
        self.gathered.notify_one();
        state.waiting_for_written += 1;
        while state.written < target {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .written
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.waiting_for_written -= 1;
        state.written >= target
    }

    /// Ends the writer once everything pending is written (tests; the
    /// process's buffer lives as long as the process).
    pub fn close(&self) {
        self.lock().closed = true;
        self.gathered.notify_one();
        self.room.notify_all();
    }

    /// The writer thread, until closed: every interval, writes what
    /// gathered (at once when a batch is full or a flush is asked for);
    /// after an interval without lines, sleeps until the next one comes.
    fn run<W: Write>(&self, mut sink: W) {
        let mut batch = Vec::with_capacity(16 * 1024);
        let mut state = self.lock();
        loop {
            let deadline = Instant::now() + self.interval;
            while !state.flush_now && !state.closed && state.pending.len() < FLUSH_BYTES {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self
                    .gathered
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.flush_now = false;
            if state.pending.is_empty() {
                if state.closed {
                    return;
                }
                // A quiet interval: sleep until a logger wakes us; its line
                // then gathers others for an interval.
                state.parked = true;
                while state.parked && !state.flush_now && !state.closed {
                    state = self
                        .gathered
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.parked = false;
                continue;
            }
            std::mem::swap(&mut state.pending, &mut batch);
            let upto = state.accepted;
            if state.waiting_for_room > 0 {
                self.room.notify_all();
            }
            drop(state);
            // Nowhere to report a failed log write to.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
            state = self.lock();
            state.written = upto;
            if state.waiting_for_written > 0 {
                self.written.notify_all();
            }
        }
    }
}

/// Standard output through the process's [`LineBuffer`] (started on first
/// use), or written directly if its thread could not start.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchedStdout;

/// The process's buffer to stdout, once started.
fn stdout_buffer() -> Option<&'static Arc<LineBuffer>> {
    static BUFFER: OnceLock<Option<Arc<LineBuffer>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| LineBuffer::start(std::io::stdout(), flush_interval()))
        .as_ref()
}

/// [`FLUSH_INTERVAL`], or what [`FLUSH_INTERVAL_ENV`] says.
fn flush_interval() -> Duration {
    std::env::var(FLUSH_INTERVAL_ENV)
        .ok()
        .and_then(|micros| micros.trim().parse().ok())
        .map_or(FLUSH_INTERVAL, Duration::from_micros)
}

/// Writes every line handed to [`BatchedStdout`] so far to stdout, waiting
/// at most [`FLUSH_TIMEOUT`]: before the process exits, and before a panic
/// message.
pub fn flush() {
    if let Some(buffer) = stdout_buffer() {
        buffer.flush(FLUSH_TIMEOUT);
    }
}

/// One event's writer: a handle on the buffer.
#[derive(Debug)]
pub enum BatchedWriter {
    /// Lines go to the writer thread.
    Buffered(&'static LineBuffer),
    /// No writer thread: straight to stdout.
    Direct(std::io::Stdout),
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> BatchedWriter {
        match stdout_buffer() {
            Some(buffer) => BatchedWriter::Buffered(buffer),
            None => BatchedWriter::Direct(std::io::stdout()),
        }
    }
}

impl Write for BatchedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Buffered(buffer) => {
                buffer.push(buf);
                Ok(buf.len())
            }
            Self::Direct(stdout) => stdout.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            // Handed over is as far as a logger goes: the writer thread
            // writes within FLUSH_INTERVAL, [`flush`] at the end.
            Self::Buffered(_) => Ok(()),
            Self::Direct(stdout) => stdout.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records each `write_all` batch.
    #[derive(Clone, Default)]
    struct Batches(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Batches {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_once_in_order_and_flush_waits_for_them() {
        let sink = Batches::default();
        let buffer = LineBuffer::start(sink.clone(), FLUSH_INTERVAL).expect("writer thread");
        let lines: Vec<String> = (0..1000).map(|n| format!("line {n}\n")).collect();
        for line in &lines {
            buffer.push(line.as_bytes());
        }
        assert!(buffer.flush(Duration::from_secs(10)), "flushed in time");
        let written = sink.0.lock().expect("sink").concat();
        assert_eq!(String::from_utf8(written).expect("utf-8"), lines.concat());
        let writes = sink.0.lock().expect("sink").len();
        assert!(
            writes < lines.len(),
            "{writes} writes for {} lines: not batched",
            lines.len()
        );
        buffer.close();
    }

    #[test]
    fn lines_from_many_threads_stay_whole_beyond_the_capacity() {
        let sink = Batches::default();
        let buffer = LineBuffer::start(sink.clone(), FLUSH_INTERVAL).expect("writer thread");
        // Each thread writes more than CAPACITY: loggers must wait, not drop.
        let line = format!("{}\n", "x".repeat(999));
        let per_thread = CAPACITY / line.len() + 100;
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..per_thread {
                        buffer.push(line.as_bytes());
                    }
                });
            }
        });
        assert!(buffer.flush(Duration::from_secs(30)), "flushed in time");
        let written = sink.0.lock().expect("sink").concat();
        let text = String::from_utf8(written).expect("utf-8");
        assert_eq!(text.lines().count(), 4 * per_thread);
        assert!(text.lines().all(|l| l.len() == 999), "a line was split");
        buffer.close();
    }

    #[test]
    fn flush_with_nothing_pending_returns_at_once() {
        let buffer = LineBuffer::start(Batches::default(), FLUSH_INTERVAL).expect("writer thread");
        assert!(buffer.flush(Duration::from_millis(1)));
        buffer.close();
    }
}
