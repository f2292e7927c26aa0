//! Debian's `docker-registry` (CNCF distribution 2.8) on a free loopback port, configured to send
//! its notifications to a webhook URL with a fixed `Authorization` header, plus the few HTTP API
//! calls a test needs to push and pull a tiny image. Killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub struct NotifyingRegistry {
    child: Child,
    /// `127.0.0.1:<port>`, also what the registry reports as `request.host`.
    pub host: String,
    dir: tempfile::TempDir,
}

impl NotifyingRegistry {
    /// Starts the registry; notifications go to `notify_url` with `Authorization: <authorization>`.
    pub fn start(notify_url: &str, authorization: &str) -> NotifyingRegistry {
        let port = super::free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            r#"version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
notifications:
  endpoints:
    - name: imagebump
      url: {notify_url}
      headers:
        Authorization: ["{authorization}"]
      timeout: 2s
      threshold: 5
      backoff: 1s
"#,
            root = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/docker-registry (apt-get install docker-registry)");
        let registry = NotifyingRegistry {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        };
        let start = Instant::now();
        while TcpStream::connect(&registry.host).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen; log:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// The registry's own log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    async fn put_blob(&self, client: &reqwest::Client, repository: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let started = client
            .post(self.url(&format!("/v2/{repository}/blobs/uploads/")))
            .send()
            .await
            .expect("start blob upload");
        assert_eq!(started.status(), 202, "start blob upload");
        let location = started
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .expect("upload location")
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = client
            .put(format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("blob upload");
        assert_eq!(response.status(), 201, "blob upload");
        digest
    }

    /// Pushes a one-layer image as `repository:tag` (two blob pushes, one manifest push);
    /// returns when the registry accepted the manifest (the moment the tag exists).
    pub async fn push_image(&self, repository: &str, tag: &str) -> Instant {
        let client = reqwest::Client::new();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"tag":"{tag}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let layer = format!("layer of {repository}:{tag}");
        let config_digest = self.put_blob(&client, repository, config.as_bytes()).await;
        let layer_digest = self.put_blob(&client, repository, layer.as_bytes()).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": layer_digest}],
        });
        let response = client
            .put(self.url(&format!("/v2/{repository}/manifests/{tag}")))
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .body(serde_json::to_vec(&manifest).expect("json"))
            .send()
            .await
            .expect("manifest push");
        let tagged = Instant::now();
        assert_eq!(response.status(), 201, "manifest push");
        tagged
    }

    /// Pulls the manifest of `repository:tag` (the registry sends `pull` events).
    pub async fn pull_manifest(&self, repository: &str, tag: &str) {
        let response = reqwest::Client::new()
            .get(self.url(&format!("/v2/{repository}/manifests/{tag}")))
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .expect("manifest pull");
        assert_eq!(response.status(), 200, "manifest pull");
    }
}

impl Drop for NotifyingRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
