//! The trusted signing keys: distribution's `rootcertbundle`, a PEM file of certificates.
//!
//! Each certificate gives a key that may sign tokens directly (found by its libtrust key id,
//! the `kid` of distribution-style token servers, or by a `jwk` header carrying the same key)
//! and a trust anchor for tokens that carry their own chain in `x5c`. The algorithms a key
//! accepts follow from its type and curve alone, never from the token: an RSA key verifies
//! RS*/PS*, a P-256 key ES256, a P-384 key ES384, an Ed25519 key EdDSA; `none` and HS* are
//! never accepted, so a token cannot choose how it is checked.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::Digest as _;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::TokenError;

/// Most certificates accepted in a token's `x5c` chain.
pub const MAX_CHAIN_LEN: usize = 8;

/// Why the bundle cannot be used. Each stops `serve` at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The bundle.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not PEM.
    #[error("{path}: not a PEM file: {message}")]
    Pem {
        /// The bundle.
        path: PathBuf,
        /// The PEM parser's message.
        message: String,
    },
    /// A certificate that does not parse.
    #[error("{path}: certificate {index} (counting from 1) does not parse")]
    Certificate {
        /// The bundle.
        path: PathBuf,
        /// Which one.
        index: usize,
    },
    /// No certificate with a key type tokens can be signed with.
    #[error("{path}: no certificate with an RSA, P-256, P-384 or Ed25519 key")]
    NoUsableKey {
        /// The bundle.
        path: PathBuf,
    },
}

/// The kind of a public key, which alone decides the algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyKind::P256 => &[Algorithm::ES256],
            KeyKind::P384 => &[Algorithm::ES384],
            KeyKind::Ed25519 => &[Algorithm::EdDSA],
        }
    }
}

/// A public key's mathematical identity, independent of its encoding (a `jwk` header and a
/// certificate name the same key in different forms).
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyIdentity {
    /// Modulus and exponent, without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point on the curve.
    Ec { kind: KeyKind, point: Vec<u8> },
    /// The 32 key bytes.
    Ed25519(Vec<u8>),
}

/// A key that can verify token signatures.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kind: KeyKind,
    decoding: DecodingKey,
    identity: KeyIdentity,
}

impl PublicKey {
    /// The key of a DER certificate; `None` for an unparsable certificate or an unsupported
    /// key type.
    fn from_cert_der(der: &[u8]) -> Option<(PublicKey, String)> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let spki = &cert.tbs_certificate.subject_pki;
        Some((PublicKey::from_spki(spki)?, libtrust_key_id(spki.raw)))
    }

    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Option<PublicKey> {
        let algorithm = &spki.algorithm.algorithm;
        let data = spki.subject_public_key.data.as_ref();
        if *algorithm == OID_PKCS1_RSAENCRYPTION {
            let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().ok()? else {
                return None;
            };
            let (n, e) = (strip_zeros(rsa.modulus), strip_zeros(rsa.exponent));
            return Some(PublicKey {
                kind: KeyKind::Rsa,
                decoding: DecodingKey::from_rsa_raw_components(n, e),
                identity: KeyIdentity::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                },
            });
        }
        if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            let kind = if curve == OID_EC_P256 {
                KeyKind::P256
            } else if curve == OID_NIST_EC_P384 {
                KeyKind::P384
            } else {
                return None;
            };
            return Some(PublicKey::ec(kind, data.to_vec()));
        }
        if *algorithm == OID_SIG_ED25519 {
            return Some(PublicKey::ed25519(data.to_vec()));
        }
        None
    }

    fn ec(kind: KeyKind, point: Vec<u8>) -> PublicKey {
        PublicKey {
            kind,
            decoding: DecodingKey::from_ec_der(&point),
            identity: KeyIdentity::Ec { kind, point },
        }
    }

    fn ed25519(bytes: Vec<u8>) -> PublicKey {
        PublicKey {
            kind: KeyKind::Ed25519,
            decoding: DecodingKey::from_ed_der(&bytes),
            identity: KeyIdentity::Ed25519(bytes),
        }
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> &'static [Algorithm] {
        self.kind.algorithms()
    }

    /// The key in the form jsonwebtoken verifies with.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The identity of the key in a `jwk` header; `None` if it is not a public key of a
/// supported kind (an `oct` secret is never one).
fn jwk_identity(jwk: &Jwk) -> Option<KeyIdentity> {
    let decode = |text: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text).ok()
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => Some(KeyIdentity::Rsa {
            n: strip_zeros(&decode(&rsa.n)?).to_vec(),
            e: strip_zeros(&decode(&rsa.e)?).to_vec(),
        }),
        AlgorithmParameters::EllipticCurve(ec) => {
            let (kind, len) = match ec.curve {
                EllipticCurve::P256 => (KeyKind::P256, 32),
                EllipticCurve::P384 => (KeyKind::P384, 48),
                _ => return None,
            };
            let (x, y) = (decode(&ec.x)?, decode(&ec.y)?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let point = [&[4u8][..], &x, &y].concat();
            Some(KeyIdentity::Ec { kind, point })
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(KeyIdentity::Ed25519(decode(&okp.x)?))
        }
        _ => None,
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The libtrust key id of a key given as DER `SubjectPublicKeyInfo`: the first 30 bytes of
/// its SHA-256, in base32 (RFC 4648 standard alphabet, no padding), as twelve groups of four
/// joined by `:`. Distribution-style token servers put it in the JWT's `kid`.
///
/// ```
/// let id = layerstore::auth::token::libtrust_key_id(b"any bytes");
/// assert_eq!(id.len(), 12 * 4 + 11);
/// assert_eq!(id.split(':').count(), 12);
/// ```
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = sha2::Sha256::digest(spki_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    let groups: Vec<&str> = encoded
        .as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap_or_default())
        .collect();
    groups.join(":")
}

/// One certificate of the bundle.
#[derive(Debug)]
struct TrustedKey {
    kid: String,
    der: Vec<u8>,
    key: PublicKey,
}

/// The trusted keys and anchors of a root certificate bundle.
#[derive(Debug)]
pub struct KeyBundle {
    keys: Vec<TrustedKey>,
    anchors: Vec<TrustAnchor<'static>>,
    unsupported: usize,
}

impl KeyBundle {
    /// Reads a PEM bundle file.
    pub fn load(path: &Path) -> Result<KeyBundle, BundleError> {
        let pem = std::fs::read(path).map_err(|source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        KeyBundle::from_pem(&pem, path)
    }

    /// Parses PEM certificates (other PEM sections are skipped); `path` names the bundle in
    /// errors.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<KeyBundle, BundleError> {
        let ders = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BundleError::Pem {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut bundle = KeyBundle {
            keys: Vec::new(),
            anchors: Vec::new(),
            unsupported: 0,
        };
        for (i, der) in ders.iter().enumerate() {
            let bad = || BundleError::Certificate {
                path: path.to_path_buf(),
                index: i + 1,
            };
            let anchor = webpki::anchor_from_trusted_cert(der).map_err(|_| bad())?;
            bundle.anchors.push(anchor.to_owned());
            x509_parser::parse_x509_certificate(der).map_err(|_| bad())?;
            match PublicKey::from_cert_der(der) {
                Some((key, kid)) => bundle.keys.push(TrustedKey {
                    kid,
                    der: der.to_vec(),
                    key,
                }),
                None => bundle.unsupported += 1,
            }
        }
        if bundle.keys.is_empty() {
            return Err(BundleError::NoUsableKey {
                path: path.to_path_buf(),
            });
        }
        Ok(bundle)
    }

    /// The libtrust key ids of the usable keys, in bundle order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// Certificates whose key type cannot sign tokens here (they still anchor `x5c` chains).
    pub fn unsupported(&self) -> usize {
        self.unsupported
    }

    /// The key a token header names, by distribution's rule: an `x5c` chain must verify to a
    /// bundle certificate and its leaf's key signs; else a `jwk` must be one of the bundle's
    /// keys; else a `kid` must be a bundle key's libtrust id. A header naming none is refused.
    pub fn resolve(&self, header: &jsonwebtoken::Header) -> Result<PublicKey, TokenError> {
        if let Some(chain) = &header.x5c {
            let ders = header.x5c_der().map_err(|_| TokenError::Malformed)?;
            return self.verify_chain(ders.unwrap_or_default(), chain.len());
        }
        if let Some(jwk) = &header.jwk {
            let identity = jwk_identity(jwk).ok_or(TokenError::UnknownKey)?;
            return self
                .keys
                .iter()
                .find(|k| k.key.identity == identity)
                .map(|k| k.key.clone())
                .ok_or(TokenError::UnknownKey);
        }
        if let Some(kid) = &header.kid {
            return self
                .keys
                .iter()
                .find(|k| k.kid == *kid)
                .map(|k| k.key.clone())
                .ok_or(TokenError::UnknownKey);
        }
        Err(TokenError::NoKeyReference)
    }

    /// The leaf key of an `x5c` chain that verifies to an anchor of the bundle (the other
    /// certificates serve as intermediates; any extended key usage, or none, is accepted). A
    /// leaf that is itself a bundle certificate is trusted as it is.
    fn verify_chain(&self, ders: Vec<Vec<u8>>, count: usize) -> Result<PublicKey, TokenError> {
        if count == 0 || count > MAX_CHAIN_LEN {
            return Err(TokenError::Chain);
        }
        let certs: Vec<CertificateDer<'static>> =
            ders.into_iter().map(CertificateDer::from).collect();
        let (leaf, intermediates) = certs.split_first().ok_or(TokenError::Chain)?;
        if let Some(known) = self.keys.iter().find(|k| k.der == leaf.as_ref()) {
            return Ok(known.key.clone());
        }
        let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|_| TokenError::Chain)?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                intermediates,
                UnixTime::now(),
                AnyUsage,
                None,
                None,
            )
            .map_err(|_| TokenError::Chain)?;
        PublicKey::from_cert_der(leaf)
            .map(|(key, _)| key)
            .ok_or(TokenError::UnknownKey)
    }
}

/// Accepts any extended key usage, or none, as distribution does (Go's `ExtKeyUsageAny`).
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, usages: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for usage in usages {
            usage?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 certificate made with `openssl req -x509 -newkey ec -pkeyopt
    /// ec_paramgen_curve:P-256`, and its libtrust id computed apart from this code:
    /// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`, the
    /// first 30 bytes in Python's `base64.b32encode`, grouped by four.
    const P256_CERT: &str = include_str!("testdata/p256.pem");
    const P256_KID: &str = include_str!("testdata/p256.kid");
    /// The same for a 2048-bit RSA certificate.
    const RSA_CERT: &str = include_str!("testdata/rsa.pem");
    const RSA_KID: &str = include_str!("testdata/rsa.kid");

    fn bundle(pem: &str) -> KeyBundle {
        KeyBundle::from_pem(pem.as_bytes(), Path::new("bundle.pem")).unwrap()
    }

    #[test]
    fn libtrust_ids_match_an_independent_computation() {
        assert_eq!(
            bundle(P256_CERT).key_ids().collect::<Vec<_>>(),
            [P256_KID.trim()]
        );
        assert_eq!(
            bundle(RSA_CERT).key_ids().collect::<Vec<_>>(),
            [RSA_KID.trim()]
        );
        let both = bundle(&format!("{P256_CERT}{RSA_CERT}"));
        assert_eq!(
            both.key_ids().collect::<Vec<_>>(),
            [P256_KID.trim(), RSA_KID.trim()]
        );
    }

    #[test]
    fn algorithms_follow_the_key_type() {
        let ec = bundle(P256_CERT);
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(P256_KID.trim().to_owned());
        assert_eq!(
            ec.resolve(&header).unwrap().algorithms(),
            [Algorithm::ES256]
        );
        let rsa = bundle(RSA_CERT);
        header.kid = Some(RSA_KID.trim().to_owned());
        let algorithms = rsa.resolve(&header).unwrap().algorithms();
        assert!(algorithms.contains(&Algorithm::RS256));
        assert!(!algorithms.iter().any(|a| matches!(
            a,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 | Algorithm::ES256
        )));
    }

    #[test]
    fn a_header_must_name_a_bundle_key() {
        let ec = bundle(P256_CERT);
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        assert!(matches!(
            ec.resolve(&header),
            Err(TokenError::NoKeyReference)
        ));
        header.kid = Some(RSA_KID.trim().to_owned());
        assert!(matches!(ec.resolve(&header), Err(TokenError::UnknownKey)));
        header.kid = None;
        header.x5c = Some(vec![]);
        assert!(matches!(ec.resolve(&header), Err(TokenError::Chain)));
        header.x5c = Some(vec!["not base64!".into()]);
        assert!(matches!(ec.resolve(&header), Err(TokenError::Malformed)));
    }

    #[test]
    fn bad_bundles_are_refused() {
        let path = Path::new("b.pem");
        assert!(matches!(
            KeyBundle::from_pem(b"", path),
            Err(BundleError::NoUsableKey { .. })
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            KeyBundle::from_pem(garbage.as_bytes(), path),
            Err(BundleError::Certificate { index: 1, .. })
        ));
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(matches!(
            KeyBundle::from_pem(unterminated.as_bytes(), path),
            Err(BundleError::Pem { .. })
        ));
        assert!(matches!(
            KeyBundle::load(Path::new("/nonexistent/bundle.pem")),
            Err(BundleError::Read { .. })
        ));
    }

    #[test]
    fn jwk_identities_ignore_leading_zeros() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "n": "AAEC", "e": "AQAB"
        }))
        .unwrap();
        assert_eq!(
            jwk_identity(&jwk),
            Some(KeyIdentity::Rsa {
                n: vec![1, 2],
                e: vec![1, 0, 1]
            })
        );
        let secret: Jwk =
            serde_json::from_value(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap();
        assert_eq!(jwk_identity(&secret), None);
    }
}
