//! A test PKI made at run time with rcgen: a CA and server certificates it signs for
//! `127.0.0.1` and `localhost`, written as PEM files the way `layerstore serve --tls-cert
//! --tls-key` and clients (`--cacert`, skopeo's `--cert-dir`) read them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA in `dir` (`ca.pem`) and the current server certificate (`server.pem`, `server.key`).
pub struct TestPki {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// Makes the CA and a first server certificate (serial 1).
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "layerstore test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let pki = TestPki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
        };
        pki.issue_server(1);
        pki
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// A new key and server certificate with `serial`, written over `server.key` and
    /// `server.pem`; returns the certificate's DER.
    pub fn issue_server(&self, serial: u64) -> Vec<u8> {
        let (cert_pem, key_pem, der) = self.server_pair(serial);
        std::fs::write(self.server_key(), key_pem).unwrap();
        std::fs::write(self.server_cert(), cert_pem).unwrap();
        der
    }

    /// A new server certificate and key, in PEM, and the certificate's DER; nothing written.
    pub fn server_pair(&self, serial: u64) -> (String, String, Vec<u8>) {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "layerstore test server");
        params.serial_number = Some(serial.into());
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}
