//! Scopes (what a request needs) and grants (what a credential allows), in distribution's
//! vocabulary: a resource `type` and `name` with a list of `actions`.
//!
//! The same shape is a token's `access` claim entry (`{"type", "name", "actions"}`) and a
//! challenge's `scope` parameter (`repository:library/alpine:pull,push`), so one type serves
//! both: [`Scope`] parses and prints the text form and (de)serializes the JSON form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One action on a resource. Tokens may carry actions layerstore never asks for (a token
/// server is free to grant `metadata-read`); they are kept as [`Action::Other`] and never
/// match anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Action {
    /// `pull`: read manifests, blobs, tags, referrers.
    Pull,
    /// `push`: upload blobs, put manifests.
    Push,
    /// `delete`: delete manifests and blobs.
    Delete,
    /// `*`: in a grant, every action on the resource; in a scope (the catalog's
    /// `registry:catalog:*`), a grant must say `*` itself.
    All,
    /// Any other action name.
    Other(String),
}

impl Action {
    /// The action's name as it is written in scopes and tokens.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::All => "*",
            Action::Other(name) => name,
        }
    }
}

impl From<String> for Action {
    fn from(name: String) -> Self {
        match name.as_str() {
            "pull" => Action::Pull,
            "push" => Action::Push,
            "delete" => Action::Delete,
            "*" => Action::All,
            _ => Action::Other(name),
        }
    }
}

impl From<Action> for String {
    fn from(action: Action) -> Self {
        action.as_str().to_owned()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access to one resource: `type:name:action,action`. The resource type is `repository` for
/// everything below `/v2/<name>/` and `registry` for the catalog (`registry:catalog:*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Resource type: `repository`, `registry`, or whatever a token server writes.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource name: the repository name, or `catalog`.
    pub name: String,
    /// The actions; a token entry without the key has none.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// Why a scope string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Not `type:name:actions` with a non-empty type and name.
    #[error("scope is not type:name:actions")]
    Shape,
}

impl Scope {
    /// `repository:<name>:<actions>`.
    pub fn repository(name: &str, actions: &[Action]) -> Self {
        Scope {
            resource_type: "repository".to_owned(),
            name: name.to_owned(),
            actions: actions.to_vec(),
        }
    }

    /// `registry:catalog:*`, the catalog's scope.
    pub fn catalog() -> Self {
        Scope {
            resource_type: "registry".to_owned(),
            name: "catalog".to_owned(),
            actions: vec![Action::All],
        }
    }

    /// Parses distribution's text form. The name may itself contain `:` (a registry host with
    /// a port, in some token servers' scopes), so the type ends at the first `:` and the
    /// actions start after the last one.
    ///
    /// ```
    /// use layerstore::auth::{Action, Scope};
    /// let scope = Scope::parse("repository:library/alpine:pull,push").unwrap();
    /// assert_eq!(scope, Scope::repository("library/alpine", &[Action::Pull, Action::Push]));
    /// assert_eq!(scope.to_string(), "repository:library/alpine:pull,push");
    /// assert_eq!(Scope::parse("registry:catalog:*").unwrap(), Scope::catalog());
    /// assert!(Scope::parse("repository:alpine").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let (resource_type, rest) = text.split_once(':').ok_or(ScopeError::Shape)?;
        let (name, actions) = rest.rsplit_once(':').ok_or(ScopeError::Shape)?;
        if resource_type.is_empty() || name.is_empty() {
            return Err(ScopeError::Shape);
        }
        let actions = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| Action::from(a.to_owned()))
            .collect();
        Ok(Scope {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }

    /// Whether this scope, read as a grant, covers `action` on `needed`'s resource.
    fn grants(&self, needed: &Scope, action: &Action) -> bool {
        self.resource_type == needed.resource_type
            && self.name == needed.name
            && self
                .actions
                .iter()
                .any(|granted| granted == action || *granted == Action::All)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.resource_type, self.name)?;
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(action.as_str())?;
        }
        Ok(())
    }
}

/// What a verified credential allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Everything: an open registry, or an htpasswd user (distribution's htpasswd has no
    /// per-user access rules).
    Everything,
    /// Exactly the listed access: a token's `access` claim.
    Access(Vec<Scope>),
}

impl Grant {
    /// Whether every action of `needed` is granted (an entry whose actions hold `*` grants
    /// every action on its resource). A scope with no actions is always allowed.
    ///
    /// ```
    /// use layerstore::auth::{Action, Grant, Scope};
    /// let grant = Grant::Access(vec![Scope::repository("a", &[Action::Pull])]);
    /// assert!(grant.allows(&Scope::repository("a", &[Action::Pull])));
    /// assert!(!grant.allows(&Scope::repository("a", &[Action::Pull, Action::Push])));
    /// assert!(!grant.allows(&Scope::repository("b", &[Action::Pull])));
    /// assert!(Grant::Everything.allows(&Scope::catalog()));
    /// ```
    pub fn allows(&self, needed: &Scope) -> bool {
        match self {
            Grant::Everything => true,
            Grant::Access(granted) => needed
                .actions
                .iter()
                .all(|action| granted.iter().any(|g| g.grants(needed, action))),
        }
    }

    /// Whether every scope of `needed` is allowed.
    pub fn allows_all(&self, needed: &[Scope]) -> bool {
        needed.iter().all(|scope| self.allows(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        for text in [
            "repository:a/b:pull",
            "repository:a/b:pull,push",
            "repository:a:delete",
            "registry:catalog:*",
            "repository:localhost:5000/a:pull",
            "repository(plugin):a:pull",
            "repository:a:",
        ] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text, "{text}");
        }
        let with_port = Scope::parse("repository:localhost:5000/a:pull").unwrap();
        assert_eq!(with_port.name, "localhost:5000/a");
        for bad in [
            "",
            "repository",
            "repository:a",
            ":a:pull",
            "repository::pull",
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError::Shape), "{bad:?}");
        }
    }

    #[test]
    fn json_form_is_distributions_access_entry() {
        let entry: Scope = serde_json::from_str(
            r#"{"type":"repository","name":"a","actions":["pull","push","metadata-read"]}"#,
        )
        .unwrap();
        assert_eq!(
            entry.actions,
            [
                Action::Pull,
                Action::Push,
                Action::Other("metadata-read".into())
            ]
        );
        let no_actions: Scope =
            serde_json::from_str(r#"{"type":"repository","name":"a"}"#).unwrap();
        assert!(no_actions.actions.is_empty());
        assert_eq!(
            serde_json::to_string(&Scope::catalog()).unwrap(),
            r#"{"type":"registry","name":"catalog","actions":["*"]}"#
        );
    }

    #[test]
    fn grants_match_type_name_and_each_action() {
        let grant = Grant::Access(vec![
            Scope::repository("a", &[Action::Pull]),
            Scope::repository("a", &[Action::Push]),
            Scope::repository("b", &[Action::All]),
            Scope {
                resource_type: "registry".into(),
                name: "catalog".into(),
                actions: vec![Action::Pull],
            },
        ]);
        // Actions may come from several entries of the same resource.
        assert!(grant.allows(&Scope::repository("a", &[Action::Pull, Action::Push])));
        assert!(!grant.allows(&Scope::repository("a", &[Action::Delete])));
        // `*` grants everything on its resource, and nothing elsewhere.
        assert!(grant.allows(&Scope::repository("b", &[Action::Delete, Action::Push])));
        assert!(!grant.allows(&Scope::repository("c", &[Action::Pull])));
        // The catalog needs `*` itself.
        assert!(!grant.allows(&Scope::catalog()));
        // Same name, other type.
        let other_type = Grant::Access(vec![Scope {
            resource_type: "registry".into(),
            name: "a".into(),
            actions: vec![Action::All],
        }]);
        assert!(!other_type.allows(&Scope::repository("a", &[Action::Pull])));
        // An unknown action never matches a known one.
        let odd = Grant::Access(vec![Scope::repository(
            "a",
            &[Action::Other("pull ".into())],
        )]);
        assert!(!odd.allows(&Scope::repository("a", &[Action::Pull])));
        assert!(Grant::Access(vec![]).allows_all(&[]));
        assert!(!Grant::Access(vec![]).allows_all(&[Scope::catalog()]));
    }
}
