//! Parsing of `WWW-Authenticate` challenges (RFC 7235 auth-params).

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass to the token endpoint.
        service: Option<String>,
        /// The scopes the registry asked for, split at spaces.
        scopes: Vec<String>,
        /// The `error` parameter, such as `invalid_token` for an expired token.
        error: Option<String>,
    },
}

impl Challenge {
    /// Parses one header value; returns `None` for schemes other than Basic and Bearer.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let lookup = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let scopes = lookup("scope")
            .map(|scope| scope.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Challenge::Bearer {
            realm: lookup("realm")?,
            service: lookup("service"),
            scopes,
            error: lookup("error"),
        })
    }
}

/// Splits `key="value", key=token` pairs, keeping commas inside quotes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_owned();
        if key.is_empty() {
            return params;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            read_quoted(&mut chars)
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned()
        };
        params.push((key, value));
    }
}

fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => value.extend(chars.next()),
            other => value.push(other),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bearer_with_comma_in_scope() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        let challenge = Challenge::parse(header).unwrap();
        assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: "https://auth.example/token".to_owned(),
                service: Some("registry.example".to_owned()),
                scopes: vec!["repository:a/b:pull,push".to_owned()],
                error: None,
            }
        );
    }

    #[test]
    fn parse_bearer_error_and_spaces() {
        let header = r#"Bearer realm="http://127.0.0.1:1/t", error="invalid_token", scope="a b""#;
        let Some(Challenge::Bearer { error, scopes, .. }) = Challenge::parse(header) else {
            panic!("not a bearer challenge");
        };
        assert_eq!(error.as_deref(), Some("invalid_token"));
        assert_eq!(scopes, vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn parse_basic() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn parse_bearer_without_realm() {
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
    }
}
