//! Line coverage of the policy files over a test run (regorus's coverage, merged
//! across the tests, which each run on their own engine clone).

use std::collections::{BTreeMap, BTreeSet};

/// Which lines of one policy file the tests evaluated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileCoverage {
    /// The file, relative to the bundle root.
    pub path: String,
    /// Lines some test evaluated.
    pub covered: BTreeSet<u32>,
    /// Lines that hold Rego no test evaluated.
    pub not_covered: BTreeSet<u32>,
}

impl FileCoverage {
    /// Covered share of the lines that hold Rego, in percent (100 for none).
    pub fn percent(&self) -> f64 {
        let total = self.covered.len() + self.not_covered.len();
        if total == 0 {
            return 100.0;
        }
        100.0 * self.covered.len() as f64 / total as f64
    }

    /// The uncovered lines as ranges, e.g. `12-14, 20`.
    pub fn uncovered_ranges(&self) -> String {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for &line in &self.not_covered {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == line => *end = line,
                _ => ranges.push((line, line)),
            }
        }
        ranges
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Coverage accumulated over the tests.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    files: BTreeMap<String, (BTreeSet<u32>, BTreeSet<u32>)>,
}

impl Accumulator {
    /// Adds one engine's report; `keep` says which files to report on.
    pub(crate) fn add(&mut self, report: &regorus::coverage::Report, keep: &dyn Fn(&str) -> bool) {
        for file in report.files.iter().filter(|f| keep(&f.path)) {
            let (covered, lines) = self.files.entry(file.path.clone()).or_default();
            covered.extend(file.covered.iter().copied());
            lines.extend(file.covered.iter().copied());
            lines.extend(file.not_covered.iter().copied());
        }
    }

    /// The merged result, one entry per file.
    pub(crate) fn finish(self) -> Vec<FileCoverage> {
        self.files
            .into_iter()
            .map(|(path, (covered, lines))| FileCoverage {
                path,
                not_covered: lines.difference(&covered).copied().collect(),
                covered,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_percent() {
        let f = FileCoverage {
            path: "a.rego".into(),
            covered: [1, 2, 3].into(),
            not_covered: [5, 6, 7, 9].into(),
        };
        assert_eq!(f.uncovered_ranges(), "5-7, 9");
        assert!((f.percent() - 300.0 / 7.0).abs() < 1e-9);
    }
}
