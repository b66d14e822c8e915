//! Descriptors: the validated `{mediaType, digest, size, ...}` records through which a manifest
//! points at its config, layers, child manifests and subject.
//!
//! Validation follows the OCI descriptor rules (mediaType grammar, a digest layerstore can
//! verify, a non-negative size) plus distribution's one extra rule for Docker foreign layers
//! (they must carry `urls`). URL *policy* (allow/deny lists) is the store's business.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{clip, DescriptorIndex, DescriptorProblem, ManifestError};
use super::media_type::{is_valid_media_type, DOCKER_FOREIGN_LAYER};
use super::raw::{RawDescriptor, RawPlatform};
use crate::digest::{Algorithm, Digest};

/// A validated content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Descriptor {
    /// The media type of the referenced content (grammar-checked).
    pub media_type: String,
    /// The digest of the referenced content (a plain sha256 or sha512).
    pub digest: Digest,
    /// The size in bytes of the referenced content.
    pub size: u64,
    /// Where else the content can be fetched (foreign / non-distributable layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The artifact type of the referenced manifest (index entries, referrers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The platform an index entry runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index or manifest-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// OS version (Windows builds).
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required OS features.
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Required CPU features (Docker manifest lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Descriptor {
    /// Validates a raw descriptor found at `index`.
    pub(crate) fn from_raw(
        raw: RawDescriptor,
        index: DescriptorIndex,
    ) -> Result<Self, ManifestError> {
        validate(raw).map_err(|reason| ManifestError::InvalidDescriptor { index, reason })
    }

    /// True when the descriptor lists `urls`, i.e. the content may live outside the registry.
    pub fn has_urls(&self) -> bool {
        !self.urls.is_empty()
    }
}

fn validate(raw: RawDescriptor) -> Result<Descriptor, DescriptorProblem> {
    let media_type = raw.media_type.ok_or(DescriptorProblem::MissingMediaType)?;
    if !is_valid_media_type(&media_type) {
        return Err(DescriptorProblem::InvalidMediaType(clip(&media_type)));
    }
    let digest = parse_content_digest(raw.digest)?;
    let size = raw.size.ok_or(DescriptorProblem::MissingSize)?;
    let size = u64::try_from(size).map_err(|_| DescriptorProblem::NegativeSize(size))?;
    let urls = raw.urls.unwrap_or_default();
    if let Some(empty) = urls.iter().position(|u| u.trim().is_empty()) {
        return Err(DescriptorProblem::EmptyUrl(empty));
    }
    if media_type == DOCKER_FOREIGN_LAYER && urls.is_empty() {
        return Err(DescriptorProblem::ForeignLayerWithoutUrls);
    }
    if let Some(artifact_type) = &raw.artifact_type {
        if !is_valid_media_type(artifact_type) {
            return Err(DescriptorProblem::InvalidArtifactType(clip(artifact_type)));
        }
    }
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls,
        annotations: raw.annotations.unwrap_or_default().0,
        artifact_type: raw.artifact_type,
        platform: raw.platform.map(|p| Platform::from_raw(p.0)).transpose()?,
    })
}

/// A digest that names the hash of the content bytes (sha256 or sha512, not a TarSum).
fn parse_content_digest(raw: Option<String>) -> Result<Digest, DescriptorProblem> {
    let text = raw.ok_or(DescriptorProblem::MissingDigest)?;
    let digest = Digest::parse(&text).map_err(DescriptorProblem::InvalidDigest)?;
    match digest.algorithm() {
        Algorithm::Hash(_) => Ok(digest),
        other => Err(DescriptorProblem::NotContentDigest(other.to_string())),
    }
}

impl Platform {
    fn from_raw(raw: RawPlatform) -> Result<Self, DescriptorProblem> {
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let (Some(architecture), Some(os)) = (non_empty(raw.architecture), non_empty(raw.os))
        else {
            return Err(DescriptorProblem::IncompletePlatform);
        };
        Ok(Platform {
            architecture,
            os,
            os_version: raw.os_version,
            os_features: raw.os_features.unwrap_or_default(),
            variant: raw.variant,
            features: raw.features.unwrap_or_default(),
        })
    }
}
