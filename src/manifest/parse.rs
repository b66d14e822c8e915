//! `Manifest::parse`: bytes and a `Content-Type` in, a validated [`ParsedManifest`] or a precise
//! [`ManifestError`] out.
//!
//! The checks run in distribution's order (size limit, parser chosen by `Content-Type`,
//! `mediaType` field, kind ambiguity, `schemaVersion`), then the OCI descriptor rules. Nothing is
//! re-serialised: the digest is the sha256 of the exact bytes given.

use super::descriptor::Descriptor;
use super::error::{clip, DescriptorIndex, JsonProblem, ManifestError};
use super::media_type::{essence, is_valid_media_type, MediaType, JSON};
use super::object::CASE_VARIANT_PREFIX;
use super::parsed::{Content, ParsedManifest};
use super::raw::{Object, RawDescriptor, RawDocument, DUPLICATE_PREFIX};
use crate::digest::Digest;

/// The largest manifest body accepted: 4 MiB, distribution's limit (the OCI spec asks for at
/// least 4 MB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

impl ParsedManifest {
    /// Parses and validates a manifest body as pushed with `content_type`.
    ///
    /// `content_type` is the request's `Content-Type` header. `None`, an empty value or plain
    /// `application/json` mean "unspecified": the kind is then read from the body (its
    /// `mediaType`, else an index if it has `manifests`, else an OCI manifest), as distribution
    /// does when it reads a stored manifest.
    ///
    /// ```
    /// use layerstore::manifest::{Manifest, ManifestError, MediaType};
    /// let body = br#"{"schemaVersion":2,
    ///   "config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,
    ///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
    ///   "layers":[], "artifactType":"application/example+json"}"#;
    /// let m = Manifest::parse(Some("application/vnd.oci.image.manifest.v1+json"), body).unwrap();
    /// assert_eq!(m.media_type(), MediaType::OciManifest);
    /// assert_eq!(m.digest(), &layerstore::Digest::sha256(body));
    /// assert_eq!(m.artifact_type(), Some("application/example+json"));
    /// assert_eq!(m.references().count(), 1);
    ///
    /// let err = Manifest::parse(Some("application/vnd.docker.distribution.manifest.v2+json"), body);
    /// assert!(matches!(err, Err(ManifestError::MediaTypeMismatch { .. })));
    /// ```
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge {
                size: bytes.len(),
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let declared = declared_kind(content_type)?;
        let Object(raw): Object<RawDocument> = serde_json::from_str(text).map_err(json_error)?;
        let media_type = match declared {
            Some(kind) => check_media_type_field(kind, raw.media_type.as_deref())?,
            None => detect_kind(&raw)?,
        };
        check_unambiguous(media_type, &raw)?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion {
                found: raw.schema_version,
            });
        }
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        build(media_type, raw, Digest::sha256(bytes), size)
    }
}

/// The kind named by `Content-Type`, or `None` when the body must decide.
fn declared_kind(content_type: Option<&str>) -> Result<Option<MediaType>, ManifestError> {
    let Some(header) = content_type.map(essence).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if header.eq_ignore_ascii_case(JSON) {
        return Ok(None);
    }
    match MediaType::from_content_type(header) {
        Some(kind) if kind.is_schema1() => Err(ManifestError::Schema1Unsupported),
        Some(kind) => Ok(Some(kind)),
        None => Err(ManifestError::UnsupportedMediaType(clip(header))),
    }
}

/// Docker kinds need their exact type in the body; OCI kinds need it absent, empty or equal.
fn check_media_type_field(
    kind: MediaType,
    found: Option<&str>,
) -> Result<MediaType, ManifestError> {
    let matches = match found {
        Some(found) => found == kind.as_str() || (kind.is_oci() && found.is_empty()),
        None => kind.is_oci(),
    };
    if matches {
        Ok(kind)
    } else {
        Err(ManifestError::MediaTypeMismatch {
            expected: kind.as_str(),
            found: found.map(clip),
        })
    }
}

/// The kind of a body pushed without a usable `Content-Type`.
fn detect_kind(raw: &RawDocument) -> Result<MediaType, ManifestError> {
    if raw.schema_version == Some(1) {
        return Err(ManifestError::Schema1Unsupported);
    }
    match raw.media_type.as_deref().filter(|s| !s.is_empty()) {
        Some(named) => match MediaType::from_exact(named) {
            Some(kind) if kind.is_schema1() => Err(ManifestError::Schema1Unsupported),
            Some(kind) => Ok(kind),
            None => Err(ManifestError::UnsupportedMediaType(clip(named))),
        },
        None if raw.manifests.is_some() => Ok(MediaType::OciIndex),
        None => Ok(MediaType::OciManifest),
    }
}

/// Refuses a document that carries the other kind's fields, so that no reader can take an
/// index for a manifest or the reverse (the fix distribution made for CVE-2021-41190).
fn check_unambiguous(kind: MediaType, raw: &RawDocument) -> Result<(), ManifestError> {
    let stray = if kind.is_index() {
        (raw.config.is_some().then_some("config")).or(raw.layers.is_some().then_some("layers"))
    } else {
        raw.manifests.is_some().then_some("manifests")
    };
    match stray {
        Some(field) => Err(ManifestError::AmbiguousDocument {
            kind: if kind.is_index() {
                "an index"
            } else {
                "an image manifest"
            },
            field,
        }),
        None => Ok(()),
    }
}

/// Validates the descriptors and keeps what callers need.
fn build(
    media_type: MediaType,
    raw: RawDocument,
    digest: Digest,
    size: u64,
) -> Result<ParsedManifest, ManifestError> {
    let content = if media_type.is_index() {
        let manifests = validate_all(raw.manifests, DescriptorIndex::Manifest)?;
        Content::Index { manifests }
    } else {
        let Object(config) = raw.config.ok_or(ManifestError::MissingField("config"))?;
        Content::Image {
            config: Box::new(Descriptor::from_raw(config, DescriptorIndex::Config)?),
            layers: validate_all(raw.layers, DescriptorIndex::Layer)?,
        }
    };
    let mut parsed = ParsedManifest::new(media_type, digest, size, content);
    if media_type.is_oci() {
        // subject, artifactType and annotations are OCI fields; Docker formats have none.
        if let Some(artifact_type) = &raw.artifact_type {
            if !is_valid_media_type(artifact_type) {
                return Err(ManifestError::InvalidArtifactType(clip(artifact_type)));
            }
        }
        let subject = raw
            .subject
            .map(|Object(s)| Descriptor::from_raw(s, DescriptorIndex::Subject))
            .transpose()?;
        parsed = parsed.with_oci_fields(
            subject,
            raw.artifact_type,
            raw.annotations.unwrap_or_default().0,
        );
    }
    Ok(parsed)
}

fn validate_all(
    raw: Option<Vec<Object<RawDescriptor>>>,
    index: fn(usize) -> DescriptorIndex,
) -> Result<Vec<Descriptor>, ManifestError> {
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, Object(d))| Descriptor::from_raw(d, index(i)))
        .collect()
}

/// Maps a serde_json failure to a typed error with its position.
fn json_error(error: serde_json::Error) -> ManifestError {
    let (line, column) = (error.line(), error.column());
    let message = error.to_string();
    // serde_json appends " at line L column C"; the position is kept in its own fields.
    let detail = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head);
    if let Some(rest) = detail.strip_prefix(DUPLICATE_PREFIX) {
        let key = rest.strip_suffix('`').unwrap_or(rest);
        return ManifestError::DuplicateKey {
            key: clip(key),
            line,
            column,
        };
    }
    if let Some(rest) = detail.strip_prefix(CASE_VARIANT_PREFIX) {
        let key = rest.strip_suffix('`').unwrap_or(rest);
        return ManifestError::CaseVariantKey {
            key: clip(key),
            line,
            column,
        };
    }
    let kind = match error.classify() {
        serde_json::error::Category::Eof => JsonProblem::UnexpectedEnd,
        serde_json::error::Category::Data => JsonProblem::WrongType,
        // Includes serde_json's recursion limit, unreachable here: the typed schema is shallow
        // and unknown fields are skipped iteratively.
        _ => JsonProblem::Syntax,
    };
    ManifestError::InvalidJson {
        line,
        column,
        kind,
        detail: clip(detail),
    }
}
