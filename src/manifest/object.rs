//! [`Object`]: reads a derived serde struct from a JSON object only, and refuses keys that Go's
//! `encoding/json` would take for one of its fields while serde would not.
//!
//! Two gaps between serde's derived structs and the Go parsers that registries and clients use:
//!
//! * serde also accepts a JSON *array* of field values in declaration order (`[2, "...", ...]`);
//!   no other manifest parser does. `Object` asks for a map, so an array is a type error.
//! * Go matches field names case-insensitively, with Unicode simple folding (`"Manifests"`,
//!   `"MANIFESTS"`, even `"manifeſts"` with U+017F fill `manifests`); serde matches exactly.
//!   Without a check, `{"config":…,"layers":…,"Manifests":[…]}` is an image manifest to us and
//!   also carries an index's field for a Go reader: the CVE-2021-41190 ambiguity again. A key
//!   that folds to a known field but is not spelled exactly like it is refused.

use std::fmt;
use std::marker::PhantomData;

use std::borrow::Cow;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The prefix of the error for a case-variant key; [`super::parse`] recognizes it.
pub(crate) const CASE_VARIANT_PREFIX: &str = "key differs from a field only in case: `";

/// The JSON names of a struct's fields, as serde spells them.
pub(crate) trait KnownFields {
    /// Field names exactly as they must appear.
    const FIELDS: &'static [&'static str];
}

/// A struct that may only be written as a JSON object with exactly spelled field names.
#[derive(Debug)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de> + KnownFields> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + KnownFields> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        let checked = CheckedKeys {
            inner: map,
            fields: T::FIELDS,
        };
        T::deserialize(MapAccessDeserializer::new(checked)).map(Object)
    }
}

/// Passes a map through, refusing case variants of `fields`.
struct CheckedKeys<A> {
    inner: A,
    fields: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CheckedKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(Key(key)) = self.inner.next_key::<Key<'de>>()? else {
            return Ok(None);
        };
        if self
            .fields
            .iter()
            .any(|field| *field != key && go_fold_eq(field, &key))
        {
            return Err(de::Error::custom(format_args!(
                "{CASE_VARIANT_PREFIX}{key}`"
            )));
        }
        match key {
            Cow::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::new(key)),
            Cow::Owned(key) => {
                let key: StringDeserializer<A::Error> = key.into_deserializer();
                seed.deserialize(key)
            }
        }
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An object key, borrowed from the input when it has no escapes (the usual case), so checking
/// it costs no allocation.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

/// Go's `bytes.EqualFold` restricted to what can equal an ASCII field name: ASCII letters
/// ignore case, and U+017F (long s) and U+212A (Kelvin sign) fold to `s` and `k`.
fn go_fold_eq(field: &str, key: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    field.chars().map(fold).eq(key.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::go_fold_eq;

    #[test]
    fn folding_matches_go() {
        assert!(go_fold_eq("manifests", "MANIFESTS"));
        assert!(go_fold_eq("manifests", "manifeſts"));
        assert!(go_fold_eq("mediaType", "mediatype"));
        assert!(go_fold_eq("artifactType", "artifactType"));
        assert!(go_fold_eq("kind", "\u{212a}ind"));
        assert!(!go_fold_eq("manifests", "manifest"));
        assert!(!go_fold_eq("os.version", "os_version"));
        assert!(!go_fold_eq("size", "sizé"));
    }
}
