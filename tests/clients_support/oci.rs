//! OCI image layouts on disk, written by hand (config, gzip'd tar layers, manifests, an index)
//! and read back with every blob checked against its name, so a round trip through a registry
//! can be compared digest by digest.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A descriptor: what a manifest or index says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<(String, String)>,
}

impl Descriptor {
    fn to_json(&self) -> Value {
        let mut value = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        });
        if let Some((os, arch)) = &self.platform {
            value["platform"] = json!({ "os": os, "architecture": arch });
        }
        value
    }
}

/// An OCI image layout directory.
pub struct Layout {
    pub dir: PathBuf,
}

fn sha256(bytes: &[u8]) -> String {
    layerstore::Digest::sha256(bytes).to_string()
}

impl Layout {
    /// A new, empty layout at `dir`.
    pub fn create(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            json!({ "schemaVersion": 2, "manifests": [] }).to_string(),
        )
        .unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// An existing layout (e.g. one skopeo wrote).
    pub fn open(dir: &Path) -> Self {
        assert!(
            dir.join("oci-layout").is_file(),
            "{} is no OCI layout",
            dir.display()
        );
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Stores `bytes` as a blob; returns its descriptor.
    pub fn add_blob(&self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let digest = sha256(bytes);
        std::fs::write(self.blob_path(&digest), bytes).unwrap();
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: bytes.len() as u64,
            platform: None,
        }
    }

    /// A single-platform image: a config and two gzip'd tar layers (sizes vary with `seed`).
    pub fn add_image(&self, seed: u8, arch: &str) -> Descriptor {
        let layers = [
            vec![(
                "etc/hello.txt",
                format!("hello {seed} {arch}\n").into_bytes(),
            )],
            vec![(
                "usr/share/data.bin",
                crate::common::content(40_000 + seed as usize * 1000, seed),
            )],
        ];
        self.add_image_of(arch, &format!("SEED={seed}"), &layers)
    }

    /// A single-platform image with one gzip'd tar layer per entry of `layers` (each holding
    /// those files) and a config with their diff_ids and `env` as its one environment variable.
    pub fn add_image_of(
        &self,
        arch: &str,
        env: &str,
        layers: &[Vec<(&str, Vec<u8>)>],
    ) -> Descriptor {
        let tars: Vec<Vec<u8>> = layers.iter().map(|files| tar_of(files)).collect();
        let layers: Vec<Descriptor> = tars
            .iter()
            .map(|tar| self.add_blob(OCI_LAYER_GZIP, &gzip(tar)))
            .collect();
        let diff_ids: Vec<String> = tars.iter().map(|tar| sha256(tar)).collect();
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Env": [env] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = self.add_blob(OCI_CONFIG, config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        });
        let mut descriptor = self.add_blob(OCI_MANIFEST, manifest.to_string().as_bytes());
        descriptor.platform = Some(("linux".into(), arch.into()));
        descriptor
    }

    /// An image index over `children`.
    pub fn add_index(&self, children: &[Descriptor]) -> Descriptor {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": children.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        });
        self.add_blob(OCI_INDEX, index.to_string().as_bytes())
    }

    /// Names `descriptor` `tag` in `index.json` (replacing an older entry of that name).
    pub fn tag(&self, tag: &str, descriptor: &Descriptor) {
        let mut index = self.index_json();
        let manifests = index["manifests"].as_array_mut().unwrap();
        manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
        let mut entry = descriptor.to_json();
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        manifests.push(entry);
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    fn index_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap()
    }

    /// The digest `tag` names in `index.json`.
    pub fn resolve(&self, tag: &str) -> String {
        let index = self.index_json();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag} in {}", self.dir.display()));
        entry["digest"].as_str().unwrap().to_owned()
    }

    /// A blob's bytes, checked against its digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let bytes = std::fs::read(self.blob_path(digest))
            .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", self.dir.display()));
        assert_eq!(
            sha256(&bytes),
            digest,
            "blob content does not match its name"
        );
        bytes
    }

    /// Every digest reachable from `digest` (itself, child manifests, configs, layers), each
    /// read and checked against its name.
    pub fn closure(&self, digest: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![digest.to_owned()];
        while let Some(digest) = todo.pop() {
            if !seen.insert(digest.clone()) {
                continue;
            }
            let bytes = self.blob(&digest);
            let Ok(document) = serde_json::from_slice::<Value>(&bytes) else {
                continue; // a layer
            };
            let children = document["manifests"]
                .as_array()
                .into_iter()
                .chain(document["layers"].as_array())
                .flatten()
                .chain(document.get("config"));
            for child in children {
                if let Some(d) = child["digest"].as_str() {
                    todo.push(d.to_owned());
                }
            }
        }
        seen
    }
}

/// `len` deterministic bytes that do not compress (xorshift64*), for layers whose gzip'd size
/// must stay large.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tar archive holding `files`.
pub fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Asserts that `tag` names the same digest in both layouts and that everything it reaches is
/// present, intact and identical in `copy`.
pub fn assert_same_image(original: &Layout, copy: &Layout, tag: &str, copy_tag: &str) {
    let digest = original.resolve(tag);
    assert_eq!(copy.resolve(copy_tag), digest, "top-level digest changed");
    let expected = original.closure(&digest);
    let actual = copy.closure(&digest);
    assert_eq!(actual, expected, "the copy reaches other blobs");
    for blob in &expected {
        assert_eq!(copy.blob(blob), original.blob(blob), "{blob} differs");
    }
}
