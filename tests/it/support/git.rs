//! Git remotes for the tests: bare repositories (file://), smart HTTP through
//! `git http-backend` behind basic auth, and SSH through a private `sshd`. Everything lives in
//! temp dirs, listens on 127.0.0.1 free ports, and is stopped on drop.
//!
//! Server-side push counting: a `post-receive` hook appends one line per push to
//! `<repo>/pushes.log` (runs for pushes over HTTP, SSH and the git CLI). libgit2 pushes to a
//! `file://` URL write the refs directly and run no hook, so for those the bare repo also keeps
//! a reflog of every ref update (`core.logAllRefUpdates=always`): [`BareRepo::ref_updates`]
//! counts those for every transport.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

use super::free_port;

pub const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";
pub const SSHD: &str = "/usr/sbin/sshd";
/// Passphrase of [`SshServer::passphrase_key`].
pub const KEY_PASSPHRASE: &str = "key-pass-phrase-42";

/// Runs the git CLI in `dir` with a fixed identity; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Human")
        .env("GIT_AUTHOR_EMAIL", "human@example.com")
        .env("GIT_COMMITTER_NAME", "Human")
        .env("GIT_COMMITTER_EMAIL", "human@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A bare repository in its own temp dir, with a push-counting hook and receive-pack enabled
/// for HTTP. `root()` is the directory to serve (it holds only `repo.git`).
pub struct BareRepo {
    dir: TempDir,
    path: PathBuf,
    scratch: PathBuf,
}

impl BareRepo {
    /// An empty bare repository `repo.git` whose default branch is `branch`.
    pub fn empty(branch: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("repo.git");
        std::fs::create_dir_all(&path).expect("mkdir");
        git(&path, &["init", "--bare", "-q", "-b", branch]);
        git(&path, &["config", "http.receivepack", "true"]);
        git(&path, &["config", "core.logAllRefUpdates", "always"]);
        let hook = path.join("hooks/post-receive");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\ncat >/dev/null\necho push >> '{}'\n",
                path.join("pushes.log").display()
            ),
        )
        .expect("write hook");
        set_executable(&hook);
        let scratch = dir.path().join("scratch");
        BareRepo { dir, path, scratch }
    }

    /// A bare repository whose `branch` has one commit with `files`.
    pub fn with_files(branch: &str, files: &[(&str, &str)]) -> Self {
        let repo = Self::empty(branch);
        repo.push_files(branch, files, "initial commit");
        repo
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory that contains `repo.git` (the HTTP server's project root).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Another writer: commits `files` on `branch` with the git CLI (author human@example.com)
    /// and pushes. `branch` must exist, except for the first commit of an empty repo.
    /// Returns the new commit id.
    pub fn push_files(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        self.push_files_from(branch, branch, files, message)
    }

    /// Like [`Self::push_files`], but starts `branch` from `base` when it does not exist yet.
    pub fn push_files_from(
        &self,
        base: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> String {
        let work = &self.scratch;
        if !work.exists() {
            std::fs::create_dir_all(work).expect("mkdir scratch");
            git(work, &["init", "-q"]);
            git(
                work,
                &["remote", "add", "origin", &self.path.display().to_string()],
            );
        }
        git(work, &["fetch", "-q", "origin"]);
        let exists = |b: &str| !git(work, &["ls-remote", "--heads", "origin", b]).is_empty();
        if exists(branch) {
            git(
                work,
                &[
                    "checkout",
                    "-q",
                    "-f",
                    "-B",
                    branch,
                    &format!("origin/{branch}"),
                ],
            );
        } else if exists(base) {
            git(
                work,
                &[
                    "checkout",
                    "-q",
                    "-f",
                    "-B",
                    branch,
                    &format!("origin/{base}"),
                ],
            );
        } else {
            git(
                work,
                &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
            );
        }
        for (name, content) in files {
            let file = work.join(name);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, content).expect("write file");
            git(work, &["add", name]);
        }
        git(work, &["commit", "-q", "--allow-empty", "-m", message]);
        git(
            work,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(work, &["rev-parse", "HEAD"])
    }

    /// A writer that wins the race *inside* the server: the next push's `pre-receive` hook
    /// (which runs after the client saw the ref advertisement, before receive-pack updates the
    /// ref) commits "sneaky human" on `branch`. receive-pack's compare-and-swap on the old value
    /// then fails for the push being received. Only for HTTP and SSH (hooks run there).
    pub fn sneak_in_commit_during_next_push(&self, branch: &str) {
        let hook = self.path.join("hooks/pre-receive");
        let marker = self.path.join("sneaked");
        let _ = std::fs::remove_file(&marker);
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\ncat >/dev/null\n[ -e '{marker}' ] && exit 0\ntouch '{marker}'\n\
                 unset GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_QUARANTINE_PATH\n\
                 old=$(git rev-parse refs/heads/{branch}) || exit 1\n\
                 new=$(GIT_AUTHOR_NAME=Human GIT_AUTHOR_EMAIL=human@example.com \
                 GIT_COMMITTER_NAME=Human GIT_COMMITTER_EMAIL=human@example.com \
                 git commit-tree -p $old -m 'sneaky human' \"$old^{{tree}}\") || exit 1\n\
                 git update-ref refs/heads/{branch} $new $old || exit 1\nexit 0\n",
                marker = marker.display()
            ),
        )
        .expect("write hook");
        set_executable(&hook);
    }

    /// Installs a `pre-receive` hook that refuses every push (a protected branch).
    pub fn refuse_pushes(&self) {
        let hook = self.path.join("hooks/pre-receive");
        std::fs::write(&hook, "#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
            .expect("write hook");
        set_executable(&hook);
    }

    /// The commit `branch` points at, `None` when it does not exist.
    pub fn head(&self, branch: &str) -> Option<String> {
        let output = Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(&self.path)
            .output()
            .expect("git rev-parse");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// `(sha, subject, author email)` of every commit of `branch`, newest first, first parent.
    pub fn log(&self, branch: &str) -> Vec<(String, String, String)> {
        git(
            &self.path,
            &["log", "--first-parent", "--format=%H%x09%s%x09%ae", branch],
        )
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let mut next = || parts.next().unwrap_or("").to_string();
            (next(), next(), next())
        })
        .collect()
    }

    /// Content of `file` at the tip of `branch`.
    pub fn show(&self, branch: &str, file: &str) -> String {
        git(&self.path, &["show", &format!("{branch}:{file}")])
    }

    /// Pushes seen by the post-receive hook (HTTP, SSH, git CLI; not libgit2 over file://).
    pub fn hook_pushes(&self) -> usize {
        std::fs::read_to_string(self.path.join("pushes.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Updates of `refs/heads/<branch>` recorded in the bare repo's reflog (every transport).
    pub fn ref_updates(&self, branch: &str) -> usize {
        std::fs::read_to_string(self.path.join("logs/refs/heads").join(branch))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Was any update of `branch` a non-fast-forward (a force push)? Checks every reflog entry:
    /// the old value must be an ancestor of the new one.
    pub fn any_forced_update(&self, branch: &str) -> bool {
        let log = std::fs::read_to_string(self.path.join("logs/refs/heads").join(branch))
            .unwrap_or_default();
        log.lines().any(|line| {
            let mut fields = line.split(' ');
            let (Some(old), Some(new)) = (fields.next(), fields.next()) else {
                return false;
            };
            if old.chars().all(|c| c == '0') {
                return false;
            }
            !Command::new("git")
                .args(["merge-base", "--is-ancestor", old, new])
                .current_dir(&self.path)
                .status()
                .expect("git merge-base")
                .success()
        })
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perms = std::fs::metadata(path).expect("stat").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// Smart HTTP: `git http-backend` as a CGI behind basic auth, served by a small std::net server.
pub struct GitHttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// What a [`GitHttpServer`] has served.
#[derive(Default)]
struct Counts {
    /// Completed `git-receive-pack` POSTs.
    receive_packs: AtomicUsize,
    /// Completed `info/refs?service=git-upload-pack` GETs: one per fetch or clone.
    fetches: AtomicUsize,
}

impl GitHttpServer {
    /// Serves every repository under `project_root`, requiring `username`/`password`.
    pub fn start(project_root: &Path, username: &str, password: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        );
        let root = project_root.to_path_buf();
        let thread = {
            let stop = Arc::clone(&stop);
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let root = root.clone();
                            let expected_auth = expected_auth.clone();
                            let counts = Arc::clone(&counts);
                            std::thread::spawn(move || {
                                let _ = serve_connection(stream, &root, &expected_auth, &counts);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        GitHttpServer {
            port,
            stop,
            thread: Some(thread),
            counts,
        }
    }

    /// `http://127.0.0.1:PORT/<name>` (e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Completed `git-receive-pack` POSTs (pushes that reached the server).
    pub fn receive_packs(&self) -> usize {
        self.counts.receive_packs.load(Ordering::SeqCst)
    }

    /// Completed ref advertisements for fetching (`info/refs?service=git-upload-pack`): one
    /// per fetch or clone, whether or not it then downloads anything.
    pub fn fetches(&self) -> usize {
        self.counts.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    root: &Path,
    expected_auth: &str,
    counts: &Counts,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut reader)?
        } else {
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
        if header("authorization").as_deref() != Some(expected_auth) {
            let message = b"authentication required\n";
            write!(
                writer,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                message.len()
            )?;
            writer.write_all(message)?;
            writer.flush()?;
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut child = Command::new(HTTP_BACKEND)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
            .env("CONTENT_LENGTH", body.len().to_string())
            .env(
                "HTTP_CONTENT_ENCODING",
                header("content-encoding").unwrap_or_default(),
            )
            .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
            .env("REMOTE_USER", "tester")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let mut output = Vec::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_end(&mut output)?;
        let _ = feeder.join();
        let status = child.wait()?;
        let split = find_header_end(&output).unwrap_or(output.len());
        let (cgi_headers, cgi_body) = output.split_at(split);
        let cgi_body = cgi_body
            .strip_prefix(b"\r\n\r\n".as_slice())
            .or_else(|| cgi_body.strip_prefix(b"\n\n".as_slice()))
            .unwrap_or(cgi_body);
        let mut status_line = "200 OK".to_string();
        let mut response_headers = String::new();
        for line in String::from_utf8_lossy(cgi_headers).lines() {
            if let Some(value) = line.strip_prefix("Status:") {
                status_line = value.trim().to_string();
            } else if !line.trim().is_empty() {
                response_headers.push_str(line.trim_end());
                response_headers.push_str("\r\n");
            }
        }
        if !status.success() && status_line.starts_with("200") {
            status_line = "500 Internal Server Error".to_string();
        }
        if method == "POST" && path.ends_with("/git-receive-pack") && status_line.starts_with("200")
        {
            counts.receive_packs.fetch_add(1, Ordering::SeqCst);
        }
        if method == "GET"
            && path.ends_with("/info/refs")
            && query.contains("service=git-upload-pack")
            && status_line.starts_with("200")
        {
            counts.fetches.fetch_add(1, Ordering::SeqCst);
        }
        write!(
            writer,
            "HTTP/1.1 {status_line}\r\n{response_headers}Content-Length: {}\r\n\r\n",
            cgi_body.len()
        )?;
        writer.write_all(cgi_body)?;
        writer.flush()?;
    }
}

fn find_header_end(output: &[u8]) -> Option<usize> {
    let crlf = output.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = output.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

/// A private `sshd` on a loopback port, running as the current user, that accepts `user_key`.
pub struct SshServer {
    dir: TempDir,
    port: u16,
    child: Child,
    user: String,
}

impl SshServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"), "ed25519", "");
        keygen(&d.join("user_key"), "ed25519", "");
        keygen(&d.join("other_key"), "ed25519", "");
        keygen(&d.join("other_host_key"), "ed25519", "");
        keygen(&d.join("passphrase_key"), "ed25519", KEY_PASSPHRASE);
        let authorized = [
            std::fs::read_to_string(d.join("user_key.pub")).expect("user key"),
            std::fs::read_to_string(d.join("passphrase_key.pub")).expect("passphrase key"),
        ];
        std::fs::write(d.join("authorized_keys"), authorized.concat()).expect("authorized_keys");
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(whoami);
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        // The free port may be taken by another process before sshd binds it: then sshd exits,
        // and it is started again on another port.
        let mut dir = Some(dir);
        for _ in 0..5 {
            match Self::try_start(
                dir.take().expect("the directory is given back on failure"),
                &user,
            ) {
                Ok(server) => return server,
                Err(back) => dir = Some(back),
            }
        }
        panic!("sshd lost its port to another process 5 times in a row");
    }

    /// Starts sshd on a free port with the keys in `dir`; gives `dir` back when sshd could not
    /// take the port.
    fn try_start(dir: TempDir, user: &str) -> Result<Self, TempDir> {
        let d = dir.path();
        let port = free_port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nAllowUsers {user}\nLogLevel VERBOSE\n\
                 SetEnv PATH=/usr/local/bin:/usr/bin:/bin:/usr/lib/git-core\n",
                host_key = d.join("host_key").display(),
                pid = d.join("sshd.pid").display(),
                auth = d.join("authorized_keys").display(),
            ),
        )
        .expect("sshd_config");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).expect("log"))
            .spawn()
            .expect("start sshd");
        let mut server = SshServer {
            dir,
            port,
            child,
            user: user.to_string(),
        };
        if server.wait_ready() {
            Ok(server)
        } else {
            let _ = server.child.wait();
            let log = server.log();
            eprintln!("sshd could not take port {port}, trying another: {log}");
            // `SshServer` has a Drop: the directory is moved out through a swap.
            let mut dir = tempfile::tempdir().expect("temp dir");
            std::mem::swap(&mut dir, &mut server.dir);
            Err(dir)
        }
    }

    /// Waits until this sshd serves its port; `false` when it exited first (the port was
    /// taken). Its own log line, not only an SSH banner, says the port is its: the banner
    /// could be another sshd's that took the port.
    fn wait_ready(&mut self) -> bool {
        let listening = format!("Server listening on 127.0.0.1 port {}.", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if !self.log().contains(&listening) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not start: {}", self.log());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://USER@127.0.0.1:PORT/abs/path`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The private key sshd accepts.
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// A private key sshd accepts, encrypted with [`KEY_PASSPHRASE`].
    pub fn passphrase_key(&self) -> PathBuf {
        self.dir.path().join("passphrase_key")
    }

    /// A private key sshd does not accept.
    pub fn other_key(&self) -> PathBuf {
        self.dir.path().join("other_key")
    }

    /// A known_hosts file listing this server's real host key as `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self) -> PathBuf {
        self.write_known_hosts(
            "known_hosts",
            "host_key.pub",
            &format!("[127.0.0.1]:{}", self.port),
        )
    }

    /// A known_hosts file listing a different key for this server (a changed host key).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        self.write_known_hosts(
            "wrong_known_hosts",
            "other_host_key.pub",
            &format!("[127.0.0.1]:{}", self.port),
        )
    }

    /// A known_hosts file that lists only some other host.
    pub fn unrelated_known_hosts(&self) -> PathBuf {
        self.write_known_hosts("unrelated_known_hosts", "host_key.pub", "git.example.com")
    }

    fn write_known_hosts(&self, name: &str, key: &str, host: &str) -> PathBuf {
        let public = std::fs::read_to_string(self.dir.path().join(key)).expect("read key");
        let mut fields = public.split_whitespace();
        let (key_type, blob) = (fields.next().expect("type"), fields.next().expect("blob"));
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{host} {key_type} {blob}\n")).expect("write known_hosts");
        path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-keygen -t KEY_TYPE` into `path` (and `path.pub`) under `passphrase` (empty: none).
pub fn keygen(path: &Path, key_type: &str, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            key_type,
            "-N",
            passphrase,
            "-C",
            "imagebump-test",
            "-f",
        ])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen -t {key_type} failed");
}

fn whoami() -> String {
    let output = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
