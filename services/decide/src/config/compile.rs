//! Validation and compilation of a configuration text into a [`DecisionConfig`]: every problem
//! is reported as a [`ConfigIssue`] with its path and, where it can be found, its line.

use std::{collections::HashMap, fmt};

use xxhash_rust::xxh3::xxh3_64;

use super::{
    locate::locate,
    model::{DecisionConfig, ScoreNeeds},
    policies,
    raw::{RawConfig, RawTenant},
    rules::{Rule, Stage, compile_rule},
    sections,
};

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where it is, e.g. `actions[3].eligibility`; empty when only the position is known.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line of the entry; 0 when unknown.
    pub line: u32,
    /// 1-based column of the entry; 0 when unknown.
    pub column: u32,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position =
            (self.line > 0).then(|| format!("line {}, column {}", self.line, self.column));
        match (self.path.is_empty(), position) {
            (false, Some(position)) => write!(f, "{} ({position}): {}", self.path, self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (true, Some(position)) => write!(f, "{position}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigIssue {}

/// The issues found so far; positions are filled in at the end.
#[derive(Debug, Default)]
pub(super) struct Issues {
    list: Vec<ConfigIssue>,
}

impl Issues {
    /// Records a problem at `path`.
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            line: 0,
            column: 0,
        });
    }

    /// The value, or None after recording the error at `path`.
    pub(super) fn check<T>(
        &mut self,
        path: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|message| self.push(path, message)).ok()
    }

    /// Compiles an optional rule at `path`, recording its errors.
    pub(super) fn rule(
        &mut self,
        path: &str,
        name: String,
        source: Option<&str>,
        stage: Stage,
    ) -> Option<Rule> {
        match compile_rule(name, source?, stage) {
            Ok(rule) => Some(rule),
            Err(messages) => {
                for message in messages {
                    self.push(path, message);
                }
                None
            }
        }
    }

    /// A number that must be finite and within `min..=max`.
    pub(super) fn number(
        &mut self,
        path: impl Into<String>,
        value: f64,
        min: f64,
        max: f64,
    ) -> f64 {
        if !value.is_finite() || value < min || value > max {
            let range = if max.is_infinite() {
                format!("a finite number >= {min}")
            } else {
                format!("between {min} and {max}")
            };
            self.push(path, format!("{value} is out of range: must be {range}"));
        }
        value
    }

    /// An integer that must lie within `min..=max`.
    pub(super) fn integer(
        &mut self,
        path: impl Into<String>,
        value: i64,
        min: u32,
        max: u32,
    ) -> u32 {
        match u32::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => {
                self.push(
                    path,
                    format!("{value} is out of range: must be between {min} and {max}"),
                );
                min
            }
        }
    }

    /// Whether nothing was found.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The issues, each with the position of its path in `yaml` where found.
    fn finish(mut self, yaml: &str) -> Vec<ConfigIssue> {
        for issue in &mut self.list {
            (issue.line, issue.column) = locate(yaml, &issue.path);
        }
        self.list
    }
}

/// Validates and compiles a whole configuration for `tenant_id`; every issue found is returned
/// (not just the first). A syntax or type error of the YAML itself stops the check there.
pub fn compile(tenant_id: &str, yaml: &str) -> Result<DecisionConfig, Vec<ConfigIssue>> {
    let raw: RawConfig = serde_yaml_ng::from_str(yaml)
        .map_err(|e| vec![with_document_line(yaml_issue(&e), yaml)])?;
    let mut issues = Issues::default();
    if let Some(declared) = &raw.tenant
        && declared != tenant_id
    {
        issues.push(
            "tenant",
            format!(
                "the configuration declares tenant '{declared}' but is loaded for '{tenant_id}'"
            ),
        );
    }
    let defaults = sections::defaults(&raw.defaults, &mut issues);
    let exploration = sections::exploration(&raw.exploration, &mut issues);
    let holdouts = sections::holdouts(&raw.holdouts, &mut issues);
    let actions = sections::actions(&raw.actions, &mut issues);
    let context_weights = sections::context_weights(&raw, &mut issues);
    let contact_policies = policies::compile(&raw, &actions, &mut issues);
    let mut by_id = HashMap::new();
    let mut by_channel: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
    for (i, action) in actions.iter().enumerate() {
        by_id.insert(action.id.clone(), i);
        for &channel in &action.channels {
            by_channel
                .entry((channel, action.direction))
                .or_default()
                .push(i);
        }
    }
    let triggers = sections::triggers(&raw.triggers, &by_channel, &mut issues);
    if !issues.is_empty() {
        return Err(issues.finish(yaml));
    }
    let rules = actions
        .iter()
        .flat_map(|a| [&a.eligibility, &a.applicability, &a.suitability])
        .flatten()
        .chain(context_weights.iter().map(|w| &w.when))
        .chain(triggers.iter().filter_map(|t| t.when.as_ref()));
    let needs = rules.fold(ScoreNeeds::default(), |acc, rule| ScoreNeeds {
        churn: acc.churn || rule.needs().churn,
        clv: acc.clv || rule.needs().clv,
    });
    Ok(DecisionConfig {
        tenant_id: tenant_id.to_owned(),
        version: version_of(yaml),
        yaml: yaml.to_owned(),
        defaults,
        exploration,
        actions,
        context_weights,
        contact_policies,
        holdouts,
        triggers,
        needs,
        by_id,
        by_channel,
    })
}

/// The version of a configuration text: 16 lowercase hex digits of xxh3-64 of the text, exactly
/// as given.
pub fn version_of(yaml: &str) -> String {
    format!("{:016x}", xxh3_64(yaml.as_bytes()))
}

/// The `tenant` key of a configuration, if it has one (used to map mounted files to tenants).
/// None when the text is not a YAML mapping or its `tenant` is not a string.
pub fn declared_tenant(yaml: &str) -> Option<String> {
    serde_yaml_ng::from_str::<RawTenant>(yaml).ok()?.tenant
}

/// A YAML syntax or type error: serde's message, split into path and reason when it has a path.
/// A parse issue without a position (the parser reports none for a second document) gets the
/// line of the marker that ends the first document: `---` (a new document starts), `...` (the
/// document ends; anything after it is another document) or a `%` directive (which can only
/// open a new document); without any, line 1.
fn with_document_line(mut issue: ConfigIssue, yaml: &str) -> ConfigIssue {
    if issue.line == 0 && issue.message.contains("more than one document") {
        let is_marker = |l: &str, m: &str| l.trim_end() == m || l.starts_with(&format!("{m} "));
        let mut markers = yaml
            .lines()
            .enumerate()
            .filter(|(_, l)| is_marker(l, "---") || is_marker(l, "...") || l.starts_with('%'));
        // A leading marker opens the first document; the next one ends it.
        let first_content = yaml
            .lines()
            .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let found = markers.find(|(i, _)| Some(*i) > first_content);
        let (line, marker) = match found {
            Some((i, l)) if l.starts_with('%') => (i + 1, "directive"),
            Some((i, l)) if is_marker(l, "...") => (i + 1, "`...`"),
            Some((i, _)) => (i + 1, "`---`"),
            None => (1, "document marker"),
        };
        issue.line = u32::try_from(line).unwrap_or(1);
        issue.column = 1;
        issue.message = format!(
            "a configuration is one YAML document; remove this {marker} and what follows, or \
             put it in a file of its own"
        );
    }
    issue
}

fn yaml_issue(error: &serde_yaml_ng::Error) -> ConfigIssue {
    let (line, column) = error.location().map_or((0, 0), |l| {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(0);
        (clamp(l.line()), clamp(l.column()))
    });
    // The position is reported separately.
    let text = error
        .to_string()
        .replacen(&format!(" at line {line} column {column}"), "", 1);
    let is_path = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?')
            })
    };
    let (path, message) = match text.split_once(": ") {
        Some((path, message)) if is_path(path) => (path.to_owned(), message.to_owned()),
        _ => (String::new(), text.clone()),
    };
    ConfigIssue {
        path,
        message,
        line,
        column,
    }
}
