//! The registry client against a real layerstore server on 127.0.0.1: every API call, resumed
//! pushes and downloads, verified reads catching corruption, random access, single flight.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{content, TestServer};
use layerstore::client::{ClientError, ClientOptions, PushOptions, PushOutcome, Registry};
use layerstore::digest::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

fn client(server: &TestServer) -> Registry {
    Registry::new(&server.addr.to_string(), ClientOptions::plain_http()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The relative path of a blob's data in the store.
fn blob_data(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("blobs/sha256/{}/{hex}/data", &hex[..2])
}

/// Blob GETs answered 200 so far, from the server's own request counter.
fn blob_gets(server: &TestServer) -> u64 {
    let text = server
        .store
        .metrics()
        .expect("the test server counts requests")
        .encode();
    let sample = r#"layerstore_http_requests_total{method="GET",route="blob",status="200"} "#;
    text.lines()
        .find_map(|line| line.strip_prefix(sample))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn blobs_round_trip_monolithic_and_chunked() {
    let server = TestServer::start();
    let registry = client(&server);
    runtime().block_on(async {
        registry.ping().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = content(3 << 20, 7);
        let file = dir.path().join("layer");
        std::fs::write(&file, &data).unwrap();
        let digest = Digest::sha256(&data);
        let held = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&held);
        let options = PushOptions {
            chunk_size: Some(1 << 20),
            progress: Some(Arc::new(move |n| seen.store(n, Ordering::SeqCst))),
            ..PushOptions::default()
        };
        let outcome = registry
            .push_blob_file("a/b", &digest, data.len() as u64, &file, &options)
            .await
            .unwrap();
        assert_eq!(outcome, PushOutcome::Uploaded { resumed_from: 0 });
        assert_eq!(held.load(Ordering::SeqCst), data.len() as u64);
        let again = registry
            .push_blob_file(
                "a/b",
                &digest,
                data.len() as u64,
                &file,
                &PushOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(again, PushOutcome::Exists);
        assert_eq!(
            registry.blob_size("a/b", &digest).await.unwrap(),
            Some(data.len() as u64)
        );

        let mut stream = registry.get_blob("a/b", &digest).await.unwrap();
        let mut read = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.unwrap() {
            read.extend_from_slice(&chunk);
        }
        assert_eq!(read, data);

        let mounted = registry.mount_blob("c/d", &digest, "a/b").await.unwrap();
        assert!(mounted);
        let missing: Digest = Digest::sha256(b"nothing");
        assert!(!registry.mount_blob("c/d", &missing, "a/b").await.unwrap());
        assert_eq!(registry.blob_size("c/d", &missing).await.unwrap(), None);
    });
}

#[test]
fn an_interrupted_push_resumes_from_the_registry_offset() {
    let server = TestServer::start();
    let registry = client(&server);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 << 20, 3);
    let file = dir.path().join("layer");
    std::fs::write(&file, &data[..]).unwrap();
    let digest = Digest::sha256(&data);
    // An earlier process opened a session, sent the first MiB, kept the session's URL, died.
    let (location, _) = rt.block_on(registry.start_upload("r")).unwrap();
    let path = location
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap();
    let reply = server.request(
        "PATCH",
        &path,
        &[
            ("content-range", "0-1048575"),
            ("content-type", "application/octet-stream"),
        ],
        &data[..1 << 20],
    );
    assert_eq!(
        reply.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let saved = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&saved);
    let resume = PushOptions {
        chunk_size: Some(1 << 20),
        resume_location: Some(location),
        on_session: Some(Arc::new(move |l| sink.lock().push(l.to_owned()))),
        ..PushOptions::default()
    };
    let outcome = rt
        .block_on(registry.push_blob_file("r", &digest, data.len() as u64, &file, &resume))
        .unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Uploaded {
            resumed_from: 1 << 20
        }
    );
    assert!(
        saved.lock().len() >= 2,
        "the session URL is reported after each chunk"
    );
    let stored = rt
        .block_on(registry.get_blob_bytes("r", &digest, 4 << 20))
        .unwrap();
    assert_eq!(stored, data);
}

#[test]
fn corrupt_blobs_fail_loudly() {
    let server = TestServer::start();
    let registry = client(&server);
    runtime().block_on(async {
        let data = content(1 << 20, 9);
        let digest = registry
            .push_blob_bytes("r", data.clone().into())
            .await
            .unwrap();
        let mut bad = data.clone();
        bad[1000] ^= 1;
        server.write_stored(&blob_data(&digest), &bad);

        let mut stream = registry.get_blob("r", &digest).await.unwrap();
        let error = loop {
            match stream.next_chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a corrupt blob read as good"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(error, ClientError::DigestMismatch { .. }),
            "{error}"
        );
        let error = registry
            .get_blob_bytes("r", &digest, 2 << 20)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::DigestMismatch { .. }),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        let error = registry
            .download_blob("r", &digest, &target, &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::DigestMismatch { .. }),
            "{error}"
        );
        assert!(
            !target.exists(),
            "a corrupt download never appears at its path"
        );
    });
}

#[test]
fn downloads_resume_from_their_saved_state() {
    let server = TestServer::start();
    let registry = client(&server);
    runtime().block_on(async {
        let data = content(20 << 20, 5);
        let digest = registry
            .push_blob_bytes("r", data.clone().into())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        // A download that stopped after 12 MiB, with its state checkpointed at 8 MiB.
        let mut hasher = layerstore::hash::Hasher::new(layerstore::digest::HashAlgorithm::Sha256);
        hasher.update(&data[..8 << 20]);
        std::fs::write(dir.path().join("blob.partial"), &data[..12 << 20]).unwrap();
        std::fs::write(dir.path().join("blob.partial.state"), hasher.encode()).unwrap();
        let first_report = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Arc::clone(&first_report);
        let size = registry
            .download_blob("r", &digest, &target, &move |n| {
                let _ = seen.compare_exchange(u64::MAX, n, Ordering::SeqCst, Ordering::SeqCst);
            })
            .await
            .unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(
            first_report.load(Ordering::SeqCst),
            8 << 20,
            "resumed at the saved state"
        );
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert!(!dir.path().join("blob.partial").exists());
        assert!(!dir.path().join("blob.partial.state").exists());
    });
}

#[test]
fn blob_readers_seek_and_read_ranges() {
    let server = TestServer::start();
    let registry = client(&server);
    let rt = runtime();
    let data = content(5 << 20, 11);
    let (digest, mut reader) = rt.block_on(async {
        let digest = registry
            .push_blob_bytes("r", data.clone().into())
            .await
            .unwrap();
        let mut reader = registry.blob_reader("r", &digest).await.unwrap();
        assert_eq!(reader.size(), data.len() as u64);
        reader.seek(SeekFrom::Start(3 << 20)).await.unwrap();
        let mut buf = vec![0u8; 4096];
        reader.read_exact(&mut buf).await.unwrap();
        assert!(buf == data[3 << 20..(3 << 20) + 4096]);
        reader.seek(SeekFrom::End(-10)).await.unwrap();
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail.len(), 10, "the tail read from {}", reader.size());
        assert!(tail == data[data.len() - 10..]);
        let reader = registry.blob_reader("r", &digest).await.unwrap();
        (digest, reader)
    });
    let _ = &mut reader;
    let mut blocking = reader.blocking(rt.handle().clone());
    blocking.seek(SeekFrom::Start(1234567)).unwrap();
    let mut buf = vec![0u8; 100];
    blocking.read_exact(&mut buf).unwrap();
    assert!(buf == data[1234567..1234667]);
    let _ = digest;
}

#[test]
fn manifests_tags_catalog_and_deletes() {
    let server = TestServer::start();
    let registry = client(&server);
    runtime().block_on(async {
        let config = registry.push_blob_bytes("m/r", "{}".into()).await.unwrap();
        let layer = registry.push_blob_bytes("m/r", content(1000, 1).into()).await.unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 1000}],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let media_type = "application/vnd.oci.image.manifest.v1+json";
        for tag in ["a", "b", "c", "d", "e"] {
            registry.put_manifest("m/r", tag, media_type, bytes.clone().into()).await.unwrap();
        }
        let got = registry.get_manifest("m/r", "c", &[]).await.unwrap();
        assert_eq!(got.media_type, media_type);
        assert_eq!(got.bytes, bytes);
        assert_eq!(got.digest, Digest::sha256(&bytes));
        let by_digest = registry.get_manifest("m/r", &got.digest.to_string(), &[]).await.unwrap();
        assert_eq!(by_digest.bytes, bytes);
        let (head_digest, _, size) = registry.head_manifest("m/r", "a").await.unwrap().unwrap();
        assert_eq!((head_digest, size), (got.digest.clone(), bytes.len() as u64));
        assert_eq!(registry.head_manifest("m/r", "nope").await.unwrap(), None);

        assert_eq!(registry.tags("m/r", Some(2)).await.unwrap(), ["a", "b", "c", "d", "e"]);
        registry.push_blob_bytes("other", "x".into()).await.unwrap();
        let catalog = registry.catalog(Some(1)).await.unwrap();
        assert!(catalog.contains(&"m/r".to_owned()), "{catalog:?}");
        let referrers = registry.referrers("m/r", &got.digest, None).await.unwrap();
        assert_eq!(referrers["manifests"].as_array().unwrap().len(), 0);

        registry.delete_manifest("m/r", &got.digest.to_string()).await.unwrap();
        let error = registry.get_manifest("m/r", "a", &[]).await.unwrap_err();
        assert_eq!(error.status(), Some(hyper::StatusCode::NOT_FOUND), "{error}");
        assert!(error.to_string().contains("MANIFEST_UNKNOWN"), "{error}");
        registry.delete_blob("m/r", &layer).await.unwrap();
        assert_eq!(registry.blob_size("m/r", &layer).await.unwrap(), None);
    });
}

#[test]
fn sixteen_concurrent_downloads_of_one_blob_share_one_get() {
    let server = TestServer::start();
    let registry = client(&server);
    runtime().block_on(async {
        let data = content(4 << 20, 2);
        let digest = registry
            .push_blob_bytes("r", data.clone().into())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (registry, digest, target) = (registry.clone(), digest.clone(), target.clone());
            tasks.push(tokio::spawn(async move {
                registry.download_blob("r", &digest, &target, &|_| {}).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), data.len() as u64);
        }
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert_eq!(blob_gets(&server), 1, "sixteen downloads, one GET");
    });
}
