//! OCI image layouts on disk (image-spec `image-layout.md`): `oci-layout`, `index.json` and
//! `blobs/<algorithm>/<hex>`, as `skopeo copy … oci:DIR:TAG` and umoci write them.
//!
//! Tags live in `index.json` as the `org.opencontainers.image.ref.name` annotation of an entry.
//! `index.json` is rewritten atomically (temporary file, fsync, rename) and unknown fields of its
//! entries are kept, so a layout shared with other tools is never damaged.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;

/// The annotation that names an index entry (a tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why a layout could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `oci-layout` is missing or not version 1.x: not an OCI layout.
    #[error("{0}: not an OCI image layout (no valid oci-layout file)")]
    NotALayout(PathBuf),
    /// `index.json` is not an image index.
    #[error("{path}: invalid index.json: {reason}")]
    InvalidIndex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No entry carries the tag (or, without a tag, the index is not a single image).
    #[error("{layout}: {reason}")]
    NoSuchImage {
        /// The layout directory.
        layout: PathBuf,
        /// What was looked for.
        reason: String,
    },
}

/// One entry of `index.json`: the descriptor fields this reads, plus every other field, kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The entry's media type.
    pub media_type: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Annotations (the tag is `org.opencontainers.image.ref.name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this does not interpret (platform, urls, ...), written back unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl IndexEntry {
    /// The entry's tag (`org.opencontainers.image.ref.name`), if any.
    pub fn tag(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

/// `index.json`, with fields in the order skopeo writes them, so a layout written here is
/// byte-identical to skopeo's for the same image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    pub(crate) manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// An image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Opens an existing layout (its `oci-layout` file must say version 1.x).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = root.into();
        let marker = root.join("oci-layout");
        let bytes = std::fs::read(&marker).map_err(|_| LayoutError::NotALayout(root.clone()))?;
        if is_layout_marker(&bytes) {
            Ok(OciLayout { root })
        } else {
            Err(LayoutError::NotALayout(root))
        }
    }

    /// Opens the layout at `root`, creating the directory, `oci-layout` and an empty
    /// `index.json` where missing.
    ///
    /// ```
    /// use layerstore::client::layout::OciLayout;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let layout = OciLayout::create(dir.path()).unwrap();
    /// assert!(layout.entries().unwrap().is_empty());
    /// assert!(OciLayout::open(dir.path()).is_ok());
    /// ```
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs")).map_err(|e| io(&root, e))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomically(&marker, br#"{"imageLayoutVersion": "1.0.0"}"#)?;
        }
        let layout = OciLayout { root };
        if !layout.index_path().exists() {
            layout.write_index(&empty_index())?;
        }
        Ok(layout)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives: `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// True when the blob is present with exactly `size` bytes.
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// The entries of `index.json`, in order.
    pub fn entries(&self) -> Result<Vec<IndexEntry>, LayoutError> {
        Ok(self.read_index()?.manifests)
    }

    /// The entry tagged `tag`; without a tag, the only entry (an error when there are several).
    pub fn find(&self, tag: Option<&str>) -> Result<IndexEntry, LayoutError> {
        select_entry(self.entries()?, tag).map_err(|reason| LayoutError::NoSuchImage {
            layout: self.root.clone(),
            reason,
        })
    }

    /// Adds a manifest to `index.json`: with `tag`, as that tag (an entry that had the tag
    /// loses it); without, as an untagged entry unless one with the same digest exists.
    pub fn add_manifest(
        &self,
        media_type: &str,
        digest: &Digest,
        size: u64,
        tag: Option<&str>,
    ) -> Result<(), LayoutError> {
        let mut index = self.read_index()?;
        if index.add_manifest(media_type, digest, size, tag) {
            self.write_index(&index)?;
        }
        Ok(())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn read_index(&self) -> Result<IndexFile, LayoutError> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        parse_index(&bytes).map_err(|reason| LayoutError::InvalidIndex { path, reason })
    }

    fn write_index(&self, index: &IndexFile) -> Result<(), LayoutError> {
        write_atomically(&self.index_path(), &index.to_bytes())
    }
}

impl IndexFile {
    /// [`OciLayout::add_manifest`] on the index in memory; returns whether it changed. An
    /// untagged manifest already listed (tagged or not) changes nothing: replacing its entries
    /// would drop their tags.
    pub(crate) fn add_manifest(
        &mut self,
        media_type: &str,
        digest: &Digest,
        size: u64,
        tag: Option<&str>,
    ) -> bool {
        match tag {
            Some(tag) => self.manifests.retain(|m| m.tag() != Some(tag)),
            None if self.manifests.iter().any(|m| &m.digest == digest) => return false,
            None => {}
        }
        let mut annotations = BTreeMap::new();
        if let Some(tag) = tag {
            annotations.insert(REF_NAME.to_owned(), tag.to_owned());
        }
        self.manifests.push(IndexEntry {
            media_type: media_type.to_owned(),
            digest: digest.clone(),
            size,
            annotations,
            other: Map::new(),
        });
        true
    }

    /// The bytes written for this index.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index serializes")
    }
}

/// `root/blobs/<algorithm>/<hex>`.
pub(crate) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let text = digest.to_string();
    let (algorithm, hex) = text.split_once(':').expect("a digest has a colon");
    root.join("blobs").join(algorithm).join(hex)
}

/// Whether `oci-layout` bytes mark an OCI image layout: a JSON object whose
/// `imageLayoutVersion` is a string `1.x`.
pub(crate) fn is_layout_marker(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned))
        .is_some_and(|v| v.starts_with("1."))
}

/// The entry tagged `tag` (the first one); without a tag, the only entry. The error says what
/// was looked for.
pub(crate) fn select_entry(
    entries: Vec<IndexEntry>,
    tag: Option<&str>,
) -> Result<IndexEntry, String> {
    match tag {
        Some(tag) => entries
            .into_iter()
            .find(|e| e.tag() == Some(tag))
            .ok_or_else(|| format!("no image tagged {tag:?}")),
        None if entries.len() == 1 => Ok(entries.into_iter().next().expect("one entry")),
        None => Err(format!(
            "{} images in index.json: name one with :TAG",
            entries.len()
        )),
    }
}

/// Reads `index.json` bytes (a layout's image index).
pub(crate) fn parse_index(bytes: &[u8]) -> Result<IndexFile, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// The entries of `index.json` bytes, and the bytes this writes back for them: the pure part
/// of reading and rewriting a layout (the fuzz target's entry).
pub fn index_entries(bytes: &[u8]) -> Result<(Vec<IndexEntry>, Vec<u8>), String> {
    let index = parse_index(bytes)?;
    let written = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    Ok((index.manifests, written))
}

fn empty_index() -> IndexFile {
    IndexFile {
        schema_version: 2,
        media_type: None,
        manifests: Vec::new(),
        other: Map::new(),
    }
}

fn io(path: &Path, source: std::io::Error) -> LayoutError {
    LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    super::files::write_atomically(path, bytes, 0o644).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn tags_replace_and_untagged_entries_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let m = "application/vnd.oci.image.manifest.v1+json";
        layout
            .add_manifest(m, &digest('a'), 10, Some("v1"))
            .unwrap();
        layout
            .add_manifest(m, &digest('b'), 11, Some("v1"))
            .unwrap();
        layout.add_manifest(m, &digest('c'), 12, None).unwrap();
        layout.add_manifest(m, &digest('c'), 12, None).unwrap();
        let entries = layout.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(layout.find(Some("v1")).unwrap().digest, digest('b'));
        assert!(layout.find(None).is_err(), "two images need a tag");
        assert!(matches!(
            layout.find(Some("nope")),
            Err(LayoutError::NoSuchImage { .. })
        ));
    }

    #[test]
    fn an_untagged_copy_of_a_tagged_image_keeps_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let m = "application/vnd.oci.image.manifest.v1+json";
        layout
            .add_manifest(m, &digest('a'), 10, Some("v1"))
            .unwrap();
        let before = std::fs::read(dir.path().join("index.json")).unwrap();
        // This used to replace the tagged entry with an untagged one (the `oci_layout` fuzz
        // target checks it; reproducer: fuzz/regressions/oci_layout/crash-untagged-add-drops-tag).
        layout.add_manifest(m, &digest('a'), 10, None).unwrap();
        assert_eq!(layout.find(Some("v1")).unwrap().digest, digest('a'));
        assert_eq!(
            std::fs::read(dir.path().join("index.json")).unwrap(),
            before
        );
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "m", "digest": digest('a').to_string(), "size": 1,
            "platform": {"os": "linux", "architecture": "arm64"}, "x-extra": [1, 2]
        }], "annotations": {"keep": "me"}});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        layout
            .add_manifest("m", &digest('b'), 2, Some("t"))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("index.json")).unwrap();
        assert!(text.contains("x-extra") && text.contains("arm64") && text.contains("keep"));
    }

    #[test]
    fn index_json_is_written_as_skopeo_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let m = "application/vnd.oci.image.manifest.v1+json";
        layout
            .add_manifest(m, &digest('a'), 399, Some("v1"))
            .unwrap();
        let expected = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{m}","digest":"{}","size":399,"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            digest('a')
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("index.json")).unwrap(),
            expected
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion": "1.0.0"}"#
        );
    }

    #[test]
    fn not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            OciLayout::open(dir.path()),
            Err(LayoutError::NotALayout(_))
        ));
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0"}"#,
        )
        .unwrap();
        assert!(OciLayout::open(dir.path()).is_err());
    }

    #[test]
    fn blob_paths() {
        let layout = OciLayout { root: "/x".into() };
        assert_eq!(
            layout.blob_path(&digest('a')),
            PathBuf::from(format!("/x/blobs/sha256/{}", "a".repeat(64)))
        );
    }
}
