//! `airlock bundle`: build, sign, push, list and activate policy bundles.

use super::client::{ago, print_table, ControlPlaneClient, GlobalArgs, Output};
use airlock_bundle::{BuiltBundle, SigningKey};
use airlock_control_plane::api;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `airlock bundle` subcommands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Build a signed, deterministic bundle archive (tar.gz) from a policy directory,
    /// after checking that it compiles and that its Rego tests pass.
    Build(BuildArgs),
    /// Generate an ed25519 signing key pair: PREFIX.key (the 32-byte secret seed,
    /// one line of base64, mode 0600) and PREFIX.pub (the 32-byte public key, one
    /// line of base64; list it in the control plane's `trusted_keys`).
    Keygen {
        /// Path prefix of the two files.
        #[arg(short = 'o', long = "output-prefix", value_name = "PREFIX")]
        prefix: PathBuf,
    },
    /// Publish a bundle to the control plane and activate it (unless --no-activate).
    /// A directory is built and signed on the fly with --signing-key.
    Push(PushArgs),
    /// List the stored revisions; `*` marks the active one.
    List,
    /// Make a stored revision the active one (roll back or forward); every proxy
    /// receives it.
    Activate {
        /// The revision, as shown by `airlock bundle list`.
        revision: String,
    },
}

/// Arguments of `airlock bundle build`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airlock bundle keygen -o release\n  airlock bundle build policies/ -o bundle.tar.gz --signing-key release.key"
)]
pub struct BuildArgs {
    /// The policy directory (*.rego, data.json, optional .manifest).
    pub dir: PathBuf,
    /// Where to write the archive.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// The ed25519 key file written by `airlock bundle keygen` (PREFIX.key).
    #[arg(long, env = "AIRLOCK_SIGNING_KEY")]
    pub signing_key: PathBuf,
    /// The revision (default: the .manifest's, else `sha256:` + 12 hex digits of the
    /// content digest, the revision `airlock policy eval` shows for the directory).
    #[arg(long)]
    pub revision: Option<String>,
    #[command(flatten)]
    pub proof: ProofArgs,
}

/// What the engine agreement proof replays (see `airlock policy test --help`).
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// Inputs to generate from the bundle's data and the input contract.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub proof_cases: usize,
    /// Recorded input documents to replay too (JSON lines, one input per line).
    #[arg(long, value_name = "FILE")]
    pub proof_inputs: Option<PathBuf>,
}

impl ProofArgs {
    fn options(&self) -> anyhow::Result<airlock_policy::proof::ProofOptions> {
        let mut options = airlock_policy::proof::ProofOptions {
            generated: self.proof_cases,
            ..Default::default()
        };
        if let Some(path) = &self.proof_inputs {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --proof-inputs {}", path.display()))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let doc = serde_json::from_str(line).with_context(|| {
                    format!("{}:{}: not a JSON input document", path.display(), n + 1)
                })?;
                options.recorded.push(doc);
            }
        }
        Ok(options)
    }
}

/// Arguments of `airlock bundle push`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  airlock bundle push bundle.tar.gz\n  airlock bundle push policies/ --signing-key release.key --revision 2026-11-25.1"
)]
pub struct PushArgs {
    /// A bundle archive, or a policy directory to build and sign now.
    pub path: PathBuf,
    /// Key for signing a directory (PREFIX.key).
    #[arg(long, env = "AIRLOCK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Revision for a directory (see `airlock bundle build --help`).
    #[arg(long)]
    pub revision: Option<String>,
    /// Store the bundle without activating it.
    #[arg(long)]
    pub no_activate: bool,
    #[command(flatten)]
    pub proof: ProofArgs,
}

/// Runs an `airlock bundle` subcommand.
pub async fn run(cmd: BundleCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        BundleCommand::Build(args) => build(args),
        BundleCommand::Keygen { prefix } => keygen(&prefix),
        BundleCommand::Push(args) => push(args, global).await,
        BundleCommand::List => list(global).await,
        BundleCommand::Activate { revision } => activate(revision, global).await,
    }
}

fn keygen(prefix: &Path) -> anyhow::Result<ExitCode> {
    let (key, public) = airlock_bundle::write_keypair(prefix)?;
    let id = airlock_bundle::PublicKey::from_file(&public)?.key_id();
    println!(
        "wrote {} (secret: keep it out of version control)",
        key.display()
    );
    println!(
        "wrote {} (key id {id}): add it to the control plane's trusted_keys",
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds, signs and checks a directory: the Rego must compile and its tests pass
/// (on the reference engine; the RVM is used only if the proof made at build holds).
fn build_checked(
    dir: &Path,
    key_path: &Path,
    revision: Option<&str>,
    proof: &ProofArgs,
) -> anyhow::Result<(BuiltBundle, usize)> {
    let key = SigningKey::from_file(key_path)?;
    let options = airlock_bundle::BuildOptions {
        revision: revision.map(str::to_owned),
        proof: proof.options()?,
    };
    let built = airlock_bundle::build_from_dir_with(dir, &options, &key)?;
    let verified = airlock_bundle::BundleVerifier::new([key.public_key()])?.verify(&built.bytes)?;
    airlock_policy::CompiledPolicy::compile(&verified.bundle)?;
    let test_options = airlock_policy::testing::TestOptions {
        compare_engines: false,
        ..Default::default()
    };
    let report = airlock_policy::testing::run_tests_with(&verified.bundle, &test_options)?;
    if report.failed() > 0 {
        let failures: Vec<String> = report
            .failures()
            .map(|t| {
                format!(
                    "  {}:{}: {}: {}",
                    t.file,
                    t.line,
                    t.name,
                    t.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        anyhow::bail!(
            "{} Rego test(s) failed; the control plane would refuse this bundle:\n{}",
            report.failed(),
            failures.join("\n")
        );
    }
    Ok((built, report.passed()))
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (built, passed) = build_checked(
        &args.dir,
        &args.signing_key,
        args.revision.as_deref(),
        &args.proof,
    )?;
    std::fs::write(&args.out, &built.bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "built {} revision {} ({} bytes, sha256 {}, {passed} Rego tests passed)",
        args.out.display(),
        built.revision,
        built.bytes.len(),
        built.digest
    );
    println!(
        "engine: {} [{:.0} ms]",
        built.engines.engine_line(),
        built.engines.elapsed.as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

async fn push(args: PushArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let archive = if args.path.is_dir() {
        let key = args.signing_key.as_deref().with_context(|| {
            format!(
                "{} is a directory: pass --signing-key PREFIX.key to build and sign it (or push an archive from `airlock bundle build`)",
                args.path.display()
            )
        })?;
        build_checked(&args.path, key, args.revision.as_deref(), &args.proof)?
            .0
            .bytes
    } else {
        if args.revision.is_some() {
            anyhow::bail!("--revision applies to a directory; an archive's revision is signed into its .manifest");
        }
        std::fs::read(&args.path)
            .with_context(|| format!("cannot read the bundle {}", args.path.display()))?
    };
    let client = ControlPlaneClient::connect(global).await?;
    let request = client.request(api::BundleServicePublishRequest {
        archive: archive.into(),
        no_activate: args.no_activate,
    })?;
    let response = client
        .bundles()
        .publish(request)
        .await
        .map_err(|s| client.explain(s))?;
    let bundle = response
        .into_inner()
        .bundle
        .context("the control plane answered without a bundle")?;
    if global.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&bundle))?);
    } else {
        let state = if bundle.active {
            "active: proxies receive it now"
        } else {
            "stored, not active"
        };
        println!(
            "pushed revision {} ({state}; {} Rego tests passed, signed by key {})",
            bundle.revision, bundle.tests_passed, bundle.key_id
        );
        println!("engine: {} ({})", bundle.engine, bundle.engine_reason);
        for warning in &bundle.warnings {
            println!("warning: {warning}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    let request = client.request(api::BundleServiceListRequest {})?;
    let list = client
        .bundles()
        .list(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    if global.output == Output::Json {
        let bundles: Vec<_> = list.bundles.iter().map(summary_json).collect();
        let doc = serde_json::json!({"active_revision": list.active_revision, "bundles": bundles});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.bundles.is_empty() {
        println!("no bundle stored yet; push one with `airlock bundle push DIR --signing-key KEY`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .bundles
        .iter()
        .map(|b| {
            vec![
                if b.active { "*".into() } else { String::new() },
                b.revision.clone(),
                ago(b.published_unix_ms),
                b.published_by.clone(),
                b.tests_passed.to_string(),
                b.engine.clone(),
                b.digest.chars().take(12).collect(),
            ]
        })
        .collect();
    print_table(
        &[
            "",
            "REVISION",
            "PUBLISHED",
            "BY",
            "TESTS",
            "ENGINE",
            "DIGEST",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn activate(revision: String, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = ControlPlaneClient::connect(global).await?;
    let request = client.request(api::BundleServiceActivateRequest { revision })?;
    let response = client
        .bundles()
        .activate(request)
        .await
        .map_err(|s| client.explain(s))?
        .into_inner();
    let bundle = response
        .bundle
        .context("the control plane answered without a bundle")?;
    if global.output == Output::Json {
        let doc = serde_json::json!({"bundle": summary_json(&bundle), "previous_revision": response.previous_revision});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let previous = if response.previous_revision.is_empty() {
            "none"
        } else {
            &response.previous_revision
        };
        println!(
            "activated revision {} (was {previous}); proxies receive it now",
            bundle.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_json(b: &api::BundleSummary) -> serde_json::Value {
    serde_json::json!({
        "revision": b.revision, "digest": b.digest, "active": b.active,
        "published_unix_ms": b.published_unix_ms, "published_by": b.published_by,
        "roots": b.roots, "key_id": b.key_id, "tests_passed": b.tests_passed, "size_bytes": b.size_bytes,
        "engine": b.engine, "engine_reason": b.engine_reason, "warnings": b.warnings,
    })
}
