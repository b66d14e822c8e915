//! Referrers: records built from real fixtures, written to and read back from files the way the
//! store keeps them, and the index body the API serves.

use std::fs;
use std::path::PathBuf;

use layerstore::manifest::media_type::*;
use layerstore::manifest::{
    referrers_index, referrers_tag, Manifest, MediaType, ReferrerRecord, ReferrerRecordError,
};
use layerstore::Digest;
use serde_json::{json, Value};

fn parse_fixture(name: &str) -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/manifests")
        .join(name);
    Manifest::parse(None, &fs::read(path).unwrap()).unwrap()
}

/// A minimal artifact manifest pointing at `subject`.
fn artifact(subject: &Digest, artifact_type: Option<&str>, note: &str) -> Manifest {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "size": 2,
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "size": 10, "digest": subject.to_string()},
        "annotations": {"note": note},
    });
    if let Some(t) = artifact_type {
        doc["artifactType"] = json!(t);
    }
    Manifest::parse(Some(OCI_MANIFEST), &serde_json::to_vec(&doc).unwrap()).unwrap()
}

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn records_from_fixtures_carry_what_the_api_lists() {
    let sbom = parse_fixture("oci-artifact-with-subject.json");
    let record = ReferrerRecord::from_manifest(&sbom).unwrap();
    assert_eq!(&record.subject, &sbom.subject().unwrap().digest);
    assert_eq!(&record.digest, sbom.digest());
    assert_eq!(record.size, sbom.size());
    assert_eq!(record.media_type, OCI_MANIFEST);
    assert_eq!(
        record.artifact_type.as_deref(),
        Some("application/spdx+json")
    );
    assert_eq!(record.annotations.len(), 2);

    let bundle = parse_fixture("oci-index-with-subject.json");
    let record = ReferrerRecord::from_manifest(&bundle).unwrap();
    assert_eq!(record.media_type, OCI_INDEX);
    assert_eq!(
        record.artifact_type.as_deref(),
        Some("application/vnd.example.signature.bundle")
    );

    assert_eq!(
        ReferrerRecord::from_manifest(&parse_fixture("oci-manifest.json")),
        None
    );
}

#[test]
fn image_manifest_without_artifact_type_reports_its_config_type() {
    let subject = Digest::sha256(b"subject");
    let m = artifact(&subject, None, "x");
    let record = ReferrerRecord::from_manifest(&m).unwrap();
    assert_eq!(record.artifact_type.as_deref(), Some(OCI_EMPTY));
}

#[test]
fn records_survive_a_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let subject = Digest::sha256(b"subject");
    let records: Vec<ReferrerRecord> = ["a", "b", "c"]
        .iter()
        .map(|note| {
            ReferrerRecord::from_manifest(&artifact(&subject, Some("x/sig"), note)).unwrap()
        })
        .collect();
    for record in &records {
        fs::write(dir.path().join(record.digest.hex()), record.to_json()).unwrap();
    }
    let mut read_back: Vec<ReferrerRecord> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| ReferrerRecord::from_json(&fs::read(entry.unwrap().path()).unwrap()).unwrap())
        .collect();
    read_back.sort_by(|a, b| a.digest.cmp(&b.digest));
    let mut expected = records.clone();
    expected.sort_by(|a, b| a.digest.cmp(&b.digest));
    assert_eq!(read_back, expected);
    // The on-disk form is small and has no empty fields.
    let text = String::from_utf8(records[0].to_json()).unwrap();
    assert!(text.len() < 400, "{text}");
    assert!(!text.contains("null"));
}

#[test]
fn record_decoding_errors_are_typed() {
    assert!(matches!(
        ReferrerRecord::from_json(b"{\"subject\":"),
        Err(ReferrerRecordError::Invalid { line: 1, .. })
    ));
    assert!(matches!(
        ReferrerRecord::from_json(br#"{"subject":"sha256:00","mediaType":"a/b"}"#),
        Err(ReferrerRecordError::Invalid { .. })
    ));
    let subject = Digest::sha256(b"s");
    let mut doc: Value = body_json(
        &ReferrerRecord::from_manifest(&artifact(&subject, None, "n"))
            .unwrap()
            .to_json(),
    );
    doc["extra"] = json!(1);
    assert!(matches!(
        ReferrerRecord::from_json(&serde_json::to_vec(&doc).unwrap()),
        Err(ReferrerRecordError::Invalid { .. })
    ));
    let huge = vec![b' '; layerstore::manifest::MAX_MANIFEST_SIZE + 1];
    assert_eq!(
        ReferrerRecord::from_json(&huge),
        Err(ReferrerRecordError::TooLarge(huge.len()))
    );
}

#[test]
fn index_lists_filters_sorts_and_dedups() {
    let subject = Digest::sha256(b"subject");
    let other = Digest::sha256(b"other");
    let sig = artifact(&subject, Some("application/vnd.example.sig"), "sig");
    let sbom = artifact(&subject, Some("application/spdx+json"), "sbom");
    let elsewhere = artifact(&other, Some("application/spdx+json"), "other");
    let records: Vec<ReferrerRecord> = [&sig, &sbom, &elsewhere, &sig]
        .iter()
        .map(|m| ReferrerRecord::from_manifest(m).unwrap())
        .collect();

    let all = referrers_index(&subject, &records, None);
    assert_eq!(all.count, 2);
    assert!(!all.filter_applied);
    let body = body_json(&all.body);
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    let listed: Vec<&str> = body["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    let mut expected = vec![sig.digest().to_string(), sbom.digest().to_string()];
    expected.sort();
    assert_eq!(listed, expected);
    let first = &body["manifests"][0];
    assert_eq!(first["mediaType"], OCI_MANIFEST);
    assert!(first["size"].as_u64().unwrap() > 0);
    assert!(first["annotations"]["note"].is_string());
    // The same records in another order give the same bytes.
    let reversed: Vec<_> = records.iter().rev().collect();
    assert_eq!(referrers_index(&subject, reversed, None).body, all.body);
    // The body is itself a valid OCI index.
    let parsed = Manifest::parse(Some(OCI_INDEX), &all.body).unwrap();
    assert_eq!(parsed.media_type(), MediaType::OciIndex);
    assert_eq!(parsed.manifests().len(), 2);

    let filtered = referrers_index(&subject, &records, Some("application/spdx+json"));
    assert!(filtered.filter_applied);
    assert_eq!(filtered.count, 1);
    assert_eq!(
        body_json(&filtered.body)["manifests"][0]["digest"],
        sbom.digest().to_string()
    );
    let none = referrers_index(&subject, &records, Some("application/none"));
    assert!(none.filter_applied);
    assert_eq!(body_json(&none.body)["manifests"], json!([]));
    // An empty filter value is no filter.
    assert!(!referrers_index(&subject, &records, Some("")).filter_applied);
}

#[test]
fn tag_index_entries_become_records() {
    let bundle = parse_fixture("oci-index-with-subject.json");
    let subject = Digest::sha256(b"tagged subject");
    let records = ReferrerRecord::from_tag_index(&subject, &bundle);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.subject == subject));
    assert_eq!(
        records[0].artifact_type.as_deref(),
        Some("application/vnd.dev.cosign.artifact.sig.v1+json")
    );
    assert_eq!(referrers_index(&subject, &records, None).count, 2);
}

#[test]
fn referrers_tag_schema() {
    let d = Digest::sha256(b"x");
    assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    let long = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
    assert_eq!(referrers_tag(&long), format!("sha512-{}", "ab".repeat(32)));
}
