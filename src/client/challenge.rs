//! Parsing `WWW-Authenticate` (RFC 9110, section 11.6.1): the challenges a registry answers a
//! 401 with, such as `Bearer realm="https://auth.example/token",service="registry",
//! scope="repository:library/alpine:pull"`.
//!
//! Registries put commas inside quoted scopes (`scope="repository:a:pull,push"`) and several
//! challenges in one header (`Basic realm="x", Bearer realm="y"`), so a split on commas is not
//! enough: this is a small tokenizer over the header's grammar. Pure: text in, values out.

use std::collections::BTreeMap;

/// One challenge: a scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic`, `bearer`, ... (schemes are case-insensitive).
    pub scheme: String,
    /// The `name=value` parameters, values unquoted and unescaped.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter's value by (lowercase) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The header held no challenge at all.
    #[error("empty WWW-Authenticate header")]
    Empty,
    /// A quoted string never ended.
    #[error("unterminated quoted string in WWW-Authenticate")]
    UnterminatedQuote,
    /// Something other than a token where a scheme or parameter name belongs.
    #[error("malformed WWW-Authenticate at byte {0}")]
    Malformed(usize),
}

/// Parses every challenge of one `WWW-Authenticate` value.
///
/// ```
/// use layerstore::client::challenge::parse_challenges;
///
/// let header = r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#;
/// let challenges = parse_challenges(header).unwrap();
/// assert_eq!(challenges[0].scheme, "bearer");
/// assert_eq!(challenges[0].param("scope"), Some("repository:a/b:pull,push"));
/// ```
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let mut lexer = Lexer {
        text: header.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    loop {
        lexer.skip_separators();
        if lexer.done() {
            break;
        }
        let scheme = lexer.token().ok_or(ChallengeError::Malformed(lexer.at))?;
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        read_params(&mut lexer, &mut challenge)?;
        challenges.push(challenge);
    }
    if challenges.is_empty() {
        return Err(ChallengeError::Empty);
    }
    Ok(challenges)
}

/// Reads `name=value` pairs until the next challenge's scheme (a token not followed by `=`) or
/// the end. A token68 (`Basic dXNlcg==`) is kept under the empty name.
fn read_params(lexer: &mut Lexer<'_>, challenge: &mut Challenge) -> Result<(), ChallengeError> {
    loop {
        lexer.skip_separators();
        let start = lexer.at;
        let Some(name) = lexer.token() else {
            if lexer.done() {
                return Ok(());
            }
            return Err(ChallengeError::Malformed(lexer.at));
        };
        lexer.skip_spaces();
        if lexer.peek() != Some(b'=') {
            // The next challenge begins here.
            lexer.at = start;
            return Ok(());
        }
        lexer.at += 1;
        if lexer.peek() == Some(b'=') || lexer.peek().is_none() || lexer.peek() == Some(b',') {
            // token68 padding: `abc==`; keep the raw text.
            while lexer.peek() == Some(b'=') {
                lexer.at += 1;
            }
            let raw = String::from_utf8_lossy(&lexer.text[start..lexer.at]).into_owned();
            challenge.params.insert(String::new(), raw);
            continue;
        }
        lexer.skip_spaces();
        let value = match lexer.peek() {
            Some(b'"') => lexer.quoted()?,
            _ => lexer
                .token()
                .ok_or(ChallengeError::Malformed(lexer.at))?
                .to_owned(),
        };
        challenge.params.insert(name.to_ascii_lowercase(), value);
    }
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn done(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    /// An RFC 9110 token (tchar+), plus `/` so token68 values and bare URLs survive.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_token_char) {
            self.at += 1;
        }
        if self.at == start {
            return None;
        }
        std::str::from_utf8(&self.text[start..self.at]).ok()
    }

    /// A quoted string starting at the current `"`, with `\x` escapes resolved.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        self.at += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::UnterminatedQuote),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    let escaped = self
                        .text
                        .get(self.at + 1)
                        .ok_or(ChallengeError::UnterminatedQuote)?;
                    value.push(*escaped);
                    self.at += 2;
                }
                Some(byte) => {
                    value.push(byte);
                    self.at += 1;
                }
            }
        }
    }
}

fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Challenge {
        let mut all = parse_challenges(header).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn bearer_with_commas_inside_quotes() {
        let c = one(
            r#"Bearer realm="https://a/token",service="s",scope="repository:x:pull,push repository:y:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://a/token"));
        assert_eq!(c.param("service"), Some("s"));
        assert_eq!(
            c.param("scope"),
            Some("repository:x:pull,push repository:y:pull")
        );
    }

    #[test]
    fn several_challenges_and_case() {
        let all =
            parse_challenges(r#"Basic realm="r1", BEARER Realm="r2" , error="invalid_token""#)
                .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "basic");
        assert_eq!(all[0].param("realm"), Some("r1"));
        assert_eq!(all[1].scheme, "bearer");
        assert_eq!(all[1].param("realm"), Some("r2"));
        assert_eq!(all[1].param("error"), Some("invalid_token"));
    }

    #[test]
    fn unquoted_values_spaces_and_escapes() {
        let c = one(r#"Bearer realm = https://a/b , service=reg, note="say \"hi\"""#);
        assert_eq!(c.param("realm"), Some("https://a/b"));
        assert_eq!(c.param("service"), Some("reg"));
        assert_eq!(c.param("note"), Some(r#"say "hi""#));
    }

    #[test]
    fn bare_scheme_and_token68() {
        assert!(one("Basic").params.is_empty());
        assert_eq!(one("Negotiate abc==").param(""), Some("abc=="));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_challenges(""), Err(ChallengeError::Empty));
        assert_eq!(parse_challenges(" , "), Err(ChallengeError::Empty));
        assert_eq!(
            parse_challenges(r#"Bearer realm="x"#),
            Err(ChallengeError::UnterminatedQuote)
        );
        assert!(matches!(
            parse_challenges("Bearer realm=\"x\" @"),
            Err(ChallengeError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(header in "\\PC{0,80}") {
            let _ = parse_challenges(&header);
        }
    }
}
