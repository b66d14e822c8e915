//! [`PathSpec`]: every key of distribution 2.8's storage layout, as a typed value.
//!
//! All storage paths the store uses are built here and nowhere else, so the layout can be
//! checked against distribution's in one table test. Everything lives under
//! `/docker/registry/v2/` (the driver adds its own root in front):
//!
//! ```text
//! blobs/<alg>/<hex[0:2]>/<hex>/data                                 blob bytes (fan-out here only)
//! repositories/<name>/_layers/<alg>/<hex>/link                      blob link
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link         manifest revision link
//! repositories/<name>/_manifests/tags/<tag>/current/link            tag's current target
//! repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link  tag history
//! repositories/<name>/_uploads/<id>/{data,startedat}                upload session
//! repositories/<name>/_uploads/<id>/hashstates/<alg>/<offset>       Go-format hash state
//! ```
//!
//! `<alg>` is the digest algorithm with `+`, `.` and `;` turned into `/`, so
//! `tarsum.v1+sha256` becomes `tarsum/v1/sha256`, as in distribution. Link files hold the
//! canonical digest string with no newline ([`encode_link`]); [`parse_link`] is strict.

use crate::digest::{Algorithm, Digest, DigestError, HashAlgorithm};
use crate::names::{RepositoryName, Tag, UploadId};

use super::{DriverPath, PathError};

/// The prefix of every key: distribution's storage root inside the driver.
pub const STORAGE_ROOT: &str = "/docker/registry/v2";

/// One location in the storage layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathSpec<'a> {
    /// `<root>/blobs`.
    BlobsRoot,
    /// `<root>/blobs/<alg>/<xx>/<hex>`.
    BlobDir {
        /// The blob.
        digest: &'a Digest,
    },
    /// `<root>/blobs/<alg>/<xx>/<hex>/data`.
    BlobData {
        /// The blob.
        digest: &'a Digest,
    },
    /// `<root>/repositories`.
    RepositoriesRoot,
    /// `<root>/repositories/<name>`.
    Repository {
        /// The repository.
        repo: &'a RepositoryName,
    },
    /// `<root>/repositories/<name>/_layers`.
    LayersDir {
        /// The repository.
        repo: &'a RepositoryName,
    },
    /// `<root>/repositories/<name>/_layers/<alg>/<hex>/link`.
    LayerLink {
        /// The repository.
        repo: &'a RepositoryName,
        /// The digest the link is filed under (may be an alias of its content).
        digest: &'a Digest,
    },
    /// `<root>/repositories/<name>/_manifests/revisions`.
    ManifestRevisionsDir {
        /// The repository.
        repo: &'a RepositoryName,
    },
    /// `<root>/repositories/<name>/_manifests/revisions/<alg>/<hex>/link`.
    ManifestRevisionLink {
        /// The repository.
        repo: &'a RepositoryName,
        /// The manifest.
        digest: &'a Digest,
    },
    /// `<root>/repositories/<name>/_manifests/tags`.
    TagsDir {
        /// The repository.
        repo: &'a RepositoryName,
    },
    /// `<root>/repositories/<name>/_manifests/tags/<tag>`.
    TagDir {
        /// The repository.
        repo: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
    },
    /// `<root>/repositories/<name>/_manifests/tags/<tag>/current/link`.
    TagCurrentLink {
        /// The repository.
        repo: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
    },
    /// `<root>/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`.
    TagIndexEntryLink {
        /// The repository.
        repo: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
        /// A manifest the tag pointed at.
        digest: &'a Digest,
    },
    /// `<root>/repositories/<name>/_manifests/referrers/<alg>/<hex>`: layerstore's index of the
    /// manifests whose `subject` is this digest (not part of distribution's layout, which has no
    /// referrers API; distribution ignores it).
    ReferrersDir {
        /// The repository.
        repo: &'a RepositoryName,
        /// The subject digest.
        subject: &'a Digest,
    },
    /// `<root>/repositories/<name>/_manifests/referrers/<alg>/<hex>/<alg>/<hex>/descriptor`: one
    /// referrer's descriptor (a JSON `ReferrerRecord`).
    ReferrerDescriptor {
        /// The repository.
        repo: &'a RepositoryName,
        /// The subject digest.
        subject: &'a Digest,
        /// The referring manifest.
        referrer: &'a Digest,
    },
    /// `<root>/repositories/<name>/_uploads`.
    UploadsDir {
        /// The repository.
        repo: &'a RepositoryName,
    },
    /// `<root>/repositories/<name>/_uploads/<id>`.
    UploadDir {
        /// The repository.
        repo: &'a RepositoryName,
        /// The upload session.
        id: &'a UploadId,
    },
    /// `<root>/repositories/<name>/_uploads/<id>/data`.
    UploadData {
        /// The repository.
        repo: &'a RepositoryName,
        /// The upload session.
        id: &'a UploadId,
    },
    /// `<root>/repositories/<name>/_uploads/<id>/startedat`.
    UploadStartedAt {
        /// The repository.
        repo: &'a RepositoryName,
        /// The upload session.
        id: &'a UploadId,
    },
    /// `<root>/repositories/<name>/_uploads/<id>/hashstates/<alg>`.
    UploadHashStatesDir {
        /// The repository.
        repo: &'a RepositoryName,
        /// The upload session.
        id: &'a UploadId,
        /// The hash the states belong to (distribution: always sha256).
        alg: HashAlgorithm,
    },
    /// `<root>/repositories/<name>/_uploads/<id>/hashstates/<alg>/<offset>`.
    UploadHashState {
        /// The repository.
        repo: &'a RepositoryName,
        /// The upload session.
        id: &'a UploadId,
        /// The hash the state belongs to.
        alg: HashAlgorithm,
        /// Bytes hashed into the state (decimal in the path).
        offset: u64,
    },
}

impl PathSpec<'_> {
    /// The driver path for this location.
    ///
    /// ```
    /// use layerstore::storage::PathSpec;
    /// use layerstore::Digest;
    /// let d = Digest::sha256(b"");
    /// assert_eq!(
    ///     PathSpec::BlobData { digest: &d }.to_path().unwrap().as_str(),
    ///     "/docker/registry/v2/blobs/sha256/e3/\
    ///      e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data",
    /// );
    /// ```
    pub fn to_path(&self) -> Result<DriverPath, PathError> {
        DriverPath::parse(&self.render())
    }

    fn render(&self) -> String {
        use PathSpec::*;
        match *self {
            BlobsRoot => format!("{STORAGE_ROOT}/blobs"),
            BlobDir { digest } => {
                let hex = digest.hex();
                let fan = hex.get(..2).unwrap_or(hex);
                format!(
                    "{STORAGE_ROOT}/blobs/{}/{fan}/{hex}",
                    alg_dir(digest.algorithm())
                )
            }
            BlobData { digest } => format!("{}/data", BlobDir { digest }.render()),
            RepositoriesRoot => format!("{STORAGE_ROOT}/repositories"),
            Repository { repo } => format!("{STORAGE_ROOT}/repositories/{repo}"),
            LayersDir { repo } => format!("{}/_layers", Repository { repo }.render()),
            LayerLink { repo, digest } => {
                format!(
                    "{}/{}/link",
                    LayersDir { repo }.render(),
                    digest_dir(digest)
                )
            }
            ManifestRevisionsDir { repo } => {
                format!("{}/_manifests/revisions", Repository { repo }.render())
            }
            ManifestRevisionLink { repo, digest } => format!(
                "{}/{}/link",
                ManifestRevisionsDir { repo }.render(),
                digest_dir(digest)
            ),
            TagsDir { repo } => format!("{}/_manifests/tags", Repository { repo }.render()),
            TagDir { repo, tag } => format!("{}/{tag}", TagsDir { repo }.render()),
            TagCurrentLink { repo, tag } => {
                format!("{}/current/link", TagDir { repo, tag }.render())
            }
            TagIndexEntryLink { repo, tag, digest } => format!(
                "{}/index/{}/link",
                TagDir { repo, tag }.render(),
                digest_dir(digest)
            ),
            ReferrersDir { repo, subject } => format!(
                "{}/_manifests/referrers/{}",
                Repository { repo }.render(),
                digest_dir(subject)
            ),
            ReferrerDescriptor {
                repo,
                subject,
                referrer,
            } => format!(
                "{}/{}/descriptor",
                ReferrersDir { repo, subject }.render(),
                digest_dir(referrer)
            ),
            UploadsDir { repo } => format!("{}/_uploads", Repository { repo }.render()),
            UploadDir { repo, id } => format!("{}/{id}", UploadsDir { repo }.render()),
            UploadData { repo, id } => format!("{}/data", UploadDir { repo, id }.render()),
            UploadStartedAt { repo, id } => {
                format!("{}/startedat", UploadDir { repo, id }.render())
            }
            UploadHashStatesDir { repo, id, alg } => {
                format!("{}/hashstates/{alg}", UploadDir { repo, id }.render())
            }
            UploadHashState {
                repo,
                id,
                alg,
                offset,
            } => format!(
                "{}/{offset}",
                UploadHashStatesDir { repo, id, alg }.render()
            ),
        }
    }
}

/// `<alg>` as a path: the algorithm string with `+`, `.` and `;` turned into `/`.
pub fn alg_dir(algorithm: Algorithm) -> String {
    algorithm
        .to_string()
        .chars()
        .map(|c| if matches!(c, '+' | '.' | ';') { '/' } else { c })
        .collect()
}

/// `<alg>/<hex>`, the unfanned digest directory used inside repositories.
fn digest_dir(digest: &Digest) -> String {
    format!("{}/{}", alg_dir(digest.algorithm()), digest.hex())
}

/// Rebuilds a digest from the components of an `<alg>/<hex>` path (`alg_parts` are the
/// algorithm's components). The mapping loses which separators were `.` and which `+`; the
/// algorithms layerstore knows use `+` only before the final hash name, so that is assumed.
pub fn digest_from_components(alg_parts: &[&str], hex: &str) -> Result<Digest, DigestError> {
    let algorithm = match alg_parts {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [versions @ .., hash] => format!("{}+{hash}", versions.join(".")),
    };
    Digest::parse(&format!("{algorithm}:{hex}"))
}

/// The bytes of a link file: the canonical digest string, no newline.
pub fn encode_link(digest: &Digest) -> Vec<u8> {
    digest.to_string().into_bytes()
}

/// Parses a link file strictly: exactly a digest, no whitespace or newline (as distribution).
pub fn parse_link(content: &[u8]) -> Result<Digest, DigestError> {
    let text = std::str::from_utf8(content).map_err(|_| DigestError::InvalidHex {
        found: '\u{fffd}',
        position: 0,
    })?;
    Digest::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_maps_to_distributions_path() {
        let repo = RepositoryName::parse("library/alpine").unwrap();
        let tag = Tag::parse("3.19").unwrap();
        let id = UploadId::parse("0d3e1f6a-1b2c-4d5e-8f90-a1b2c3d4e5f6").unwrap();
        let d = Digest::sha256(b"abc");
        let h = d.hex();
        let d512: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
        let ts: Digest = format!("tarsum.v1+sha256:{h}").parse().unwrap();
        let r = "/docker/registry/v2";
        let rr = format!("{r}/repositories/library/alpine");
        let u = format!("{rr}/_uploads/{id}");
        let sha256 = HashAlgorithm::Sha256;
        let cases: Vec<(PathSpec, String)> = vec![
            (PathSpec::BlobsRoot, format!("{r}/blobs")),
            (
                PathSpec::BlobDir { digest: &d },
                format!("{r}/blobs/sha256/ba/{h}"),
            ),
            (
                PathSpec::BlobData { digest: &d },
                format!("{r}/blobs/sha256/ba/{h}/data"),
            ),
            (
                PathSpec::BlobData { digest: &d512 },
                format!("{r}/blobs/sha512/ab/{}/data", d512.hex()),
            ),
            (
                PathSpec::BlobData { digest: &ts },
                format!("{r}/blobs/tarsum/v1/sha256/ba/{h}/data"),
            ),
            (PathSpec::RepositoriesRoot, format!("{r}/repositories")),
            (PathSpec::Repository { repo: &repo }, rr.clone()),
            (PathSpec::LayersDir { repo: &repo }, format!("{rr}/_layers")),
            (
                PathSpec::LayerLink {
                    repo: &repo,
                    digest: &d,
                },
                format!("{rr}/_layers/sha256/{h}/link"),
            ),
            (
                PathSpec::LayerLink {
                    repo: &repo,
                    digest: &ts,
                },
                format!("{rr}/_layers/tarsum/v1/sha256/{h}/link"),
            ),
            (
                PathSpec::ManifestRevisionsDir { repo: &repo },
                format!("{rr}/_manifests/revisions"),
            ),
            (
                PathSpec::ManifestRevisionLink {
                    repo: &repo,
                    digest: &d,
                },
                format!("{rr}/_manifests/revisions/sha256/{h}/link"),
            ),
            (
                PathSpec::TagsDir { repo: &repo },
                format!("{rr}/_manifests/tags"),
            ),
            (
                PathSpec::TagDir {
                    repo: &repo,
                    tag: &tag,
                },
                format!("{rr}/_manifests/tags/3.19"),
            ),
            (
                PathSpec::TagCurrentLink {
                    repo: &repo,
                    tag: &tag,
                },
                format!("{rr}/_manifests/tags/3.19/current/link"),
            ),
            (
                PathSpec::TagIndexEntryLink {
                    repo: &repo,
                    tag: &tag,
                    digest: &d,
                },
                format!("{rr}/_manifests/tags/3.19/index/sha256/{h}/link"),
            ),
            (
                PathSpec::ReferrersDir {
                    repo: &repo,
                    subject: &d,
                },
                format!("{rr}/_manifests/referrers/sha256/{h}"),
            ),
            (
                PathSpec::ReferrerDescriptor {
                    repo: &repo,
                    subject: &d,
                    referrer: &d,
                },
                format!("{rr}/_manifests/referrers/sha256/{h}/sha256/{h}/descriptor"),
            ),
            (
                PathSpec::UploadsDir { repo: &repo },
                format!("{rr}/_uploads"),
            ),
            (
                PathSpec::UploadDir {
                    repo: &repo,
                    id: &id,
                },
                u.clone(),
            ),
            (
                PathSpec::UploadData {
                    repo: &repo,
                    id: &id,
                },
                format!("{u}/data"),
            ),
            (
                PathSpec::UploadStartedAt {
                    repo: &repo,
                    id: &id,
                },
                format!("{u}/startedat"),
            ),
            (
                PathSpec::UploadHashStatesDir {
                    repo: &repo,
                    id: &id,
                    alg: sha256,
                },
                format!("{u}/hashstates/sha256"),
            ),
            (
                PathSpec::UploadHashState {
                    repo: &repo,
                    id: &id,
                    alg: sha256,
                    offset: 1048576,
                },
                format!("{u}/hashstates/sha256/1048576"),
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(spec.to_path().unwrap().as_str(), expected, "{spec:?}");
        }
    }

    #[test]
    fn digests_come_back_from_paths() {
        let d = Digest::sha256(b"abc");
        assert_eq!(digest_from_components(&["sha256"], d.hex()).unwrap(), d);
        let ts: Digest = format!("tarsum.v1+sha256:{}", d.hex()).parse().unwrap();
        assert_eq!(
            digest_from_components(&["tarsum", "v1", "sha256"], d.hex()).unwrap(),
            ts
        );
        assert!(digest_from_components(&["md5"], d.hex()).is_err());
        assert!(digest_from_components(&[], d.hex()).is_err());
    }

    #[test]
    fn links_are_strict() {
        let d = Digest::sha256(b"abc");
        let bytes = encode_link(&d);
        assert_eq!(bytes, d.to_string().as_bytes());
        assert_eq!(parse_link(&bytes).unwrap(), d);
        let mut newline = bytes.clone();
        newline.push(b'\n');
        assert!(parse_link(&newline).is_err());
        assert!(parse_link(b" sha256:x").is_err());
        assert!(parse_link(&[0xff, 0xfe]).is_err());
        assert!(parse_link(b"").is_err());
    }
}
