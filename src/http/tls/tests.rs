//! Loading, checking and reloading certificates, and a real handshake over an in-memory pipe.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A PEM block of `der` labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The content of the DER element at the start of `der`, and what follows it.
fn der_element(der: &[u8]) -> (&[u8], &[u8]) {
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let count = (n & 0x7f) as usize;
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + count)
        }
    };
    (&der[header..header + len], &der[header + len..])
}

/// The algorithm-specific key inside a PKCS#8 `PrivateKeyInfo`: PKCS#1 for RSA, SEC1 for EC.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (info, _) = der_element(pkcs8);
    let (_version, rest) = der_element(info);
    let rest = &info[info.len() - rest.len()..];
    let (_algorithm, rest) = der_element(rest);
    let (key, _) = der_element(rest);
    key.to_vec()
}

/// A self-signed certificate for localhost and 127.0.0.1, with its key, in PEM.
fn self_signed(key: &KeyPair, serial: u64) -> String {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.serial_number = Some(serial.into());
    params.self_signed(key).unwrap().pem()
}

fn file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn mem(label: &str, content: &str) -> PemFile {
    PemFile {
        path: PathBuf::from(label),
        bytes: content.as_bytes().to_vec(),
    }
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_load_and_match() {
    let provider = provider();
    let ec = KeyPair::generate().unwrap();
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let cases = [
        (&ec, ec.serialize_pem()),
        (
            &ec,
            pem("EC PRIVATE KEY", &pkcs8_inner(&ec.serialize_der())),
        ),
        (&rsa, rsa.serialize_pem()),
        (
            &rsa,
            pem("RSA PRIVATE KEY", &pkcs8_inner(&rsa.serialize_der())),
        ),
    ];
    for (key, key_pem) in cases {
        let cert = mem("cert.pem", &self_signed(key, 1));
        let loaded = certified_key(&cert, &mem("key.pem", &key_pem), &provider);
        let loaded = loaded.unwrap_or_else(|e| panic!("{}: {e}", &key_pem[..30]));
        assert_eq!(loaded.cert.len(), 1);
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (one, two) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let error = certified_key(
        &mem("one.pem", &self_signed(&one, 1)),
        &mem("two.key", &two.serialize_pem()),
        &provider(),
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the private key in two.key does not match the certificate in one.pem"
    );
}

#[test]
fn files_without_the_expected_blocks_are_named_in_the_error() {
    let key = KeyPair::generate().unwrap();
    let (cert_pem, key_pem) = (self_signed(&key, 1), key.serialize_pem());
    let provider = provider();
    let no_cert = certified_key(&mem("k.pem", &key_pem), &mem("k.pem", &key_pem), &provider);
    assert!(matches!(no_cert, Err(TlsError::NoCertificate { .. })));
    let no_key = certified_key(
        &mem("c.pem", &cert_pem),
        &mem("c.pem", &cert_pem),
        &provider,
    );
    let error = no_key.unwrap_err();
    assert!(matches!(error, TlsError::NoKey { .. }), "{error:?}");
    assert!(error.to_string().starts_with("c.pem holds no private key"));
    let broken = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    let error = mem("b.pem", broken).certificates().unwrap_err();
    assert!(matches!(error, TlsError::Pem { .. }), "{error:?}");
    let empty = mem("e.pem", "").certificates().unwrap_err();
    assert!(matches!(empty, TlsError::NoCertificate { .. }));
    let garbage_key = pem("PRIVATE KEY", b"not a key");
    let error = certified_key(
        &mem("c.pem", &cert_pem),
        &mem("g.key", &garbage_key),
        &provider,
    )
    .unwrap_err();
    assert!(matches!(error, TlsError::UnusableKey { .. }), "{error:?}");
}

#[test]
fn missing_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let error = PemFile::read(&missing).unwrap_err();
    assert!(matches!(error, TlsError::Unreadable { .. }), "{error:?}");
    assert!(error.to_string().contains("nope.pem"), "{error}");
    let big = dir.path().join("big.pem");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_PEM_BYTES + 1)
        .unwrap();
    let error = PemFile::read(&big).unwrap_err();
    assert!(matches!(error, TlsError::TooLarge { .. }), "{error:?}");
}

#[test]
fn reload_swaps_the_pair_and_a_failed_reload_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let cert = file(dir.path(), "c.pem", &self_signed(&first, 1));
    let key = file(dir.path(), "k.pem", &first.serialize_pem());
    let tls = ServerTls::load(&cert, &key).unwrap();
    let before = tls.current().cert[0].clone();

    // A half-replaced pair (new certificate, old key) is refused and changes nothing.
    file(dir.path(), "c.pem", &self_signed(&second, 2));
    assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
    assert_eq!(tls.current().cert[0], before);

    file(dir.path(), "k.pem", &second.serialize_pem());
    tls.reload().unwrap();
    assert_ne!(tls.current().cert[0], before);
}

/// Handshakes `client` with `server` over an in-memory pipe, exchanges one line, and returns
/// the negotiated ALPN protocol and TLS version.
async fn handshake(
    server: &ServerTls,
    client: rustls::ClientConfig,
) -> Result<(Option<Vec<u8>>, rustls::ProtocolVersion), std::io::Error> {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let acceptor = server.acceptor();
    let serving = tokio::spawn(async move {
        let mut stream = acceptor.accept(far).await?;
        let mut line = [0u8; 5];
        stream.read_exact(&mut line).await?;
        stream.write_all(&line).await?;
        stream.flush().await?;
        Ok::<_, std::io::Error>(())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, near).await?;
    stream.write_all(b"ping\n").await?;
    let mut echo = [0u8; 5];
    stream.read_exact(&mut echo).await?;
    assert_eq!(&echo, b"ping\n");
    serving.await.unwrap()?;
    let (_, connection) = stream.get_ref();
    Ok((
        connection.alpn_protocol().map(<[u8]>::to_vec),
        connection.protocol_version().unwrap(),
    ))
}

#[tokio::test]
async fn handshakes_negotiate_alpn_and_both_versions_and_trust_only_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert_pem = self_signed(&key, 7);
    let cert = file(dir.path(), "c.pem", &cert_pem);
    let server = ServerTls::load(&cert, &file(dir.path(), "k.pem", &key.serialize_pem())).unwrap();

    let mut h2 = client_config(&ServerTrust::CaFile(cert.clone())).unwrap();
    h2.alpn_protocols = vec![ALPN_H2.to_vec()];
    let (alpn, version) = handshake(&server, h2).await.unwrap();
    assert_eq!(alpn.as_deref(), Some(ALPN_H2));
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);

    // TLS 1.2 only, no ALPN: still served.
    let mut store = rustls::RootCertStore::empty();
    store
        .add(mem("c", &cert_pem).certificates().unwrap().remove(0))
        .unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let (alpn, version) = handshake(&server, tls12).await.unwrap();
    assert_eq!((alpn, version), (None, rustls::ProtocolVersion::TLSv1_2));

    // Another CA: refused; any certificate: accepted.
    let other = KeyPair::generate().unwrap();
    let other_ca = file(dir.path(), "other.pem", &self_signed(&other, 8));
    let strict = client_config(&ServerTrust::CaFile(other_ca)).unwrap();
    assert!(handshake(&server, strict).await.is_err());
    let insecure = client_config(&ServerTrust::AnyCertificate).unwrap();
    assert!(handshake(&server, insecure).await.is_ok());
}
