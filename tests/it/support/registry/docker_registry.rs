//! The `docker-registry` process: its config (auth, TLS, notifications), start with a retry
//! when another process takes the port first, readiness, and storage shortcuts for bulk tags.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// How the registry authenticates clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthMode {
    #[default]
    None,
    /// htpasswd (bcrypt) basic auth with one user.
    Basic { username: String, password: String },
    /// `auth: token`: the registry trusts JWTs from an in-test token server, which issues them
    /// to this user (HTTP basic auth on the realm) and, if `anonymous_pull`, to anyone for pull.
    Token {
        username: String,
        password: String,
        anonymous_pull: bool,
    },
}

impl AuthMode {
    pub fn basic(username: &str, password: &str) -> Self {
        AuthMode::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    pub fn token(username: &str, password: &str) -> Self {
        AuthMode::Token {
            username: username.to_string(),
            password: password.to_string(),
            anonymous_pull: false,
        }
    }
}

/// One `notifications.endpoints` entry of the registry config.
#[derive(Debug, Clone)]
pub struct NotificationEndpoint {
    pub name: String,
    pub url: String,
    /// Sent with every notification (each header once).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub threshold: u32,
    pub backoff: Duration,
}

impl NotificationEndpoint {
    pub fn new(name: &str, url: &str) -> Self {
        NotificationEndpoint {
            name: name.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            threshold: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    pub auth: AuthMode,
    pub notifications: Vec<NotificationEndpoint>,
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by a test CA
    /// ([`TestRegistry::ca_file`]).
    pub tls: bool,
    /// With `tls`: serve a self-signed certificate made the quick way (`openssl req -x509`,
    /// which marks it as a CA), and give that certificate itself as [`TestRegistry::ca_file`].
    pub self_signed: bool,
    /// Write an access log line per request into the registry's log (to count requests).
    pub access_log: bool,
}

/// A running `docker-registry`; killed (with its token server) on drop.
pub struct TestRegistry {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The CA that signed the registry's certificate, when it serves HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Serves a self-signed CA-marked certificate: the harness's own client accepts it unchecked.
    self_signed: bool,
    pub auth: AuthMode,
    pub token_server: Option<TokenServer>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

pub(super) fn run(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl TestRegistry {
    /// A registry without auth.
    pub async fn start_plain() -> TestRegistry {
        Self::start(RegistryConfig::default()).await
    }

    pub async fn start_with_auth(auth: AuthMode) -> TestRegistry {
        Self::start(RegistryConfig {
            auth,
            ..RegistryConfig::default()
        })
        .await
    }

    /// Start a registry and wait until `/v2/` answers.
    pub async fn start(config: RegistryConfig) -> TestRegistry {
        // The port is picked free, then bound by docker-registry a moment later: another
        // process may take it in between. Then the registry exits ("address already in use")
        // and the test must not talk to whoever answers on that port: start again elsewhere.
        for _ in 0..5 {
            if let Some(registry) = Self::try_start(&config).await {
                return registry;
            }
        }
        panic!("docker-registry lost its port to another process 5 times in a row");
    }

    async fn try_start(config: &RegistryConfig) -> Option<TestRegistry> {
        // Registry storage is many small files: keep it in memory when the machine offers a
        // tmpfs, the disk's metadata speed would dominate the bulk-tag tests otherwise.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("imagebump-registry-")
                .tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage dir");
        let port = crate::support::free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: imagebump-test-secret\n",
            storage.display()
        );
        if config.access_log {
            yaml = yaml.replace("    disabled: true\n", "    disabled: false\n");
        }
        let mut ca_file = None;
        if config.tls {
            let (ca, cert, key) = if config.self_signed {
                self_signed_files(dir.path())
            } else {
                tls_files(dir.path())
            };
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_file = Some(ca);
        }
        let mut token_server = None;
        match &config.auth {
            AuthMode::None => {}
            AuthMode::Basic { username, password } => {
                let output = run(Command::new("htpasswd").args(["-Bbn", username, password]));
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, &output.stdout).expect("write htpasswd");
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: imagebump-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            AuthMode::Token {
                username,
                password,
                anonymous_pull,
            } => {
                let signer = TokenSigner::generate(dir.path());
                let server =
                    TokenServer::start(signer, username.clone(), password.clone(), *anonymous_pull)
                        .await;
                yaml.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    server.signer.cert_pem.display()
                ));
                token_server = Some(server);
            }
        }
        if !config.notifications.is_empty() {
            yaml.push_str("notifications:\n  endpoints:\n");
            for endpoint in &config.notifications {
                yaml.push_str(&format!(
                    "    - name: {}\n      url: {}\n      timeout: {}\n      threshold: {}\n      backoff: {}\n",
                    endpoint.name,
                    endpoint.url,
                    millis(endpoint.timeout),
                    endpoint.threshold,
                    millis(endpoint.backoff)
                ));
                if !endpoint.headers.is_empty() {
                    yaml.push_str("      headers:\n");
                    for (name, value) in &endpoint.headers {
                        yaml.push_str(&format!(
                            "        {name}: [{}]\n",
                            serde_json::to_string(value).expect("json string")
                        ));
                    }
                }
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, yaml).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/docker-registry (apt install docker-registry)");
        let mut registry = TestRegistry {
            child,
            dir,
            port,
            ca_file,
            self_signed: config.tls && config.self_signed,
            auth: config.auth.clone(),
            token_server,
        };
        registry.wait_ready().await.then_some(registry)
    }

    /// Waits until this registry answers; `false` when it exited because its port was taken.
    async fn wait_ready(&mut self) -> bool {
        let http = self.http_client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answered = match http.get(format!("{}/v2/", self.url())).send().await {
                Ok(response) => response.status().is_success() || response.status() == 401,
                Err(_) => false,
            };
            // Whoever answered, it is ours only if our process still runs.
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                assert!(
                    log.contains("address already in use"),
                    "docker-registry exited ({status}); log:\n{log}"
                );
                return false;
            }
            if answered {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `docker-registry` process's id (benches read its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`, the registry part of image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }

    /// A reqwest client trusting this registry's CA (if any).
    pub fn http_client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder();
        if self.self_signed {
            // rustls refuses a CA certificate as a server's own, whoever trusts it; the
            // harness only needs to know the registry is up and to push to it.
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).expect("read CA");
            let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("CA pem");
            builder = builder.tls_certs_merge(certs);
        }
        builder.build().expect("http client")
    }

    /// `127.0.0.1:PORT/<repository>`.
    pub fn image(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host())
    }

    /// The registry's own log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Point many tags at an already pushed manifest by writing the registry's tag links in its
    /// storage directly (the filesystem driver's layout), which is what a manifest PUT by tag
    /// does, minus thousands of HTTP round trips. For bulk tags (pagination tests, benchmarks).
    pub fn seed_tags(&self, repository: &str, pushed: &Pushed, tags: &[String]) {
        let hex = pushed
            .digest
            .strip_prefix("sha256:")
            .expect("sha256 digest");
        let tags_dir = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories")
            .join(repository)
            .join("_manifests/tags");
        assert!(
            tags_dir.parent().expect("parent").is_dir(),
            "push an image to {repository} before seeding tags"
        );
        for tag in tags {
            let tag_dir = tags_dir.join(tag);
            let current = tag_dir.join("current");
            let index = tag_dir.join("index/sha256").join(hex);
            std::fs::create_dir_all(&current).expect("tag dir");
            std::fs::create_dir_all(&index).expect("tag index dir");
            std::fs::write(current.join("link"), &pushed.digest).expect("current link");
            std::fs::write(index.join("link"), &pushed.digest).expect("index link");
        }
    }

    /// Copy repository `from` (links only; blobs are shared) to `to`, as if its images had
    /// been pushed there too. For many repositories at once (benchmarks).
    pub fn clone_repository(&self, from: &str, to: &str) {
        let root = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories");
        copy_dir(&root.join(from), &root.join(to));
    }

    /// A client that pushes with full rights in every auth mode.
    pub fn pusher(&self) -> Pusher {
        let mut pusher = Pusher::new(self.url(), self.push_auth());
        pusher.http = self.http_client();
        pusher
    }

    fn push_auth(&self) -> PushAuth {
        match &self.auth {
            AuthMode::None => PushAuth::None,
            AuthMode::Basic { username, password } => {
                PushAuth::Basic(username.clone(), password.clone())
            }
            AuthMode::Token { .. } => PushAuth::Token(
                self.token_server
                    .as_ref()
                    .expect("token mode has a token server")
                    .signer
                    .clone(),
            ),
        }
    }

    /// Token requests the token server answered (0 without one).
    pub fn token_requests(&self) -> usize {
        self.token_server
            .as_ref()
            .map_or(0, |server| server.requests.load(Ordering::SeqCst))
    }
}

/// A self-signed certificate for 127.0.0.1 as `openssl req -x509` makes it (with its default
/// `basicConstraints=CA:TRUE`): `(tls.pem, tls.pem, tls.key)`.
fn self_signed_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let cert = dir.join("tls.pem");
    let key = dir.join("tls.key");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert.clone(), cert, key)
}

/// A test CA and a certificate for 127.0.0.1 it signed: `(ca.pem, tls.pem, tls.key)`.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    let cert = dir.join("tls.pem");
    let key = dir.join("tls.key");
    let csr = dir.join("tls.csr");
    let ext = dir.join("tls.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=imagebump-test-ca"])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
