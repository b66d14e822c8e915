//! Property tests: parsing never panics on mutated real manifests (byte-level and JSON-level
//! mutations), pagination visits every item exactly once, referrers tags are valid tags.

use std::fs;
use std::path::PathBuf;

use layerstore::fuzzing::manifest_parse;
use layerstore::manifest::{
    catalog_order, paginate, paginate_by, referrers_tag, Manifest, ManifestError,
};
use layerstore::Digest;
use proptest::prelude::*;
use serde_json::Value;

const FIXTURES: [&str; 8] = [
    "docker-schema2.json",
    "docker-manifest-list.json",
    "docker-foreign-layer.json",
    "oci-manifest.json",
    "oci-index.json",
    "oci-artifact-with-subject.json",
    "oci-index-with-subject.json",
    "docker-schema1-signed.json",
];

fn fixture(i: usize) -> Vec<u8> {
    let name = FIXTURES[i % FIXTURES.len()];
    fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/manifests")
            .join(name),
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"{}[]\",:0-9ez \\".to_vec())
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        any::<usize>().prop_map(ByteEdit::Delete),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let len = bytes.len().max(1);
    match *edit {
        ByteEdit::Flip(i, b) if !bytes.is_empty() => bytes[i % len] ^= b,
        ByteEdit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        ByteEdit::Delete(i) if !bytes.is_empty() => {
            bytes.remove(i % len);
        }
        ByteEdit::Truncate(i) => bytes.truncate(i % len),
        _ => {}
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z/+.:0-9]{0,80}".prop_map(Value::from),
        Just(Value::from(
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        )),
        Just(Value::from("application/vnd.oci.image.manifest.v1+json")),
        Just(Value::from("application/vnd.oci.image.index.v1+json")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `pick`-th node (pre-order) of `doc` with `value`.
fn replace_node(doc: &mut Value, pick: &mut usize, value: &Value) -> bool {
    if *pick == 0 {
        *doc = value.clone();
        return true;
    }
    *pick -= 1;
    match doc {
        Value::Array(items) => items.iter_mut().any(|v| replace_node(v, pick, value)),
        Value::Object(map) => map.values_mut().any(|v| replace_node(v, pick, value)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn byte_mutations_never_panic(
        which in 0usize..8, selector in any::<u8>(), edits in prop::collection::vec(byte_edit(), 1..8),
    ) {
        let mut bytes = fixture(which);
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        let mut input = vec![selector];
        input.extend_from_slice(&bytes);
        manifest_parse(&input);
    }

    #[test]
    fn json_mutations_never_panic_and_keep_invariants(
        which in 0usize..8, selector in any::<u8>(), pick in 0usize..64, value in json_value(),
        key in "[a-zA-Z]{1,12}",
    ) {
        let mut doc: Value = serde_json::from_slice(&fixture(which)).unwrap();
        let mut remaining = pick;
        if !replace_node(&mut doc, &mut remaining, &value) {
            if let Value::Object(map) = &mut doc {
                map.insert(key, value);
            }
        }
        let mut input = vec![selector];
        input.extend_from_slice(&serde_json::to_vec(&doc).unwrap());
        manifest_parse(&input);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        manifest_parse(&data);
    }

    #[test]
    fn oversized_input_is_refused_before_parsing(extra in 1usize..4096) {
        let big = vec![b'{'; layerstore::manifest::MAX_MANIFEST_SIZE + extra];
        let refused = matches!(Manifest::parse(None, &big), Err(ManifestError::TooLarge { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn pages_cover_every_item_once(
        items in prop::collection::btree_set("[a-z0-9._/-]{1,8}", 0..40), n in 1usize..10,
    ) {
        let sorted: Vec<String> = items.into_iter().collect();
        let mut seen = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = paginate(sorted.iter(), Some(n), last.as_deref());
            prop_assert!(page.items.len() <= n);
            seen.extend(page.items.iter().map(|s| s.to_string()));
            match page.next {
                Some(next) => { prop_assert_eq!(page.items.len(), n); last = Some(next) }
                None => break,
            }
        }
        prop_assert_eq!(seen, sorted);
    }

    #[test]
    fn catalog_pages_cover_every_item_once(
        items in prop::collection::btree_set("[a-z0-9._/-]{1,8}", 0..40), n in 1usize..10,
    ) {
        let mut sorted: Vec<String> = items.into_iter().collect();
        sorted.sort_by(|a, b| catalog_order(a, b));
        let mut seen = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = paginate_by(sorted.iter(), Some(n), last.as_deref(), catalog_order);
            seen.extend(page.items.iter().map(|s| s.to_string()));
            match page.next {
                Some(next) => last = Some(next),
                None => break,
            }
        }
        prop_assert_eq!(seen, sorted);
    }

    #[test]
    fn catalog_order_is_a_total_order_matching_equality(a in "[a-z/.-]{0,6}", b in "[a-z/.-]{0,6}") {
        prop_assert_eq!(catalog_order(&a, &b), catalog_order(&b, &a).reverse());
        prop_assert_eq!(catalog_order(&a, &b).is_eq(), a == b);
    }

    #[test]
    fn referrers_tags_are_valid_tags(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let tag = referrers_tag(&Digest::sha256(&data));
        prop_assert_eq!(tag.len(), 71);
        prop_assert!(tag.starts_with("sha256-"));
        prop_assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    }
}
