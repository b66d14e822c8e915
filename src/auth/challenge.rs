//! The `WWW-Authenticate` challenge of a 401: `Basic realm="R"` for htpasswd, and for tokens
//! distribution's `Bearer realm="R",service="S",scope="…"` with `error="…"` when a token was
//! sent and refused.
//!
//! The scope parameter names exactly what the refused request needs (several scopes are
//! separated by spaces in the one value), so a client asks its token server for that and
//! retries. Values are quoted-strings (RFC 9110): `"` and `\` are escaped with a backslash, and
//! control characters, which no header may carry, are dropped.

use std::fmt;

use super::scope::Scope;

/// The `error` parameter of a Bearer challenge (RFC 6750, section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// A token was sent but is malformed, expired, wrongly signed or for someone else.
    InvalidToken,
    /// The token is valid but does not grant what the request needs.
    InsufficientScope,
}

impl BearerError {
    /// The parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A challenge, rendered by its `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="R"`.
    Basic {
        /// The realm shown by clients.
        realm: String,
    },
    /// `Bearer realm="R",service="S"[,scope="…"][,error="…"]`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// This registry's name at the token server (the tokens' audience).
        service: String,
        /// What the request needs (none for `/v2/`).
        scopes: Vec<Scope>,
        /// Why a token that was sent is refused.
        error: Option<BearerError>,
    },
}

impl fmt::Display for Challenge {
    /// ```
    /// use layerstore::auth::{Action, BearerError, Challenge, Scope};
    /// let challenge = Challenge::Bearer {
    ///     realm: "https://auth.example/token".into(),
    ///     service: "registry.example".into(),
    ///     scopes: vec![Scope::repository("a/b", &[Action::Pull, Action::Push])],
    ///     error: Some(BearerError::InsufficientScope),
    /// };
    /// assert_eq!(
    ///     challenge.to_string(),
    ///     r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope""#
    /// );
    /// let basic = Challenge::Basic { realm: r#"my "registry""#.into() };
    /// assert_eq!(basic.to_string(), r#"Basic realm="my \"registry\"""#);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Challenge::Basic { realm } => write!(f, "Basic realm={}", Quoted(realm)),
            Challenge::Bearer {
                realm,
                service,
                scopes,
                error,
            } => {
                write!(
                    f,
                    "Bearer realm={},service={}",
                    Quoted(realm),
                    Quoted(service)
                )?;
                if !scopes.is_empty() {
                    let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                    write!(f, ",scope={}", Quoted(&joined.join(" ")))?;
                }
                if let Some(error) = error {
                    write!(f, ",error=\"{}\"", error.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// A quoted-string.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_control() => {}
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::Action;

    fn bearer(scopes: Vec<Scope>, error: Option<BearerError>) -> String {
        Challenge::Bearer {
            realm: "http://127.0.0.1:1/token".into(),
            service: "svc".into(),
            scopes,
            error,
        }
        .to_string()
    }

    #[test]
    fn bearer_forms() {
        assert_eq!(
            bearer(vec![], None),
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc""#
        );
        assert_eq!(
            bearer(vec![], Some(BearerError::InvalidToken)),
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",error="invalid_token""#
        );
        assert_eq!(
            bearer(
                vec![
                    Scope::repository("a", &[Action::Pull]),
                    Scope::repository("b", &[Action::Pull, Action::Push]),
                ],
                None
            ),
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a:pull repository:b:pull,push""#
        );
        assert_eq!(
            bearer(vec![Scope::catalog()], None),
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="registry:catalog:*""#
        );
    }

    #[test]
    fn quoting_escapes_and_drops_controls() {
        let basic = Challenge::Basic {
            realm: "a\\b\"c\r\nd\te".into(),
        };
        assert_eq!(basic.to_string(), r#"Basic realm="a\\b\"cde""#);
        // Always a valid header value.
        assert!(hyper::header::HeaderValue::try_from(basic.to_string()).is_ok());
    }
}
