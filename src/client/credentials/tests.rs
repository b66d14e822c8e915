use std::os::unix::fs::PermissionsExt;

use super::*;

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.into(),
        password: password.into(),
    }
}

fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

#[test]
fn auths_match_by_host_whatever_scheme_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p:with:colons");
    let file = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"https://reg.example:5000/v1/": {{"auth": "{auth}"}},
            "https://index.docker.io/v1/": {{"username": "hub", "password": "pw"}},
            "other.example": {{"identitytoken": "refresh"}}}}}}"#
        ),
    );
    let files = AuthFiles::new(vec![file]);
    assert_eq!(
        files.lookup("reg.example:5000").unwrap(),
        Some(basic("u", "p:with:colons"))
    );
    assert_eq!(files.lookup("docker.io").unwrap(), Some(basic("hub", "pw")));
    assert_eq!(
        files.lookup("http://other.example/").unwrap(),
        Some(Credential::IdentityToken("refresh".into()))
    );
    assert_eq!(files.lookup("reg.example").unwrap(), None, "port matters");
}

#[test]
fn earlier_files_win_and_missing_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let first = write(
        dir.path(),
        "auth.json",
        &format!(r#"{{"auths": {{"h": {{"auth": "{}"}}}}}}"#, enc("a:1")),
    );
    let second = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"h": {{"auth": "{}"}}, "g": {{"auth": "{}"}}}}}}"#,
            enc("b:2"),
            enc("c:3")
        ),
    );
    let files = AuthFiles::new(vec![dir.path().join("absent.json"), first, second]);
    assert_eq!(files.lookup("h").unwrap(), Some(basic("a", "1")));
    assert_eq!(files.lookup("g").unwrap(), Some(basic("c", "3")));
}

#[test]
fn broken_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "auth.json",
        r#"{"auths": {"h": {"auth": "%%%"}}}"#,
    );
    let err = AuthFiles::new(vec![file.clone()]).lookup("h").unwrap_err();
    assert!(err.to_string().contains("auth.json"), "{err}");
    let file = write(dir.path(), "bad.json", "{not json");
    assert!(matches!(
        AuthFiles::new(vec![file]).lookup("h"),
        Err(CredentialError::Format { .. })
    ));
}

#[test]
fn store_login_keeps_other_entries_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "auth.json",
        r#"{"auths": {"keep.example": {"auth": "a2VlcDptZQ=="}}, "credHelpers": {"x": "y"}}"#,
    );
    store_login(&path, "https://new.example:5000/v2/", "me", "secret").unwrap();
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(document["credHelpers"]["x"], "y");
    assert_eq!(document["auths"]["keep.example"]["auth"], "a2VlcDptZQ==");
    let files = AuthFiles::new(vec![path.clone()]);
    assert_eq!(
        files.lookup("new.example:5000").unwrap(),
        Some(basic("me", "secret"))
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let fresh = dir.path().join("sub/dir/auth.json");
    store_login(&fresh, "h", "u", "p").unwrap();
    assert_eq!(
        AuthFiles::new(vec![fresh]).lookup("h").unwrap(),
        Some(basic("u", "p"))
    );
}

#[test]
fn login_refuses_what_would_read_back_differently() {
    let dir = tempfile::tempdir().unwrap();
    // "a:b" / "c" used to be written as "a:b:c", which reads back as user "a", password "b:c"
    // (the `auth_json` fuzz target checks what login writes; reproducers: crash-* in
    // fuzz/regressions/auth_json/).
    let path = dir.path().join("auth.json");
    assert!(matches!(
        store_login(&path, "h", "a:b", "c"),
        Err(CredentialError::Format { .. })
    ));
    assert!(!path.exists());
    // A file lookups cannot read stays as it is, rather than gaining an entry no lookup sees.
    let broken = r#"{"auths": {"h": {"auth": 5}}}"#;
    let path = write(dir.path(), "broken.json", broken);
    assert!(store_login(&path, "g", "u", "p").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    // A blank file is a new one.
    let path = write(dir.path(), "blank.json", " \n");
    store_login(&path, "g", "u", "p").unwrap();
    assert_eq!(
        AuthFiles::new(vec![path]).lookup("g").unwrap(),
        Some(basic("u", "p"))
    );
}

#[test]
fn helpers_answer_through_docker_credential_programs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("docker-credential-layerstoretest");
    std::fs::write(
        &script,
        "#!/bin/sh\nread host\ncase \"$host\" in\n\
         helped.example) echo '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n\
         token.example) echo '{\"ServerURL\":\"token.example\",\"Username\":\"<token>\",\"Secret\":\"rt\"}';;\n\
         *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![dir.path().to_owned()];
    dirs.extend(std::env::split_paths(&path));
    std::env::set_var("PATH", std::env::join_paths(dirs).unwrap());

    let file = write(
        dir.path(),
        "config.json",
        r#"{"credHelpers": {"helped.example": "layerstoretest"}, "credsStore": "layerstoretest"}"#,
    );
    let files = AuthFiles::new(vec![file]);
    assert_eq!(
        files.lookup("helped.example").unwrap(),
        Some(basic("hu", "hs"))
    );
    assert_eq!(
        files.lookup("token.example").unwrap(),
        Some(Credential::IdentityToken("rt".into()))
    );
    assert_eq!(files.lookup("unknown.example").unwrap(), None);

    let missing = write(
        dir.path(),
        "m.json",
        r#"{"credsStore": "no-such-helper-here"}"#,
    );
    assert!(matches!(
        AuthFiles::new(vec![missing]).lookup("h"),
        Err(CredentialError::Helper { .. })
    ));
}

#[test]
fn debug_never_shows_secrets() {
    let shown = format!(
        "{:?} {:?}",
        basic("u", "hunter2"),
        Credential::IdentityToken("tok".into())
    );
    assert!(
        !shown.contains("hunter2") && !shown.contains("tok\""),
        "{shown}"
    );
}
