//! Real-world-shaped manifests (tests/data/manifests/): every kind parses with the right type,
//! digest, references, subject and artifact type, from its Content-Type and from the body alone.

use std::fs;
use std::path::PathBuf;

use layerstore::manifest::media_type::*;
use layerstore::manifest::{
    acceptable, DescriptorIndex, Manifest, ManifestError, MediaType, ReferenceTarget,
};
use layerstore::Digest;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/manifests")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses with the proper Content-Type and also with none, and checks both agree.
fn parse_both_ways(name: &str, kind: MediaType) -> Manifest {
    let bytes = fixture(name);
    let typed = Manifest::parse(Some(kind.as_str()), &bytes).unwrap();
    let detected = Manifest::parse(None, &bytes).unwrap();
    assert_eq!(typed, detected, "{name}: typed and detected parses differ");
    assert_eq!(typed.media_type(), kind);
    assert_eq!(typed.digest(), &Digest::sha256(&bytes));
    assert_eq!(typed.size(), bytes.len() as u64);
    typed
}

#[test]
fn docker_schema2_image() {
    let m = parse_both_ways("docker-schema2.json", MediaType::DockerManifest);
    let refs: Vec<_> = m.references().collect();
    assert_eq!(refs.len(), 4);
    assert_eq!(refs[0].role, DescriptorIndex::Config);
    assert_eq!(refs[0].descriptor.media_type, DOCKER_CONTAINER_CONFIG);
    assert_eq!(refs[0].descriptor.size, 7023);
    assert!(refs
        .iter()
        .all(|r| r.target == ReferenceTarget::Blob && !r.is_foreign()));
    assert_eq!(refs[3].role, DescriptorIndex::Layer(2));
    assert_eq!(m.layers()[2].size, 73109);
    assert_eq!(m.subject(), None);
    assert_eq!(m.artifact_type(), Some(DOCKER_CONTAINER_CONFIG));
    assert!(!m.is_artifact());
    assert!(acceptable(&["application/json"], m.media_type()));
}

#[test]
fn docker_manifest_list() {
    let m = parse_both_ways("docker-manifest-list.json", MediaType::DockerManifestList);
    assert_eq!(m.config(), None);
    assert_eq!(m.manifests().len(), 4);
    assert!(m
        .references()
        .all(|r| r.target == ReferenceTarget::Manifest));
    let windows = m.manifests()[3].platform.as_ref().unwrap();
    assert_eq!(windows.os, "windows");
    assert_eq!(windows.os_version.as_deref(), Some("10.0.17763.5329"));
    let armv7 = m.manifests()[1].platform.as_ref().unwrap();
    assert_eq!(
        (armv7.architecture.as_str(), armv7.variant.as_deref()),
        ("arm", Some("v7"))
    );
    assert_eq!(m.artifact_type(), None);
}

#[test]
fn docker_foreign_layer_is_flagged() {
    let m = parse_both_ways("docker-foreign-layer.json", MediaType::DockerManifest);
    let layers: Vec<_> = m
        .references()
        .filter(|r| matches!(r.role, DescriptorIndex::Layer(_)))
        .collect();
    assert!(layers[0].is_foreign() && layers[0].is_non_distributable());
    assert!(layers[0].descriptor.urls[0].starts_with("https://"));
    assert_eq!(layers[0].descriptor.size, 1_653_562_271);
    assert!(!layers[1].is_foreign() && !layers[1].is_non_distributable());
}

#[test]
fn oci_image_manifest() {
    let m = parse_both_ways("oci-manifest.json", MediaType::OciManifest);
    assert_eq!(m.references().count(), 3);
    assert_eq!(m.layers()[1].media_type, OCI_LAYER_ZSTD);
    assert_eq!(
        m.annotations()
            .get("org.opencontainers.image.source")
            .map(String::as_str),
        Some("https://github.com/example/app")
    );
    assert_eq!(m.artifact_type(), Some(OCI_CONFIG));
    assert_eq!(m.declared_artifact_type(), None);
    assert!(!m.is_artifact());
    assert!(!acceptable(&[DOCKER_MANIFEST], m.media_type()));
    assert!(acceptable(&[OCI_MANIFEST], m.media_type()));
}

#[test]
fn oci_index_with_platforms_and_attestation() {
    let m = parse_both_ways("oci-index.json", MediaType::OciIndex);
    assert_eq!(m.manifests().len(), 3);
    let attestation = &m.manifests()[2];
    assert_eq!(
        attestation.platform.as_ref().map(|p| p.os.as_str()),
        Some("unknown")
    );
    assert_eq!(
        attestation
            .annotations
            .get("vnd.docker.reference.type")
            .map(String::as_str),
        Some("attestation-manifest")
    );
    assert_eq!(m.artifact_type(), None);
    assert!(!m.is_artifact());
}

#[test]
fn artifact_manifest_with_subject() {
    let m = parse_both_ways("oci-artifact-with-subject.json", MediaType::OciManifest);
    assert!(m.is_artifact());
    assert_eq!(m.artifact_type(), Some("application/spdx+json"));
    assert_eq!(m.config().unwrap().media_type, OCI_EMPTY);
    let subject = m.subject().unwrap();
    assert_eq!(subject.media_type, OCI_MANIFEST);
    assert_eq!(subject.size, 1042);
    // The subject is not a reference: it may be absent from the registry.
    assert!(m.references().all(|r| r.role != DescriptorIndex::Subject));
    assert_eq!(m.references().count(), 2);
}

#[test]
fn index_with_subject() {
    let m = parse_both_ways("oci-index-with-subject.json", MediaType::OciIndex);
    assert!(m.is_artifact());
    assert_eq!(
        m.artifact_type(),
        Some("application/vnd.example.signature.bundle")
    );
    assert_eq!(m.subject().unwrap().media_type, OCI_INDEX);
    assert_eq!(
        m.manifests()[0].artifact_type.as_deref(),
        Some("application/vnd.dev.cosign.artifact.sig.v1+json")
    );
}

#[test]
fn schema1_is_recognized_and_refused() {
    let bytes = fixture("docker-schema1-signed.json");
    for content_type in [None, Some("application/json"), Some(DOCKER_SCHEMA1_SIGNED)] {
        assert_eq!(
            Manifest::parse(content_type, &bytes),
            Err(ManifestError::Schema1Unsupported),
            "{content_type:?}"
        );
    }
}

#[test]
fn every_fixture_is_refused_under_the_wrong_docker_type() {
    for name in [
        "oci-manifest.json",
        "oci-index.json",
        "oci-artifact-with-subject.json",
    ] {
        let bytes = fixture(name);
        let err = Manifest::parse(Some(DOCKER_MANIFEST), &bytes).unwrap_err();
        assert!(
            matches!(err, ManifestError::MediaTypeMismatch { .. }),
            "{name}: {err}"
        );
    }
    // An index pushed as an OCI manifest: its mediaType field disagrees.
    let err = Manifest::parse(Some(OCI_MANIFEST), &fixture("oci-index.json")).unwrap_err();
    assert!(matches!(err, ManifestError::MediaTypeMismatch { .. }));
}
