//! Replays every committed fuzz seed and crash reproducer (`fuzz/regressions/<target>/*`) through
//! the same entry function the fuzz target calls, so a plain `cargo test` on stable keeps every
//! past finding fixed.

use std::fs;
use std::path::Path;

/// Maps a directory name under `fuzz/regressions/` to its entry function.
fn entry(target: &str) -> Option<fn(&[u8])> {
    use layerstore::fuzzing::*;
    Some(match target {
        "digest_parse" => digest_parse,
        "hash_state_own" => hash_state_own,
        "hash_state_go" => hash_state_go,
        "range_header" => range_header,
        "upload_token" => upload_token,
        "manifest_parse" => manifest_parse,
        "storage_names" => storage_names,
        "storage_link" => storage_link,
        "store_upload_ops" => store_upload_ops,
        "tarsum_stream" => tarsum_stream,
        "tarsum_state" => tarsum_state,
        "tarsum_gzip" => tarsum_gzip,
        "bench_location" => bench_location,
        "bench_proc_text" => bench_proc_text,
        "www_authenticate" => www_authenticate,
        "image_reference" => image_reference,
        "oci_index" => oci_index,
        "authorization_header" => authorization_header,
        "jwt_token" => jwt_token,
        "htpasswd_file" => htpasswd_file,
        "auth_json" => auth_json,
        "oci_layout" => oci_layout,
        "s3_xml" => s3_xml,
        _ => return None,
    })
}

#[test]
fn replay_every_committed_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for dir in fs::read_dir(&root).expect("fuzz/regressions exists") {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let run = entry(&name).unwrap_or_else(|| panic!("no entry function for {name}"));
        for file in fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panics", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 3,
        "expected committed seeds, replayed {replayed}"
    );
}
