//! Whole images: the tree of manifests under a tag (an index's children, each image's config
//! and layers), read from a registry or an OCI layout, and the order a push must follow
//! (blobs, then child manifests, then the tagged manifest).

use bytes::Bytes;

use super::error::ClientError;
use super::layout::OciLayout;
use super::registry::Registry;
use crate::digest::Digest;
use crate::manifest::{Descriptor, ParsedManifest, ReferenceTarget};

/// One manifest of an image tree and what it refers to.
#[derive(Debug, Clone)]
pub struct ManifestNode {
    /// Media type.
    pub media_type: String,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The manifest exactly as stored.
    pub bytes: Bytes,
    /// Config and layers (images) — the blobs this manifest needs.
    pub blobs: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub children: Vec<ManifestNode>,
}

/// `os/arch[/variant]`, as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFilter {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant, when given.
    pub variant: Option<String>,
}

impl std::str::FromStr for PlatformFilter {
    type Err = String;

    /// ```
    /// use layerstore::client::PlatformFilter;
    /// let p: PlatformFilter = "linux/arm64/v8".parse().unwrap();
    /// assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()), ("linux", "arm64", Some("v8")));
    /// assert!("linux".parse::<PlatformFilter>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, architecture] | [os, architecture, _]
                if !os.is_empty() && !architecture.is_empty() =>
            {
                Ok(PlatformFilter {
                    os: os.to_owned(),
                    architecture: architecture.to_owned(),
                    variant: parts.get(2).map(|v| (*v).to_owned()),
                })
            }
            _ => Err(format!("{s:?} is not OS/ARCH[/VARIANT]")),
        }
    }
}

impl PlatformFilter {
    fn matches(&self, descriptor: &Descriptor) -> bool {
        descriptor.platform.as_ref().is_some_and(|p| {
            p.os == self.os
                && p.architecture == self.architecture
                && (self.variant.is_none() || p.variant == self.variant)
        })
    }
}

impl ManifestNode {
    /// Parses `bytes` (of `media_type`, hashing to `digest`) and splits its references.
    pub fn parse(
        media_type: &str,
        digest: Digest,
        bytes: Bytes,
    ) -> Result<(Self, Vec<Descriptor>), ClientError> {
        let media = (!media_type.is_empty()).then_some(media_type);
        let parsed = ParsedManifest::parse(media, &bytes)
            .map_err(|e| ClientError::Protocol(format!("manifest {digest}: {e}")))?;
        let mut blobs = Vec::new();
        let mut children = Vec::new();
        for reference in parsed.references() {
            match reference.target {
                ReferenceTarget::Blob if !reference.is_foreign() => {
                    blobs.push(reference.descriptor.clone())
                }
                ReferenceTarget::Blob => {}
                _ => children.push(reference.descriptor.clone()),
            }
        }
        let node = ManifestNode {
            media_type: parsed.media_type().as_str().to_owned(),
            digest,
            bytes,
            blobs,
            children: Vec::new(),
        };
        Ok((node, children))
    }

    /// Every blob of the tree once, in first-seen order.
    pub fn all_blobs(&self) -> Vec<Descriptor> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        self.visit(&mut |node| {
            for blob in &node.blobs {
                if seen.insert(blob.digest.clone()) {
                    out.push(blob.clone());
                }
            }
        });
        out
    }

    /// Manifests in push order: every child before its parent.
    pub fn manifests_bottom_up(&self) -> Vec<&ManifestNode> {
        let mut out = Vec::new();
        collect_bottom_up(self, &mut out);
        out
    }

    fn visit(&self, f: &mut dyn FnMut(&ManifestNode)) {
        f(self);
        for child in &self.children {
            child.visit(f);
        }
    }

    /// Picks one platform of an index: the child manifest matching `platform`.
    fn select<'a>(
        children: &'a [Descriptor],
        platform: &PlatformFilter,
    ) -> Result<&'a Descriptor, ClientError> {
        children
            .iter()
            .find(|c| platform.matches(c))
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "the index has no manifest for {}/{}{}",
                    platform.os,
                    platform.architecture,
                    platform
                        .variant
                        .as_ref()
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default()
                ))
            })
    }
}

fn collect_bottom_up<'a>(node: &'a ManifestNode, out: &mut Vec<&'a ManifestNode>) {
    for child in &node.children {
        collect_bottom_up(child, out);
    }
    if !out.iter().any(|n| n.digest == node.digest) {
        out.push(node);
    }
}

/// Deepest nesting followed (an index of indexes of ...).
const MAX_DEPTH: usize = 8;

/// Reads the image tree of `reference` from a registry; with `platform`, an index is replaced
/// by its child for that platform.
pub async fn read_remote(
    registry: &Registry,
    repo: &str,
    reference: &str,
    platform: Option<&PlatformFilter>,
) -> Result<ManifestNode, ClientError> {
    let manifest = registry.get_manifest(repo, reference, &[]).await?;
    let (node, children) =
        ManifestNode::parse(&manifest.media_type, manifest.digest, manifest.bytes)?;
    if let (Some(platform), false) = (platform, children.is_empty()) {
        let child = ManifestNode::select(&children, platform)?;
        return Box::pin(read_remote(registry, repo, &child.digest.to_string(), None)).await;
    }
    fill_remote(registry, repo, node, children, 0).await
}

async fn fill_remote(
    registry: &Registry,
    repo: &str,
    mut node: ManifestNode,
    children: Vec<Descriptor>,
    depth: usize,
) -> Result<ManifestNode, ClientError> {
    if depth > MAX_DEPTH {
        return Err(ClientError::Protocol("indexes nested too deeply".into()));
    }
    for child in children {
        let manifest = registry
            .get_manifest(repo, &child.digest.to_string(), &[])
            .await?;
        let (child_node, grandchildren) =
            ManifestNode::parse(&manifest.media_type, manifest.digest, manifest.bytes)?;
        node.children.push(
            Box::pin(fill_remote(
                registry,
                repo,
                child_node,
                grandchildren,
                depth + 1,
            ))
            .await?,
        );
    }
    Ok(node)
}

/// Reads the image tree tagged `tag` (or the only one) from an OCI layout, verifying every
/// manifest against its digest.
pub fn read_layout(
    layout: &OciLayout,
    tag: Option<&str>,
    platform: Option<&PlatformFilter>,
) -> Result<ManifestNode, ClientError> {
    let entry = layout.find(tag)?;
    read_layout_manifest(layout, &entry.media_type, &entry.digest, platform, 0)
}

fn read_layout_manifest(
    layout: &OciLayout,
    media_type: &str,
    digest: &Digest,
    platform: Option<&PlatformFilter>,
    depth: usize,
) -> Result<ManifestNode, ClientError> {
    if depth > MAX_DEPTH {
        return Err(ClientError::Protocol("indexes nested too deeply".into()));
    }
    let path = layout.blob_path(digest);
    let bytes = std::fs::read(&path).map_err(|e| ClientError::io(path.display().to_string(), e))?;
    let mut hasher = super::blobs::verifier(digest)?;
    hasher.update(&bytes);
    super::blobs::check_digest(&hasher, digest)?;
    let (mut node, children) = ManifestNode::parse(media_type, digest.clone(), bytes.into())?;
    if let (Some(platform), false) = (platform, children.is_empty()) {
        let child = ManifestNode::select(&children, platform)?;
        return read_layout_manifest(layout, &child.media_type, &child.digest, None, depth + 1);
    }
    for child in children {
        node.children.push(read_layout_manifest(
            layout,
            &child.media_type,
            &child.digest,
            None,
            depth + 1,
        )?);
    }
    Ok(node)
}
