//! Fuzz entries for the registry client's parsers: `WWW-Authenticate`, image references, the
//! auth files docker and podman share, and OCI image layouts.

use crate::digest::Digest;

/// The client's `WWW-Authenticate` parser: never panics; schemes and parameter names come
/// back lowercase.
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(challenges) = crate::client::challenge::parse_challenges(&text) {
        assert!(!challenges.is_empty());
        for challenge in challenges {
            assert_eq!(challenge.scheme, challenge.scheme.to_ascii_lowercase());
            assert!(challenge
                .params
                .keys()
                .all(|k| *k == k.to_ascii_lowercase()));
        }
    }
}

/// Image references (`HOST/REPO[:TAG][@DIGEST]`): never panics, and a parsed reference prints
/// as text that parses back to itself.
pub fn image_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = crate::client::reference::Reference::parse(text) {
        let printed = reference.to_string();
        let again = crate::client::reference::Reference::parse(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
        assert_eq!(again, reference, "{printed:?}");
    }
}

/// An OCI layout's `index.json`: never panics, and what is written back reads as the same
/// entries.
pub fn oci_index(data: &[u8]) {
    if let Ok((entries, written)) = crate::client::layout::index_entries(data) {
        let (again, _) = crate::client::layout::index_entries(&written)
            .unwrap_or_else(|e| panic!("a rewritten index.json does not read back: {e}"));
        assert_eq!(again, entries);
    }
}

/// The docker `config.json` / containers `auth.json` reader and `login`'s writer. Input: the
/// host, the user name and the password, one line each, then the file. Never panics; and when
/// login accepts the file, what the written file says about the host is the new credential
/// (or the same `credHelpers` helper, which wins over `auths` before and after), and what it
/// says about every other host is what the old file said, and the same login again writes the
/// same bytes. Login refuses only a file lookups cannot read, a top level that is not an
/// object, or a user name with `:`.
pub fn auth_json(data: &[u8]) {
    use crate::client::credentials::{login_document, normalize_host, parse_auth_file};
    use crate::client::credentials::{Credential, FileAnswer};

    let mut parts = data.splitn(4, |b| *b == b'\n');
    let mut line = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (host, username, password) = (line(), line(), line());
    let file = parts.next().unwrap_or_default();
    let old = parse_auth_file(file);
    let answer = |parsed: &Result<Option<_>, String>, host: &str| match parsed {
        Ok(Some(file)) => crate::client::credentials::AuthFile::answer(file, host),
        Ok(None) => Ok(FileAnswer::Nothing),
        Err(e) => Err(e.clone()),
    };
    let others = hosts_named_in(file);
    let before: Vec<_> = others.iter().map(|h| answer(&old, h)).collect();
    let written = match login_document(Some(file), &host, &username, &password) {
        Ok(written) => written,
        Err(_) => {
            let object =
                serde_json::from_slice::<serde_json::Value>(file).is_ok_and(|v| v.is_object());
            let blank = file.iter().all(u8::is_ascii_whitespace);
            assert!(
                old.is_err() || username.contains(':') || !(object || blank),
                "login refused a readable auth file"
            );
            return;
        }
    };
    assert!(old.is_ok(), "login accepted a file lookups cannot read");
    let new = parse_auth_file(&written);
    assert!(matches!(new, Ok(Some(_))), "a written file reads back");
    let again = login_document(Some(&written), &host, &username, &password);
    assert_eq!(
        again.as_ref(),
        Ok(&written),
        "the same login again changes nothing"
    );
    let expected = match answer(&old, &host) {
        Ok(FileAnswer::Helper(helper)) => FileAnswer::Helper(helper),
        _ => FileAnswer::Credential(Credential::Basic { username, password }),
    };
    assert_eq!(answer(&new, &host), Ok(expected));
    let login_host = normalize_host(&host);
    for (other, before) in others.iter().zip(before) {
        if normalize_host(other) != login_host {
            assert_eq!(answer(&new, other), before, "{other:?} changed");
        }
    }
}

/// The hosts an auth file's `auths` and `credHelpers` name, and two usual ones.
fn hosts_named_in(file: &[u8]) -> Vec<String> {
    let mut hosts = vec!["docker.io".to_owned(), "localhost:5000".to_owned()];
    if let Ok(serde_json::Value::Object(root)) = serde_json::from_slice(file) {
        for section in ["auths", "credHelpers"] {
            if let Some(serde_json::Value::Object(keys)) = root.get(section) {
                hosts.extend(keys.keys().cloned());
            }
        }
    }
    hosts
}

/// An OCI layout without its blobs. Input: `oci-layout`, NUL, `index.json`, and optionally NUL
/// and a tag. Never panics; an accepted `oci-layout` is an object with a `1.x` version; every
/// entry's blob path is `blobs/<algorithm>/<hex>` inside the layout; looking up the tag (or the
/// only image) finds exactly what the entries say; adding a manifest keeps every other entry
/// and every tag it does not take over, and the index written reads back and writes the same
/// bytes again.
pub fn oci_layout(data: &[u8]) {
    use crate::client::layout::{blob_path, is_layout_marker, parse_index};

    let mut parts = data.splitn(3, |b| *b == 0);
    let marker = parts.next().unwrap_or_default();
    let index = parts.next().unwrap_or_default();
    let tag = parts
        .next()
        .map(|t| String::from_utf8_lossy(t).into_owned());
    if is_layout_marker(marker) {
        let value: serde_json::Value = serde_json::from_slice(marker).expect("accepted: JSON");
        let version = value["imageLayoutVersion"].as_str().unwrap_or_default();
        assert!(version.starts_with("1."), "{version:?} accepted");
    }
    let Ok(mut file) = parse_index(index) else {
        return;
    };
    let root = std::path::Path::new("/layout");
    for entry in &file.manifests {
        let path = blob_path(root, &entry.digest);
        let inside = path
            .strip_prefix(root.join("blobs"))
            .expect("inside blobs/");
        let names: Vec<_> = inside.components().collect();
        assert_eq!(names.len(), 2, "{path:?}");
        assert!(names
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_))));
    }
    check_selection(&file.manifests, tag.as_deref());
    let before = file.manifests.clone();
    // An existing digest now and then: adding what is already there must keep its tags.
    let digest = before
        .get(index.len() % (before.len() + 1))
        .map_or_else(|| Digest::sha256(index), |e| e.digest.clone());
    let media_type = crate::manifest::media_type::OCI_MANIFEST;
    let changed = file.add_manifest(media_type, &digest, 7, tag.as_deref());
    let written = file.to_bytes();
    let reread = parse_index(&written).expect("a written index.json reads back");
    assert_eq!(reread.manifests, file.manifests);
    assert_eq!(reread.to_bytes(), written, "rewriting changes nothing");
    check_addition(&before, &reread.manifests, &digest, tag.as_deref(), changed);
}

/// `select_entry` finds the first entry with the tag, or, without one, the only entry.
fn check_selection(entries: &[crate::client::layout::IndexEntry], tag: Option<&str>) {
    let found = crate::client::layout::select_entry(entries.to_vec(), tag);
    match tag {
        Some(tag) => {
            let first = entries.iter().find(|e| e.tag() == Some(tag));
            assert_eq!(found.ok().as_ref(), first);
        }
        None => assert_eq!(found.is_ok(), entries.len() == 1),
    }
}

/// What adding `digest` (as `tag`, or untagged) may do to the entries.
fn check_addition(
    before: &[crate::client::layout::IndexEntry],
    after: &[crate::client::layout::IndexEntry],
    digest: &Digest,
    tag: Option<&str>,
    changed: bool,
) {
    match tag {
        Some(tag) => {
            let (last, kept) = after.split_last().expect("the added entry");
            assert!(changed && last.digest == *digest && last.tag() == Some(tag));
            assert!(kept.iter().all(|e| e.tag() != Some(tag)));
            let others: Vec<_> = before.iter().filter(|e| e.tag() != Some(tag)).collect();
            assert_eq!(kept.iter().collect::<Vec<_>>(), others);
        }
        None if before.iter().any(|e| e.digest == *digest) => {
            assert!(!changed);
            assert_eq!(
                after, before,
                "adding a listed digest untagged changes nothing"
            );
        }
        None => {
            assert!(changed);
            assert_eq!(&after[..before.len()], before);
            assert_eq!(after.len(), before.len() + 1);
        }
    }
}

#[cfg(test)]
mod client_parser_tests {
    use proptest::prelude::*;

    /// Hosts as auth files and logins write them, Docker Hub's aliases among them.
    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("docker.io".to_owned()),
            Just("https://index.docker.io/v1/".to_owned()),
            Just("reg.example:5000".to_owned()),
            Just("http://reg.example:5000/v2/".to_owned()),
            "[a-z.:/]{0,12}",
        ]
    }

    /// An `auths` entry: valid, broken or empty.
    fn entry() -> impl Strategy<Value = serde_json::Value> {
        use base64::Engine as _;
        let encode = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
        prop_oneof![
            "[a-z:]{0,6}".prop_map(move |up| serde_json::json!({ "auth": encode(up) })),
            Just(serde_json::json!({"auth": "%%%"})),
            Just(serde_json::json!({"identitytoken": "refresh"})),
            Just(serde_json::json!({"username": "u", "password": "p"})),
            Just(serde_json::json!({})),
        ]
    }

    /// `HOST\nUSER\nPASSWORD\nFILE` for `auth_json`.
    fn login() -> impl Strategy<Value = String> {
        let auths = proptest::collection::btree_map(host(), entry(), 0..4);
        let helpers = proptest::collection::btree_map(host(), "[a-z]{1,4}", 0..2);
        let store = proptest::option::of("[a-z]{1,4}");
        (host(), "[a-z:]{0,4}", "[ -~]{0,6}", auths, helpers, store).prop_map(
            |(host, user, password, auths, helpers, store)| {
                let mut file = serde_json::json!({ "auths": auths, "credHelpers": helpers });
                if let Some(store) = store {
                    file["credsStore"] = store.into();
                }
                format!("{host}\n{user}\n{password}\n{file}")
            },
        )
    }

    /// `oci-layout`, NUL, `index.json` with entries of three digests and three tags, NUL, a
    /// tag (or none) for `oci_layout`.
    fn layout() -> impl Strategy<Value = Vec<u8>> {
        let entry = (0usize..3, proptest::option::of(0usize..3)).prop_map(|(d, tag)| {
            let digest = format!("sha256:{}", ["a", "b", "c"][d].repeat(64));
            let mut entry = serde_json::json!({"mediaType": "m", "digest": digest, "size": d});
            if let Some(tag) = tag {
                let tag = ["v1", "v2", "latest"][tag];
                entry["annotations"] = serde_json::json!({ crate::client::layout::REF_NAME: tag });
            }
            entry
        });
        let entries = proptest::collection::vec(entry, 0..5);
        let tag = proptest::option::of(prop_oneof![Just("v1"), Just("v2"), Just("latest")]);
        (entries, tag).prop_map(|(entries, tag)| {
            let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
            let mut input = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
            input.push(0);
            input.extend(index.to_string().into_bytes());
            if let Some(tag) = tag {
                input.push(0);
                input.extend(tag.as_bytes());
            }
            input
        })
    }

    proptest! {
        /// A stable-toolchain stand-in for the fuzz targets: shaped random input through the
        /// same entry functions.
        #[test]
        fn client_parsers_keep_their_promises(
            reference in "[a-zA-Z0-9.:/@_-]{0,60}",
            challenge in r#"[a-zA-Z0-9 =,"\\:/._-]{0,80}"#,
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            login in login(),
            layout in layout(),
        ) {
            super::image_reference(reference.as_bytes());
            super::www_authenticate(challenge.as_bytes());
            super::oci_index(&bytes);
            super::auth_json(login.as_bytes());
            super::oci_layout(&layout);
        }
    }
}
