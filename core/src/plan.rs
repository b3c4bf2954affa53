//! Plans: one TOML file declares one rollout (stages, metrics, gates, rollback triggers,
//! checklists, permissions, sign-offs). `parse` turns text into a validated `Plan` or a
//! `PlanError` that names the file, line and column and says what is wrong.

mod model;
mod validate;

pub use model::*;

use crate::time::Span;

/// Where in a plan file something is, 1-based, counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte offset `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        // Step back to a char boundary so slicing cannot panic on multi-byte text.
        let offset = (0..=offset)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

/// A plan that does not parse or validate: `file:line:col: message`, like a compiler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", location.line, location.column)]
pub struct PlanError {
    pub file: String,
    pub location: Location,
    pub message: String,
}

/// Parses and validates a plan. `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Plan, Vec<PlanError>> {
    let raw: model::RawPlan = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        vec![PlanError {
            file: file.to_string(),
            location: Location::of_offset(text, offset),
            message: toml_message(&e),
        }]
    })?;
    validate::validate(raw, text).map_err(|errors| {
        errors
            .into_iter()
            .map(|(offset, message)| PlanError {
                file: file.to_string(),
                location: Location::of_offset(text, offset),
                message,
            })
            .collect()
    })
}

/// The `[[notify]]` tables of a server's config file, checked as a plan's are: the channels
/// every plan without its own gets. Other keys of the file are the config's business.
pub fn parse_channels(file: &str, text: &str) -> Result<Vec<Channel>, Vec<PlanError>> {
    #[derive(serde::Deserialize)]
    struct Only {
        #[serde(default, rename = "notify")]
        channels: Vec<model::RawNotify>,
    }
    let located = |offset: usize, message: String| PlanError {
        file: file.to_string(),
        location: Location::of_offset(text, offset),
        message,
    };
    let raw: Only = toml::from_str(text)
        .map_err(|e| vec![located(e.span().map_or(0, |s| s.start), toml_message(&e))])?;
    validate::channels_only(&raw.channels)
        .map_err(|errors| errors.into_iter().map(|(o, m)| located(o, m)).collect())
}

/// toml's messages end with a newline and sometimes restate the position; keep one sentence.
fn toml_message(e: &toml::de::Error) -> String {
    let message = e.message().trim().trim_end_matches('.');
    message.replace('`', "\"").to_string()
}

/// Parses a duration field, reporting the span of the field on failure.
pub(crate) fn duration(text: &toml::Spanned<String>) -> Result<Span, (usize, String)> {
    Span::parse(text.get_ref()).map_err(|e| (text.span().start, e.to_string()))
}

#[cfg(test)]
mod tests;
