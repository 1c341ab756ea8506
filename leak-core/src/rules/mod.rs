//! Detection rules: the built-in credential rules, user rules loaded from a
//! gitleaks-style TOML file, and the checks a candidate match must pass.
//!
//! A rule is a byte regex plus the keywords that must occur near a match.
//! The detector runs one Aho-Corasick automaton over all keywords of all
//! rules, and runs a rule's regex only in a window around a keyword hit, so
//! the cost of a rule is paid only where its keywords occur.

mod builtin;
mod gitleaks;

use regex::bytes::Regex;

pub use builtin::{BUILTIN_RULES, BuiltinRule};
pub use gitleaks::load_gitleaks_toml;

use crate::secret::shannon_entropy;

/// Default upper bound on the length of one match, in bytes, for rules that
/// do not set their own.
pub const DEFAULT_MAX_MATCH_LEN: usize = 1024;

/// Decoding that turns a matched secret into the bytes that are fingerprinted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SecretDecoding {
    /// The matched bytes are the secret.
    #[default]
    Raw,
    /// The match may be JSON-escaped (a PEM block inside a JSON string, with
    /// newlines written as `\n`). The escapes `\n`, `\r`, `\t`, `\/`, `\"`
    /// and `\\` are decoded before fingerprinting, so the fingerprint equals
    /// that of the unescaped value.
    JsonString,
}

/// Values that a rule must not report even when its regex matches.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    /// A secret matching any of these regexes is dropped.
    pub regexes: Vec<Regex>,
    /// A secret containing any of these words (compared case-insensitively)
    /// is dropped.
    pub stopwords: Vec<String>,
    /// A file whose path matches any of these regexes yields no findings for
    /// this rule. Paths are compared as written in the tar entry.
    pub paths: Vec<regex::Regex>,
    /// A finding whose whole regex match (not only the secret group)
    /// matches any of these regexes is dropped. Checked by
    /// [`Rule::accepts_match`].
    pub match_regexes: Vec<Regex>,
}

/// One compiled detection rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Stable rule identifier, reported as `rule` in findings.
    pub id: String,
    /// Credential kind, reported as `kind` in findings (for example
    /// `aws-access-key-id`). Rotators are chosen by kind.
    pub kind: String,
    /// One-line description for reports.
    pub description: String,
    /// The byte regex that finds a candidate.
    pub regex: Regex,
    /// Capture group whose bytes are the secret; 0 means the whole match.
    pub secret_group: usize,
    /// Lower-case keywords; the regex runs only near a keyword hit, compared
    /// case-insensitively. An empty list means the regex runs over all data,
    /// which is much slower.
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy, in bits per byte, of the secret.
    pub min_entropy: Option<f64>,
    /// Upper bound on the length of one match, in bytes. The detector looks
    /// this far around each keyword hit, and matches longer than the
    /// chunk overlap may be missed at chunk edges.
    pub max_match_len: usize,
    /// Values this rule must not report.
    pub allowlist: Allowlist,
    /// Ids of less specific rules whose findings this rule replaces when
    /// their matches overlap at the same place (a database URL replaces the
    /// generic URL-password finding inside it).
    pub overrides: Vec<String>,
    /// Extra check that a built-in rule runs on the secret (for example,
    /// that a JWT header decodes to JSON).
    pub validate: Option<fn(&[u8]) -> bool>,
    /// Decoding applied to the secret bytes before fingerprinting.
    pub decoding: SecretDecoding,
    /// When set, the rule applies only to files whose path matches, and
    /// never to data without a path (config, history).
    pub path: Option<regex::Regex>,
}

impl Rule {
    /// Checks whether `secret`, found in a file at `path` (if any), passes
    /// the rule's entropy, validation and allowlist checks.
    pub fn accepts(&self, secret: &[u8], path: Option<&str>) -> bool {
        if secret.is_empty() {
            return false;
        }
        if self
            .min_entropy
            .is_some_and(|min| shannon_entropy(secret) < min)
        {
            return false;
        }
        if self.validate.is_some_and(|validate| !validate(secret)) {
            return false;
        }
        if self.allowlist.regexes.iter().any(|re| re.is_match(secret)) {
            return false;
        }
        if !self.allowlist.stopwords.is_empty() {
            let lower = secret.to_ascii_lowercase();
            let hit = self.allowlist.stopwords.iter().any(|word| {
                memchr::memmem::find(&lower, word.to_ascii_lowercase().as_bytes()).is_some()
            });
            if hit {
                return false;
            }
        }
        if path.is_some_and(|path| self.allowlist.paths.iter().any(|re| re.is_match(path))) {
            return false;
        }
        if let Some(only) = &self.path
            && !path.is_some_and(|path| only.is_match(path))
        {
            return false;
        }
        true
    }

    /// Checks the whole regex match (not only the secret group) against the
    /// allowlist's match regexes. A detector must call it after
    /// [`Rule::accepts`], or `regexTarget = "match"` allowlists have no
    /// effect.
    pub fn accepts_match(&self, whole_match: &[u8]) -> bool {
        !self
            .allowlist
            .match_regexes
            .iter()
            .any(|re| re.is_match(whole_match))
    }

    /// Decodes the matched secret bytes as the rule's [`SecretDecoding`] specifies.
    pub fn decode_secret(&self, matched: &[u8]) -> Vec<u8> {
        match self.decoding {
            SecretDecoding::Raw => matched.to_vec(),
            SecretDecoding::JsonString => unescape_json_string(matched),
        }
    }
}

/// Decodes the common JSON string escapes in `bytes`, leaving anything else
/// (including `\uXXXX`) as it is.
fn unescape_json_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let decoded = match bytes[i + 1] {
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'/' => Some(b'/'),
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                _ => None,
            };
            if let Some(byte) = decoded {
                out.push(byte);
                i += 2;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Error from compiling or loading rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule's regex does not compile.
    #[error("{}rule {id}: invalid regex: {source}", in_file(.file))]
    InvalidRegex {
        /// Path of the rules file, for rules loaded from a file.
        file: Option<String>,
        /// Rule id.
        id: String,
        /// The regex compiler's error.
        source: regex::Error,
    },
    /// A rule's secret group does not exist in its regex.
    #[error(
        "{}rule {id}: secret group {group} does not exist in the regex ({groups} groups)",
        in_file(.file)
    )]
    MissingSecretGroup {
        /// Path of the rules file, for rules loaded from a file.
        file: Option<String>,
        /// Rule id.
        id: String,
        /// The requested group.
        group: usize,
        /// Number of capture groups in the regex, group 0 included.
        groups: usize,
    },
    /// The rules file is not valid TOML or does not have the expected shape.
    #[error("rules file {path}: {message}")]
    InvalidFile {
        /// Path of the rules file.
        path: String,
        /// What is wrong, with the TOML parser's position when there is one.
        message: String,
    },
    /// Two rules share one id.
    #[error("{}rule id {id} is defined twice", in_file(.file))]
    DuplicateId {
        /// Path of the rules file, for rules loaded from a file.
        file: Option<String>,
        /// The repeated id.
        id: String,
    },
}

/// Formats the `rules file PATH: ` prefix of an error message.
fn in_file(file: &Option<String>) -> String {
    match file {
        Some(path) => format!("rules file {path}: "),
        None => String::new(),
    }
}

/// An ordered set of compiled rules. Earlier rules win ties.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Creates an empty rule set.
    pub fn new() -> Self {
        RuleSet::default()
    }

    /// Compiles the built-in rules.
    ///
    /// # Panics
    ///
    /// Never in a released build: every built-in regex is compiled by a
    /// unit test.
    pub fn builtin() -> Self {
        let rules = BUILTIN_RULES
            .iter()
            .map(|rule| rule.compile().expect("built-in rules compile"))
            .collect();
        RuleSet { rules }
    }

    /// Appends a rule.
    ///
    /// # Errors
    ///
    /// [`RuleError::DuplicateId`] when a rule with the same id exists.
    pub fn push(&mut self, rule: Rule) -> Result<(), RuleError> {
        if self.rules.iter().any(|r| r.id == rule.id) {
            return Err(RuleError::DuplicateId {
                file: None,
                id: rule.id,
            });
        }
        self.rules.push(rule);
        Ok(())
    }

    /// Appends every rule of `other`.
    ///
    /// # Errors
    ///
    /// [`RuleError::DuplicateId`] on the first id that exists already.
    pub fn extend(&mut self, other: RuleSet) -> Result<(), RuleError> {
        for rule in other.rules {
            self.push(rule)?;
        }
        Ok(())
    }

    /// Returns the rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Returns the number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Returns true when the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Compiles a byte regex for rule `id`, checking that `secret_group` exists.
pub(crate) fn compile_regex(
    id: &str,
    pattern: &str,
    secret_group: usize,
) -> Result<Regex, RuleError> {
    let regex = regex::bytes::RegexBuilder::new(pattern)
        .size_limit(50 << 20)
        .build()
        .map_err(|source| RuleError::InvalidRegex {
            file: None,
            id: id.to_owned(),
            source,
        })?;
    let groups = regex.captures_len();
    if secret_group >= groups {
        return Err(RuleError::MissingSecretGroup {
            file: None,
            id: id.to_owned(),
            group: secret_group,
            groups,
        });
    }
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_unescape_decodes_newlines() {
        assert_eq!(unescape_json_string(br"a\nb\\c\u0026"), b"a\nb\\c\\u0026");
    }
}
