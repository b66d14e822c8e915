//! [`ParsedManifest`]: what the store needs to know about a validated manifest, and its
//! [`Reference`]s - the blobs and child manifests that must exist before it may be stored.

use std::collections::BTreeMap;

use super::descriptor::Descriptor;
use super::error::DescriptorIndex;
use super::media_type::{is_image_config, is_non_distributable, MediaType};
use crate::digest::Digest;

/// A validated manifest of one of the four storable kinds.
///
/// Built only by [`ParsedManifest::parse`]; it does not keep the body (the caller has the exact
/// bytes, and the digest here is theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    media_type: MediaType,
    digest: Digest,
    size: u64,
    content: Content,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: BTreeMap<String, String>,
}

/// The kind-specific part: an image's config and layers, or an index's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Image {
        // Boxed: a descriptor is large and an index has none.
        config: Box<Descriptor>,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

/// What a reference points at, which decides where the store looks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReferenceTarget {
    /// A blob, linked in the repository's layer links.
    Blob,
    /// A manifest, found among the repository's manifest revisions.
    Manifest,
}

/// One thing a manifest depends on: its config, a layer, or an index child.
///
/// The `subject` is not a reference: the OCI spec lets it point at a manifest that is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reference<'a> {
    /// Where the descriptor sits (config, `layers[i]`, `manifests[i]`).
    pub role: DescriptorIndex,
    /// Blob or manifest.
    pub target: ReferenceTarget,
    /// The descriptor itself.
    pub descriptor: &'a Descriptor,
}

impl Reference<'_> {
    /// The referenced digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    /// True when the descriptor carries `urls`: the content may live outside the registry, so
    /// distribution 2.8 checks the URLs against its policy instead of looking for the blob.
    pub fn is_foreign(&self) -> bool {
        self.descriptor.has_urls()
    }

    /// True when the media type is a foreign / non-distributable layer type.
    pub fn is_non_distributable(&self) -> bool {
        is_non_distributable(&self.descriptor.media_type)
    }
}

impl ParsedManifest {
    pub(crate) fn new(media_type: MediaType, digest: Digest, size: u64, content: Content) -> Self {
        ParsedManifest {
            media_type,
            digest,
            size,
            content,
            subject: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    pub(crate) fn with_oci_fields(
        mut self,
        subject: Option<Descriptor>,
        artifact_type: Option<String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        self.subject = subject;
        self.artifact_type = artifact_type;
        self.annotations = annotations;
        self
    }

    /// The manifest's kind; its [`MediaType::as_str`] is the `Content-Type` to serve it with.
    pub fn media_type(&self) -> MediaType {
        self.media_type
    }

    /// sha256 of the exact bytes parsed: the manifest's canonical digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Length of the bytes parsed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The config descriptor of an image manifest; `None` for an index.
    pub fn config(&self) -> Option<&Descriptor> {
        match &self.content {
            Content::Image { config, .. } => Some(config),
            Content::Index { .. } => None,
        }
    }

    /// The layers of an image manifest; empty for an index.
    pub fn layers(&self) -> &[Descriptor] {
        match &self.content {
            Content::Image { layers, .. } => layers,
            Content::Index { .. } => &[],
        }
    }

    /// The children of an index; empty for an image manifest.
    pub fn manifests(&self) -> &[Descriptor] {
        match &self.content {
            Content::Index { manifests } => manifests,
            Content::Image { .. } => &[],
        }
    }

    /// What must exist before this manifest may be stored: config and layers of an image
    /// (a layer whose type is a manifest kind is a manifest reference), children of an index.
    pub fn references(&self) -> impl Iterator<Item = Reference<'_>> + '_ {
        let image = self.config().map(|config| Reference {
            role: DescriptorIndex::Config,
            target: ReferenceTarget::Blob,
            descriptor: config,
        });
        let layers = self.layers().iter().enumerate().map(|(i, d)| Reference {
            role: DescriptorIndex::Layer(i),
            target: target_of_layer(d),
            descriptor: d,
        });
        let children = self.manifests().iter().enumerate().map(|(i, d)| Reference {
            role: DescriptorIndex::Manifest(i),
            target: ReferenceTarget::Manifest,
            descriptor: d,
        });
        image.into_iter().chain(layers).chain(children)
    }

    /// The manifest this one refers to (OCI `subject`), if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }

    /// The artifact type as the referrers API reports it: the manifest's `artifactType`, else
    /// (image manifests only) its config's media type; `None` for an index without one.
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config().map(|c| c.media_type.as_str()))
    }

    /// The top-level `artifactType` field exactly as written, if any.
    pub fn declared_artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref()
    }

    /// Top-level annotations (OCI kinds only; empty otherwise).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// True for an OCI manifest that packages something other than a runnable image: it sets
    /// `artifactType`, or its config is not an image config (e.g. [`OCI_EMPTY`](super::media_type::OCI_EMPTY)).
    pub fn is_artifact(&self) -> bool {
        match self.media_type {
            MediaType::OciManifest => {
                self.artifact_type.is_some()
                    || self
                        .config()
                        .is_some_and(|c| !is_image_config(&c.media_type))
            }
            MediaType::OciIndex => self.artifact_type.is_some(),
            _ => false,
        }
    }
}

/// distribution checks a layer whose type is a manifest kind in the manifest store.
fn target_of_layer(layer: &Descriptor) -> ReferenceTarget {
    match MediaType::from_exact(&layer.media_type) {
        Some(kind) if kind.is_storable() => ReferenceTarget::Manifest,
        _ => ReferenceTarget::Blob,
    }
}
