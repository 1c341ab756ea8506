//! The detector: keyword prefilter, windowed rule regexes, exact search for
//! known leaked values, and a base64 pass for encoded secrets.

use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use regex::bytes::CaptureLocations;

use crate::rules::{Rule, RuleSet};

/// Rule id reported for matches of known leaked values.
pub const KNOWN_VALUE_RULE: &str = "known-value";

/// Encoding of a secret at the place it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Byte for byte, or as the rule decodes it (JSON escapes).
    Raw,
    /// Inside a base64 run.
    Base64,
    /// Inside UTF-16 little-endian text.
    Utf16le,
    /// Inside UTF-16 big-endian text.
    Utf16be,
}

/// One candidate secret found in a haystack.
#[derive(Clone, Debug)]
pub struct Match {
    /// Index of the rule in the detector's rule set, or `None` for a known
    /// value.
    pub rule: Option<usize>,
    /// Byte range of the whole match in the haystack.
    pub span: Range<usize>,
    /// Offset of the secret itself in the haystack (inside `span`); lines
    /// are counted to here.
    pub secret_start: usize,
    /// The secret bytes, decoded as the rule specifies: the bytes that are
    /// fingerprinted.
    pub secret: crate::Secret,
    /// Encoding of the secret in the haystack.
    pub encoding: Encoding,
}

/// Exact strings to search for, with their base64 forms.
#[derive(Clone, Debug, Default)]
pub struct KnownValues {
    values: Vec<crate::Secret>,
}

impl KnownValues {
    /// Creates an empty set.
    pub fn new() -> Self {
        KnownValues::default()
    }

    /// Parses one value per line. Trailing `\r` is removed; empty lines are
    /// ignored. Returns the number of values added.
    pub fn add_lines(&mut self, text: &[u8]) -> usize {
        let mut added = 0;
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                self.values.push(crate::Secret::new(line.to_vec()));
                added += 1;
            }
        }
        added
    }

    /// Adds one value. Empty values are ignored.
    pub fn add(&mut self, value: crate::Secret) {
        if !value.is_empty() {
            self.values.push(value);
        }
    }

    /// Consumes the set, returning the values.
    pub fn into_values(self) -> Vec<crate::Secret> {
        self.values
    }

    /// Returns the number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Returns true when there are no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Minimum length of a value for its base64 forms to be searched; shorter
/// base64 fragments match random data too often.
const MIN_BASE64_VALUE_LEN: usize = 6;

/// Strings whose base64 forms start the base64 pass: when one occurs, the
/// surrounding base64 run is decoded and scanned with every rule.
const BASE64_TRIGGERS: &[&[u8]] = &[
    b"service_account",
    b"PRIVATE KEY-----",
    b"aws_secret_access_key",
    b"AWS_SECRET_ACCESS_KEY",
    b"password",
    b"://",
];

/// Upper bound on the length of a base64 run that is decoded.
const MAX_BASE64_RUN: usize = 64 * 1024;

/// Compiled detector: immutable and shared by every scanning thread.
#[derive(Debug)]
pub struct Detector {
    rules: RuleSet,
    /// One case-insensitive automaton over every rule keyword followed by
    /// the base64 trigger forms, so a single pass finds both.
    keywords: AhoCorasick,
    /// Rules of each keyword pattern; empty for trigger patterns.
    keyword_rules: Vec<Vec<usize>>,
    /// Pattern index of the first base64 trigger form.
    first_trigger: usize,
    /// The trigger forms, matched case-sensitively after a hit.
    trigger_forms: Vec<Vec<u8>>,
    unkeyed_rules: Vec<usize>,
    known: Option<AhoCorasick>,
    known_patterns: Vec<(usize, Encoding)>,
    known_values: Vec<crate::Secret>,
    max_match_len: usize,
}

/// Error from building a detector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectorError {
    /// The Aho-Corasick automaton could not be built (too many or too long
    /// patterns).
    #[error("cannot build the {what} automaton: {source}")]
    Automaton {
        /// Name of the automaton: keywords or known values.
        what: &'static str,
        /// The builder's error.
        source: aho_corasick::BuildError,
    },
}

impl Detector {
    /// Compiles a detector from rules and known values.
    ///
    /// # Errors
    ///
    /// [`DetectorError::Automaton`] when an automaton cannot be built.
    pub fn new(rules: RuleSet, known: &KnownValues) -> Result<Self, DetectorError> {
        let mut keyword_list: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut unkeyed_rules = Vec::new();
        let mut max_match_len = 0;
        for (index, rule) in rules.rules().iter().enumerate() {
            max_match_len = max_match_len.max(rule.max_match_len);
            if rule.keywords.is_empty() {
                unkeyed_rules.push(index);
            }
            for keyword in &rule.keywords {
                let keyword = keyword.to_ascii_lowercase();
                match keyword_list.iter().position(|k| *k == keyword) {
                    Some(pos) => keyword_rules[pos].push(index),
                    None => {
                        keyword_list.push(keyword);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        let first_trigger = keyword_list.len();
        let trigger_forms: Vec<Vec<u8>> = BASE64_TRIGGERS
            .iter()
            .flat_map(|t| base64_forms(t))
            .collect();
        let mut patterns: Vec<Vec<u8>> = keyword_list.into_iter().map(String::into_bytes).collect();
        patterns.extend(trigger_forms.iter().cloned());
        keyword_rules.resize(patterns.len(), Vec::new());
        let keywords = build_automaton(&patterns, true, "keywords")?;

        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut known_patterns = Vec::new();
        for (index, value) in known.values.iter().enumerate() {
            let bytes = value.expose();
            max_match_len = max_match_len.max(bytes.len() * 4 / 3 + 4);
            patterns.push(bytes.to_vec());
            known_patterns.push((index, Encoding::Raw));
            if bytes.len() >= MIN_BASE64_VALUE_LEN {
                for form in base64_forms(bytes) {
                    patterns.push(form);
                    known_patterns.push((index, Encoding::Base64));
                }
            }
        }
        let known_automaton = if patterns.is_empty() {
            None
        } else {
            Some(build_automaton(&patterns, false, "known values")?)
        };

        Ok(Detector {
            rules,
            keywords,
            keyword_rules,
            first_trigger,
            trigger_forms,
            unkeyed_rules,
            known: known_automaton,
            known_patterns,
            known_values: known.values.clone(),
            max_match_len,
        })
    }

    /// Returns the rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Returns the rule at `index`.
    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules.rules()[index]
    }

    /// Returns the longest match the detector can report, in bytes: the
    /// chunk overlap must be at least this long.
    pub fn max_match_len(&self) -> usize {
        self.max_match_len
    }

    /// Finds every match in `haystack` whose start lies in `accept`.
    ///
    /// Bytes outside `accept` are context: rule regexes may read them, but a
    /// match that starts there belongs to a neighbouring chunk. `path` is the
    /// file path for path allowlists. Matches are appended to `out`.
    pub fn scan(
        &self,
        haystack: &[u8],
        accept: Range<usize>,
        path: Option<&str>,
        out: &mut Vec<Match>,
    ) {
        let mut triggers = Vec::new();
        self.scan_rules(
            haystack,
            &accept,
            path,
            Encoding::Raw,
            Some(&mut triggers),
            out,
        );
        self.scan_known(haystack, &accept, out);
        self.scan_base64(haystack, &accept, path, &triggers, out);
    }

    /// Runs the keyword pass and each rule's regex in the windows around
    /// its keyword hits. When `triggers` is given, the starts of base64
    /// trigger hits are collected into it.
    fn scan_rules(
        &self,
        haystack: &[u8],
        accept: &Range<usize>,
        path: Option<&str>,
        encoding: Encoding,
        mut triggers: Option<&mut Vec<usize>>,
        out: &mut Vec<Match>,
    ) {
        // Windows per rule, merged as hits arrive: hits come in order of
        // their end, so a new window nearly always extends or follows the
        // last one of its rule.
        let mut windows: Vec<Vec<Range<usize>>> = vec![Vec::new(); self.rules.len()];
        let search_start = accept.start.saturating_sub(self.max_match_len);
        let search_end = (accept.end + self.max_match_len).min(haystack.len());
        let input = aho_corasick::Input::new(haystack).range(search_start..search_end);
        for hit in self.keywords.find_overlapping_iter(input) {
            let pattern = hit.pattern().as_usize();
            if pattern >= self.first_trigger {
                let form = &self.trigger_forms[pattern - self.first_trigger];
                if let Some(triggers) = triggers.as_deref_mut()
                    && haystack[hit.start()..hit.end()] == form[..]
                {
                    triggers.push(hit.start());
                }
                continue;
            }
            for &rule_index in &self.keyword_rules[pattern] {
                let reach = self.rule(rule_index).max_match_len;
                let window =
                    hit.start().saturating_sub(reach)..(hit.end() + reach).min(haystack.len());
                let list = &mut windows[rule_index];
                match list.last_mut() {
                    Some(last) if window.start <= last.end && window.end >= last.start => {
                        last.start = last.start.min(window.start);
                        last.end = last.end.max(window.end);
                    }
                    _ => list.push(window),
                }
            }
        }
        for &rule_index in &self.unkeyed_rules {
            windows[rule_index] = std::iter::once(0..haystack.len()).collect();
        }
        for (rule_index, list) in windows.into_iter().enumerate() {
            for window in list {
                self.run_rule(rule_index, haystack, window, accept, path, encoding, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_rule(
        &self,
        rule_index: usize,
        haystack: &[u8],
        window: Range<usize>,
        accept: &Range<usize>,
        path: Option<&str>,
        encoding: Encoding,
        out: &mut Vec<Match>,
    ) {
        let rule = self.rule(rule_index);
        let limited = &haystack[..window.end];
        let mut locations: CaptureLocations = rule.regex.capture_locations();
        let mut position = window.start;
        while position <= limited.len() {
            let Some(found) = rule
                .regex
                .captures_read_at(&mut locations, limited, position)
            else {
                break;
            };
            position = if found.end() > found.start() {
                found.end()
            } else {
                found.end() + 1
            };
            if !accept.contains(&found.start()) {
                if found.start() >= accept.end {
                    break;
                }
                continue;
            }
            let Some((secret_start, secret_end)) = locations.get(rule.secret_group) else {
                continue;
            };
            let matched = &limited[secret_start..secret_end];
            if !rule.accepts(matched, path)
                || !rule.accepts_match(&limited[found.start()..found.end()])
            {
                continue;
            }
            out.push(Match {
                rule: Some(rule_index),
                span: found.start()..found.end(),
                secret_start,
                secret: crate::Secret::new(rule.decode_secret(matched)),
                encoding,
            });
        }
    }

    fn scan_known(&self, haystack: &[u8], accept: &Range<usize>, out: &mut Vec<Match>) {
        let Some(automaton) = &self.known else {
            return;
        };
        let input = aho_corasick::Input::new(haystack).range(accept.start..haystack.len());
        for hit in automaton.find_overlapping_iter(input) {
            if !accept.contains(&hit.start()) {
                continue;
            }
            let (value_index, encoding) = self.known_patterns[hit.pattern().as_usize()];
            out.push(Match {
                rule: None,
                span: hit.start()..hit.end(),
                secret_start: hit.start(),
                secret: self.known_values[value_index].clone(),
                encoding,
            });
        }
    }

    /// Decodes base64 runs that contain an encoded trigger string and scans
    /// the decoded bytes with every rule. Matches are reported at the run's
    /// span with [`Encoding::Base64`].
    fn scan_base64(
        &self,
        haystack: &[u8],
        accept: &Range<usize>,
        path: Option<&str>,
        triggers: &[usize],
        out: &mut Vec<Match>,
    ) {
        let mut done_until = 0;
        for &position in triggers {
            if position < done_until {
                continue;
            }
            let run = base64_run(haystack, position);
            done_until = run.end;
            if !accept.contains(&run.start) || run.len() > MAX_BASE64_RUN {
                continue;
            }
            let Some(decoded) = decode_base64(&haystack[run.clone()]) else {
                continue;
            };
            let mut inner = Vec::new();
            self.scan_rules(
                &decoded,
                &(0..decoded.len()),
                path,
                Encoding::Base64,
                None,
                &mut inner,
            );
            for found in inner {
                out.push(Match {
                    span: run.clone(),
                    secret_start: run.start,
                    ..found
                });
            }
        }
    }
}

fn build_automaton<P: AsRef<[u8]>>(
    patterns: &[P],
    case_insensitive: bool,
    what: &'static str,
) -> Result<AhoCorasick, DetectorError> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(case_insensitive)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(patterns)
        .or_else(|_| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(case_insensitive)
                .match_kind(MatchKind::Standard)
                .build(patterns)
        })
        .map_err(|source| DetectorError::Automaton { what, source })
}

/// Returns the base64 texts that stand for `value` wherever it sits in a
/// longer base64-encoded byte string: one form for each of the three byte
/// alignments, in the standard and the URL-safe alphabet. Each form keeps
/// only the characters that depend on `value` alone.
pub fn base64_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for shift in 0..3usize {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(value);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&padded);
        let value_bits = (shift * 8)..((shift + value.len()) * 8);
        let first = value_bits.start.div_ceil(6);
        let last = (value_bits.end / 6).min(encoded.len());
        if last <= first || last - first < 4 {
            continue;
        }
        let form = encoded.as_bytes()[first..last].to_vec();
        let url_safe: Vec<u8> = form
            .iter()
            .map(|&b| match b {
                b'+' => b'-',
                b'/' => b'_',
                other => other,
            })
            .collect();
        if url_safe != form {
            forms.push(url_safe);
        }
        forms.push(form);
    }
    forms.sort();
    forms.dedup();
    forms
}

fn is_base64_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_')
}

/// Returns the maximal run of base64 characters around `position`, with
/// trailing `=` padding.
fn base64_run(haystack: &[u8], position: usize) -> Range<usize> {
    let mut start = position;
    while start > 0 && is_base64_byte(haystack[start - 1]) {
        start -= 1;
    }
    let mut end = position;
    while end < haystack.len() && is_base64_byte(haystack[end]) {
        end += 1;
    }
    while end < haystack.len() && haystack[end] == b'=' && end - start < MAX_BASE64_RUN {
        end += 1;
    }
    start..end
}

/// Decodes standard or URL-safe base64, with or without padding.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let trimmed: Vec<u8> = text.iter().copied().filter(|&b| b != b'=').collect();
    let url_safe = trimmed.iter().any(|&b| b == b'-' || b == b'_');
    let engine = if url_safe {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD
    };
    // A run may end in a partial quantum (a run cut by other text); drop
    // the dangling characters rather than fail.
    let usable = if trimmed.len() % 4 == 1 {
        trimmed.len() - 1
    } else {
        trimmed.len()
    };
    engine.decode(&trimmed[..usable]).ok()
}

/// Shared detector handle.
pub type SharedDetector = Arc<Detector>;

#[cfg(test)]
mod tests {
    use super::*;

    fn detector_with(values: &[&str]) -> Detector {
        let mut known = KnownValues::new();
        for value in values {
            known.add(crate::Secret::new(value.as_bytes().to_vec()));
        }
        Detector::new(RuleSet::builtin(), &known).unwrap()
    }

    #[test]
    fn base64_forms_found_at_every_alignment() {
        let value = b"leaked-value-123";
        let forms = base64_forms(value);
        for prefix_len in 0..3 {
            let mut data = vec![b'x'; prefix_len];
            data.extend_from_slice(value);
            data.extend_from_slice(b"tail");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            let found = forms
                .iter()
                .any(|form| memchr::memmem::find(encoded.as_bytes(), form).is_some());
            assert!(found, "prefix length {prefix_len}");
        }
    }

    #[test]
    fn known_value_raw_and_base64() {
        let detector = detector_with(&["my-leaked-token-value"]);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("xx my-leaked-token-value yy");
        let text = format!("a my-leaked-token-value b {encoded}");
        let mut out = Vec::new();
        detector.scan(text.as_bytes(), 0..text.len(), None, &mut out);
        let known: Vec<_> = out.iter().filter(|m| m.rule.is_none()).collect();
        assert_eq!(known.len(), 2);
        assert_eq!(known[0].encoding, Encoding::Raw);
        assert_eq!(known[1].encoding, Encoding::Base64);
    }

    #[test]
    fn accept_range_limits_match_starts() {
        let detector = detector_with(&["needle-value"]);
        let text = b"needle-value ... needle-value";
        let mut out = Vec::new();
        detector.scan(text, 1..text.len(), None, &mut out);
        let known: Vec<_> = out.iter().filter(|m| m.rule.is_none()).collect();
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].span.start, 17);
    }
}
