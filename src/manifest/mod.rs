//! Manifests, as pure functions: parse and validate a pushed body, decide whether a client's
//! `Accept` allows serving it, build referrers answers, paginate listings.
//!
//! Nothing here touches a file or a socket. The store calls [`Manifest::parse`] on a PUT body,
//! checks the [`references`](ParsedManifest::references) exist, then stores the exact bytes under
//! [`digest`](ParsedManifest::digest); the HTTP layer maps [`ManifestError`] variants to OCI error
//! codes. The rules and where they follow distribution 2.8 or the OCI specs are in
//! `docs/manifests.md`.
//!
//! | file | concept |
//! |---|---|
//! | `media_type` | media type constants, the [`MediaType`] kinds, the RFC 6838 grammar |
//! | `error` | [`ManifestError`] and its parts |
//! | `raw` | the serde shape of the JSON (private) |
//! | `object` | objects only, no case-variant keys: closing gaps between serde and Go (private) |
//! | `descriptor` | validated [`Descriptor`]s and [`Platform`]s |
//! | `parse` | [`Manifest::parse`], [`MAX_MANIFEST_SIZE`] |
//! | `parsed` | [`ParsedManifest`] accessors and [`Reference`]s |
//! | `accept` | [`acceptable`]: `Accept` negotiation |
//! | `referrers` | [`ReferrerRecord`], [`referrers_index`], [`referrers_tag`] |
//! | `pagination` | [`paginate`], [`catalog_order`], [`link_header`] |

mod accept;
mod descriptor;
mod error;
pub mod media_type;
mod object;
mod pagination;
mod parse;
mod parsed;
mod raw;
mod referrers;

pub use accept::acceptable;
pub use descriptor::{Descriptor, Platform};
pub use error::{DescriptorIndex, DescriptorProblem, JsonProblem, ManifestError};
pub use media_type::MediaType;
pub use pagination::{catalog_order, link_header, paginate, paginate_by, Page};
pub use parse::MAX_MANIFEST_SIZE;
pub use parsed::{ParsedManifest, Reference, ReferenceTarget};
pub use referrers::{
    referrers_index, referrers_tag, ReferrerRecord, ReferrerRecordError, ReferrersIndex,
};

/// The name to parse with: `Manifest::parse(content_type, bytes)` gives a [`ParsedManifest`].
pub type Manifest = ParsedManifest;
