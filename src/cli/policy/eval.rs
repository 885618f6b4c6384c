//! `airlock policy eval [--explain]`: one decision, and why.

use super::bundle_failure;
use airlock_policy::explain::Explainer;
use airlock_policy::{Bundle, CompiledPolicy};
use anyhow::Context as _;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

/// Decides the input in `input` (a file or `-`) with the bundle in `dir`.
pub fn run(input: &str, dir: &Path, explain: bool) -> anyhow::Result<ExitCode> {
    let doc = read_input(input)?;
    let bundle = match Bundle::from_dir(dir) {
        Ok(bundle) => bundle,
        Err(err) => return Ok(bundle_failure(dir, &err)),
    };
    // The engine a node would choose for this directory: it proves it first.
    let mut proved = bundle.clone();
    if proved.engine_proof.is_none() {
        let report = airlock_policy::proof::prove(&proved, &Default::default());
        proved.engine_proof = report
            .ok()
            .and_then(|r| r.proof)
            .and_then(|p| serde_json::to_value(p).ok());
    }
    let policy = match CompiledPolicy::compile(&proved) {
        Ok(policy) => policy,
        Err(err) => return Ok(bundle_failure(dir, &err)),
    };
    let decision = policy.decide_value(&doc);
    let mut out = serde_json::json!({
        "revision": policy.revision(),
        "engine": policy.backend().as_str(),
        "engine_reason": policy.engine().reason,
        "decision": decision,
    });
    if explain {
        let explainer = match Explainer::new(&bundle) {
            Ok(explainer) => explainer,
            Err(err) => return Ok(bundle_failure(dir, &err)),
        };
        out["explanation"] = serde_json::json!(explainer.explanation(&doc));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn read_input(input: &str) -> anyhow::Result<serde_json::Value> {
    let text = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the input from standard input")?;
        text
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read the input file {input}"))?
    };
    serde_json::from_str(&text)
        .with_context(|| format!("the input {input} is not valid JSON; fix it and retry"))
}
