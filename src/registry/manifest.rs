//! Manifests, indexes and image configs: the few fields imagebump reads, parsed tolerantly.
//!
//! Invariant: pure parsing and selection, no I/O. Design choice: one struct accepts all four
//! media types (OCI index, OCI manifest, Docker manifest list, Docker schema 2); whether a
//! document is an index or an image is decided by its content (`manifests` vs `config`),
//! because registries are sloppy with `Content-Type`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header for manifest requests: every kind we understand.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The annotation carrying the build time on OCI manifests and indexes.
pub(crate) const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// An image platform: `os/architecture[/variant]`, such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".to_string(),
            architecture: "amd64".to_string(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/architecture[/variant], such as linux/amd64 or linux/arm/v7"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Descriptor {
    pub digest: String,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DescriptorPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// Any of the four manifest kinds.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ManifestDoc {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest document is.
#[derive(Debug)]
pub(crate) enum Manifest {
    Index {
        manifests: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
    },
    Image {
        config: Descriptor,
        annotations: BTreeMap<String, String>,
    },
}

impl Manifest {
    pub(crate) fn parse(body: &[u8]) -> Result<Manifest, String> {
        let doc: ManifestDoc =
            serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        match (doc.manifests, doc.config) {
            (Some(manifests), _) => Ok(Manifest::Index {
                manifests,
                annotations: doc.annotations,
            }),
            (None, Some(config)) => Ok(Manifest::Image {
                config,
                annotations: doc.annotations,
            }),
            (None, None) => Err(format!(
                "unsupported manifest (media type {}): neither an index nor an image manifest",
                doc.media_type.as_deref().unwrap_or("unknown")
            )),
        }
    }

    pub(crate) fn created_annotation(&self) -> Option<OffsetDateTime> {
        let annotations = match self {
            Manifest::Index { annotations, .. } | Manifest::Image { annotations, .. } => {
                annotations
            }
        };
        annotations
            .get(CREATED_ANNOTATION)
            .and_then(|value| parse_time(value))
    }
}

/// The default variant an architecture implies when none is given.
fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// Pick the manifest for `platform` in an index. A wanted variant must match (an absent
/// variant counts as the architecture's default one); without a wanted variant the entry
/// without a variant, or with the default one, is preferred.
pub(crate) fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
        })
        .collect();
    let variant_of = |d: &Descriptor| -> Option<String> {
        d.platform
            .as_ref()
            .and_then(|p| p.variant.clone())
            .filter(|v| !v.is_empty())
            .or_else(|| default_variant(&platform.architecture).map(str::to_string))
    };
    let wanted = platform
        .variant
        .clone()
        .or_else(|| default_variant(&platform.architecture).map(str::to_string));
    match wanted {
        Some(wanted) => candidates
            .into_iter()
            .find(|d| variant_of(d).as_deref() == Some(wanted.as_str())),
        None => candidates
            .iter()
            .find(|d| variant_of(d).is_none())
            .or_else(|| candidates.first())
            .copied(),
    }
}

/// `os/arch[/variant]` with the architecture's default variant filled in (`linux/arm64` is
/// `linux/arm64/v8`), so that two names of one platform compare equal as strings.
pub fn canonical_platform(os: &str, architecture: &str, variant: Option<&str>) -> String {
    let variant = variant
        .filter(|v| !v.is_empty())
        .or_else(|| default_variant(architecture));
    match variant {
        Some(v) => format!("{os}/{architecture}/{v}"),
        None => format!("{os}/{architecture}"),
    }
}

impl Platform {
    /// [`canonical_platform`] of this platform.
    pub fn canonical(&self) -> String {
        canonical_platform(&self.os, &self.architecture, self.variant.as_deref())
    }
}

/// The canonical platforms of an index's entries (attestation entries, `unknown/unknown`,
/// left out), sorted, without duplicates.
pub(crate) fn index_platforms(manifests: &[Descriptor]) -> Vec<String> {
    let mut out: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| !p.os.is_empty() && p.os != "unknown" && !p.architecture.is_empty())
        .map(|p| canonical_platform(&p.os, &p.architecture, p.variant.as_deref()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
}

/// The canonical platform an image config blob states (`None` when it names no os or
/// architecture).
pub(crate) fn config_platform(body: &[u8]) -> Result<Option<String>, String> {
    let doc: ConfigDoc =
        serde_json::from_slice(body).map_err(|e| format!("image config is not valid JSON: {e}"))?;
    Ok(match (doc.os.as_deref(), doc.architecture.as_deref()) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
            Some(canonical_platform(os, arch, doc.variant.as_deref()))
        }
        _ => None,
    })
}

/// The `created` time of an image config blob (`None` when absent).
pub(crate) fn config_created(body: &[u8]) -> Result<Option<OffsetDateTime>, String> {
    let doc: ConfigDoc =
        serde_json::from_slice(body).map_err(|e| format!("image config is not valid JSON: {e}"))?;
    match doc.created {
        None => Ok(None),
        Some(text) => parse_time(&text)
            .map(Some)
            .ok_or_else(|| format!("image config has an invalid created time {text:?}")),
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Vec<Descriptor> {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": format!("sha256:{i}"),
                    "size": 1,
                    "platform": platform,
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
        }))
        .unwrap();
        match Manifest::parse(&body).unwrap() {
            Manifest::Index { manifests, .. } => manifests,
            Manifest::Image { .. } => panic!("expected an index"),
        }
    }

    fn pick(entries: &[(&str, &str, Option<&str>)], platform: &str) -> Option<String> {
        let manifests = index(entries);
        select_platform(&manifests, &platform.parse().unwrap()).map(|d| d.digest.clone())
    }

    #[test]
    fn platform_selection() {
        let entries = [
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
            ("unknown", "unknown", None),
            ("windows", "amd64", None),
        ];
        assert_eq!(pick(&entries, "linux/amd64").as_deref(), Some("sha256:2"));
        assert_eq!(pick(&entries, "linux/arm/v6").as_deref(), Some("sha256:0"));
        assert_eq!(pick(&entries, "linux/arm").as_deref(), Some("sha256:1"));
        assert_eq!(pick(&entries, "linux/arm64").as_deref(), Some("sha256:3"));
        assert_eq!(pick(&entries, "windows/amd64").as_deref(), Some("sha256:5"));
        assert_eq!(pick(&entries, "linux/s390x"), None);
        // arm64 without a variant in the index is the default v8.
        assert_eq!(
            pick(&[("linux", "arm64", None)], "linux/arm64/v8").as_deref(),
            Some("sha256:0")
        );
    }

    #[test]
    fn platform_parse_errors_name_the_input() {
        let err = "linux".parse::<Platform>().unwrap_err();
        assert!(err.contains("\"linux\""), "{err}");
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert_eq!(
            "linux/arm/v7".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    #[test]
    fn image_manifest_and_config() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":2},
            "layers":[]}"#;
        match Manifest::parse(body).unwrap() {
            Manifest::Image { config, .. } => assert_eq!(config.digest, "sha256:c"),
            Manifest::Index { .. } => panic!("expected an image"),
        }
        let created =
            config_created(br#"{"created":"2024-03-04T05:06:07.123456789Z","os":"linux"}"#)
                .unwrap();
        assert_eq!(created, Some(datetime!(2024-03-04 05:06:07.123456789 UTC)));
        assert_eq!(config_created(br#"{"os":"linux"}"#).unwrap(), None);
        assert!(config_created(br#"{"created":"yesterday"}"#).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":1}"#).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":2,"con"#).is_err());
    }

    #[test]
    fn created_annotation() {
        let body = br#"{"schemaVersion":2,"config":{"digest":"sha256:c"},
            "annotations":{"org.opencontainers.image.created":"2023-01-02T03:04:05Z"}}"#;
        let manifest = Manifest::parse(body).unwrap();
        assert_eq!(
            manifest.created_annotation(),
            Some(datetime!(2023-01-02 03:04:05 UTC))
        );
    }
}
