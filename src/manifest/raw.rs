//! The JSON shape of every manifest kind, as serde reads it, before any rule is checked.
//!
//! One permissive struct covers all four kinds: every field is optional so that a missing field
//! becomes a precise [`ManifestError`](super::ManifestError) from the validation step instead of
//! a generic serde message. Unknown fields are skipped without being stored (serde_json skips
//! them iteratively, so hostile nesting inside them costs no stack, and the typed part is at
//! most four levels deep). Known fields repeated in one object are a serde "duplicate field"
//! error; annotation maps get the same treatment here.
//!
//! Every struct is read through [`Object`] (see `object.rs`): objects only, and no key that Go
//! would take for one of the struct's fields unless it is spelled exactly like it.

use std::collections::BTreeMap;
use std::fmt;

use super::object::KnownFields;
pub(crate) use super::object::Object;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A manifest or index, every field optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawDocument {
    pub schema_version: Option<i64>,
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub config: Option<Object<RawDescriptor>>,
    pub layers: Option<Vec<Object<RawDescriptor>>>,
    pub manifests: Option<Vec<Object<RawDescriptor>>>,
    pub subject: Option<Object<RawDescriptor>>,
    pub annotations: Option<Annotations>,
}

/// A descriptor, every field optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawDescriptor {
    pub media_type: Option<String>,
    pub digest: Option<String>,
    pub size: Option<i64>,
    pub urls: Option<Vec<String>>,
    pub annotations: Option<Annotations>,
    pub artifact_type: Option<String>,
    pub platform: Option<Object<RawPlatform>>,
}

/// An index entry's platform.
#[derive(Debug, Deserialize)]
pub(crate) struct RawPlatform {
    pub architecture: Option<String>,
    pub os: Option<String>,
    #[serde(rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    pub variant: Option<String>,
    pub features: Option<Vec<String>>,
}

/// A string-to-string map that refuses repeated keys.
#[derive(Debug, Default)]
pub(crate) struct Annotations(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnnotationsVisitor)
    }
}

/// The prefix of serde's duplicate-field message; [`super::parse`] recognizes it.
pub(crate) const DUPLICATE_PREFIX: &str = "duplicate field `";

struct AnnotationsVisitor;

impl<'de> Visitor<'de> for AnnotationsVisitor {
    type Value = Annotations;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings to strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            if out.contains_key(&key) {
                // Same wording as serde's own duplicate-field error, so one path handles both.
                return Err(de::Error::custom(format_args!("{DUPLICATE_PREFIX}{key}`")));
            }
            out.insert(key, value);
        }
        Ok(Annotations(out))
    }
}

impl KnownFields for RawDocument {
    const FIELDS: &'static [&'static str] = &[
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "manifests",
        "subject",
        "annotations",
    ];
}

impl KnownFields for RawDescriptor {
    const FIELDS: &'static [&'static str] = &[
        "mediaType",
        "digest",
        "size",
        "urls",
        "annotations",
        "artifactType",
        "platform",
    ];
}

impl KnownFields for RawPlatform {
    const FIELDS: &'static [&'static str] = &[
        "architecture",
        "os",
        "os.version",
        "os.features",
        "variant",
        "features",
    ];
}
