//! Content: what a tag's manifest says - its digest, the image's creation time, the platforms
//! an index offers - read from manifests and config blobs.
//!
//! Invariant: everything addressed by a digest is checked against it (a manifest or blob whose
//! content has another sha256 is an error, never an answer) and cached for good in a bounded
//! map (creation time per platform and digest, platforms per digest); what a tag points at is
//! asked every time (one `HEAD`).

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::RegistryError;
use super::client::{Client, Kind, RegistryState};
use super::manifest::{self, MANIFEST_ACCEPT, Manifest};
use crate::reference::{ImageRef, is_valid_digest, is_valid_tag};

fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

impl Client {
    /// The digest `tag` points at: `HEAD` and `Docker-Content-Digest`, else `GET` and the
    /// sha256 of the body.
    pub async fn digest(&self, image: &ImageRef, tag: &str) -> Result<String, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        if !is_valid_tag(tag) && !is_valid_digest(tag) {
            return Err(RegistryError::NotFound {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                what: format!("tag {tag:?} (not a valid OCI tag)"),
            });
        }
        let url = self.manifest_url(&reg, repository, tag)?;
        let head = self
            .request(
                &reg,
                repository,
                Method::HEAD,
                &url,
                MANIFEST_ACCEPT,
                Kind::Manifest,
            )
            .await?;
        if head.status == StatusCode::NOT_FOUND {
            return Err(not_found(&reg, repository, tag));
        }
        if head.status.is_success()
            && let Some(digest) = header_digest(&head.headers)
        {
            return Ok(digest);
        }
        let (_, digest) = self.get_manifest(&reg, repository, tag).await?;
        Ok(digest)
    }

    fn manifest_url(
        &self,
        reg: &RegistryState,
        repository: &str,
        reference: &str,
    ) -> Result<Url, RegistryError> {
        reg.base
            .join(&format!("v2/{repository}/manifests/{reference}"))
            .map_err(|e| RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!("cannot build the manifest URL: {e}"),
            })
    }

    /// GET a manifest: its parsed body and its digest.
    async fn get_manifest(
        &self,
        reg: &RegistryState,
        repository: &str,
        reference: &str,
    ) -> Result<(Manifest, String), RegistryError> {
        let url = self.manifest_url(reg, repository, reference)?;
        let fetched = self
            .request(
                reg,
                repository,
                Method::GET,
                &url,
                MANIFEST_ACCEPT,
                Kind::Manifest,
            )
            .await?;
        let bad = |detail: String| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        match fetched.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(not_found(reg, repository, reference)),
            status => {
                return Err(bad(format!("manifest {reference} answered HTTP {status}")));
            }
        }
        let computed = sha256_digest(&fetched.body);
        if is_valid_digest(reference) && reference.starts_with("sha256:") && reference != computed {
            return Err(bad(format!(
                "manifest {reference} has content with digest {computed}"
            )));
        }
        let digest = match header_digest(&fetched.headers) {
            Some(header) if !header.starts_with("sha256:") => header,
            _ => computed,
        };
        let manifest = Manifest::parse(&fetched.body)
            .map_err(|e| bad(format!("manifest {reference}: {e}")))?;
        Ok((manifest, digest))
    }

    /// When the image behind `tag_or_digest` was built, for this registry's platform: the
    /// config blob's `created`, else the `org.opencontainers.image.created` annotation.
    /// Cached by digest for good, so an unchanged tag costs one `HEAD`.
    pub async fn created(
        &self,
        image: &ImageRef,
        tag_or_digest: &str,
    ) -> Result<Option<OffsetDateTime>, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        let digest = if is_valid_digest(tag_or_digest) {
            tag_or_digest.to_string()
        } else {
            self.digest(image, tag_or_digest).await?
        };
        let platform = reg.settings.platform.to_string();
        let key = format!("{platform} {digest}");
        if let Some(created) = self.inner.created.get(&key) {
            return Ok(created);
        }
        let (manifest, _) = self.get_manifest(&reg, repository, &digest).await?;
        let created = match manifest {
            Manifest::Image { ref config, .. } => {
                let from_config = self
                    .config_created(&reg, repository, &config.digest)
                    .await?;
                from_config.or_else(|| manifest.created_annotation())
            }
            Manifest::Index { ref manifests, .. } => {
                let child = manifest::select_platform(manifests, &reg.settings.platform)
                    .ok_or_else(|| RegistryError::NotFound {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        what: format!("platform {platform} in {tag_or_digest}"),
                    })?;
                let child_key = format!("{platform} {}", child.digest);
                let from_child = match self.inner.created.get(&child_key) {
                    Some(created) => created,
                    None => {
                        let (child_manifest, _) =
                            self.get_manifest(&reg, repository, &child.digest).await?;
                        let Manifest::Image { ref config, .. } = child_manifest else {
                            return Err(RegistryError::BadResponse {
                                registry: reg.name.clone(),
                                repository: repository.to_string(),
                                detail: format!(
                                    "the {platform} entry of {tag_or_digest} is an index, not an image"
                                ),
                            });
                        };
                        let created = self
                            .config_created(&reg, repository, &config.digest)
                            .await?
                            .or_else(|| child_manifest.created_annotation());
                        self.inner.created.insert(child_key, created);
                        created
                    }
                };
                from_child.or_else(|| manifest.created_annotation())
            }
        };
        self.inner.created.insert(key, created);
        Ok(created)
    }

    /// The platforms (canonical `os/arch[/variant]`, see
    /// [`manifest::canonical_platform`]) the manifest `digest` has images for: an index's
    /// entries, or the platform an image's config states. One manifest request (plus the config
    /// blob for a single image), cached by digest for good.
    pub async fn platforms(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        if let Some(platforms) = self.inner.platforms.get(&digest.to_string()) {
            return Ok(platforms);
        }
        let (manifest, _) = self.get_manifest(&reg, repository, digest).await?;
        let platforms = match manifest {
            Manifest::Index { ref manifests, .. } => manifest::index_platforms(manifests),
            Manifest::Image { ref config, .. } => {
                let body = self.config_blob(&reg, repository, &config.digest).await?;
                manifest::config_platform(&body)
                    .map_err(|detail| RegistryError::BadResponse {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail,
                    })?
                    .into_iter()
                    .collect()
            }
        };
        self.inner
            .platforms
            .insert(digest.to_string(), platforms.clone());
        Ok(platforms)
    }

    async fn config_created(
        &self,
        reg: &RegistryState,
        repository: &str,
        digest: &str,
    ) -> Result<Option<OffsetDateTime>, RegistryError> {
        let body = self.config_blob(reg, repository, digest).await?;
        manifest::config_created(&body).map_err(|detail| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        })
    }

    /// An image config blob, its digest checked.
    async fn config_blob(
        &self,
        reg: &RegistryState,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let bad = |detail: String| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        if !is_valid_digest(digest) {
            return Err(bad(format!("invalid config digest {digest:?}")));
        }
        let url = reg
            .base
            .join(&format!("v2/{repository}/blobs/{digest}"))
            .map_err(|e| bad(format!("cannot build the blob URL: {e}")))?;
        let fetched = self
            .request(reg, repository, Method::GET, &url, "*/*", Kind::Blob)
            .await?;
        match fetched.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    registry: reg.name.clone(),
                    repository: repository.to_string(),
                    what: format!("config blob {digest}"),
                });
            }
            status => return Err(bad(format!("config blob {digest} answered HTTP {status}"))),
        }
        if digest.starts_with("sha256:") && sha256_digest(&fetched.body) != digest {
            return Err(bad(format!(
                "config blob {digest} has content with another digest"
            )));
        }
        Ok(fetched.body)
    }
}

fn not_found(reg: &RegistryState, repository: &str, reference: &str) -> RegistryError {
    RegistryError::NotFound {
        registry: reg.name.clone(),
        repository: repository.to_string(),
        what: if is_valid_digest(reference) {
            format!("manifest {reference}")
        } else {
            format!("tag {reference}")
        },
    }
}

fn header_digest(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| is_valid_digest(d))
        .map(str::to_string)
}
