//! The built-in credential rules, each with examples that a test runs.
//!
//! Rules are ordered most specific first: when two rules report the same
//! secret at the same place, the detector keeps the earlier one. Every rule
//! that can overlap the generic assignment rules lists them in `overrides`.
//!
//! Every regex starts with `(?-u)`, so classes match bytes and `\b` is an
//! ASCII word boundary: the rules run over binaries as well as text, and
//! the regex crate's DFA cannot handle Unicode word boundaries on
//! non-ASCII input.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::{Allowlist, DEFAULT_MAX_MATCH_LEN, Rule, RuleError, SecretDecoding, compile_regex};

/// A built-in rule as static data, with the examples that prove it.
#[derive(Debug)]
pub struct BuiltinRule {
    /// Stable rule id.
    pub id: &'static str,
    /// Credential kind reported in findings.
    pub kind: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Byte regex (Rust `regex` syntax).
    pub regex: &'static str,
    /// Capture group holding the secret; 0 is the whole match.
    pub secret_group: usize,
    /// Lower-case keywords; at least one must occur near a match.
    pub keywords: &'static [&'static str],
    /// Minimum Shannon entropy of the secret, in bits per byte.
    pub min_entropy: Option<f64>,
    /// Upper bound on one match's length in bytes; 0 means the default.
    pub max_match_len: usize,
    /// Secret regexes to drop (placeholders, documentation examples).
    pub allow_regexes: &'static [&'static str],
    /// Ids of less specific rules this rule replaces when matches overlap.
    pub overrides: &'static [&'static str],
    /// Extra validation of the secret bytes.
    pub validate: Option<fn(&[u8]) -> bool>,
    /// Decoding applied to the secret before fingerprinting.
    pub decoding: SecretDecoding,
    /// Texts in which the rule must find exactly the given secret (after
    /// decoding).
    pub positives: &'static [(&'static str, &'static str)],
    /// Texts in which the rule must find nothing.
    pub negatives: &'static [&'static str],
}

impl BuiltinRule {
    /// Compiles the rule.
    ///
    /// # Errors
    ///
    /// [`RuleError`] when the regex does not compile or lacks the group.
    pub fn compile(&self) -> Result<Rule, RuleError> {
        let regex = compile_regex(self.id, self.regex, self.secret_group)?;
        let mut allowlist = Allowlist::default();
        for pattern in self.allow_regexes {
            allowlist.regexes.push(compile_regex(self.id, pattern, 0)?);
        }
        Ok(Rule {
            id: self.id.to_owned(),
            kind: self.kind.to_owned(),
            description: self.description.to_owned(),
            regex,
            secret_group: self.secret_group,
            keywords: self.keywords.iter().map(|k| k.to_string()).collect(),
            min_entropy: self.min_entropy,
            max_match_len: if self.max_match_len == 0 {
                DEFAULT_MAX_MATCH_LEN
            } else {
                self.max_match_len
            },
            allowlist,
            overrides: self.overrides.iter().map(|k| k.to_string()).collect(),
            validate: self.validate,
            decoding: self.decoding,
            path: None,
        })
    }
}

const BASE: BuiltinRule = BuiltinRule {
    id: "",
    kind: "",
    description: "",
    regex: "",
    secret_group: 0,
    keywords: &[],
    min_entropy: None,
    max_match_len: 0,
    allow_regexes: &[],
    overrides: &[],
    validate: None,
    decoding: SecretDecoding::Raw,
    positives: &[],
    negatives: &[],
};

/// The two generic assignment rules, which every specific rule overrides.
const GENERIC: &[&str] = &["password-assignment", "generic-secret-assignment"];

/// The generic rules and the URL-password rule.
const GENERIC_AND_URL: &[&str] = &[
    "password-assignment",
    "generic-secret-assignment",
    "url-password",
];

/// Placeholder words that mark a value as an example, not a credential.
/// Compared case-insensitively against the whole value.
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "change_me",
    "change-me",
    "example",
    "placeholder",
    "your_",
    "your-",
    "yourpass",
    "yourtoken",
    "xxxx",
    "****",
    "....",
    "redacted",
    "dummy",
    "replace",
    "insert",
    "${",
    "$(",
    "{{",
    "<",
    ">",
];

/// Values that are placeholders when they are the whole password.
const PLACEHOLDER_VALUES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "null",
    "none",
    "nil",
    "undefined",
    "empty",
    "hidden",
    "test",
    "foo",
    "bar",
    "foobar",
];

/// Checks for placeholder text: template variables, `<...>`, `xxxx`,
/// `changeme`, documentation words.
fn is_placeholder(value: &[u8]) -> bool {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDER_VALUES
        .iter()
        .any(|word| lower == word.as_bytes())
    {
        return true;
    }
    if matches!(value.first(), Some(b'$' | b'%' | b'{' | b'*')) {
        return true;
    }
    PLACEHOLDER_WORDS
        .iter()
        .any(|word| memchr::memmem::find(&lower, word.as_bytes()).is_some())
}

/// Checks for printf, Python and template format directives (`%s`,
/// `%-08lx`, `{}`, `{0}`, `%(name)s`).
fn looks_like_format_string(value: &[u8]) -> bool {
    for (i, &byte) in value.iter().enumerate() {
        let rest = &value[i + 1..];
        if byte == b'%' {
            let spec_len = rest
                .iter()
                .take_while(|b| {
                    b.is_ascii_digit()
                        || matches!(b, b'-' | b'+' | b'.' | b'#' | b'l' | b'h' | b'z' | b'*')
                })
                .count();
            if rest
                .get(spec_len)
                .is_some_and(|b| b"sdiuxXfgpcoeEn(".contains(b))
            {
                return true;
            }
        }
        if byte == b'{'
            && rest
                .first()
                .is_some_and(|b| *b == b'}' || b.is_ascii_digit())
        {
            return true;
        }
    }
    false
}

/// Checks for a file system path or a URL.
fn looks_like_path(value: &[u8]) -> bool {
    value.starts_with(b"/")
        || value.starts_with(b"./")
        || value.starts_with(b"../")
        || value.starts_with(b"~/")
        || memchr::memmem::find(value, b"://").is_some()
}

/// Checks for a program identifier: `snake_case`, `camelCase`,
/// `kebab-case`, `dotted.name`, or words joined by `=` or `:` as in
/// `key=value` text. An identifier has only word characters, at most two
/// digits besides a trailing number, and at most two letters in words
/// shorter than three letters.
/// Random strings of the same length have many one- and two-letter runs
/// between digits and case changes.
fn looks_like_identifier(value: &[u8]) -> bool {
    let word_chars = value
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'=' | b':'));
    if !word_chars {
        return false;
    }
    // A number at the end (`user_12345`, `retry=30000`) is part of an
    // identifier or value; digits scattered through the text are not.
    let trailing_digits = value
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let digits = value[..value.len() - trailing_digits]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .count();
    if digits > 2 {
        return false;
    }
    let mut short_word_letters = 0;
    let mut run = 0;
    let mut previous_lower = false;
    for &byte in value {
        let starts_word = byte.is_ascii_uppercase() && previous_lower;
        if !byte.is_ascii_alphabetic() || starts_word {
            if (1..3).contains(&run) {
                short_word_letters += run;
            }
            run = 0;
        }
        if byte.is_ascii_alphabetic() {
            run += 1;
        }
        previous_lower = byte.is_ascii_lowercase();
    }
    if (1..3).contains(&run) {
        short_word_letters += run;
    }
    short_word_letters <= 2
}

/// Counts the character classes (lower case, upper case, digit, other)
/// that occur in `value`.
fn character_classes(value: &[u8]) -> usize {
    let lower = value.iter().any(u8::is_ascii_lowercase);
    let upper = value.iter().any(u8::is_ascii_uppercase);
    let digit = value.iter().any(u8::is_ascii_digit);
    let other = value.iter().any(|b| !b.is_ascii_alphanumeric());
    [lower, upper, digit, other].iter().filter(|&&x| x).count()
}

/// Validates the value of a generic `password = ...` or `token = ...`
/// assignment: no placeholder, format string, path or identifier, and at
/// least two character classes.
fn validate_generic_value(value: &[u8]) -> bool {
    !is_placeholder(value)
        && !looks_like_format_string(value)
        && !looks_like_path(value)
        && !looks_like_identifier(value)
        && character_classes(value) >= 2
}

/// Validates a vendor token with a fixed prefix: not a placeholder.
fn validate_token(value: &[u8]) -> bool {
    !is_placeholder(value)
}

/// Validates an AWS secret access key: not a placeholder, and both upper
/// and lower case letters, which excludes hex digests of the same length.
fn validate_aws_secret(value: &[u8]) -> bool {
    !is_placeholder(value)
        && value.iter().any(u8::is_ascii_uppercase)
        && value.iter().any(u8::is_ascii_lowercase)
}

/// Validates a Slack token: not a placeholder, at least 30 bytes, with
/// digits.
fn validate_slack_token(value: &[u8]) -> bool {
    !is_placeholder(value) && value.len() >= 30 && value.iter().any(u8::is_ascii_digit)
}

/// Validates a Slack webhook URL: not a placeholder, and a last path
/// segment of at least 16 bytes.
fn validate_slack_webhook(value: &[u8]) -> bool {
    let last = value.rsplit(|b| *b == b'/').next().unwrap_or_default();
    !is_placeholder(value) && last.len() >= 16
}

/// Validates a PEM or OpenSSH private key block: at least 40 base64
/// characters between the BEGIN and END lines.
fn validate_private_key(value: &[u8]) -> bool {
    let Some(end) = memchr::memmem::find(value, b"-----END") else {
        return false;
    };
    let body_start = memchr::memmem::find(&value[5..], b"-----").map_or(end, |i| i + 10);
    if body_start >= end {
        return false;
    }
    let body = &value[body_start..end];
    let base64_chars = body
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .count();
    base64_chars >= 40
}

/// Validates a service-account JSON object: it has a private key and a
/// client email, so it is a key file and not a reference to one.
fn validate_gcp_service_account(value: &[u8]) -> bool {
    memchr::memmem::find(value, b"\"private_key\"").is_some()
        && memchr::memmem::find(value, b"\"client_email\"").is_some()
}

/// Decodes a base64url JWT segment, with or without padding.
fn decode_jwt_segment(segment: &[u8]) -> Option<serde_json::Value> {
    let trimmed: Vec<u8> = segment.iter().copied().filter(|b| *b != b'=').collect();
    let bytes = URL_SAFE_NO_PAD.decode(trimmed).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Validates a JWT: the header decodes to a JSON object with an `alg`
/// string, and the payload to a JSON object.
fn validate_jwt(value: &[u8]) -> bool {
    let mut parts = value.split(|b| *b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let header_ok = decode_jwt_segment(header)
        .is_some_and(|h| h.get("alg").is_some_and(serde_json::Value::is_string));
    header_ok && decode_jwt_segment(payload).is_some_and(|p| p.is_object())
}

/// Validates a Docker `auth` value: base64 of `user:password` with both
/// parts present, printable, and a password that is not a placeholder.
fn validate_docker_auth(value: &[u8]) -> bool {
    let Ok(decoded) = STANDARD
        .decode(value)
        .or_else(|_| STANDARD_NO_PAD.decode(value))
    else {
        return false;
    };
    if !decoded.iter().all(|b| (0x20..0x7f).contains(b)) {
        return false;
    }
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    !user.is_empty() && !password.is_empty() && !is_placeholder(password)
}

/// Validates a URL with a password (`scheme://user:password@host...`): the
/// password is not a placeholder, a template or format directive, not the
/// user name repeated (`guest:guest`), and a host follows the `@`.
fn validate_url_password(value: &[u8]) -> bool {
    let Some(scheme_end) = memchr::memmem::find(value, b"://") else {
        return false;
    };
    let rest = &value[scheme_end + 3..];
    let Some(at) = rest.iter().position(|b| *b == b'@') else {
        return false;
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&userinfo[..colon], &userinfo[colon + 1..]);
    let host_ok = rest
        .get(at + 1)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'[');
    host_ok
        && password.len() >= 3
        && password != user
        && !is_placeholder(password)
        && !looks_like_format_string(password)
}

/// Base64 body of the made-up private keys in the examples, with real
/// newlines.
macro_rules! pem_body {
    () => {
        "0qvSAY8FrgVy0x9QsEzvYX63YzufY7Z8HU3eYvbT8m+U2b/hhNqP4UF6LzvQ5Aif\n\
         TtlSEeidY5djUo/5uwconHLq76Ywo43/AXDlqVjFeiAu7Hh5AtKvm3mFVcpcn8KD\n\
         4stE9weyzNcbaGbJqbH2hMtr9LDxCDnJcJGs1r5YKOx95wkQPunWHadCoLx7QMEe\n\
         7IUgzgy4fLaotBczVU9S"
    };
}

/// The same body JSON-escaped, with newlines written as `\n`.
macro_rules! pem_body_json {
    () => {
        r"0qvSAY8FrgVy0x9QsEzvYX63YzufY7Z8HU3eYvbT8m+U2b/hhNqP4UF6LzvQ5Aif\nTtlSEeidY5djUo/5uwconHLq76Ywo43/AXDlqVjFeiAu7Hh5AtKvm3mFVcpcn8KD\n4stE9weyzNcbaGbJqbH2hMtr9LDxCDnJcJGs1r5YKOx95wkQPunWHadCoLx7QMEe\n7IUgzgy4fLaotBczVU9S"
    };
}

/// A made-up service-account key file, without its trailing newline.
macro_rules! gcp_json {
    () => {
        concat!(
            "{\n  \"type\": \"service_account\",\n",
            "  \"project_id\": \"demo-project-4821\",\n",
            "  \"private_key_id\": \"3c1f0e9a7b5d2c8e4f6a0b1d3e5f7a9c2b4d6e8f\",\n",
            "  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n",
            pem_body_json!(),
            "\\n-----END PRIVATE KEY-----\\n\",\n",
            "  \"client_email\": \"deployer@demo-project-4821.iam.gserviceaccount.com\",\n",
            "  \"client_id\": \"104729307518264039127\"\n}"
        )
    };
}

/// Characters of a generic secret value: printable ASCII without quotes,
/// whitespace, backslash, comma, semicolon, brackets and braces.
macro_rules! value_class {
    () => {
        r"A-Za-z0-9!#$%&*+./:<=>?@^_~-"
    };
}

/// Separator between a variable name and its value: optional (escaped)
/// quote, then `=`, `:`, `:=` or `=>`, then an optional (escaped) quote.
macro_rules! assign {
    () => {
        r#"\\?["']?\s{0,4}(?::=|=>|[:=])\s{0,4}\\?["']?"#
    };
}

/// Every built-in rule, most specific first.
pub static BUILTIN_RULES: &[BuiltinRule] = &[
    BuiltinRule {
        id: "private-key",
        kind: "private-key",
        description: "PEM or OpenSSH private key block, raw or JSON-escaped",
        // The BEGIN and END labels are not required to agree: the regex
        // crate has no backreferences.
        regex: concat!(
            r"(?-u)-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
            r"(?:\\[rn]|[\r\n]|[A-Za-z0-9+/=:, \t-])+?",
            r"-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
        ),
        keywords: &["private key-----"],
        max_match_len: 8192,
        validate: Some(validate_private_key),
        decoding: SecretDecoding::JsonString,
        overrides: GENERIC,
        positives: &[
            (
                concat!(
                    "key:\n-----BEGIN RSA PRIVATE KEY-----\n",
                    pem_body!(),
                    "\n-----END RSA PRIVATE KEY-----\n"
                ),
                concat!(
                    "-----BEGIN RSA PRIVATE KEY-----\n",
                    pem_body!(),
                    "\n-----END RSA PRIVATE KEY-----"
                ),
            ),
            (
                concat!(
                    "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n",
                    pem_body_json!(),
                    "\\n-----END PRIVATE KEY-----\\n\"}"
                ),
                concat!(
                    "-----BEGIN PRIVATE KEY-----\n",
                    pem_body!(),
                    "\n-----END PRIVATE KEY-----"
                ),
            ),
            (
                concat!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\r\n",
                    pem_body!(),
                    "\r\n-----END OPENSSH PRIVATE KEY-----\r\n"
                ),
                concat!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\r\n",
                    pem_body!(),
                    "\r\n-----END OPENSSH PRIVATE KEY-----"
                ),
            ),
            (
                concat!(
                    "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
                    "DEK-Info: AES-128-CBC,9A4F0C27D1E3B5A6C8D0E2F4A6B8C0D2\n\n",
                    pem_body!(),
                    "\n-----END EC PRIVATE KEY-----"
                ),
                concat!(
                    "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
                    "DEK-Info: AES-128-CBC,9A4F0C27D1E3B5A6C8D0E2F4A6B8C0D2\n\n",
                    pem_body!(),
                    "\n-----END EC PRIVATE KEY-----"
                ),
            ),
            (
                concat!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                    pem_body!(),
                    "\n-----END ENCRYPTED PRIVATE KEY-----"
                ),
                concat!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                    pem_body!(),
                    "\n-----END ENCRYPTED PRIVATE KEY-----"
                ),
            ),
        ],
        negatives: &[
            concat!(
                "-----BEGIN PUBLIC KEY-----\n",
                pem_body!(),
                "\n-----END PUBLIC KEY-----"
            ),
            "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBg\n-----END PRIVATE KEY-----",
            "if (line == \"-----BEGIN RSA PRIVATE KEY-----\") { read_key(); }",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "gcp-service-account",
        kind: "gcp-service-account",
        description: "Google Cloud service-account JSON key file (the whole object)",
        // A key file is one flat JSON object, so the regex extends from
        // "type": "service_account" over brace-free text to the enclosing
        // braces. The secret is the object and one trailing newline, so its
        // fingerprint is the SHA-256 of the key file.
        regex: r#"(?-u)\{[^{}]*"type"\s*:\s*"service_account"[^{}]*\}(?:\r?\n)?"#,
        keywords: &["service_account"],
        max_match_len: 16384,
        validate: Some(validate_gcp_service_account),
        overrides: GENERIC_AND_URL,
        positives: &[
            (concat!(gcp_json!(), "\n"), concat!(gcp_json!(), "\n")),
            (
                concat!("credentials = ", gcp_json!(), " # inline"),
                gcp_json!(),
            ),
        ],
        negatives: &[
            r#"{"type": "service_account", "client_email": "ci@demo.iam.gserviceaccount.com"}"#,
            r#"{"type": "authorized_user", "private_key": "x", "client_email": "a@b"}"#,
            r#"if cfg["type"] == "service_account": load(cfg)"#,
        ],
        ..BASE
    },
    BuiltinRule {
        id: "aws-access-key-id",
        kind: "aws-access-key-id",
        description: "AWS access key ID (AKIA long-term, ASIA temporary, ABIA, ACCA)",
        regex: r"(?-u)\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        secret_group: 1,
        keywords: &["akia", "asia", "abia", "acca"],
        min_entropy: Some(3.0),
        allow_regexes: &["EXAMPLE$"],
        overrides: GENERIC,
        positives: &[
            (
                "aws_access_key_id = AKIA7AWFNLGNXLVBXEXL",
                "AKIA7AWFNLGNXLVBXEXL",
            ),
            (
                r#"{"AccessKeyId": "ASIAYA5ZMASRK7CMFBQM"}"#,
                "ASIAYA5ZMASRK7CMFBQM",
            ),
        ],
        negatives: &[
            "AKIAIOSFODNN7EXAMPLE",
            "AKIAqwertyuiopasdfgh",
            "XAKIA7AWFNLGNXLVBXEXLX",
            "AKIAAAAAAAAAAAAAAAAA",
            "Asia/Kolkata ASIA_PACIFIC_REGION",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "aws-secret-access-key",
        kind: "aws-secret-access-key",
        description: "AWS secret access key, found by its variable name",
        regex: concat!(
            r"(?-u)(?i)(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)",
            assign!(),
            r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"
        ),
        secret_group: 1,
        keywords: &[
            "aws_secret",
            "awssecret",
            "aws-secret",
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
        ],
        min_entropy: Some(4.0),
        allow_regexes: &["EXAMPLE"],
        validate: Some(validate_aws_secret),
        overrides: GENERIC,
        positives: &[
            (
                "AWS_SECRET_ACCESS_KEY=XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF",
                "XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF",
            ),
            (
                "[default]\naws_secret_access_key = vxg1oXRNK6jm0WT3G142Sj/P1bOisNCv5cB/TBj0\n",
                "vxg1oXRNK6jm0WT3G142Sj/P1bOisNCv5cB/TBj0",
            ),
            (
                r#"{"SecretAccessKey": "RbX7yuofD2O/dlhpCMeHW598McjHnglHCQTtwId2"}"#,
                "RbX7yuofD2O/dlhpCMeHW598McjHnglHCQTtwId2",
            ),
            (
                "aws:\n  secret_access_key: 'XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF'\n",
                "XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF",
            ),
        ],
        negatives: &[
            "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            "aws_secret_access_key = XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JFzz",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "aws-secret-access-key-near-id",
        kind: "aws-secret-access-key",
        description: "AWS secret access key, found as a 40-byte value within 4 lines after an access key ID",
        regex: concat!(
            r"(?-u)(?m)\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
            r"(?:[^\n]{0,200}\n){0,4}?[^\n]{0,200}?(?:^|[^A-Za-z0-9/+])",
            r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"
        ),
        secret_group: 1,
        keywords: &["akia", "asia", "abia", "acca"],
        min_entropy: Some(4.0),
        allow_regexes: &["EXAMPLE"],
        validate: Some(validate_aws_secret),
        positives: &[
            (
                "[prod]\nkey_id = AKIA7AWFNLGNXLVBXEXL\nkey = RbX7yuofD2O/dlhpCMeHW598McjHnglHCQTtwId2\n",
                "RbX7yuofD2O/dlhpCMeHW598McjHnglHCQTtwId2",
            ),
            (
                "AKIA7AWFNLGNXLVBXEXL,vxg1oXRNK6jm0WT3G142Sj/P1bOisNCv5cB/TBj0",
                "vxg1oXRNK6jm0WT3G142Sj/P1bOisNCv5cB/TBj0",
            ),
            (
                "ID=ASIAYA5ZMASRK7CMFBQM KEY=XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF",
                "XzCqbig5ED9J+uaDTxQxEpemTrg8NEdJDA0IF0JF",
            ),
        ],
        negatives: &[
            "AKIA7AWFNLGNXLVBXEXL\ncommit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            "AKIA7AWFNLGNXLVBXEXL\n1\n2\n3\n4\n5\nRbX7yuofD2O/dlhpCMeHW598McjHnglHCQTtwId2",
            "AKIA7AWFNLGNXLVBXEXL wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "aws-session-token",
        kind: "aws-session-token",
        description: "AWS session token of temporary credentials, found by its variable name",
        regex: concat!(
            r"(?-u)(?i)(?:aws[_-]?session[_-]?token|session[_-]?token|security[_-]?token)",
            assign!(),
            r"([A-Za-z0-9/+=]{100,2048})(?:[^A-Za-z0-9/+=]|$)"
        ),
        secret_group: 1,
        keywords: &[
            "session_token",
            "sessiontoken",
            "session-token",
            "security_token",
            "securitytoken",
            "security-token",
        ],
        min_entropy: Some(4.0),
        max_match_len: 4096,
        validate: Some(validate_token),
        overrides: GENERIC,
        positives: &[(
            "AWS_SESSION_TOKEN=FwoGZXIvYXdzEW8Ge9zfJifgkNiatTJ77Y0TfOiQkZZhS8dVVIfzEABqrRSkqLeGUh7WopjGgUE5hKvH6XMOTdkfLBQUMekwukDZ+qGtwjyclvwp95YQhLf35w0e0t0ctqOYqlNUBlU13K4TkFPfRFXzw3994mbGsRfoJYKZUr/no\n",
            "FwoGZXIvYXdzEW8Ge9zfJifgkNiatTJ77Y0TfOiQkZZhS8dVVIfzEABqrRSkqLeGUh7WopjGgUE5hKvH6XMOTdkfLBQUMekwukDZ+qGtwjyclvwp95YQhLf35w0e0t0ctqOYqlNUBlU13K4TkFPfRFXzw3994mbGsRfoJYKZUr/no",
        )],
        negatives: &[
            "aws_session_token = ${AWS_SESSION_TOKEN}",
            "SessionToken: FwoGZXIvYXdzEW8Ge9zfJifgkNiat",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "github-token",
        kind: "github-token",
        description: "GitHub token (ghp_ personal, gho_ OAuth, ghu_ user-to-server, ghs_ server-to-server, ghr_ refresh)",
        regex: r"(?-u)\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36})(?:[^A-Za-z0-9_]|$)",
        secret_group: 1,
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[
            (
                "GITHUB_TOKEN=ghp_LWSbA7yuHQhjt9ZAsK6INleRaCwjrbodSW9F",
                "ghp_LWSbA7yuHQhjt9ZAsK6INleRaCwjrbodSW9F",
            ),
            (
                "ci.token=\"ghs_JhmcwIB30DCuqVq46Mj5lAEn5TCTorXo1wgH\"",
                "ghs_JhmcwIB30DCuqVq46Mj5lAEn5TCTorXo1wgH",
            ),
        ],
        negatives: &[
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "ghp_LWSbA7yuHQhjt9ZAsK6",
            "xghp_LWSbA7yuHQhjt9ZAsK6INleRaCwjrbodSW9F",
            "ghp_LWSbA7yuHQhjt9ZAsK6INleRaCwjrbodSW9Fextra",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "github-fine-grained-token",
        kind: "github-token",
        description: "GitHub fine-grained personal access token (github_pat_)",
        regex: r"(?-u)\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?:[^A-Za-z0-9_]|$)",
        secret_group: 1,
        keywords: &["github_pat_"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "GH_TOKEN=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\n",
            "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",
        )],
        negatives: &[
            "github_pat_xxxxxxxxxxxxxxxxxxxxxx_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "github_pat_HTYSntISKJTfMS6jk41wiW",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "gitlab-token",
        kind: "gitlab-token",
        description: "GitLab token (glpat- personal, gldt- deploy, glrt- runner, glptt- trigger, and other gl*- prefixes)",
        // NOTE: only glpat- and glrt- were checked against GitLab's issue
        // tracker. The other prefixes follow GitLab's token-prefix list
        // but are unverified here.
        regex: concat!(
            r"(?-u)\b((?:glpat|gldt|glrt|glptt|glft|glimt|glagent|gloas|glsoat|glcbt|glffct)-",
            r"[A-Za-z0-9_-]{20,255}(?:\.[A-Za-z0-9_-]{2,64}){0,2})(?:[^A-Za-z0-9_-]|$)"
        ),
        secret_group: 1,
        keywords: &[
            "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glimt-", "glagent-", "gloas-",
            "glsoat-", "glcbt-", "glffct-",
        ],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[
            (
                "export GITLAB_TOKEN=glpat-uJn079ywSzOWF4buuSFW",
                "glpat-uJn079ywSzOWF4buuSFW",
            ),
            (
                "token: glrt-HFySMLkroGU32T8uk5maTKOd.",
                "glrt-HFySMLkroGU32T8uk5maTKOd",
            ),
        ],
        negatives: &[
            "glpat-xxxxxxxxxxxxxxxxxxxx",
            "glpat-short",
            "glpat-aaaaaaaaaaaaaaaaaaaaaaaa",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "slack-token",
        kind: "slack-token",
        description: "Slack API token (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-, xoxo-) or app-level token (xapp-)",
        regex: concat!(
            r"(?-u)\b(xox[abeoprs]-(?:[0-9A-Za-z]{1,64}-){1,4}[0-9A-Za-z]{8,64}",
            r"|xapp-[0-9]-[A-Z0-9]{8,14}-[0-9]{8,16}-[A-Za-z0-9]{20,80})(?:[^0-9A-Za-z-]|$)"
        ),
        secret_group: 1,
        keywords: &[
            "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xoxo-", "xapp-",
        ],
        min_entropy: Some(3.5),
        validate: Some(validate_slack_token),
        overrides: GENERIC_AND_URL,
        positives: &[
            (
                "SLACK_BOT_TOKEN=xoxb-024322791305-9031604610709-YsySUSDqedCeXkDQBlvkyRzc /bin/sh",
                "xoxb-024322791305-9031604610709-YsySUSDqedCeXkDQBlvkyRzc",
            ),
            (
                "\"token\": \"xoxp-545905117547-918870315110-2555400722155-a8c74a0448904e10c6f69b2db49bb3fa\"",
                "xoxp-545905117547-918870315110-2555400722155-a8c74a0448904e10c6f69b2db49bb3fa",
            ),
            (
                "SLACK_APP_TOKEN=xapp-1-A8YLRNYNXRY-4856396886621-36b907ef55ae2d5a6f47b7a19a10df2da835c808578d62df4d9c93d3ae22b5ca",
                "xapp-1-A8YLRNYNXRY-4856396886621-36b907ef55ae2d5a6f47b7a19a10df2da835c808578d62df4d9c93d3ae22b5ca",
            ),
        ],
        negatives: &[
            "xoxb-your-token-here",
            "xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx",
            "xoxb-123-abcdefgh",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "slack-webhook",
        kind: "slack-webhook",
        description: "Slack incoming webhook URL",
        regex: r"(?-u)(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,200})",
        secret_group: 1,
        keywords: &["hooks.slack.com"],
        min_entropy: Some(3.5),
        validate: Some(validate_slack_webhook),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "SLACK_WEBHOOK=https://hooks.slack.com/services/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\n",
            "https://hooks.slack.com/services/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",
        )],
        negatives: &[
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "stripe-live-key",
        kind: "stripe-key",
        description: "Stripe live secret key (sk_live_) or restricted key (rk_live_)",
        regex: r"(?-u)\b((?:sk|rk)_live_[A-Za-z0-9]{20,247})(?:[^A-Za-z0-9_]|$)",
        secret_group: 1,
        keywords: &["sk_live_", "rk_live_"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[
            (
                "STRIPE_API_KEY=sk_live_OMS9vi5e39EMnhH41525gr4I /bin/sh -c true",
                "sk_live_OMS9vi5e39EMnhH41525gr4I",
            ),
            (
                "stripe:\n  key: \"rk_live_vh2Yz45tXZVFz3cq1okCuKa8\"\n",
                "rk_live_vh2Yz45tXZVFz3cq1okCuKa8",
            ),
        ],
        negatives: &[
            "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
            "sk_live_short",
            "sk_test_8yHBpRt7sMVt0qD8OTgpVajn",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "stripe-test-key",
        kind: "stripe-key",
        description: "Stripe test-mode secret key (sk_test_) or restricted key (rk_test_)",
        regex: r"(?-u)\b((?:sk|rk)_test_[A-Za-z0-9]{20,247})(?:[^A-Za-z0-9_]|$)",
        secret_group: 1,
        keywords: &["sk_test_", "rk_test_"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "STRIPE_KEY=sk_test_8yHBpRt7sMVt0qD8OTgpVajn",
            "sk_test_8yHBpRt7sMVt0qD8OTgpVajn",
        )],
        negatives: &[
            "sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
            "sk_live_OMS9vi5e39EMnhH41525gr4I",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "google-api-key",
        kind: "google-api-key",
        description: "Google API key (AIza)",
        regex: r"(?-u)\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
        secret_group: 1,
        keywords: &["aiza"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "MAPS_KEY=AIzaoN736W8nPQ4mopuJnuMS-3XoWnfaemwMgsZ",
            "AIzaoN736W8nPQ4mopuJnuMS-3XoWnfaemwMgsZ",
        )],
        negatives: &["AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "AIzaSy123"],
        ..BASE
    },
    BuiltinRule {
        id: "google-oauth-client-secret",
        kind: "google-oauth-client-secret",
        description: "Google OAuth client secret (GOCSPX-)",
        regex: r"(?-u)\b(GOCSPX-[0-9A-Za-z_-]{28})(?:[^0-9A-Za-z_-]|$)",
        secret_group: 1,
        keywords: &["gocspx-"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            r#"{"client_secret": "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"}"#,
            "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",
        )],
        negatives: &["GOCSPX-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", "GOCSPX-short"],
        ..BASE
    },
    BuiltinRule {
        id: "npm-token",
        kind: "npm-token",
        description: "npm access token (npm_)",
        regex: r"(?-u)\b(npm_[A-Za-z0-9]{36})(?:[^A-Za-z0-9_]|$)",
        secret_group: 1,
        keywords: &["npm_"],
        min_entropy: Some(3.5),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "//registry.npmjs.org/:_authToken=npm_wkakDHpQh66z9uzyEgd9DpOsTi96ylJ0xLEB\n",
            "npm_wkakDHpQh66z9uzyEgd9DpOsTi96ylJ0xLEB",
        )],
        negatives: &[
            "npm_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "npm_config_cache=/tmp/npm",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "npmrc-auth-token",
        kind: "npm-token",
        description: "npm registry token in an .npmrc `_authToken=` line",
        regex: r#"(?-u)(?i)_authToken\s*=\s*["']?([A-Za-z0-9_.+/=-]{16,512})(?:[^A-Za-z0-9_.+/=-]|$)"#,
        secret_group: 1,
        keywords: &["_authtoken"],
        min_entropy: Some(3.2),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "//npm.internal.test/:_authToken=2a7c46b0-1095-0cc4-ddc1-144f84002b12\n",
            "2a7c46b0-1095-0cc4-ddc1-144f84002b12",
        )],
        negatives: &[
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
            "_authToken=xxxxxxxxxxxxxxxxxxxx",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "pypi-token",
        kind: "pypi-token",
        description: "PyPI or TestPyPI upload token (pypi-AgEIcHlwaS5vcmc...)",
        regex: concat!(
            r"(?-u)\b(pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000})",
            r"(?:[^A-Za-z0-9_-]|$)"
        ),
        secret_group: 1,
        keywords: &["pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"],
        min_entropy: Some(3.5),
        max_match_len: 2048,
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "password = pypi-AgEIcHlwaS5vcmcuzyzkutBIOuIzsqLDt37-wsz-f-MZgapTvSxyc9M3uv4sNcxagHph1lZ3F_IXH_Z6lGArx\n",
            "pypi-AgEIcHlwaS5vcmcuzyzkutBIOuIzsqLDt37-wsz-f-MZgapTvSxyc9M3uv4sNcxagHph1lZ3F_IXH_Z6lGArx",
        )],
        negatives: &[
            "pypi-AgEIcHlwaS5vcmc",
            "pypi-AgEIcHlwaS5vcmcxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "docker-config-auth",
        kind: "docker-config-auth",
        description: "Docker config.json registry credential (`\"auth\": base64 of user:password`)",
        regex: r#"(?-u)"auth"\s*:\s*"([A-Za-z0-9+/]{4,2048}={0,2})""#,
        secret_group: 1,
        keywords: &["\"auth\""],
        max_match_len: 4096,
        validate: Some(validate_docker_auth),
        overrides: GENERIC_AND_URL,
        positives: &[(
            r#"{"auths": {"registry.internal.test": {"auth": "ZGVwbG95ZXI6bDQ5NzRuMTRUcDAwRUx1RUNj"}}}"#,
            "ZGVwbG95ZXI6bDQ5NzRuMTRUcDAwRUx1RUNj",
        )],
        negatives: &[
            r#"{"auths": {"r.test": {"auth": "dXNlcjpwYXNzd29yZA=="}}}"#,
            r#"{"auths": {"r.test": {"auth": ""}}}"#,
            r#"{"auths": {"r.test": {"auth": "bm9jb2xvbg=="}}}"#,
        ],
        ..BASE
    },
    BuiltinRule {
        id: "azure-storage-connection-string",
        kind: "azure-storage-connection-string",
        description: "Azure storage account key in a connection string (the secret is the AccountKey value)",
        // The secret is the AccountKey alone: it is the credential, and the
        // same key leaked elsewhere (AZURE_STORAGE_KEY=...) then has the
        // same fingerprint. The account name is in the match, before it.
        regex: r"(?-u)(?i)AccountName=[A-Za-z0-9]{3,24};\s*AccountKey=([A-Za-z0-9+/]{86}==)",
        secret_group: 1,
        keywords: &["accountkey="],
        min_entropy: Some(4.0),
        validate: Some(validate_token),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=fixturestore01;AccountKey=3BM0qH4wFn14mTcNzTrQL+ufknSlpBD/M+jzdd9A8zfMsdZ/OouTJpif1qfnVbbYPUNasITcOkv7gZHEAz7c1Q==;EndpointSuffix=core.windows.net",
            "3BM0qH4wFn14mTcNzTrQL+ufknSlpBD/M+jzdd9A8zfMsdZ/OouTJpif1qfnVbbYPUNasITcOkv7gZHEAz7c1Q==",
        )],
        negatives: &[
            "DefaultEndpointsProtocol=https;AccountName=store;AccountKey=<your-key>",
            "AccountName=store;AccountKey=3BM0qH4wFn14mTcNzTrQL==",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "jwt",
        kind: "jwt",
        description: "JSON Web Token whose header decodes to JSON with an alg",
        regex: r"(?-u)\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,})(?:[^A-Za-z0-9_.-]|$)",
        secret_group: 1,
        keywords: &["eyj"],
        max_match_len: 8192,
        validate: Some(validate_jwt),
        overrides: GENERIC_AND_URL,
        positives: &[(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmaXh0dXJlLXVzZXItNDIiLCJpYXQiOjE3MDAwMDAwMDB9.yDWq7A6lhy3vKm2Drq_j97DJkoEvgoeQhcS-3-pzXVs\n",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmaXh0dXJlLXVzZXItNDIiLCJpYXQiOjE3MDAwMDAwMDB9.yDWq7A6lhy3vKm2Drq_j97DJkoEvgoeQhcS-3-pzXVs",
        )],
        negatives: &[
            "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJmaXh0dXJlLXVzZXItNDIiLCJpYXQiOjE3MDAwMDAwMDB9.yDWq7A6lhy3vKm2Drq_j97DJkoEvgoeQhcS-3-pzXVs",
            "eyJxxxxxxxxxxxxxxxxx.eyJxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxx",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "database-url",
        kind: "database-url",
        description: "Database or broker URL with a password (the secret is the whole URL)",
        regex: concat!(
            r"(?-u)(?i)\b((?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|cockroachdb|clickhouse)",
            r"(?:\+[a-z0-9]+)?://[^\s:@/\x22'<>\\`]*:[^\s@/\x22'<>\\`]+@[^\s\x22'<>\\`]+)"
        ),
        secret_group: 1,
        keywords: &[
            "postgres",
            "mysql",
            "mariadb",
            "mongodb",
            "redis",
            "amqp",
            "mssql",
            "sqlserver",
            "cockroachdb",
            "clickhouse",
        ],
        validate: Some(validate_url_password),
        overrides: GENERIC_AND_URL,
        positives: &[
            (
                "DATABASE_URL=postgres://app:jYOEnhrm56dyhaG7gb9L@db.internal.test:5432/app?sslmode=disable\n",
                "postgres://app:jYOEnhrm56dyhaG7gb9L@db.internal.test:5432/app?sslmode=disable",
            ),
            (
                "MONGO_URL=\"mongodb+srv://svc:jYOEnhrm56dyhaG7gb9L@cluster0.mongo.internal.test/prod\"",
                "mongodb+srv://svc:jYOEnhrm56dyhaG7gb9L@cluster0.mongo.internal.test/prod",
            ),
            (
                "cache: redis://:jYOEnhrm56dyhaG7gb9L@cache:6379/0",
                "redis://:jYOEnhrm56dyhaG7gb9L@cache:6379/0",
            ),
            (
                "url = 'mysql+pymysql://web:jYOEnhrm56dyhaG7gb9L@mysql.internal.test/shop'",
                "mysql+pymysql://web:jYOEnhrm56dyhaG7gb9L@mysql.internal.test/shop",
            ),
        ],
        negatives: &[
            "postgres://user:password@localhost/db",
            "postgres://app:${DB_PASSWORD}@db/app",
            "postgres://app@db/app",
            "postgres://%s:%s@%s/%s",
            "redis://localhost:6379",
            "amqp://guest:guest@localhost:5672/",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "url-password",
        kind: "url-password",
        description: "URL with a basic-auth password (the secret is the whole URL)",
        regex: r"(?-u)(?i)\b([a-z][a-z0-9+.-]{1,30}://[^\s:@/\x22'<>\\`]*:[^\s@/\x22'<>\\`]+@[^\s\x22'<>\\`]+)",
        secret_group: 1,
        keywords: &["://"],
        validate: Some(validate_url_password),
        overrides: GENERIC,
        positives: &[
            (
                "git clone https://ci:FnjY1pTdcchrZ1HH@git.internal.test/team/repo.git\n",
                "https://ci:FnjY1pTdcchrZ1HH@git.internal.test/team/repo.git",
            ),
            (
                "\"ftp://backup:FnjY1pTdcchrZ1HH@files.internal.test:21/\"",
                "ftp://backup:FnjY1pTdcchrZ1HH@files.internal.test:21/",
            ),
        ],
        negatives: &[
            "https://user:pass@example.com/",
            "http://%s:%s@%s/",
            "https://registry.internal.test:8443/v2/",
            "http://user:@host/",
            "https://user:<password>@host/",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "password-assignment",
        kind: "password",
        description: "password, passwd or passphrase assigned a high-entropy value",
        regex: concat!(
            r"(?-u)(?i)(?:password|passwd|passphrase)[a-z0-9_.-]{0,20}",
            assign!(),
            "([",
            value_class!(),
            "]{12,128})(?:[^",
            value_class!(),
            "]|$)"
        ),
        secret_group: 1,
        keywords: &["password", "passwd", "passphrase"],
        min_entropy: Some(3.5),
        max_match_len: 256,
        validate: Some(validate_generic_value),
        positives: &[
            ("password: zt8H7LkaBZ2wLs7+sMCE", "zt8H7LkaBZ2wLs7+sMCE"),
            (
                "DB_PASSWORD=\"zt8H7LkaBZ2wLs7+sMCE\"\n",
                "zt8H7LkaBZ2wLs7+sMCE",
            ),
            (
                r#"{"password": "zt8H7LkaBZ2wLs7+sMCE"}"#,
                "zt8H7LkaBZ2wLs7+sMCE",
            ),
            (
                r#"{\"password\":\"zt8H7LkaBZ2wLs7+sMCE\"}"#,
                "zt8H7LkaBZ2wLs7+sMCE",
            ),
        ],
        negatives: &[
            "password: changeme",
            "password_file: /run/secrets/db_password",
            "password=%s",
            "Password: %-20s",
            "password: ${DB_PASSWORD}",
            "password = get_password_from_env",
            "passwordHashAlgorithm=bcryptWithSaltRounds",
            "password: aaaaaaaaaaaaaaaa",
            "password: <your-password-here>",
            "password: 123456789012",
        ],
        ..BASE
    },
    BuiltinRule {
        id: "generic-secret-assignment",
        kind: "generic-secret",
        description: "secret, token, api_key, access_key or private_key assigned a high-entropy value",
        regex: concat!(
            r"(?-u)(?i)(?:secret|token|api_?key|api-key|access_?key|auth_?key|private_?key)[a-z0-9_.-]{0,20}",
            assign!(),
            "([",
            value_class!(),
            "]{12,256})(?:[^",
            value_class!(),
            "]|$)"
        ),
        secret_group: 1,
        keywords: &[
            "secret",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "access_key",
            "accesskey",
            "auth_key",
            "authkey",
            "private_key",
            "privatekey",
        ],
        min_entropy: Some(3.5),
        max_match_len: 384,
        validate: Some(validate_generic_value),
        positives: &[
            (
                "API_TOKEN=8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag",
                "8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag",
            ),
            (
                "client_secret: \"8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag\"",
                "8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag",
            ),
            (
                "x-api-key: 8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag",
                "8Vdb4wqrFGBJoQINVRaTmQ4uuRaV0tag",
            ),
        ],
        negatives: &[
            "token = ${TOKEN}",
            "secret: my_secret_name_here",
            "token=%s",
            "SECRET_KEY_FILE=/run/secrets/key",
            "tokenizer=whitespaceTokenizerFactory",
            "api_key: your-api-key-here",
            "secret = 0000000000000000",
            "token=upstream=cache miss",
            "secret:session:retry=handled",
            "token=retry=handled=user 4511",
            "secret=session_cache_12345",
        ],
        ..BASE
    },
];

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::io::Read;
    use std::ops::Range;
    use std::path::PathBuf;

    use sha2::{Digest, Sha256};

    use super::*;

    /// One accepted match, as the detector reports it before reduction.
    #[derive(Debug)]
    struct Found {
        rule: usize,
        span: Range<usize>,
        secret: Vec<u8>,
    }

    fn compiled() -> Vec<Rule> {
        BUILTIN_RULES
            .iter()
            .map(|rule| rule.compile().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    /// Runs `rules` over `data` the way the detector does: a window of
    /// `max_match_len` on each side of every keyword hit, windows of one
    /// rule merged, the regex run from the window start over the haystack
    /// cut at the window end.
    fn scan(rules: &[Rule], data: &[u8], path: Option<&str>) -> Vec<Found> {
        let lower = data.to_ascii_lowercase();
        let mut out = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let mut windows: Vec<(usize, usize)> = Vec::new();
            for keyword in &rule.keywords {
                for hit in memchr::memmem::find_iter(&lower, keyword.as_bytes()) {
                    let start = hit.saturating_sub(rule.max_match_len);
                    let end = (hit + keyword.len() + rule.max_match_len).min(data.len());
                    windows.push((start, end));
                }
            }
            windows.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::new();
            for window in windows {
                match merged.last_mut() {
                    Some(last) if window.0 <= last.1 => last.1 = last.1.max(window.1),
                    _ => merged.push(window),
                }
            }
            for (start, end) in merged {
                run_rule(index, rule, &data[..end], start, path, &mut out);
            }
        }
        out
    }

    fn run_rule(
        index: usize,
        rule: &Rule,
        haystack: &[u8],
        start: usize,
        path: Option<&str>,
        out: &mut Vec<Found>,
    ) {
        let mut position = start;
        while position <= haystack.len() {
            let Some(caps) = rule.regex.captures_at(haystack, position) else {
                break;
            };
            let whole = caps.get(0).expect("group 0 always exists");
            position = if whole.end() > whole.start() {
                whole.end()
            } else {
                whole.end() + 1
            };
            let Some(secret) = caps.get(rule.secret_group) else {
                continue;
            };
            if rule.accepts(secret.as_bytes(), path) && rule.accepts_match(whole.as_bytes()) {
                out.push(Found {
                    rule: index,
                    span: whole.range(),
                    secret: rule.decode_secret(secret.as_bytes()),
                });
            }
        }
    }

    fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
        a.start < b.end && b.start < a.end
    }

    /// Applies `overrides` and keeps the earliest rule for an identical
    /// secret at an overlapping place.
    fn reduce(rules: &[Rule], found: Vec<Found>) -> Vec<Found> {
        let overridden = |f: &Found| {
            found.iter().any(|g| {
                g.rule != f.rule
                    && overlaps(&g.span, &f.span)
                    && (rules[g.rule].overrides.contains(&rules[f.rule].id)
                        || (g.secret == f.secret && g.rule < f.rule))
            })
        };
        let keep: Vec<bool> = found.iter().map(|f| !overridden(f)).collect();
        found
            .into_iter()
            .zip(keep)
            .filter_map(|(f, keep)| keep.then_some(f))
            .collect()
    }

    fn describe(rules: &[Rule], found: &[Found]) -> Vec<String> {
        found
            .iter()
            .map(|f| {
                format!(
                    "{} at {:?}: {}",
                    rules[f.rule].id,
                    f.span,
                    crate::redact(&f.secret)
                )
            })
            .collect()
    }

    #[test]
    fn builtin_rules_compile() {
        for rule in BUILTIN_RULES {
            rule.compile().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn builtin_ids_unique() {
        let mut seen = HashSet::new();
        for rule in BUILTIN_RULES {
            assert!(seen.insert(rule.id), "rule id {} is used twice", rule.id);
        }
    }

    #[test]
    fn builtin_rules_have_lowercase_keywords() {
        for rule in BUILTIN_RULES {
            assert!(
                !rule.keywords.is_empty(),
                "rule {} has no keywords",
                rule.id
            );
            for keyword in rule.keywords {
                assert_eq!(
                    *keyword,
                    keyword.to_ascii_lowercase(),
                    "rule {}: keyword {keyword} is not lower case",
                    rule.id
                );
            }
        }
    }

    #[test]
    fn builtin_overrides_name_rules() {
        let ids: HashSet<&str> = BUILTIN_RULES.iter().map(|r| r.id).collect();
        for rule in BUILTIN_RULES {
            for target in rule.overrides {
                assert!(
                    ids.contains(target),
                    "rule {} overrides unknown {target}",
                    rule.id
                );
                assert_ne!(*target, rule.id, "rule {} overrides itself", rule.id);
            }
        }
    }

    #[test]
    fn builtin_rules_have_examples() {
        for rule in BUILTIN_RULES {
            assert!(
                !rule.positives.is_empty(),
                "rule {} has no positives",
                rule.id
            );
            assert!(
                !rule.negatives.is_empty(),
                "rule {} has no negatives",
                rule.id
            );
        }
    }

    #[test]
    fn positives_found_exactly() {
        for (builtin, rule) in BUILTIN_RULES.iter().zip(compiled()) {
            for (text, expected) in builtin.positives {
                let found = scan(std::slice::from_ref(&rule), text.as_bytes(), None);
                let secrets: Vec<&[u8]> = found.iter().map(|f| f.secret.as_slice()).collect();
                assert!(
                    secrets.contains(&expected.as_bytes()),
                    "rule {}: expected secret not found in {text:?}; found {:?}",
                    rule.id,
                    secrets
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn negatives_give_nothing() {
        for (builtin, rule) in BUILTIN_RULES.iter().zip(compiled()) {
            for text in builtin.negatives {
                let found = scan(std::slice::from_ref(&rule), text.as_bytes(), None);
                assert!(
                    found.is_empty(),
                    "rule {}: negative {text:?} gave {:?}",
                    rule.id,
                    found
                        .iter()
                        .map(|f| String::from_utf8_lossy(&f.secret).into_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn overrides_remove_generic_findings() {
        let rules = compiled();
        let text = b"ENV DATABASE_URL=postgres://app:jYOEnhrm56dyhaG7gb9L@db.internal.test/app API_TOKEN=ghp_LWSbA7yuHQhjt9ZAsK6INleRaCwjrbodSW9F";
        let found = reduce(&rules, scan(&rules, text, None));
        let ids: Vec<&str> = found.iter().map(|f| rules[f.rule].id.as_str()).collect();
        assert_eq!(ids.len(), 2, "findings: {:?}", describe(&rules, &found));
        assert!(ids.contains(&"database-url"), "findings: {ids:?}");
        assert!(ids.contains(&"github-token"), "findings: {ids:?}");
    }

    #[test]
    fn generic_rejects_format_and_identifier() {
        assert!(looks_like_format_string(b"token=%-08lx"));
        assert!(looks_like_format_string(b"secret {0} here"));
        assert!(!looks_like_format_string(b"100%"));
        assert!(looks_like_identifier(b"get_password_from_env"));
        assert!(looks_like_identifier(b"passwordHashAlgorithm"));
        assert!(!looks_like_identifier(b"kD0PhgF0Jx4sOd9Y7Yw7FaUo"));
        assert!(!looks_like_identifier(b"Xk9vQ2mZr7TqL4wN8sB1yH6d"));
    }

    #[test]
    fn rule_path_limits_matches() {
        let mut rule = BUILTIN_RULES[0].compile().expect("private-key compiles");
        rule.path = Some(regex::Regex::new(r"\.pem$").expect("valid regex"));
        let key = BUILTIN_RULES[0].positives[0].1.as_bytes();
        assert!(rule.accepts(key, Some("etc/ssl/server.pem")));
        assert!(!rule.accepts(key, Some("etc/ssl/server.txt")));
        assert!(!rule.accepts(key, None));
    }

    // ---- Fixture images ----------------------------------------------

    fn fixtures_dir() -> PathBuf {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures"
        ));
        assert!(
            dir.join("ground_truth.json").is_file(),
            "fixture images not found at {}: these tests need the shared/ folder beside \
             the repository (CI copies it there)",
            dir.display()
        );
        dir
    }

    fn ground_truth() -> serde_json::Value {
        let path = fixtures_dir().join("ground_truth.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Reads every regular file of a tar into memory, by entry name.
    fn read_tar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(bytes);
        let mut files = HashMap::new();
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("entry data");
            files.insert(name, data);
        }
        files
    }

    fn read_archive(relative: &str) -> HashMap<String, Vec<u8>> {
        let path = fixtures_dir().join(relative);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        read_tar(&bytes)
    }

    /// One piece of scanned data: a label for messages, the file path for
    /// layer files, and the bytes.
    struct Text {
        label: String,
        path: Option<String>,
        bytes: Vec<u8>,
    }

    /// Builds the texts of one image: the raw config, each Env entry and
    /// all of them joined by newlines, each label as `key=value`, each
    /// history `created_by`, and every regular file of every layer.
    fn image_texts(image: &serde_json::Value) -> Vec<Text> {
        let archive = image["docker_archive"]["path"]
            .as_str()
            .expect("archive path");
        let members = read_archive(archive);
        let manifest: serde_json::Value =
            serde_json::from_slice(&members["manifest.json"]).expect("manifest.json");
        let index = image["docker_archive"]["manifest_index"]
            .as_u64()
            .expect("index") as usize;
        let entry = &manifest[index];
        let config_name = entry["Config"].as_str().expect("Config");
        let config_bytes = &members[config_name];
        let config: serde_json::Value = serde_json::from_slice(config_bytes).expect("config");
        let mut texts = vec![Text {
            label: format!("{archive} config"),
            path: None,
            bytes: config_bytes.clone(),
        }];
        let mut push = |label: String, value: String| {
            texts.push(Text {
                label,
                path: None,
                bytes: value.into_bytes(),
            })
        };
        let env: Vec<String> = config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        push("Env joined".to_owned(), env.join("\n"));
        for (i, item) in env.iter().enumerate() {
            push(format!("Env[{i}]"), item.clone());
        }
        if let Some(labels) = config["config"]["Labels"].as_object() {
            for (key, value) in labels {
                push(
                    format!("label {key}"),
                    format!("{key}={}", value.as_str().unwrap_or("")),
                );
            }
        }
        for (i, item) in config["history"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(created_by) = item["created_by"].as_str() {
                push(format!("history[{i}]"), created_by.to_owned());
            }
        }
        for layer in entry["Layers"].as_array().expect("Layers") {
            let name = layer.as_str().expect("layer name");
            for (path, bytes) in read_tar(&members[name]) {
                texts.push(Text {
                    label: format!("layer {name} file {path}"),
                    path: Some(path),
                    bytes,
                });
            }
        }
        texts
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Maps a ground-truth kind to the kind the built-in rules report.
    fn expected_kind(kind: &str) -> &str {
        match kind {
            "postgres-url" => "database-url",
            other => other,
        }
    }

    #[test]
    fn fixture_values_found_with_fingerprint() {
        let rules = compiled();
        let truth = ground_truth();
        for image in truth["images"].as_array().expect("images") {
            let id = image["id"].as_str().expect("image id");
            let texts = image_texts(image);
            let mut found: Vec<(String, Found)> = Vec::new();
            for text in &texts {
                let hits = scan(&rules, &text.bytes, text.path.as_deref());
                for hit in reduce(&rules, hits) {
                    found.push((text.label.clone(), hit));
                }
            }
            let planted: Vec<&serde_json::Value> = image["secrets"]
                .as_array()
                .expect("secrets")
                .iter()
                .collect();
            for secret in &planted {
                let name = secret["name"].as_str().expect("name");
                let value = secret["value"].as_str().expect("value").as_bytes();
                let sha = secret["sha256"].as_str().expect("sha256");
                assert_eq!(sha256_hex(value), sha, "{id} {name}: ground truth sha256");
                let kind = expected_kind(secret["kind"].as_str().expect("kind"));
                let hit = found
                    .iter()
                    .find(|(_, f)| f.secret == value && rules[f.rule].kind == kind);
                let Some((label, f)) = hit else {
                    panic!("{id} {name} ({kind}) not found by any rule");
                };
                assert_eq!(
                    sha256_hex(&f.secret),
                    sha,
                    "{id} {name} in {label}: fingerprint"
                );
            }
            let values: HashSet<&[u8]> = planted
                .iter()
                .map(|s| s["value"].as_str().expect("value").as_bytes())
                .collect();
            let unexpected: Vec<String> = found
                .iter()
                .filter(|(_, f)| !values.contains(f.secret.as_slice()))
                .map(|(label, f)| {
                    format!("{label}: {}", describe(&rules, std::slice::from_ref(f))[0])
                })
                .collect();
            assert!(
                unexpected.is_empty(),
                "{id}: unexpected findings {unexpected:#?}"
            );
        }
    }

    fn base_layer_busybox() -> Vec<u8> {
        let truth = ground_truth();
        let diff_id = truth["base"]["diff_id"].as_str().expect("base diff_id");
        let member = format!("{}.tar", diff_id.trim_start_matches("sha256:"));
        let archive = read_archive("docker-archive/fixed.tar");
        let layer = archive
            .get(&member)
            .unwrap_or_else(|| panic!("base layer {member} missing from fixed.tar"));
        let mut files = read_tar(layer);
        files
            .remove("bin/busybox")
            .expect("bin/busybox in the base layer")
    }

    /// Extracts the runs of printable ASCII of at least 8 bytes, one per
    /// line, as `strings` does.
    fn printable_strings(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for run in data.split(|b| !(0x20..0x7f).contains(b) && *b != b'\t') {
            if run.len() >= 8 {
                out.extend_from_slice(run);
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn busybox_binary_gives_nothing() {
        let rules = compiled();
        let busybox = base_layer_busybox();
        assert!(
            busybox.len() > 1_000_000,
            "busybox is {} bytes",
            busybox.len()
        );
        let found = scan(&rules, &busybox, Some("bin/busybox"));
        assert!(
            found.is_empty(),
            "busybox binary: {:#?}",
            describe(&rules, &found)
        );
        let strings = printable_strings(&busybox);
        let found = scan(&rules, &strings, Some("bin/busybox"));
        assert!(
            found.is_empty(),
            "busybox strings: {:#?}",
            describe(&rules, &found)
        );
    }

    #[test]
    fn fixed_image_gives_nothing() {
        let rules = compiled();
        let truth = ground_truth();
        let image = truth["images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|i| i["id"] == "fixed")
            .expect("fixed image in ground truth");
        let texts = image_texts(image);
        assert!(
            texts.len() > 10,
            "fixed image has only {} texts",
            texts.len()
        );
        for text in texts {
            let found = scan(&rules, &text.bytes, text.path.as_deref());
            assert!(
                found.is_empty(),
                "{}: {:#?}",
                text.label,
                describe(&rules, &found)
            );
        }
    }
}
