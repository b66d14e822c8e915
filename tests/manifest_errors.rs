//! Every refusal of `Manifest::parse`, one table row each, with the exact typed error.

use layerstore::digest::DigestError;
use layerstore::manifest::media_type::*;
use layerstore::manifest::{
    DescriptorIndex, DescriptorProblem, JsonProblem, Manifest, ManifestError, MAX_MANIFEST_SIZE,
};
use serde_json::{json, Value};

const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn descriptor(media_type: &str) -> Value {
    json!({"mediaType": media_type, "size": 2, "digest": EMPTY})
}

fn oci_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG),
        "layers": [descriptor(OCI_LAYER_GZIP)],
    })
}

fn oci_index() -> Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST)]})
}

fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let slot = doc.pointer_mut(parent).unwrap();
    match slot {
        Value::Object(map) if value.is_null() => {
            map.remove(key);
        }
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("bad pointer {pointer}"),
    }
    doc
}

fn parse_value(content_type: Option<&str>, doc: &Value) -> Result<Manifest, ManifestError> {
    Manifest::parse(content_type, &serde_json::to_vec(doc).unwrap())
}

fn descriptor_error(index: DescriptorIndex, reason: DescriptorProblem) -> ManifestError {
    ManifestError::InvalidDescriptor { index, reason }
}

#[test]
fn the_unmodified_bases_parse() {
    parse_value(Some(OCI_MANIFEST), &oci_manifest()).unwrap();
    parse_value(Some(OCI_INDEX), &oci_index()).unwrap();
}

#[test]
fn document_level_errors() {
    let om = Some(OCI_MANIFEST);
    let cases: Vec<(Option<&str>, Value, ManifestError)> = vec![
        (
            Some("text/plain"),
            oci_manifest(),
            ManifestError::UnsupportedMediaType("text/plain".into()),
        ),
        (
            Some(DOCKER_SCHEMA1),
            oci_manifest(),
            ManifestError::Schema1Unsupported,
        ),
        (
            None,
            with(oci_manifest(), "/mediaType", json!(DOCKER_SCHEMA1_SIGNED)),
            ManifestError::Schema1Unsupported,
        ),
        (
            None,
            with(oci_manifest(), "/mediaType", json!("application/x-other")),
            ManifestError::UnsupportedMediaType("application/x-other".into()),
        ),
        (
            Some(DOCKER_MANIFEST),
            with(oci_manifest(), "/mediaType", Value::Null),
            ManifestError::MediaTypeMismatch {
                expected: DOCKER_MANIFEST,
                found: None,
            },
        ),
        (
            Some(DOCKER_MANIFEST_LIST),
            with(oci_index(), "/mediaType", json!("")),
            ManifestError::MediaTypeMismatch {
                expected: DOCKER_MANIFEST_LIST,
                found: Some(String::new()),
            },
        ),
        (
            om,
            with(oci_manifest(), "/mediaType", json!(DOCKER_MANIFEST)),
            ManifestError::MediaTypeMismatch {
                expected: OCI_MANIFEST,
                found: Some(DOCKER_MANIFEST.into()),
            },
        ),
        (
            om,
            with(oci_manifest(), "/schemaVersion", json!(1)),
            ManifestError::SchemaVersion { found: Some(1) },
        ),
        (
            om,
            with(oci_manifest(), "/schemaVersion", Value::Null),
            ManifestError::SchemaVersion { found: None },
        ),
        (
            Some(OCI_INDEX),
            with(oci_index(), "/schemaVersion", json!(3)),
            ManifestError::SchemaVersion { found: Some(3) },
        ),
        (
            om,
            with(oci_manifest(), "/config", Value::Null),
            ManifestError::MissingField("config"),
        ),
        (
            om,
            with(oci_manifest(), "/manifests", json!([])),
            ManifestError::AmbiguousDocument {
                kind: "an image manifest",
                field: "manifests",
            },
        ),
        (
            Some(OCI_INDEX),
            with(oci_index(), "/layers", json!([])),
            ManifestError::AmbiguousDocument {
                kind: "an index",
                field: "layers",
            },
        ),
        (
            Some(OCI_INDEX),
            with(oci_index(), "/config", descriptor(OCI_CONFIG)),
            ManifestError::AmbiguousDocument {
                kind: "an index",
                field: "config",
            },
        ),
        (
            om,
            with(oci_manifest(), "/artifactType", json!("not a type")),
            ManifestError::InvalidArtifactType("not a type".into()),
        ),
    ];
    for (i, (content_type, doc, expected)) in cases.iter().enumerate() {
        assert_eq!(
            parse_value(*content_type, doc).as_ref().err(),
            Some(expected),
            "case {i}"
        );
    }
}

#[test]
fn descriptor_errors() {
    use DescriptorIndex::*;
    use DescriptorProblem::*;
    let bad_hex = "sha256:zz";
    let tarsum = format!("tarsum.v1+sha256:{}", &EMPTY[7..]);
    let cases: Vec<(Value, ManifestError)> = vec![
        (
            with(oci_manifest(), "/config/mediaType", Value::Null),
            descriptor_error(Config, MissingMediaType),
        ),
        (
            with(oci_manifest(), "/layers/0/mediaType", json!("gzip")),
            descriptor_error(Layer(0), InvalidMediaType("gzip".into())),
        ),
        (
            with(oci_manifest(), "/layers/0/digest", Value::Null),
            descriptor_error(Layer(0), MissingDigest),
        ),
        (
            with(oci_manifest(), "/layers/0/digest", json!(bad_hex)),
            descriptor_error(
                Layer(0),
                InvalidDigest(DigestError::InvalidHex {
                    found: 'z',
                    position: 0,
                }),
            ),
        ),
        (
            with(oci_manifest(), "/config/digest", json!(tarsum)),
            descriptor_error(Config, NotContentDigest("tarsum.v1+sha256".into())),
        ),
        (
            with(oci_manifest(), "/layers/0/size", Value::Null),
            descriptor_error(Layer(0), MissingSize),
        ),
        (
            with(oci_manifest(), "/layers/0/size", json!(-1)),
            descriptor_error(Layer(0), NegativeSize(-1)),
        ),
        (
            with(oci_manifest(), "/layers/0/urls", json!(["https://x", " "])),
            descriptor_error(Layer(0), EmptyUrl(1)),
        ),
        (
            with(
                oci_manifest(),
                "/layers/0/mediaType",
                json!(DOCKER_FOREIGN_LAYER),
            ),
            descriptor_error(Layer(0), ForeignLayerWithoutUrls),
        ),
        (
            with(
                oci_manifest(),
                "/subject",
                with(descriptor(OCI_MANIFEST), "/artifactType", json!("x")),
            ),
            descriptor_error(Subject, InvalidArtifactType("x".into())),
        ),
        (
            with(oci_index(), "/manifests/0/platform", json!({"os": "linux"})),
            descriptor_error(Manifest(0), IncompletePlatform),
        ),
        (
            with(
                oci_index(),
                "/manifests/0/platform",
                json!({"os": "linux", "architecture": ""}),
            ),
            descriptor_error(Manifest(0), IncompletePlatform),
        ),
    ];
    for (i, (doc, expected)) in cases.iter().enumerate() {
        assert_eq!(
            parse_value(None, doc).as_ref().err(),
            Some(expected),
            "case {i}"
        );
    }
}

#[test]
fn json_level_errors() {
    let json_kind = |bytes: &[u8]| match Manifest::parse(Some(OCI_MANIFEST), bytes) {
        Err(ManifestError::InvalidJson {
            kind, line, column, ..
        }) => Some((kind, line, column)),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    };
    assert_eq!(json_kind(b""), Some((JsonProblem::UnexpectedEnd, 1, 0)));
    assert_eq!(
        json_kind(b"{\"schemaVersion\":"),
        Some((JsonProblem::UnexpectedEnd, 1, 17))
    );
    assert_eq!(json_kind(b"{\n  x}"), Some((JsonProblem::Syntax, 2, 3)));
    assert_eq!(json_kind(b"{} {}").map(|k| k.0), Some(JsonProblem::Syntax));
    assert_eq!(json_kind(b"[]").map(|k| k.0), Some(JsonProblem::WrongType));
    assert_eq!(
        json_kind(b"null").map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    assert_eq!(
        json_kind(br#"{"schemaVersion":"2"}"#).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    assert_eq!(
        json_kind(br#"{"schemaVersion":2.0}"#).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    assert_eq!(
        json_kind(br#"{"layers":{}}"#).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    assert_eq!(
        json_kind(br#"{"annotations":{"a":1}}"#).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    let size_too_big = format!(
        r#"{{"config":{{"mediaType":"a/b","digest":"{EMPTY}","size":9223372036854775808}}}}"#
    );
    assert_eq!(
        json_kind(size_too_big.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_in_field = format!(r#"{{"layers":{deep}}}"#);
    assert_eq!(
        json_kind(deep_in_field.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    assert_eq!(
        json_kind(deep.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    // serde's derived structs would take an array of field values; manifests must be objects.
    let positional = format!(
        r#"[2,"{OCI_MANIFEST}",null,{{"mediaType":"a/b","digest":"{EMPTY}","size":2}},[]]"#
    );
    assert_eq!(
        json_kind(positional.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    let positional_config = format!(r#"{{"schemaVersion":2,"config":["a/b","{EMPTY}",2]}}"#);
    assert_eq!(
        json_kind(positional_config.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
    let positional_platform = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a/b","digest":"{EMPTY}","size":2,"platform":["amd64","linux"]}}]}}"#
    );
    assert_eq!(
        json_kind(positional_platform.as_bytes()).map(|k| k.0),
        Some(JsonProblem::WrongType)
    );
}

#[test]
fn deep_nesting_in_unknown_fields_is_skipped_without_recursion() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut doc = serde_json::to_string(&oci_manifest()).unwrap();
    doc.insert_str(1, &format!(r#""x-unknown":{deep},"#));
    assert!(Manifest::parse(Some(OCI_MANIFEST), doc.as_bytes()).is_ok());
}

#[test]
fn duplicate_keys_are_refused() {
    let cases: &[(&str, &str)] = &[
        (r#"{"schemaVersion":2,"schemaVersion":2}"#, "schemaVersion"),
        (r#"{"mediaType":null,"mediaType":"x"}"#, "mediaType"),
        (r#"{"annotations":{"k":"a","k":"b"}}"#, "k"),
        (r#"{"config":{"size":1,"size":2}}"#, "size"),
    ];
    for (body, key) in cases {
        match Manifest::parse(None, body.as_bytes()) {
            Err(ManifestError::DuplicateKey {
                key: found,
                line: 1,
                ..
            }) => {
                assert_eq!(found, *key, "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn size_limit_and_encoding() {
    let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
    assert_eq!(
        Manifest::parse(None, &big),
        Err(ManifestError::TooLarge {
            size: MAX_MANIFEST_SIZE + 1,
            limit: MAX_MANIFEST_SIZE
        })
    );
    // Exactly at the limit is accepted when valid: pad a real manifest with whitespace.
    let mut padded = serde_json::to_vec(&oci_manifest()).unwrap();
    padded.resize(MAX_MANIFEST_SIZE, b' ');
    assert!(Manifest::parse(Some(OCI_MANIFEST), &padded).is_ok());
    assert_eq!(
        Manifest::parse(None, b"{\"a\":\"\xff\"}"),
        Err(ManifestError::NotUtf8 { valid_up_to: 6 })
    );
}

#[test]
fn tolerated_inputs() {
    // Unknown fields, empty OCI mediaType, missing layers, Content-Type parameters.
    let doc = with(oci_manifest(), "/mediaType", json!(""));
    let doc = with(doc, "/layers", Value::Null);
    let doc = with(doc, "/x-vendor", json!({"nested": [1, 2, {"deep": null}]}));
    let parsed = parse_value(
        Some("Application/VND.OCI.Image.Manifest.v1+json; charset=utf-8"),
        &doc,
    )
    .unwrap();
    assert!(parsed.layers().is_empty());
    // application/json says nothing: the body decides.
    let parsed = parse_value(Some("application/json"), &oci_index()).unwrap();
    assert_eq!(
        parsed.media_type(),
        layerstore::manifest::MediaType::OciIndex
    );
    // No mediaType, no Content-Type: `manifests` makes it an index.
    let parsed = parse_value(None, &with(oci_index(), "/mediaType", Value::Null)).unwrap();
    assert_eq!(
        parsed.media_type(),
        layerstore::manifest::MediaType::OciIndex
    );
    // sha512 descriptors are content digests too.
    let sha512 = format!("sha512:{}", "ab".repeat(64));
    assert!(parse_value(
        None,
        &with(oci_manifest(), "/layers/0/digest", json!(sha512))
    )
    .is_ok());
    // Docker formats have no subject: it is ignored there, not validated.
    let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONTAINER_CONFIG), "layers": [], "subject": descriptor(OCI_MANIFEST)});
    assert_eq!(
        parse_value(Some(DOCKER_MANIFEST), &docker)
            .unwrap()
            .subject(),
        None
    );
}

#[test]
fn a_layer_that_is_a_manifest_is_a_manifest_reference() {
    use layerstore::manifest::ReferenceTarget;
    let doc = with(oci_manifest(), "/layers/0", descriptor(OCI_INDEX));
    let parsed = parse_value(Some(OCI_MANIFEST), &doc).unwrap();
    let targets: Vec<_> = parsed.references().map(|r| (r.role, r.target)).collect();
    assert_eq!(
        targets,
        [
            (DescriptorIndex::Config, ReferenceTarget::Blob),
            (DescriptorIndex::Layer(0), ReferenceTarget::Manifest),
        ]
    );
}

#[test]
fn keys_that_go_would_fold_onto_a_field_are_refused() {
    let index_field_in_manifest = with(oci_manifest(), "/Manifests", json!([]));
    let long_s = with(oci_manifest(), "/manifeſts", json!([]));
    let shouted = with(oci_manifest(), "/MEDIATYPE", json!(OCI_INDEX));
    let in_descriptor = with(oci_manifest(), "/layers/0/Digest", json!(EMPTY));
    let in_platform = with(
        oci_index(),
        "/manifests/0/platform",
        json!({"architecture": "amd64", "os": "linux", "OS": "windows"}),
    );
    for (doc, key) in [
        (index_field_in_manifest, "Manifests"),
        (long_s, "manifeſts"),
        (shouted, "MEDIATYPE"),
        (in_descriptor, "Digest"),
        (in_platform, "OS"),
    ] {
        match parse_value(None, &doc) {
            Err(ManifestError::CaseVariantKey { key: found, .. }) => assert_eq!(found, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    // Annotation keys are data, not fields: any spelling is fine there.
    let annotated = with(oci_manifest(), "/annotations", json!({"MediaType": "x"}));
    assert!(parse_value(None, &annotated).is_ok());
}

#[test]
fn every_checked_field_name_is_a_real_field() {
    // A wrong-typed value (an array of numbers fits none of them) must be a type error, which
    // shows serde knows the field; a misspelt list entry would be skipped as unknown instead.
    let document = [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "manifests",
        "subject",
        "annotations",
    ];
    for field in document {
        let doc = with(oci_manifest(), &format!("/{field}"), json!([[1]]));
        let err = parse_value(None, &doc).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::InvalidJson {
                    kind: JsonProblem::WrongType,
                    ..
                }
            ),
            "{field}: {err:?}"
        );
    }
    let descriptor_fields = [
        "mediaType",
        "digest",
        "size",
        "urls",
        "annotations",
        "artifactType",
        "platform",
    ];
    for field in descriptor_fields {
        let doc = with(oci_manifest(), &format!("/config/{field}"), json!([[1]]));
        let err = parse_value(None, &doc).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::InvalidJson {
                    kind: JsonProblem::WrongType,
                    ..
                }
            ),
            "config.{field}: {err:?}"
        );
    }
    for field in [
        "architecture",
        "os",
        "os.version",
        "os.features",
        "variant",
        "features",
    ] {
        let platform = with(
            json!({"architecture": "a", "os": "b"}),
            &format!("/{field}"),
            json!([[1]]),
        );
        let doc = with(oci_index(), "/manifests/0/platform", platform);
        let err = parse_value(None, &doc).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::InvalidJson {
                    kind: JsonProblem::WrongType,
                    ..
                }
            ),
            "platform.{field}: {err:?}"
        );
    }
}

#[test]
fn escaped_keys_are_read_and_checked_like_plain_ones() {
    // `\u006d` is `m`: an escaped but exact key is the field itself.
    let body = format!(
        r#"{{"schemaVersion":2,"\u006danifests":[{{"mediaType":"{OCI_MANIFEST}","size":2,"digest":"{EMPTY}"}}]}}"#
    );
    let parsed = Manifest::parse(None, body.as_bytes()).unwrap();
    assert_eq!(parsed.manifests().len(), 1);
    // `\u004d` is `M`: the escaped case variant is refused like the plain one.
    let body = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"a/b","size":2,"digest":"{EMPTY}"}},"\u004danifests":[]}}"#
    );
    assert!(matches!(
        Manifest::parse(None, body.as_bytes()),
        Err(ManifestError::CaseVariantKey { .. })
    ));
}
