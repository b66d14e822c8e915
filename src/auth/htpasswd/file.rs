//! The htpasswd file: `user:bcrypt-hash` lines, as `htpasswd -Bbn user password` writes and
//! distribution reads. Blank lines and `#` comments are skipped; anything else that is not a
//! user and a bcrypt hash (`$2y$`, `$2a$`, `$2b$`) is an error naming the line, never its text,
//! so a hash never reaches a log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The hash cost used for the stand-in hash when the file has no users (`htpasswd -B`'s default).
const DEFAULT_COST: u32 = 5;

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// The file cannot be read (missing, unreadable, not UTF-8).
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line that is not `user:bcrypt-hash`.
    #[error("{path}, line {line}: {problem}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
}

/// What is wrong with a line (never quoting it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// No `:`, or nothing before it.
    #[error("not user:hash")]
    NotUserAndHash,
    /// The hash is not a bcrypt hash (only bcrypt is accepted, as in distribution).
    #[error("the password hash is not bcrypt ($2y$, $2a$ or $2b$; make it with htpasswd -B)")]
    NotBcrypt,
}

/// The users of a file, each with a hash that parses as bcrypt.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl Users {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Users, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text).map_err(|(line, problem)| HtpasswdError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })
    }

    /// Parses htpasswd text; an error gives the line number and the problem. A user listed
    /// twice keeps the last hash, as distribution's reader does.
    ///
    /// ```
    /// use layerstore::auth::htpasswd::{LineProblem, Users};
    /// let text = "# comment\n\nalice:$2y$04$UuTkLRZZ6QofpDOlMz32MuuxEHA43WOemOYHPz6.SjsVsyO1tDU96\n";
    /// assert_eq!(Users::parse(text).unwrap().len(), 1);
    /// assert_eq!(Users::parse("bob:{SHA}abc=\n").unwrap_err(), (1, LineProblem::NotBcrypt));
    /// ```
    pub fn parse(text: &str) -> Result<Users, (usize, LineProblem)> {
        let mut hashes = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = parse_line(line).map_err(|problem| (index + 1, problem))?;
            hashes.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Users { hashes })
    }

    /// The hash of `user`.
    pub fn hash(&self, user: &str) -> Option<&str> {
        self.hashes.get(user).map(String::as_str)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The highest bcrypt cost of the file: an unknown user is checked against a stand-in hash
    /// of this cost, so it takes as long as a wrong password (exactly as long when, as usual,
    /// every hash has the same cost).
    pub fn max_cost(&self) -> u32 {
        self.hashes
            .values()
            .filter_map(|hash| bcrypt::HashParts::from_str(hash).ok())
            .map(|parts| parts.get_cost())
            .max()
            .unwrap_or(DEFAULT_COST)
    }
}

fn parse_line(line: &str) -> Result<(&str, &str), LineProblem> {
    let (user, hash) = line.split_once(':').ok_or(LineProblem::NotUserAndHash)?;
    if user.is_empty() {
        return Err(LineProblem::NotUserAndHash);
    }
    let prefixed = ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p));
    let cost_ok =
        bcrypt::HashParts::from_str(hash).is_ok_and(|parts| (4..=31).contains(&parts.get_cost()));
    if !prefixed || !cost_ok {
        return Err(LineProblem::NotBcrypt);
    }
    Ok((user, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real bcrypt hash of `password` (cost 4, from the bcrypt crate's tests).
    const ALICE: &str = "alice:$2y$04$UuTkLRZZ6QofpDOlMz32MuuxEHA43WOemOYHPz6.SjsVsyO1tDU96";

    #[test]
    fn reads_users_and_skips_comments() {
        let text = format!("  # users\n\n{ALICE}\r\n  bob:$2b$12$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u  \n");
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.hash("alice").unwrap().starts_with("$2y$04$"));
        assert!(users.hash("bob").unwrap().starts_with("$2b$12$"));
        assert_eq!(users.hash("carol"), None);
        assert_eq!(users.max_cost(), 12);
        assert_eq!(Users::parse("").unwrap().max_cost(), DEFAULT_COST);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let cases = [
            (
                format!("{ALICE}\nnocolon\n"),
                2,
                LineProblem::NotUserAndHash,
            ),
            (":$2y$05$x\n".to_owned(), 1, LineProblem::NotUserAndHash),
            (
                format!("# c\n{ALICE}\ncarol:{{SHA}}qvTGHdzF6KLavt4PO0gs2a6pQ00=\n"),
                3,
                LineProblem::NotBcrypt,
            ),
            ("dave:$apr1$abc$def\n".to_owned(), 1, LineProblem::NotBcrypt),
            ("erin:plaintext\n".to_owned(), 1, LineProblem::NotBcrypt),
            // A bcrypt prefix on something that is not a hash.
            ("frank:$2y$05$short\n".to_owned(), 1, LineProblem::NotBcrypt),
            // $2x$ (crypt_blowfish's bug-compatible mode) is not accepted.
            (ALICE.replace("$2y$", "$2x$"), 1, LineProblem::NotBcrypt),
            (ALICE.replace("$04$", "$99$"), 1, LineProblem::NotBcrypt),
        ];
        for (text, line, problem) in cases {
            assert_eq!(Users::parse(&text).unwrap_err(), (line, problem), "{text}");
        }
    }

    #[test]
    fn errors_name_the_line_but_never_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "bob:{SHA}qvTGHdzF6KLavt4PO0gs2a6pQ00=\n").unwrap();
        let message = Users::load(&path).unwrap_err().to_string();
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains("qvTG"), "{message}");
        let missing = Users::load(&dir.path().join("none")).unwrap_err();
        assert!(matches!(missing, HtpasswdError::Read { .. }));
    }
}
