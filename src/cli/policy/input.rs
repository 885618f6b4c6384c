//! `airlock policy input`: the input contract, as a schema or an example.

use airlock_policy::contract;
use std::process::ExitCode;

/// Prints the schema, an example, or the list of examples.
pub fn run(schema: bool, example: Option<&str>) -> anyhow::Result<ExitCode> {
    if schema {
        print!("{}", contract::INPUT_SCHEMA);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(kind) = example else {
        println!("Print the policy input contract:\n  airlock policy input --schema\n  airlock policy input --example KIND\n\nKinds:");
        for (kind, what) in contract::EXAMPLES {
            println!("  {kind:<28} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    match contract::example(kind) {
        Some(doc) => {
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let kinds: Vec<&str> = contract::EXAMPLES.iter().map(|(k, _)| *k).collect();
            anyhow::bail!(
                "no example for {kind:?}; choose one of: {}",
                kinds.join(", ")
            )
        }
    }
}
