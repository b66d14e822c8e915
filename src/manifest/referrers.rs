//! The OCI 1.1 referrers API, as pure functions: a small per-referrer record the store keeps
//! beside each subject (so answering never needs a scan), the index body built from those
//! records, and the fallback "referrers tag" name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::clip;
use super::media_type::OCI_INDEX;
use super::parse::MAX_MANIFEST_SIZE;
use super::parsed::ParsedManifest;
use crate::digest::Digest;

/// One manifest that refers to a subject, as the referrers index lists it.
///
/// Serialized as a small JSON object (`to_json`/`from_json`) so the store can keep one file per
/// (subject, referrer) pair.
///
/// ```
/// use layerstore::manifest::{Manifest, ReferrerRecord};
/// let subject = layerstore::Digest::sha256(b"image");
/// let body = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
///   "artifactType":"application/vnd.example.sbom",
///   "config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,
///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}},
///   "layers":[],
///   "subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,"digest":"{subject}"}}}}"#);
/// let parsed = Manifest::parse(None, body.as_bytes()).unwrap();
/// let record = ReferrerRecord::from_manifest(&parsed).unwrap();
/// assert_eq!(record.subject, subject);
/// assert_eq!(record.artifact_type.as_deref(), Some("application/vnd.example.sbom"));
/// assert_eq!(ReferrerRecord::from_json(&record.to_json()).unwrap(), record);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ReferrerRecord {
    /// The digest the referrer's `subject` names.
    pub subject: Digest,
    /// The referrer's own media type (OCI manifest or index).
    pub media_type: String,
    /// The referrer's digest.
    pub digest: Digest,
    /// The referrer's size in bytes.
    pub size: u64,
    /// The artifact type to report (see [`ParsedManifest::artifact_type`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The referrer's top-level annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A stored [`ReferrerRecord`] that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferrerRecordError {
    /// Larger than any record a manifest can produce.
    #[error("referrer record is {0} bytes, larger than any valid record")]
    TooLarge(usize),
    /// Not a record.
    #[error("invalid referrer record at line {line}, column {column}: {detail}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description, clipped.
        detail: String,
    },
}

impl ReferrerRecord {
    /// The record for `manifest`, or `None` when it has no `subject`.
    pub fn from_manifest(manifest: &ParsedManifest) -> Option<Self> {
        let subject = manifest.subject()?;
        Some(ReferrerRecord {
            subject: subject.digest.clone(),
            media_type: manifest.media_type().as_str().to_owned(),
            digest: manifest.digest().clone(),
            size: manifest.size(),
            artifact_type: manifest.artifact_type().map(str::to_owned),
            annotations: manifest.annotations().clone(),
        })
    }

    /// The records a client-maintained referrers tag index lists for `subject` (OCI: a registry
    /// that turns the API on must include them).
    pub fn from_tag_index(subject: &Digest, index: &ParsedManifest) -> Vec<Self> {
        index
            .manifests()
            .iter()
            .map(|child| ReferrerRecord {
                subject: subject.clone(),
                media_type: child.media_type.clone(),
                digest: child.digest.clone(),
                size: child.size,
                artifact_type: child.artifact_type.clone(),
                annotations: child.annotations.clone(),
            })
            .collect()
    }

    /// The record as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Cannot fail: only strings, integers and string-keyed maps are serialized.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a record written by [`ReferrerRecord::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ReferrerRecordError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ReferrerRecordError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| ReferrerRecordError::Invalid {
            line: e.line(),
            column: e.column(),
            detail: clip(&e.to_string()),
        })
    }
}

/// The answer to `GET /v2/<name>/referrers/<digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReferrersIndex {
    /// The OCI image index body (serve with `Content-Type: application/vnd.oci.image.index.v1+json`).
    pub body: Vec<u8>,
    /// True when an `artifactType` filter was applied: send `OCI-Filters-Applied: artifactType`.
    pub filter_applied: bool,
    /// How many descriptors the body lists.
    pub count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexBody<'a> {
    schema_version: u8,
    media_type: &'static str,
    manifests: Vec<ReferrerDescriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerDescriptor<'a> {
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// Builds the referrers index of `subject` from stored records.
///
/// Records for other subjects are ignored; a non-empty `artifact_type` keeps only records of
/// exactly that type. The list is sorted by digest and free of duplicates, so the same records
/// always give the same bytes. An unknown subject gives an empty index (never a 404).
///
/// ```
/// use layerstore::manifest::referrers_index;
/// let subject = layerstore::Digest::sha256(b"nothing refers to me");
/// let answer = referrers_index(&subject, [], None);
/// assert_eq!(answer.count, 0);
/// assert!(!answer.filter_applied);
/// assert_eq!(
///     answer.body,
///     br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
/// );
/// ```
pub fn referrers_index<'a>(
    subject: &Digest,
    records: impl IntoIterator<Item = &'a ReferrerRecord>,
    artifact_type: Option<&str>,
) -> ReferrersIndex {
    let filter = artifact_type.filter(|t| !t.is_empty());
    let mut kept: Vec<&ReferrerRecord> = records
        .into_iter()
        .filter(|r| &r.subject == subject)
        .filter(|r| filter.is_none() || r.artifact_type.as_deref() == filter)
        .collect();
    kept.sort_by(|a, b| a.digest.cmp(&b.digest));
    kept.dedup_by(|a, b| a.digest == b.digest);
    let manifests: Vec<ReferrerDescriptor<'_>> = kept
        .iter()
        .map(|r| ReferrerDescriptor {
            media_type: &r.media_type,
            digest: &r.digest,
            size: r.size,
            artifact_type: r.artifact_type.as_deref(),
            annotations: &r.annotations,
        })
        .collect();
    let count = manifests.len();
    let body = IndexBody {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    };
    ReferrersIndex {
        // Cannot fail: only strings, integers and string-keyed maps are serialized.
        body: serde_json::to_vec(&body).unwrap_or_default(),
        filter_applied: filter.is_some(),
        count,
    }
}

/// The fallback tag under which clients keep a referrers index when the registry has no
/// referrers API: `<algorithm, at most 32 chars>-<hex, at most 64 chars>`, with any character a
/// tag may not hold replaced by `-`.
///
/// ```
/// use layerstore::manifest::referrers_tag;
/// let d = layerstore::Digest::sha256(b"");
/// assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
/// ```
pub fn referrers_tag(digest: &Digest) -> String {
    let algorithm = digest.algorithm().to_string();
    let algorithm = algorithm.chars().take(32).map(tag_char);
    let hex = digest.hex().chars().take(64).map(tag_char);
    algorithm.chain(std::iter::once('-')).chain(hex).collect()
}

/// `c` if a tag may contain it, else `-`.
fn tag_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
        c
    } else {
        '-'
    }
}
