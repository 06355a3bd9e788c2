//! A child process owned by a test: its output goes to a log file, and it is
//! stopped (SIGTERM, then SIGKILL) when the owner is dropped, so a failing or
//! panicking test leaves no stray process behind.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::SupportError;

/// A running child process with its log file.
#[derive(Debug)]
pub struct ManagedProcess {
    what: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ManagedProcess {
    /// Spawns `binary args...`, appending stdout and stderr to `log`.
    pub fn spawn(
        what: &str,
        binary: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Self, SupportError> {
        Self::spawn_with_env(what, binary, args, &[], log)
    }

    /// Like [`ManagedProcess::spawn`], with `env` set on top of the test's
    /// own environment.
    pub fn spawn_with_env(
        what: &str,
        binary: &Path,
        args: &[String],
        env: &[(&str, &OsStr)],
        log: &Path,
    ) -> Result<Self, SupportError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(SupportError::io(format!(
                "cannot open log {}",
                log.display()
            )))?;
        let err = out.try_clone().map_err(SupportError::io(format!(
            "cannot open log {}",
            log.display()
        )))?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: a Ctrl-C meant for the test runner does not
            // race our orderly shutdown.
            .process_group(0)
            .spawn()
            .map_err(|source| SupportError::Spawn {
                what: what.to_owned(),
                binary: binary.to_owned(),
                source,
            })?;
        Ok(Self {
            what: what.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Path of the log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// `Some(status)` if the process has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(err)) => Some(format!("unknown status: {err}")),
            None => Some("stopped".to_owned()),
        }
    }

    /// Polls `ready` until it returns `Some`; fails with the log's tail if the
    /// process exits first or `timeout` passes (then the process is stopped).
    pub async fn wait_until<T, F, Fut>(
        &mut self,
        timeout: Duration,
        mut ready: F,
    ) -> Result<T, SupportError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(SupportError::ExitedEarly {
                    what: self.what.clone(),
                    status,
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            if let Some(value) = ready().await {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(SupportError::NotReady {
                    what: self.what.clone(),
                    timeout_ms: timeout.as_millis(),
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGKILL and reaps the process: a crash, as in a resilience test.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process: SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
