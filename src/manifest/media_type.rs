//! Media types: the constants a registry meets, the four manifest kinds it stores, and the
//! RFC 6838 grammar every descriptor `mediaType` and `artifactType` must follow.
//!
//! The manifest kind decides which parser runs on a PUT and which `Content-Type` a GET answers
//! with, so it is a closed enum ([`MediaType`]); every other media type (layers, configs,
//! artifacts) is an open string checked only against the grammar.

use std::fmt;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifest (unsigned form). Recognized, never accepted.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 manifest with a JWS signature. Recognized, never accepted.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker container image configuration (the `config` blob of a schema 2 image).
pub const DOCKER_CONTAINER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker plugin configuration.
pub const DOCKER_PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign layer: fetched from its `urls`, never pushed to the registry.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer (deprecated by the image-spec, still seen).
pub const OCI_NONDISTRIBUTABLE_LAYER: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer.
pub const OCI_NONDISTRIBUTABLE_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer.
pub const OCI_NONDISTRIBUTABLE_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The OCI empty descriptor's type: the two bytes `{}`, used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Plain JSON. As a manifest `Content-Type` it says nothing, so the body decides.
pub const JSON: &str = "application/json";

/// The manifest formats layerstore knows by name.
///
/// Only [`MediaType::is_storable`] kinds come out of a successful parse; the schema 1 kinds
/// exist so that a push of one can be refused with a precise error.
///
/// ```
/// use layerstore::manifest::MediaType;
/// let mt = MediaType::from_content_type("application/vnd.oci.image.index.v1+json; charset=utf-8");
/// assert_eq!(mt, Some(MediaType::OciIndex));
/// assert!(mt.unwrap().is_index());
/// assert_eq!(MediaType::from_content_type("text/plain"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MediaType {
    /// Docker image manifest, schema 2 ([`DOCKER_MANIFEST`]).
    DockerManifest,
    /// Docker manifest list ([`DOCKER_MANIFEST_LIST`]).
    DockerManifestList,
    /// OCI image manifest ([`OCI_MANIFEST`]); also carries artifacts.
    OciManifest,
    /// OCI image index ([`OCI_INDEX`]).
    OciIndex,
    /// Docker schema 1 ([`DOCKER_SCHEMA1`]): refused.
    DockerSchema1,
    /// Signed Docker schema 1 ([`DOCKER_SCHEMA1_SIGNED`]): refused.
    DockerSchema1Signed,
}

impl MediaType {
    /// Every kind, storable ones first.
    pub const ALL: [MediaType; 6] = [
        MediaType::DockerManifest,
        MediaType::DockerManifestList,
        MediaType::OciManifest,
        MediaType::OciIndex,
        MediaType::DockerSchema1,
        MediaType::DockerSchema1Signed,
    ];

    /// The media type string, as sent in `Content-Type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MediaType::DockerManifest => DOCKER_MANIFEST,
            MediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciIndex => OCI_INDEX,
            MediaType::DockerSchema1 => DOCKER_SCHEMA1,
            MediaType::DockerSchema1Signed => DOCKER_SCHEMA1_SIGNED,
        }
    }

    /// The kind named exactly by `s` (case-sensitive, no parameters): the rule for a body's
    /// `mediaType` field, which is JSON data rather than a header.
    pub fn from_exact(s: &str) -> Option<MediaType> {
        MediaType::ALL.into_iter().find(|mt| mt.as_str() == s)
    }

    /// The kind named by a `Content-Type` header value: parameters dropped, whitespace trimmed,
    /// compared case-insensitively (as Go's `mime.ParseMediaType` does for distribution).
    pub fn from_content_type(header: &str) -> Option<MediaType> {
        let essence = essence(header);
        MediaType::ALL
            .into_iter()
            .find(|mt| mt.as_str().eq_ignore_ascii_case(essence))
    }

    /// True for the kinds a registry stores: schema 2, manifest list, OCI manifest and index.
    pub const fn is_storable(self) -> bool {
        !self.is_schema1()
    }

    /// True for the two Docker schema 1 kinds.
    pub const fn is_schema1(self) -> bool {
        matches!(
            self,
            MediaType::DockerSchema1 | MediaType::DockerSchema1Signed
        )
    }

    /// True for lists of manifests (Docker manifest list, OCI index).
    pub const fn is_index(self) -> bool {
        matches!(self, MediaType::DockerManifestList | MediaType::OciIndex)
    }

    /// True for the OCI kinds, which are only served to clients that accept them.
    pub const fn is_oci(self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::OciIndex)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type/subtype` part of a header value: parameters after `;` dropped, whitespace trimmed.
pub(crate) fn essence(header: &str) -> &str {
    header.split(';').next().unwrap_or_default().trim()
}

/// Whether `s` follows the OCI descriptor grammar (RFC 6838 restricted names):
/// `[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}` `/` the same again. No parameters, no spaces.
///
/// ```
/// use layerstore::manifest::media_type::is_valid_media_type;
/// assert!(is_valid_media_type("application/vnd.oci.image.layer.v1.tar+gzip"));
/// assert!(!is_valid_media_type("application/json; charset=utf-8"));
/// assert!(!is_valid_media_type("application"));
/// ```
pub fn is_valid_media_type(s: &str) -> bool {
    match s.split_once('/') {
        Some((kind, subtype)) => is_restricted_name(kind) && is_restricted_name(subtype),
        None => false,
    }
}

/// One RFC 6838 `restricted-name`: 1 to 127 characters, the first alphanumeric.
fn is_restricted_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    first_ok
        && s.len() <= 127
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

/// Whether a layer media type is one that clients fetch from `urls` instead of the registry.
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_FOREIGN_LAYER
            | OCI_NONDISTRIBUTABLE_LAYER
            | OCI_NONDISTRIBUTABLE_LAYER_GZIP
            | OCI_NONDISTRIBUTABLE_LAYER_ZSTD
    )
}

/// Whether a config media type marks a runnable image (as opposed to an artifact).
pub fn is_image_config(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONTAINER_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_string() {
        for mt in MediaType::ALL {
            assert_eq!(MediaType::from_exact(mt.as_str()), Some(mt));
            assert_eq!(MediaType::from_content_type(mt.as_str()), Some(mt));
            let shouted = format!(" {}; charset=UTF-8", mt.as_str().to_ascii_uppercase());
            assert_eq!(MediaType::from_content_type(&shouted), Some(mt));
            assert_eq!(
                MediaType::from_exact(&mt.as_str().to_ascii_uppercase()),
                None
            );
            assert_eq!(mt.to_string(), mt.as_str());
        }
    }

    #[test]
    fn classification() {
        let storable: Vec<_> = MediaType::ALL
            .into_iter()
            .filter(|m| m.is_storable())
            .collect();
        assert_eq!(storable.len(), 4);
        assert!(MediaType::DockerSchema1Signed.is_schema1());
        assert!(MediaType::DockerManifestList.is_index());
        assert!(!MediaType::DockerManifestList.is_oci());
        assert!(MediaType::OciIndex.is_oci() && MediaType::OciIndex.is_index());
        assert!(MediaType::OciManifest.is_oci() && !MediaType::OciManifest.is_index());
        assert_eq!(MediaType::from_content_type(JSON), None);
        assert_eq!(MediaType::from_content_type(""), None);
    }

    #[test]
    fn grammar() {
        let long = format!("a/{}", "b".repeat(127));
        let too_long = format!("a/{}", "b".repeat(128));
        for ok in [
            OCI_EMPTY,
            OCI_LAYER_ZSTD,
            "a/b",
            "x-y/1!#$&^_.+-",
            long.as_str(),
        ] {
            assert!(is_valid_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/",
            "/b",
            "a/b/c",
            "a b/c",
            "-a/b",
            "a/.b",
            "a/b;x=y",
            "é/b",
            too_long.as_str(),
        ] {
            assert!(!is_valid_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn layer_and_config_kinds() {
        assert!(is_non_distributable(DOCKER_FOREIGN_LAYER));
        assert!(is_non_distributable(OCI_NONDISTRIBUTABLE_LAYER_ZSTD));
        assert!(!is_non_distributable(OCI_LAYER_GZIP));
        assert!(is_image_config(OCI_CONFIG) && is_image_config(DOCKER_CONTAINER_CONFIG));
        assert!(!is_image_config(OCI_EMPTY));
    }
}
