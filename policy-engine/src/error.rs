//! Errors of loading, compiling, watching and testing a policy bundle.
//!
//! Every message names the file (and line, when there is one) and says what to do.

use std::path::PathBuf;

/// What went wrong with a policy bundle.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory of the bundle could not be read.
    #[error("cannot read {path}: {source}; check that the path exists and is readable")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `.rego` file.
    #[error("no .rego file under {dir}; point at a policy directory such as `policies/`")]
    NoModules {
        /// The directory searched.
        dir: PathBuf,
    },
    /// `data.json` or `.manifest` is not valid JSON of the expected shape.
    #[error("{file}: {message}")]
    Document {
        /// The bundle file.
        file: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A Rego module does not parse or compile.
    #[error("{file}:{line}: {message}")]
    Compile {
        /// The module, relative to the bundle root.
        file: String,
        /// 1-based line (0 when regorus did not say).
        line: u32,
        /// The compiler's message.
        message: String,
    },
    /// The bundle compiles but does not define `data.airlock.decision`.
    #[error(
        "the bundle defines no rule `decision` in package `airlock`; \
         add `package airlock` and a `decision` rule (see docs/policy-authoring.md)"
    )]
    NoDecisionRule,
    /// The chosen engine cannot run this bundle (e.g. the RVM compiler refuses it).
    #[error("{message}")]
    Engine {
        /// What happened and what to do.
        message: String,
    },
    /// The directory watcher could not start.
    #[error("cannot watch {dir}: {message}; check the directory exists and inotify limits (fs.inotify.max_user_watches)")]
    Watch {
        /// The watched directory.
        dir: PathBuf,
        /// The watcher's error.
        message: String,
    },
}

impl PolicyError {
    /// Builds a [`PolicyError::Compile`] from a regorus error, finding `file:line:` in its text.
    pub(crate) fn from_regorus(fallback_file: &str, err: &dyn std::fmt::Display) -> Self {
        let text = err.to_string();
        let text = text.trim();
        let (file, line) = locate(text).unwrap_or_else(|| (fallback_file.to_owned(), 0));
        // regorus prints a source excerpt then `error: ...`; lead with the error.
        let summary = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error:"))
            .map(str::trim);
        let message = match summary {
            Some(summary) if text.contains('\n') => format!("{summary}\n{text}"),
            _ => text.to_owned(),
        };
        PolicyError::Compile {
            file,
            line,
            message,
        }
    }
}

/// Finds the first `NAME.rego:LINE` in a regorus message.
fn locate(text: &str) -> Option<(String, u32)> {
    let at = text.find(".rego:")?;
    let start = text[..at]
        .rfind(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '(')
        .map_or(0, |i| i + 1);
    let rest = &text[at + ".rego:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let line = digits.parse().ok()?;
    Some((text[start..at + ".rego".len()].to_owned(), line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_file_and_line_in_a_regorus_message() {
        let err = PolicyError::from_regorus("x.rego", &"--> rules/a.rego:12:3\n  error: bad");
        match err {
            PolicyError::Compile { file, line, .. } => {
                assert_eq!(file, "rules/a.rego");
                assert_eq!(line, 12);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn falls_back_to_the_given_file() {
        let err = PolicyError::from_regorus("x.rego", &"something odd");
        assert!(err.to_string().starts_with("x.rego:0:"));
    }
}
