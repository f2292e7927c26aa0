//! The one way tests run the `imagebump` binary: a command built from the binary's path, its
//! arguments, a `--config` path, the environment (the variables that would leak the caller's
//! settings into a test removed) and a working directory; run to its end with stdout, stderr
//! and status captured, or spawned as a daemon that is stopped by its pid when dropped.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_imagebump");

/// Variables of the caller's environment that would change what the binary does; every run
/// starts without them (a test that wants one sets it with [`Imagebump::env`]).
const CALLER_SETTINGS: [&str; 3] = ["IMAGEBUMP_CONFIG", "IMAGEBUMP_URL", "RUST_LOG"];

/// One `imagebump` invocation, built up then run with [`Imagebump::output`] or
/// [`Imagebump::spawn`].
#[derive(Clone, Debug, Default)]
pub struct Imagebump {
    args: Vec<OsString>,
    config: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Imagebump {
    /// `imagebump ARGS...`.
    pub fn new<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Imagebump {
        Imagebump::default().args(args)
    }

    /// More arguments, after those given so far (and before `--config`).
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Imagebump {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn arg(self, arg: impl AsRef<OsStr>) -> Imagebump {
        self.args([arg])
    }

    /// `--config PATH`, passed after every other argument.
    pub fn config(mut self, path: impl AsRef<Path>) -> Imagebump {
        self.config = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Imagebump {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Imagebump {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// The working directory of the process.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Imagebump {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// What the process reads on stdin (otherwise stdin is inherited, as `Command` does).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Imagebump {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// The `std::process::Command` this describes.
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.args(&self.args);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        for key in CALLER_SETTINGS {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs to the end: status, stdout and stderr.
    pub fn output(&self) -> Output {
        let mut command = self.command();
        let Some(input) = &self.stdin else {
            return command.output().expect("run imagebump");
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn imagebump");
        let written = child.stdin.take().expect("stdin").write_all(input);
        // A usage error exits before reading stdin; the pipe is then closed under us.
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        child.wait_with_output().expect("wait for imagebump")
    }

    /// [`Imagebump::output`] on a blocking thread, for async tests.
    pub async fn output_async(self) -> Output {
        tokio::task::spawn_blocking(move || self.output())
            .await
            .expect("join the imagebump run")
    }

    /// Starts the process (a daemon, usually) with `stdout` and `stderr` as given; it is
    /// stopped by its pid when the returned [`Process`] is dropped.
    pub fn spawn(&self, stdout: impl Into<Stdio>, stderr: impl Into<Stdio>) -> Process {
        let child = self
            .command()
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start imagebump");
        Process { child: Some(child) }
    }
}

/// A running `imagebump` this test started; killed by its pid and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
}

impl Process {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process is still ours")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is still ours").id()
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`...) to this process's pid with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("wait for imagebump")
    }

    /// Waits up to `timeout` for the process to end by itself and returns what it wrote to the
    /// pipes it was given; `None` (after killing it) when it is still running by then.
    pub fn wait_timeout(mut self, timeout: Duration) -> Option<Output> {
        let deadline = Instant::now() + timeout;
        while self.try_wait().is_none() {
            if Instant::now() > deadline {
                self.stop();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(self.wait_with_output())
    }

    /// Waits for the process to end and returns what it wrote to the pipes it was given.
    pub fn wait_with_output(mut self) -> Output {
        let child = self.child.take().expect("the process is still ours");
        child.wait_with_output().expect("wait for imagebump")
    }

    /// Kills the process (SIGKILL) by its pid and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Status, stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
