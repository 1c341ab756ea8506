//! Loading user rules from a gitleaks-style TOML file (gitleaks v8 format).
//!
//! A rule is a `[[rules]]` table with `id`, `description`, `regex`,
//! `secretGroup`, `entropy`, `keywords`, `path` and `tags`. It may have
//! allowlists in `[rules.allowlist]` or `[[rules.allowlists]]`. A global
//! `[allowlist]` or `[[allowlists]]` applies to every rule, or to its
//! `targetRules`. `[extend]` supports `useDefault` and `disabledRules`.
//! One key is our own: `kind` on a rule, the credential kind reported in
//! findings (the rule id when absent). Unknown keys are ignored with a
//! warning, as gitleaks ignores them.
//!
//! gitleaks regexes are Go RE2. The Rust regex crate accepts nearly all of
//! RE2's syntax, but `\b`, `\w`, `\d` and `\s` are Unicode-aware here and
//! ASCII-only in RE2, so a few patterns match differently on non-ASCII
//! text.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Allowlist, DEFAULT_MAX_MATCH_LEN, Rule, RuleError, RuleSet, compile_regex};

/// The whole file, as far as this loader reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    extend: Option<ExtendTable>,
    #[serde(default)]
    rules: Vec<RuleTable>,
    allowlist: Option<AllowlistTable>,
    #[serde(default)]
    allowlists: Vec<AllowlistTable>,
}

/// `[extend]`: build on the default rules.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendTable {
    #[serde(default)]
    use_default: bool,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

/// One `[[rules]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleTable {
    id: Option<String>,
    kind: Option<String>,
    description: Option<String>,
    regex: Option<String>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    allowlist: Option<AllowlistTable>,
    #[serde(default)]
    allowlists: Vec<AllowlistTable>,
}

/// One allowlist table, per rule or global.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllowlistTable {
    condition: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    regex_target: Option<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    target_rules: Vec<String>,
}

const TOP_KEYS: &[&str] = &[
    "title",
    "description",
    "minVersion",
    "extend",
    "rules",
    "allowlist",
    "allowlists",
];
const EXTEND_KEYS: &[&str] = &["useDefault", "path", "url", "disabledRules"];
const RULE_KEYS: &[&str] = &[
    "id",
    "kind",
    "description",
    "regex",
    "secretGroup",
    "entropy",
    "keywords",
    "path",
    "tags",
    "allowlist",
    "allowlists",
];
const ALLOWLIST_KEYS: &[&str] = &[
    "description",
    "condition",
    "regexes",
    "regexTarget",
    "stopwords",
    "paths",
    "commits",
    "targetRules",
];

/// Parses a gitleaks-style rules file into a [`RuleSet`].
///
/// `path` names the file in errors and logs. The global allowlist applies
/// to every rule of the returned set. With `[extend] useDefault = true`,
/// the set starts with the built-in rules (less `disabledRules`), so the
/// caller must not add [`RuleSet::builtin`] again.
///
/// # Errors
///
/// [`RuleError::InvalidFile`] when the TOML is invalid (with its line and
/// column), a rule has no id or no regex, or a setting is not supported;
/// [`RuleError::InvalidRegex`] and [`RuleError::MissingSecretGroup`] when a
/// rule's regex does not compile here; [`RuleError::DuplicateId`] when two
/// rules share an id. Every error names `path` and, where there is one,
/// the rule id.
pub fn load_gitleaks_toml(path: &str, text: &str) -> Result<RuleSet, RuleError> {
    let config: ConfigFile =
        toml::from_str(text).map_err(|error| toml_error(path, text, &error))?;
    let table: toml::Table =
        toml::from_str(text).map_err(|error| toml_error(path, text, &error))?;
    warn_unknown_keys(path, &table);

    let mut rules = default_rules(path, config.extend.as_ref())?;
    let mut without_keywords = Vec::new();
    for (index, table) in config.rules.iter().enumerate() {
        let rule = compile_rule(path, index, table)?;
        if rule.keywords.is_empty() {
            without_keywords.push(rule.id.clone());
        }
        rules.push(rule);
    }
    if !without_keywords.is_empty() {
        tracing::warn!(
            file = path,
            rules = ?without_keywords,
            "rules without keywords run over all scanned data, which is slower"
        );
    }

    let globals = config.allowlist.iter().chain(&config.allowlists);
    for (index, table) in globals.enumerate() {
        let label = format!("[allowlist] #{}", index + 1);
        let allowlist = compile_allowlist(path, &label, table)?;
        for rule in &mut rules {
            if table.target_rules.is_empty() || table.target_rules.contains(&rule.id) {
                merge_allowlist(&mut rule.allowlist, &allowlist);
            }
        }
    }

    let mut set = RuleSet::new();
    for rule in rules {
        set.push(rule).map_err(|error| with_file(path, error))?;
    }
    Ok(set)
}

/// Builds the `InvalidFile` error for a TOML error, with its line and
/// column.
fn toml_error(path: &str, text: &str, error: &toml::de::Error) -> RuleError {
    let position = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" at line {line}, column {column}")
    });
    RuleError::InvalidFile {
        path: path.to_owned(),
        message: format!(
            "invalid TOML{}: {}",
            position.unwrap_or_default(),
            error.message()
        ),
    }
}

/// Adds the file path to an error from the shared regex and set helpers.
fn with_file(path: &str, error: RuleError) -> RuleError {
    let file = Some(path.to_owned());
    match error {
        RuleError::InvalidRegex { id, source, .. } => RuleError::InvalidRegex { file, id, source },
        RuleError::MissingSecretGroup {
            id, group, groups, ..
        } => RuleError::MissingSecretGroup {
            file,
            id,
            group,
            groups,
        },
        RuleError::DuplicateId { id, .. } => RuleError::DuplicateId { file, id },
        other => other,
    }
}

fn invalid(path: &str, message: String) -> RuleError {
    RuleError::InvalidFile {
        path: path.to_owned(),
        message,
    }
}

/// Logs every key that the loader ignores, in every table it reads.
fn warn_unknown_keys(path: &str, table: &toml::Table) {
    warn_table(path, "top level", table, TOP_KEYS);
    if let Some(toml::Value::Table(extend)) = table.get("extend") {
        warn_table(path, "[extend]", extend, EXTEND_KEYS);
    }
    for (name, value) in [
        ("allowlist", table.get("allowlist")),
        ("allowlists", table.get("allowlists")),
    ] {
        for allowlist in tables_in(value) {
            warn_table(path, &format!("[{name}]"), allowlist, ALLOWLIST_KEYS);
        }
    }
    for rule in tables_in(table.get("rules")) {
        let id = rule
            .get("id")
            .and_then(toml::Value::as_str)
            .unwrap_or("(no id)");
        warn_table(path, &format!("rule {id}"), rule, RULE_KEYS);
        for name in ["allowlist", "allowlists"] {
            for allowlist in tables_in(rule.get(name)) {
                warn_table(
                    path,
                    &format!("rule {id} {name}"),
                    allowlist,
                    ALLOWLIST_KEYS,
                );
            }
        }
    }
}

/// Returns the tables in a value that is a table or an array of tables.
fn tables_in(value: Option<&toml::Value>) -> Vec<&toml::Table> {
    match value {
        Some(toml::Value::Table(table)) => vec![table],
        Some(toml::Value::Array(items)) => items.iter().filter_map(toml::Value::as_table).collect(),
        _ => Vec::new(),
    }
}

fn warn_table(path: &str, place: &str, table: &toml::Table, known: &[&str]) {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            tracing::warn!(
                file = path,
                place,
                key = key.as_str(),
                "ignoring unknown key in rules file"
            );
        }
    }
}

/// Compiles the built-in rules, less `disabledRules`, when `[extend]` sets
/// `useDefault = true`. Returns no rules otherwise.
fn default_rules(path: &str, extend: Option<&ExtendTable>) -> Result<Vec<Rule>, RuleError> {
    let Some(extend) = extend else {
        return Ok(Vec::new());
    };
    if let Some(other) = extend.path.as_ref().or(extend.url.as_ref()) {
        return Err(invalid(
            path,
            format!(
                "[extend] from another file or URL ({other}) is not supported; merge the files"
            ),
        ));
    }
    if !extend.use_default {
        return Ok(Vec::new());
    }
    let mut rules = Vec::new();
    let mut unknown: BTreeSet<&str> = extend.disabled_rules.iter().map(String::as_str).collect();
    for builtin in super::BUILTIN_RULES {
        if unknown.remove(builtin.id) {
            continue;
        }
        rules.push(builtin.compile()?);
    }
    if !unknown.is_empty() {
        tracing::warn!(file = path, rules = ?unknown, "[extend] disabledRules names rules that do not exist");
    }
    Ok(rules)
}

/// Compiles the `index`-th `[[rules]]` table.
fn compile_rule(path: &str, index: usize, table: &RuleTable) -> Result<Rule, RuleError> {
    let Some(id) = table.id.as_deref().filter(|id| !id.is_empty()) else {
        return Err(invalid(
            path,
            format!(
                "rule #{} (the [[rules]] table number {}) has no id",
                index + 1,
                index + 1
            ),
        ));
    };
    let Some(pattern) = table.regex.as_deref() else {
        return Err(invalid(
            path,
            format!("rule {id}: no regex; rules that match only a path are not supported"),
        ));
    };
    let probe = compile_regex(id, pattern, 0).map_err(|error| with_file(path, error))?;
    // NOTE: gitleaks takes the first non-empty group when secretGroup is
    // unset. A rule here has one fixed group, so an unset secretGroup means
    // group 1 when the regex has exactly one group, else the whole match.
    let secret_group = table
        .secret_group
        .unwrap_or(if probe.captures_len() == 2 { 1 } else { 0 });
    let regex = compile_regex(id, pattern, secret_group).map_err(|error| with_file(path, error))?;

    let path_regex = match &table.path {
        Some(pattern) => Some(compile_path_regex(path, id, pattern)?),
        None => None,
    };

    let mut allowlist = Allowlist::default();
    for (number, entry) in table.allowlist.iter().chain(&table.allowlists).enumerate() {
        let label = format!("rule {id} allowlist #{}", number + 1);
        merge_allowlist(&mut allowlist, &compile_allowlist(path, &label, entry)?);
    }

    Ok(Rule {
        id: id.to_owned(),
        kind: table.kind.clone().unwrap_or_else(|| id.to_owned()),
        description: table.description.clone().unwrap_or_default(),
        regex,
        secret_group,
        keywords: table.keywords.iter().map(|k| k.to_lowercase()).collect(),
        min_entropy: table.entropy.filter(|e| *e > 0.0),
        max_match_len: DEFAULT_MAX_MATCH_LEN,
        allowlist,
        overrides: Vec::new(),
        validate: None,
        decoding: super::SecretDecoding::Raw,
        path: path_regex,
    })
}

fn compile_path_regex(path: &str, id: &str, pattern: &str) -> Result<regex::Regex, RuleError> {
    regex::Regex::new(pattern).map_err(|source| RuleError::InvalidRegex {
        file: Some(path.to_owned()),
        id: id.to_owned(),
        source,
    })
}

/// Compiles one allowlist table; `label` names it in errors.
fn compile_allowlist(
    path: &str,
    label: &str,
    table: &AllowlistTable,
) -> Result<Allowlist, RuleError> {
    match table
        .condition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("OR") => {}
        Some("AND") => {
            return Err(invalid(
                path,
                format!(
                    "{label}: condition \"AND\" is not supported; split the allowlist or use \"OR\""
                ),
            ));
        }
        Some(other) => {
            return Err(invalid(
                path,
                format!("{label}: invalid condition {other:?}; expected \"OR\" or \"AND\""),
            ));
        }
    }
    if !table.commits.is_empty() {
        tracing::warn!(
            file = path,
            allowlist = label,
            "ignoring allowlist commits: images have no commits"
        );
    }
    let mut allowlist = Allowlist::default();
    let mut regexes = Vec::with_capacity(table.regexes.len());
    for pattern in &table.regexes {
        regexes.push(compile_regex(label, pattern, 0).map_err(|error| with_file(path, error))?);
    }
    match table.regex_target.as_deref() {
        None | Some("secret") => allowlist.regexes = regexes,
        Some("match") => allowlist.match_regexes = regexes,
        Some("line") => {
            return Err(invalid(
                path,
                format!(
                    "{label}: regexTarget \"line\" is not supported; use \"match\" or \"secret\""
                ),
            ));
        }
        Some(other) => {
            return Err(invalid(
                path,
                format!(
                    "{label}: invalid regexTarget {other:?}; expected \"secret\", \"match\" or \"line\""
                ),
            ));
        }
    }
    allowlist.stopwords = table.stopwords.iter().map(|w| w.to_lowercase()).collect();
    for pattern in &table.paths {
        allowlist
            .paths
            .push(compile_path_regex(path, label, pattern)?);
    }
    Ok(allowlist)
}

fn merge_allowlist(into: &mut Allowlist, from: &Allowlist) {
    into.regexes.extend(from.regexes.iter().cloned());
    into.match_regexes
        .extend(from.match_regexes.iter().cloned());
    into.stopwords.extend(from.stopwords.iter().cloned());
    into.paths.extend(from.paths.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "rules/custom.toml";

    const REALISTIC: &str = r#"
title = "custom rules"

[extend]
useDefault = false

[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''(?i)\b(acme_[a-z0-9]{32})\b'''
secretGroup = 1
entropy = 3.5
keywords = ["ACME_"]
tags = ["api", "acme"]

[rules.allowlist]
regexes = ['''acme_0{32}''']
stopwords = ["Sample"]

[[rules]]
id = "internal-password"
kind = "password"
description = "Internal service password"
regex = '''internal_pw\s*=\s*"([^"]{12,})"'''
keywords = ["internal_pw"]
path = '''\.env$'''

[[rules.allowlists]]
regexTarget = "match"
regexes = ['''# ignore''']

[[rules]]
id = "no-keyword-rule"
regex = '''zz[0-9]{10}zz'''

[allowlist]
description = "global"
paths = ['''^vendor/''']
stopwords = ["dummyvalue"]
"#;

    fn load(text: &str) -> Result<RuleSet, RuleError> {
        load_gitleaks_toml(FILE, text)
    }

    fn rule<'a>(set: &'a RuleSet, id: &str) -> &'a Rule {
        set.rules()
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("rule {id} missing"))
    }

    fn secret_of(rule: &Rule, text: &str) -> Option<String> {
        let caps = rule.regex.captures(text.as_bytes())?;
        let secret = caps.get(rule.secret_group)?.as_bytes();
        Some(String::from_utf8_lossy(secret).into_owned())
    }

    #[test]
    fn realistic_file_loads() {
        let set = load(REALISTIC).expect("valid file");
        assert_eq!(set.len(), 3);
        let acme = rule(&set, "acme-api-key");
        assert_eq!(acme.kind, "acme-api-key");
        assert_eq!(acme.secret_group, 1);
        assert_eq!(acme.keywords, vec!["acme_".to_owned()]);
        assert_eq!(acme.min_entropy, Some(3.5));
        let secret = secret_of(acme, "key = acme_k3j9x0q2m8v7b6n5z4l1p0o9i8u7y6t5").expect("match");
        assert_eq!(secret, "acme_k3j9x0q2m8v7b6n5z4l1p0o9i8u7y6t5");
        assert!(acme.accepts(secret.as_bytes(), Some("app/config")));
    }

    #[test]
    fn rule_allowlist_applies() {
        let set = load(REALISTIC).expect("valid file");
        let acme = rule(&set, "acme-api-key");
        assert!(!acme.accepts(b"acme_00000000000000000000000000000000", None));
        assert!(!acme.accepts(b"acme_sample9x0q2m8v7b6n5z4l1p0o9i8u", None));
    }

    #[test]
    fn match_target_allowlist_applies() {
        let set = load(REALISTIC).expect("valid file");
        let internal = rule(&set, "internal-password");
        assert!(internal.accepts_match(br#"internal_pw = "Qx8vLm2Rt7Zp4Wk9""#));
        assert!(!internal.accepts_match(br#"internal_pw = "Qx8vLm2Rt7Zp4Wk9 # ignore""#));
        assert!(internal.allowlist.regexes.is_empty());
    }

    #[test]
    fn rule_path_limits_rule() {
        let set = load(REALISTIC).expect("valid file");
        let internal = rule(&set, "internal-password");
        assert_eq!(internal.kind, "password");
        assert!(internal.accepts(b"Qx8vLm2Rt7Zp4Wk9", Some("app/.env")));
        assert!(!internal.accepts(b"Qx8vLm2Rt7Zp4Wk9", Some("app/config.yml")));
        assert!(!internal.accepts(b"Qx8vLm2Rt7Zp4Wk9", None));
    }

    #[test]
    fn global_allowlist_applies_to_all() {
        let set = load(REALISTIC).expect("valid file");
        for rule in set.rules() {
            assert!(
                !rule.accepts(b"zz0123456789zz", Some("vendor/lib.txt")),
                "{}",
                rule.id
            );
            assert!(!rule.accepts(b"xx-DummyValue-xx", None), "{}", rule.id);
        }
        let plain = rule(&set, "no-keyword-rule");
        assert!(plain.keywords.is_empty());
        assert!(plain.accepts(b"zz0123456789zz", Some("app/x")));
    }

    #[test]
    fn global_allowlist_target_rules() {
        let text = r#"
[[rules]]
id = "a"
regex = "a[0-9]+"
keywords = ["a"]
[[rules]]
id = "b"
regex = "b[0-9]+"
keywords = ["b"]
[[allowlists]]
targetRules = ["a"]
regexes = ["7"]
"#;
        let set = load(text).expect("valid file");
        assert!(!rule(&set, "a").accepts(b"a7", None));
        assert!(rule(&set, "b").accepts(b"b7", None));
    }

    #[test]
    fn extend_use_default_adds_builtins() {
        let text = r#"
[extend]
useDefault = true
disabledRules = ["jwt"]
[[rules]]
id = "extra"
regex = "extra_[0-9]{8}"
keywords = ["extra_"]
"#;
        let set = load(text).expect("valid file");
        assert!(set.rules().iter().any(|r| r.id == "aws-access-key-id"));
        assert!(!set.rules().iter().any(|r| r.id == "jwt"));
        assert_eq!(set.rules().last().map(|r| r.id.as_str()), Some("extra"));
    }

    #[test]
    fn bad_toml_names_position() {
        let text = "[[rules]]\nid = \"x\"\nregex = 'a\nkeywords = []\n";
        let error = load(text).expect_err("invalid TOML");
        let message = error.to_string();
        assert!(message.contains(FILE), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn wrong_type_names_position() {
        let text = "[[rules]]\nid = \"x\"\nregex = \"a\"\nkeywords = \"a\"\n";
        let message = load(text)
            .expect_err("keywords must be an array")
            .to_string();
        assert!(message.contains(FILE), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    #[test]
    fn bad_regex_names_rule() {
        // Lookahead is valid in PCRE but neither RE2 nor the regex crate.
        let text = "[[rules]]\nid = \"lookahead\"\nregex = '''a(?=b)'''\nkeywords = [\"a\"]\n";
        let error = load(text).expect_err("invalid regex");
        assert!(
            matches!(&error, RuleError::InvalidRegex { id, file: Some(f), .. } if id == "lookahead" && f == FILE),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(FILE) && message.contains("lookahead"),
            "{message}"
        );
    }

    #[test]
    fn missing_secret_group_rejected() {
        let text =
            "[[rules]]\nid = \"g\"\nregex = '''(a)(b)'''\nsecretGroup = 3\nkeywords = [\"a\"]\n";
        let error = load(text).expect_err("group 3 does not exist");
        assert!(
            matches!(&error, RuleError::MissingSecretGroup { id, group: 3, .. } if id == "g"),
            "{error:?}"
        );
    }

    #[test]
    fn missing_id_rejected() {
        let text = "[[rules]]\nid = \"ok\"\nregex = \"a\"\n[[rules]]\nregex = \"b\"\n";
        let message = load(text).expect_err("second rule has no id").to_string();
        assert!(message.contains(FILE), "{message}");
        assert!(message.contains("rule #2"), "{message}");
    }

    #[test]
    fn missing_regex_rejected() {
        let text = "[[rules]]\nid = \"path-only\"\npath = '''\\.pem$'''\n";
        let message = load(text).expect_err("no regex").to_string();
        assert!(
            message.contains("path-only") && message.contains(FILE),
            "{message}"
        );
    }

    #[test]
    fn duplicate_ids_rejected() {
        let text =
            "[[rules]]\nid = \"same\"\nregex = \"a\"\n[[rules]]\nid = \"same\"\nregex = \"b\"\n";
        let error = load(text).expect_err("duplicate id");
        assert!(
            matches!(&error, RuleError::DuplicateId { id, file: Some(f) } if id == "same" && f == FILE),
            "{error:?}"
        );
    }

    #[test]
    fn unknown_regex_target_rejected() {
        for (target, expected) in [("line", "not supported"), ("commit", "invalid regexTarget")] {
            let text = format!(
                "[[rules]]\nid = \"t\"\nregex = \"a\"\n[rules.allowlist]\nregexTarget = \"{target}\"\nregexes = [\"a\"]\n"
            );
            let message = load(&text).expect_err("bad regexTarget").to_string();
            assert!(message.contains(expected), "{target}: {message}");
            assert!(message.contains("rule t"), "{target}: {message}");
        }
    }

    #[test]
    fn and_condition_rejected() {
        let text = "[[rules]]\nid = \"c\"\nregex = \"a\"\n[rules.allowlist]\ncondition = \"AND\"\nstopwords = [\"x\"]\n";
        let message = load(text).expect_err("AND unsupported").to_string();
        assert!(
            message.contains("AND") && message.contains("rule c"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_ignored() {
        let text = "futureKey = 1\n[[rules]]\nid = \"u\"\nregex = \"a\"\nseverity = \"high\"\n";
        let set = load(text).expect("unknown keys are only warned about");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn empty_file_gives_empty_set() {
        assert!(load("").expect("empty file is valid").is_empty());
    }
}
