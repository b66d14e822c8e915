//! Tests of [`super`]: URL forms, settings, and the HTTP secret kept in the storage.
use super::*;
use crate::storage::{DriverPath, InMemoryDriver};

fn s3(bucket: &str, prefix: &str) -> StorageLocation {
    StorageLocation::S3 {
        bucket: bucket.into(),
        prefix: prefix.into(),
    }
}

fn dir(path: &str) -> StorageLocation {
    StorageLocation::Filesystem(PathBuf::from(path))
}

#[test]
fn accepted_forms() {
    let cases = [
        ("s3://registry", s3("registry", "")),
        ("s3://registry/", s3("registry", "")),
        ("s3://registry/prod", s3("registry", "prod")),
        ("s3://registry/prod/eu/", s3("registry", "prod/eu")),
        ("S3://registry/A_b.c-d", s3("registry", "A_b.c-d")),
        ("s3://a.b-c.d1/x", s3("a.b-c.d1", "x")),
        ("s3://abc", s3("abc", "")),
        (&format!("s3://{}", "a".repeat(63)), s3(&"a".repeat(63), "")),
        (
            "s3://b12/docker/registry/v2",
            s3("b12", "docker/registry/v2"),
        ),
        ("file:///srv/registry", dir("/srv/registry")),
        ("file:///srv/my registry", dir("/srv/my registry")),
        ("FILE:///srv", dir("/srv")),
        ("file://localhost/srv", dir("/srv")),
        ("file:/srv", dir("/srv")),
        ("file:///", dir("/")),
        ("/srv/registry", dir("/srv/registry")),
        ("data/registry", dir("data/registry")),
        (".", dir(".")),
        ("./a:b", dir("./a:b")),
        ("/srv/100%?#", dir("/srv/100%?#")),
        ("1abc:x", dir("1abc:x")),
        ("s3", dir("s3")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            StorageLocation::parse(text).as_ref(),
            Ok(&expected),
            "{text}"
        );
    }
}

#[test]
fn refused_forms() {
    use LocationError::*;
    type Check = Box<dyn Fn(&LocationError) -> bool>;
    fn bucket(name: &'static str) -> Check {
        Box::new(move |e| matches!(e, InvalidBucket { name: n, .. } if n == name))
    }
    let long_bucket = format!("s3://{}", "a".repeat(64));
    let long_prefix = format!("s3://bucket/{}", "p".repeat(257));
    let cases: Vec<(&str, Check)> = vec![
        ("", Box::new(|e| *e == Empty)),
        ("s3://", Box::new(|e| *e == EmptyBucket)),
        ("s3:///prefix", Box::new(|e| *e == EmptyBucket)),
        ("s3:bucket", Box::new(|e| matches!(e, NotS3Url(_)))),
        ("s3:/bucket", Box::new(|e| matches!(e, NotS3Url(_)))),
        (
            "gs://bucket",
            Box::new(|e| *e == UnknownScheme("gs".into())),
        ),
        (
            "http://127.0.0.1:9000/b",
            Box::new(|e| matches!(e, UnknownScheme(_))),
        ),
        ("C:/data", Box::new(|e| matches!(e, UnknownScheme(_)))),
        ("s3://ab", bucket("ab")),
        (
            &long_bucket,
            Box::new(|e| matches!(e, InvalidBucket { .. })),
        ),
        ("s3://Bucket", bucket("Bucket")),
        ("s3://my_bucket", bucket("my_bucket")),
        ("s3://-bucket", bucket("-bucket")),
        ("s3://bucket-", bucket("bucket-")),
        ("s3://.bucket", bucket(".bucket")),
        ("s3://buc..ket", bucket("buc..ket")),
        ("s3://192.168.5.4", bucket("192.168.5.4")),
        ("s3://xn--bucket", bucket("xn--bucket")),
        ("s3://sthree-bucket", bucket("sthree-bucket")),
        ("s3://bucket-s3alias", bucket("bucket-s3alias")),
        ("s3://bucket--ol-s3", bucket("bucket--ol-s3")),
        ("s3://bucket.mrap", bucket("bucket.mrap")),
        ("s3://bück", bucket("bück")),
        (
            "s3://key:secret@bucket/p",
            Box::new(|e| *e == CredentialsInUrl),
        ),
        ("s3://key@bucket", Box::new(|e| *e == CredentialsInUrl)),
        (
            "s3://minio:9000/bucket",
            Box::new(|e| *e == EndpointInUrl("minio:9000".into())),
        ),
        (
            "s3://bucket//a",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/a//b",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/a/../b",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/./b",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/a b",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/a\\b",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            "s3://bucket/a\nb",
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        (
            &long_prefix,
            Box::new(|e| matches!(e, InvalidPrefix { .. })),
        ),
        ("s3://bucket/a%20b", Box::new(|e| matches!(e, Reserved(_)))),
        (
            "s3://bucket?region=x",
            Box::new(|e| matches!(e, Reserved(_))),
        ),
        ("s3://bucket#x", Box::new(|e| matches!(e, Reserved(_)))),
        (
            "file://relative",
            Box::new(|e| matches!(e, InvalidFileUrl { .. })),
        ),
        (
            "file://relative/dir",
            Box::new(|e| matches!(e, InvalidFileUrl { .. })),
        ),
        (
            "file://host/srv",
            Box::new(|e| matches!(e, InvalidFileUrl { .. })),
        ),
        ("file://", Box::new(|e| matches!(e, InvalidFileUrl { .. }))),
        ("file:", Box::new(|e| matches!(e, InvalidFileUrl { .. }))),
        (
            "file:relative",
            Box::new(|e| matches!(e, InvalidFileUrl { .. })),
        ),
        ("file:///a%20b", Box::new(|e| matches!(e, Reserved(_)))),
        ("file:///a?b", Box::new(|e| matches!(e, Reserved(_)))),
    ];
    for (text, expected) in cases {
        let err = StorageLocation::parse(text).expect_err(text);
        assert!(expected(&err), "{text}: {err:?}");
        let message = err.to_string();
        assert!(!message.contains('\n'), "{text}: {message}");
    }
}

#[test]
fn messages_are_clear_and_bounded() {
    let message = |s: &str| StorageLocation::parse(s).unwrap_err().to_string();
    // Credentials are never repeated.
    let m = message("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket");
    assert!(
        !m.contains("AKIAEXAMPLE") && !m.contains("wJalrXUtnFEMI"),
        "{m}"
    );
    assert!(m.contains("AWS_ACCESS_KEY_ID"), "{m}");
    let m = message("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket?x#y%");
    assert!(!m.contains("wJalrXUtnFEMI"), "{m}");
    assert!(message("s3://minio:9000/b").contains("AWS_ENDPOINT_URL"));
    assert!(message("file://data").contains("plain path: data"));
    assert_eq!(
        message("s3://ab"),
        "invalid S3 bucket name \"ab\": bucket names are 3 to 63 characters long"
    );
    let long = format!("s3://{}", "B".repeat(10_000));
    assert!(message(&long).len() < 200);
    let long = format!("zz{}://x", "z".repeat(10_000));
    assert!(message(&long).len() < 300);
}

#[test]
fn display_round_trips() {
    let cases = [
        s3("registry", ""),
        s3("registry", "prod/eu"),
        dir("/srv/registry"),
        dir("/srv/my registry"),
        dir("/"),
        dir("data/registry"),
        dir("."),
        dir("/srv/100%"),
        dir("/srv/a?b#c"),
        dir("./a:b"),
    ];
    for location in cases {
        let shown = location.to_string();
        assert_eq!(StorageLocation::parse(&shown), Ok(location), "{shown}");
    }
    assert_eq!(dir("/srv").to_string(), "file:///srv");
    assert_eq!(s3("b12", "").to_string(), "s3://b12");
    assert_eq!(
        StorageLocation::parse("S3://b12/p/").unwrap().to_string(),
        "s3://b12/p"
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_and_display_reparses(s in "\\PC{0,80}") {
        if let Ok(location) = StorageLocation::parse(&s) {
            let shown = location.to_string();
            let again = StorageLocation::parse(&shown);
            proptest::prop_assert!(again.is_ok(), "{s:?} -> {shown:?}");
            // Same location (paths compare by components: "./x" shows as "./x").
            let again = again.unwrap();
            match (&location, &again) {
                (StorageLocation::Filesystem(a), StorageLocation::Filesystem(b)) => {
                    proptest::prop_assert_eq!(
                        a.components().filter(|c| *c != std::path::Component::CurDir).collect::<Vec<_>>(),
                        b.components().filter(|c| *c != std::path::Component::CurDir).collect::<Vec<_>>()
                    );
                }
                _ => proptest::prop_assert_eq!(&location, &again),
            }
        }
    }

    #[test]
    fn s3_urls_parse(bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", prefix in "([a-zA-Z0-9_.-]{1,8}/){0,3}") {
        let prefix = prefix.trim_end_matches('/');
        proptest::prop_assume!(!prefix.split('/').any(|c| c == "." || c == ".."));
        let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        let location = StorageLocation::parse(&url).unwrap();
        proptest::prop_assert_eq!(location.to_string(), url);
    }
}

#[test]
fn settings_fill_the_config() {
    let settings = S3Settings {
        region: Some("garage".into()),
        endpoint: Some("http://127.0.0.1:3900".into()),
        access_key_id: Some("GK1".into()),
        secret_access_key: Some("shh".into()),
        session_token: Some("sess10n".into()),
        part_size: Some(8 << 20),
        redirect: Some(true),
    };
    let config = settings.to_config("registry", "prod/");
    assert_eq!(config.bucket, "registry");
    assert_eq!(config.prefix, "prod");
    assert_eq!(config.region.as_deref(), Some("garage"));
    assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    assert_eq!(config.access_key_id.as_deref(), Some("GK1"));
    assert_eq!(config.secret_access_key.as_deref(), Some("shh"));
    assert_eq!(config.session_token.as_deref(), Some("sess10n"));
    assert_eq!(config.part_size, 8 << 20);
    assert!(config.redirect);
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("shh") && !shown.contains("sess10n"),
        "{shown}"
    );
    assert_eq!(
        S3Settings::default().to_config("b12", ""),
        S3Config::new("b12", "")
    );
}

#[test]
fn filesystem_location_opens_a_filesystem_driver() {
    let dir = tempfile::tempdir().unwrap();
    let location = StorageLocation::Filesystem(dir.path().join("root"));
    let driver = location.open(S3Settings::default()).unwrap();
    assert_eq!(driver.name(), "filesystem");
    // Nothing is created until something is written.
    assert!(!dir.path().join("root").exists());
}

#[test]
fn secret_is_kept_in_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FilesystemDriver::new(dir.path());
    let first = http_secret(None, &storage).unwrap();
    assert_eq!(first.source(), SecretSource::Created);
    assert_eq!(first.as_bytes().len(), 64);
    assert!(first.as_bytes().iter().all(u8::is_ascii_hexdigit));
    let file = dir.path().join("layerstore/http-secret");
    assert_eq!(std::fs::read(&file).unwrap(), first.as_bytes());
    // A second instance (a second driver on the same root) gets the same one.
    let other = FilesystemDriver::new(dir.path());
    let second = http_secret(None, &other).unwrap();
    assert_eq!(second.source(), SecretSource::Stored);
    assert_eq!(second.as_bytes(), first.as_bytes());
    // A configured one wins and leaves the stored one alone.
    let configured = http_secret(Some("from the config"), &other).unwrap();
    assert_eq!(configured.source(), SecretSource::Configured);
    assert_eq!(configured.as_bytes(), b"from the config");
    assert_eq!(std::fs::read(&file).unwrap(), first.as_bytes());
    assert!(!format!("{configured:?}").contains("from the config"));
    // Written by hand, with a newline: used as it is, without the newline.
    std::fs::write(&file, "operator's secret\n").unwrap();
    let by_hand = http_secret(None, &storage).unwrap();
    assert_eq!(by_hand.as_bytes(), b"operator's secret");
    // An empty file counts as missing.
    std::fs::write(&file, " \n").unwrap();
    let fresh = http_secret(None, &storage).unwrap();
    assert_eq!(fresh.source(), SecretSource::Created);
    assert_eq!(std::fs::read(&file).unwrap(), fresh.as_bytes());
}

#[test]
fn secret_outside_the_registry_tree() {
    let storage = InMemoryDriver::new();
    http_secret(None, &storage).unwrap();
    let registry = DriverPath::parse("/docker/registry/v2").unwrap();
    assert!(storage.stat(&registry).is_err());
    let secret = DriverPath::parse(HTTP_SECRET_PATH).unwrap();
    assert!(!secret.as_str().starts_with(registry.as_str()));
}

/// A storage whose reads fail: the error is reported, nothing is written.
#[test]
fn unreadable_secret_is_an_error() {
    #[derive(Debug)]
    struct Failing(InMemoryDriver);
    impl StorageDriver for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
            Err(StorageError::Unavailable {
                op: "GetObject",
                path: path.clone(),
                message: "down".into(),
            })
        }
        fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
            self.0.put_content(path, content)
        }
        fn reader(
            &self,
            path: &DriverPath,
            offset: u64,
        ) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
            self.0.reader(path, offset)
        }
        fn writer(
            &self,
            path: &DriverPath,
            append: bool,
        ) -> Result<Box<dyn crate::storage::FileWriter>, StorageError> {
            self.0.writer(path, append)
        }
        fn stat(&self, path: &DriverPath) -> Result<crate::storage::FileInfo, StorageError> {
            self.0.stat(path)
        }
        fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
            self.0.list(path)
        }
        fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
            self.0.move_to(source, dest)
        }
        fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
            self.0.touch(path)
        }
        fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
            self.0.delete(path)
        }
    }
    let storage = Failing(InMemoryDriver::new());
    let err = http_secret(None, &storage).unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    assert!(storage
        .0
        .stat(&DriverPath::parse(HTTP_SECRET_PATH).unwrap())
        .is_err());
}
