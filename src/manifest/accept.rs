//! `Accept` negotiation for manifest GET/HEAD: may this manifest be served to this client?
//!
//! Rules (see docs/manifests.md for the reasoning):
//! * Docker kinds are always served (distribution 2.8/v3; old Docker clients rely on it).
//! * OCI kinds are served when some `Accept` entry matches them: the exact type, `type/*` or
//!   `*/*`. Entries are split on `,`, parameters dropped, compared case-insensitively - except
//!   that an entry with `q=0` means "not acceptable" (RFC 9110) and matches nothing.
//! * No `Accept` at all (no header, or only empty values) accepts everything (RFC 9110: a
//!   request without Accept accepts any type).
//!
//! Where this differs from distribution: distribution ignores `*/*` and an absent `Accept`, and
//! answers 404 for an OCI manifest unless its exact type is listed. containerd sends an explicit
//! list that ends in `*/*`, skopeo and podman send explicit lists, so for real clients both rules
//! agree; ours also lets `curl` fetch OCI content.

use super::media_type::{essence, MediaType};

/// Whether a manifest of kind `media_type` may be served to a request with these `Accept`
/// header values (one slice entry per header line; each may hold a comma-separated list).
///
/// ```
/// use layerstore::manifest::{acceptable, MediaType};
/// let docker_only = ["application/vnd.docker.distribution.manifest.v2+json"];
/// assert!(acceptable(&docker_only, MediaType::DockerManifest));
/// assert!(!acceptable(&docker_only, MediaType::OciManifest));
/// assert!(acceptable(&["application/vnd.oci.image.manifest.v1+json"], MediaType::OciManifest));
/// assert!(acceptable(&["text/html, */*;q=0.8"], MediaType::OciIndex));
/// assert!(acceptable(&[], MediaType::OciIndex));
/// ```
pub fn acceptable(accept_headers: &[&str], media_type: MediaType) -> bool {
    if !media_type.is_oci() {
        return true;
    }
    let mut entries = accept_headers
        .iter()
        .flat_map(|header| header.split(','))
        .filter(|entry| !essence(entry).is_empty())
        .peekable();
    if entries.peek().is_none() {
        return true;
    }
    entries.any(|entry| !is_refused(entry) && matches_type(essence(entry), media_type.as_str()))
}

/// `exact`, `type/*` or `*/*`, case-insensitively.
fn matches_type(range: &str, media_type: &str) -> bool {
    if range == "*/*" || range.eq_ignore_ascii_case(media_type) {
        return true;
    }
    match (range.strip_suffix("/*"), media_type.split_once('/')) {
        (Some(kind), Some((media_kind, _))) => kind.eq_ignore_ascii_case(media_kind),
        _ => false,
    }
}

/// An entry whose `q` parameter is zero (`q=0`, `q=0.0`, `q=0.000`).
fn is_refused(entry: &str) -> bool {
    entry.split(';').skip(1).any(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        let value = value.trim();
        name.trim().eq_ignore_ascii_case("q")
            && value.starts_with('0')
            && value.bytes().all(|b| b == b'0' || b == b'.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::media_type::*;

    const CONTAINERD: &str = "application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

    #[test]
    fn docker_kinds_are_always_served() {
        for kind in [MediaType::DockerManifest, MediaType::DockerManifestList] {
            assert!(acceptable(&["text/plain"], kind));
            assert!(acceptable(&[OCI_MANIFEST], kind));
            assert!(acceptable(&[], kind));
        }
    }

    #[test]
    fn oci_kinds_need_their_type_or_a_wildcard() {
        let table: &[(&[&str], MediaType, bool)] = &[
            (&[OCI_MANIFEST], MediaType::OciManifest, true),
            (&[OCI_MANIFEST], MediaType::OciIndex, false),
            (
                &[DOCKER_MANIFEST, DOCKER_MANIFEST_LIST],
                MediaType::OciIndex,
                false,
            ),
            (&[DOCKER_MANIFEST, OCI_INDEX], MediaType::OciIndex, true),
            (&[CONTAINERD], MediaType::OciManifest, true),
            (&["application/*"], MediaType::OciIndex, true),
            (&["text/*"], MediaType::OciIndex, false),
            (&["*/*"], MediaType::OciManifest, true),
            (
                &["APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON"],
                MediaType::OciIndex,
                true,
            ),
            (
                &[" application/vnd.oci.image.index.v1+json ; charset=utf-8"],
                MediaType::OciIndex,
                true,
            ),
            (
                &["application/vnd.oci.image.index.v1+json;q=0"],
                MediaType::OciIndex,
                false,
            ),
            (&["*/*; q=0.000"], MediaType::OciIndex, false),
            (&["*/*;q=0.1"], MediaType::OciIndex, true),
            (
                &["application/vnd.oci.image.index.v1+json;q=0", "*/*"],
                MediaType::OciIndex,
                true,
            ),
            (&[], MediaType::OciManifest, true),
            (&["", " , "], MediaType::OciManifest, true),
            (
                &["application/vnd.oci.image.index.v1+jsonx"],
                MediaType::OciIndex,
                false,
            ),
        ];
        for (accept, kind, expected) in table {
            assert_eq!(acceptable(accept, *kind), *expected, "{accept:?} {kind}");
        }
    }
}
