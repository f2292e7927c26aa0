//! Pushing real images (blobs, manifests, indexes) through the distribution API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::*;

#[derive(Clone)]
pub enum PushAuth {
    None,
    Basic(String, String),
    Token(Arc<TokenSigner>),
}

/// Manifest flavour of a pushed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestStyle {
    Oci,
    Docker,
}

/// One image to push: its platform, build time and manifest annotations.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The config blob's `created` (RFC 3339), or none.
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub style: ManifestStyle,
    pub annotations: Vec<(String, String)>,
}

impl ImageSpec {
    /// linux/amd64, OCI, built at `created`.
    pub fn new(created: &str) -> Self {
        ImageSpec {
            created: Some(created.to_string()),
            os: "linux".to_string(),
            architecture: "amd64".to_string(),
            variant: None,
            style: ManifestStyle::Oci,
            annotations: Vec::new(),
        }
    }

    /// `os/arch[/variant]`.
    pub fn platform(mut self, platform: &str) -> Self {
        let mut parts = platform.split('/');
        self.os = parts.next().expect("os").to_string();
        self.architecture = parts.next().expect("architecture").to_string();
        self.variant = parts.next().map(str::to_string);
        self
    }

    pub fn docker(mut self) -> Self {
        self.style = ManifestStyle::Docker;
        self
    }

    pub fn without_created(mut self) -> Self {
        self.created = None;
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }
}

/// What a push produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes blobs and manifests through the distribution API.
#[derive(Clone)]
pub struct Pusher {
    pub(super) http: reqwest::Client,
    base: String,
    auth: PushAuth,
}

impl Pusher {
    pub fn new(base: String, auth: PushAuth) -> Self {
        Pusher {
            http: reqwest::Client::new(),
            base,
            auth,
        }
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        repository: &str,
    ) -> reqwest::RequestBuilder {
        match &self.auth {
            PushAuth::None => request,
            PushAuth::Basic(user, password) => request.basic_auth(user, Some(password)),
            PushAuth::Token(signer) => request.bearer_auth(signer.push_token(repository)),
        }
    }

    /// Upload a blob (POST then PUT with the digest); returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let start = self
            .authorize(
                self.http
                    .post(format!("{}/v2/{repository}/blobs/uploads/", self.base)),
                repository,
            )
            .send()
            .await
            .expect("start upload");
        assert_eq!(
            start.status(),
            202,
            "start upload: {:?}",
            start.text().await
        );
        let location = start
            .headers()
            .get("location")
            .expect("upload location")
            .to_str()
            .expect("location text")
            .to_string();
        let mut url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let put = self
            .authorize(self.http.put(url), repository)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("finish upload");
        assert_eq!(put.status(), 201, "finish upload: {:?}", put.text().await);
        digest
    }

    /// PUT a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let response = self
            .authorize(
                self.http.put(format!(
                    "{}/v2/{repository}/manifests/{reference}",
                    self.base
                )),
                repository,
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(
            response.status(),
            201,
            "put manifest {repository}:{reference}: {:?}",
            response.text().await
        );
        sha256_digest(body)
    }

    /// GET the manifest of `repository:reference` (the registry notifies a `pull`).
    pub async fn pull_manifest(&self, repository: &str, reference: &str) {
        let response = self
            .authorize(
                self.http.get(format!(
                    "{}/v2/{repository}/manifests/{reference}",
                    self.base
                )),
                repository,
            )
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .expect("get manifest");
        assert_eq!(
            response.status(),
            200,
            "get manifest {repository}:{reference}: {:?}",
            response.text().await
        );
    }

    /// Push the blobs and the manifest of one image, without a tag (by digest).
    pub async fn push_image_untagged(&self, repository: &str, spec: &ImageSpec) -> Pushed {
        let layer = format!(
            "layer of {repository} {:?} {}/{}/{:?}",
            spec.created, spec.os, spec.architecture, spec.variant
        )
        .into_bytes();
        let layer_digest = self.push_blob(repository, &layer).await;
        let mut config = serde_json::json!({
            "architecture": spec.architecture,
            "os": spec.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        if let Some(created) = &spec.created {
            config["created"] = serde_json::json!(created);
        }
        if let Some(variant) = &spec.variant {
            config["variant"] = serde_json::json!(variant);
        }
        let config = serde_json::to_vec(&config).expect("config json");
        let config_digest = self.push_blob(repository, &config).await;
        let (media_type, config_type, layer_type) = match spec.style {
            ManifestStyle::Oci => (
                imagebump::registry::OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            ManifestStyle::Docker => (
                imagebump::registry::DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ),
        };
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": layer.len()}],
        });
        if !spec.annotations.is_empty() {
            manifest["annotations"] = spec
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        let body = serde_json::to_vec(&manifest).expect("manifest json");
        let digest = sha256_digest(&body);
        self.push_manifest(repository, &digest, media_type, &body)
            .await;
        Pushed {
            digest,
            media_type: media_type.to_string(),
            body,
        }
    }

    /// Push a single-arch image under `tag`.
    pub async fn push_image(&self, repository: &str, tag: &str, spec: &ImageSpec) -> Pushed {
        let pushed = self.push_image_untagged(repository, spec).await;
        self.push_manifest(repository, tag, &pushed.media_type, &pushed.body)
            .await;
        pushed
    }

    /// Push one image per spec and an index (OCI index or Docker manifest list, after the
    /// first spec's style) naming them under `tag`. Returns the index and the images.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        specs: &[ImageSpec],
        annotations: &[(&str, &str)],
    ) -> (Pushed, Vec<Pushed>) {
        let mut images = Vec::new();
        let mut entries = Vec::new();
        for spec in specs {
            let image = self.push_image_untagged(repository, spec).await;
            let mut platform =
                serde_json::json!({"os": spec.os, "architecture": spec.architecture});
            if let Some(variant) = &spec.variant {
                platform["variant"] = serde_json::json!(variant);
            }
            entries.push(serde_json::json!({
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": image.body.len(),
                "platform": platform,
            }));
            images.push(image);
        }
        let media_type = match specs.first().map(|s| s.style) {
            Some(ManifestStyle::Docker) => imagebump::registry::DOCKER_LIST,
            _ => imagebump::registry::OCI_INDEX,
        };
        let mut index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": entries,
        });
        if !annotations.is_empty() {
            index["annotations"] = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        let body = serde_json::to_vec(&index).expect("index json");
        let digest = self.push_manifest(repository, tag, media_type, &body).await;
        (
            Pushed {
                digest,
                media_type: media_type.to_string(),
                body,
            },
            images,
        )
    }

    /// Put an already pushed manifest under many tags, `parallel` at a time.
    pub async fn tag_many(
        &self,
        repository: &str,
        pushed: &Pushed,
        tags: &[String],
        parallel: usize,
    ) {
        let queue = Arc::new(Mutex::new(tags.iter().cloned().collect::<VecDeque<_>>()));
        let mut workers = Vec::new();
        for _ in 0..parallel.max(1) {
            let queue = queue.clone();
            let pusher = self.clone();
            let repository = repository.to_string();
            let pushed = pushed.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(tag) = next else { break };
                    pusher
                        .push_manifest(&repository, &tag, &pushed.media_type, &pushed.body)
                        .await;
                }
            }));
        }
        for worker in workers {
            worker.await.expect("tagging worker");
        }
    }
}
