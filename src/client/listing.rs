//! Listings that page: tags, the catalog, and referrers.

use hyper::header::LINK;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::auth::Scopes;
use super::blobs::{pull, repo_path};
use super::error::ClientError;
use super::registry::{Call, Registry};
use super::transport::read_body;
use crate::digest::Digest;

/// Largest page of a listing read.
const MAX_PAGE_BYTES: usize = 16 << 20;
/// Most pages followed in one listing (a registry whose `Link`s loop cannot hang a client).
const MAX_PAGES: usize = 100_000;

#[derive(Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

impl Registry {
    /// Every tag of `repo`, following `Link` pages of `page_size` (`None`: the registry's).
    ///
    /// ```
    /// # layerstore::client::doctest::with_registry(|host| async move {
    /// use layerstore::client::{ClientOptions, Registry};
    ///
    /// let registry = Registry::new(&host, ClientOptions::plain_http())?;
    /// let config = registry.push_blob_bytes("app", "{}".into()).await?;
    /// let manifest = format!(
    ///     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    ///     "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},
    ///     "layers":[]}}"#
    /// );
    /// for tag in ["v1", "v2", "v3"] {
    ///     let media_type = "application/vnd.oci.image.manifest.v1+json";
    ///     registry.put_manifest("app", tag, media_type, manifest.clone().into()).await?;
    /// }
    /// assert_eq!(registry.tags("app", Some(2)).await?, ["v1", "v2", "v3"]); // two pages
    /// let got = registry.get_manifest("app", "v2", &[]).await?;
    /// assert_eq!(got.bytes, manifest.as_bytes());
    /// # Ok(()) });
    /// ```
    pub async fn tags(
        &self,
        repo: &str,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let first = repo_path(repo, &page_query("tags/list", page_size))?;
        self.paged(first, pull(repo), |bytes| {
            serde_json::from_slice::<TagPage>(bytes).map(|p| p.tags.unwrap_or_default())
        })
        .await
    }

    /// Every repository of the registry, following `Link` pages.
    pub async fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>, ClientError> {
        let first = page_query("/v2/_catalog", page_size);
        self.paged(first, Scopes::catalog(), |bytes| {
            serde_json::from_slice::<CatalogPage>(bytes).map(|p| p.repositories.unwrap_or_default())
        })
        .await
    }

    /// The referrers index of `digest` (an OCI image index), optionally filtered by
    /// `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut path = repo_path(repo, &format!("referrers/{digest}"))?;
        if let Some(kind) = artifact_type {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("artifactType", kind)
                .finish();
            path = format!("{path}?{query}");
        }
        let response = self
            .send(Call::new(Method::GET, path, pull(repo)), &[StatusCode::OK])
            .await?;
        let bytes = read_body(response, MAX_PAGE_BYTES, "referrers").await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("referrers: {e}")))
    }

    async fn paged<F>(
        &self,
        first: String,
        scopes: Scopes,
        parse: F,
    ) -> Result<Vec<String>, ClientError>
    where
        F: Fn(&[u8]) -> serde_json::Result<Vec<String>>,
    {
        let mut all = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(target) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ClientError::Protocol("listing has too many pages".into()));
            }
            let response = self
                .send(
                    Call::new(Method::GET, target, scopes.clone()),
                    &[StatusCode::OK],
                )
                .await?;
            next = response
                .headers()
                .get(LINK)
                .and_then(|l| l.to_str().ok())
                .and_then(next_link);
            let bytes = read_body(response, MAX_PAGE_BYTES, "listing").await?;
            let page = parse(&bytes).map_err(|e| ClientError::Protocol(format!("listing: {e}")))?;
            all.extend(page);
        }
        Ok(all)
    }
}

fn page_query(path: &str, page_size: Option<usize>) -> String {
    match page_size {
        Some(n) => format!("{path}?n={n}"),
        None => path.to_owned(),
    }
}

/// The target of a `Link: <URL>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn links() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
