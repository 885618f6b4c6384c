//! `[[upstreams]]` and `[[federations]]`: the MCP servers behind the proxy.
//!
//! ```toml
//! [[upstreams]]                       # an MCP server over Streamable HTTP
//! name = "demo"
//! url = "http://127.0.0.1:9100/mcp"
//! headers = { Authorization = "Bearer ${DEMO_TOKEN}" }
//!
//! [[upstreams]]                       # a local MCP server spoken to over stdio
//! name = "files"
//! command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
//! env = { GITHUB_TOKEN = "${GITHUB_TOKEN}" }   # with PATH, HOME and LANG: all it gets
//! cwd = "/srv"                        # relative to this file; default: the proxy's
//! max_processes = 32                  # children at once (sessions, or the stateless pool)
//! idle_timeout_s = 300                # a session's child ends after this long unused
//! startup_timeout_s = 30              # spawn to the answer of `initialize`
//!
//! [[federations]]                     # /mcp/all: both behind one endpoint
//! name = "all"
//! upstreams = ["demo", "files"]
//! separator = "__"                    # tools are listed as demo__query, files__read_file
//! ```
//! A `command` is run as given, never through a shell, and nothing from a request
//! ever reaches its arguments or its environment.

use super::{ConfigError, Validator};
use http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Variables a stdio child inherits from the proxy (when set); everything else in
/// its environment comes from `env`.
pub const INHERITED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    name: String,
    url: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    max_processes: Option<usize>,
    idle_timeout_s: Option<u64>,
    startup_timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederation {
    name: String,
    upstreams: Vec<String>,
    #[serde(default = "default_separator")]
    separator: String,
}

fn default_separator() -> String {
    "__".to_owned()
}

/// One upstream MCP server (`[[upstreams]]`).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The name in `/mcp/{name}` and `input.server.name`.
    pub name: String,
    /// Labels given to the policy as `input.server.labels`.
    pub labels: BTreeMap<String, String>,
    /// How the proxy reaches it.
    pub transport: TransportConfig,
}

/// How an upstream is reached.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// Streamable HTTP at `url`, with `headers` injected (its credentials).
    Http {
        /// The MCP endpoint (`http://` or `https://`).
        url: Uri,
        /// Headers injected on every upstream request (env references resolved).
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// A local process spoken to over stdio.
    Stdio(StdioConfig),
}

/// A stdio upstream's command and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioConfig {
    /// The program and its arguments, run without a shell.
    pub command: Vec<String>,
    /// The child's environment besides [`INHERITED_ENV`] (env references resolved).
    pub env: BTreeMap<String, String>,
    /// The child's working directory; `None`: the proxy's.
    pub cwd: Option<PathBuf>,
    /// Children at once: one per session, or the stateless pool's size.
    pub max_processes: usize,
    /// A session's child is ended after this long without a request.
    pub idle_timeout: Duration,
    /// Spawn to the answer of `initialize`.
    pub startup_timeout: Duration,
}

/// Several upstreams behind one endpoint (`[[federations]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationConfig {
    /// The name in `/mcp/{name}`.
    pub name: String,
    /// The member upstreams, in listing order.
    pub upstreams: Vec<String>,
    /// Between the upstream's name and a tool, prompt or resource name.
    pub separator: String,
}

const DEFAULT_MAX_PROCESSES: usize = 32;
const DEFAULT_IDLE_TIMEOUT_S: u64 = 300;
const DEFAULT_STARTUP_TIMEOUT_S: u64 = 30;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Validator<'_> {
    pub(super) fn upstreams(
        &self,
        raw: &[RawUpstream],
    ) -> Result<Vec<UpstreamConfig>, ConfigError> {
        let mut out: Vec<UpstreamConfig> = Vec::with_capacity(raw.len());
        for (i, u) in raw.iter().enumerate() {
            let key = |field: &str| format!("upstreams[{i}].{field}");
            if !valid_name(&u.name) {
                return Err(self.invalid(
                    key("name"),
                    format!("`{}` is not a valid name", u.name),
                    "use letters, digits, '-' and '_' (it becomes /mcp/{name})",
                ));
            }
            if out.iter().any(|o| o.name == u.name) {
                return Err(self.invalid(
                    key("name"),
                    format!("`{}` is used twice", u.name),
                    "give each upstream its own name",
                ));
            }
            let transport = match (&u.url, &u.command) {
                (Some(url), None) => self.http_transport(i, url, u)?,
                (None, Some(command)) => TransportConfig::Stdio(self.stdio(i, command, u)?),
                (Some(_), Some(_)) => {
                    return Err(self.invalid(
                        key("command"),
                        "is set together with `url`",
                        "an upstream is either an HTTP server (url) or a local process (command), not both",
                    ))
                }
                (None, None) => {
                    return Err(self.invalid(
                        key("url"),
                        "is missing, and so is `command`",
                        "set url = \"http://...\" for an HTTP server or command = [\"program\", \"arg\"] for a stdio one",
                    ))
                }
            };
            out.push(UpstreamConfig {
                name: u.name.clone(),
                labels: u.labels.clone(),
                transport,
            });
        }
        Ok(out)
    }

    fn http_transport(
        &self,
        i: usize,
        url: &str,
        u: &RawUpstream,
    ) -> Result<TransportConfig, ConfigError> {
        let key = |field: &str| format!("upstreams[{i}].{field}");
        for (field, set) in [
            ("env", !u.env.is_empty()),
            ("cwd", u.cwd.is_some()),
            ("max_processes", u.max_processes.is_some()),
            ("idle_timeout_s", u.idle_timeout_s.is_some()),
            ("startup_timeout_s", u.startup_timeout_s.is_some()),
        ] {
            if set {
                return Err(self.invalid(
                    key(field),
                    "only applies to stdio upstreams (with `command`)",
                    "remove it, or replace `url` with `command`",
                ));
            }
        }
        let parsed = url.parse::<Uri>().ok().filter(|uri| uri.host().is_some());
        let Some(parsed) = parsed else {
            return Err(self.invalid(
                key("url"),
                format!("`{url}` is not a URL"),
                "e.g. \"http://127.0.0.1:9100/mcp\"",
            ));
        };
        if !matches!(parsed.scheme_str(), Some("http" | "https")) {
            return Err(self.invalid(
                key("url"),
                "must be an http:// or https:// URL",
                "e.g. \"https://mcp.example.com/mcp\"",
            ));
        }
        Ok(TransportConfig::Http {
            url: parsed,
            headers: self.upstream_headers(i, &u.headers)?,
        })
    }

    fn stdio(
        &self,
        i: usize,
        command: &[String],
        u: &RawUpstream,
    ) -> Result<StdioConfig, ConfigError> {
        let key = |field: &str| format!("upstreams[{i}].{field}");
        if !u.headers.is_empty() {
            return Err(self.invalid(
                key("headers"),
                "only applies to HTTP upstreams",
                "give a stdio server its credentials with env = { NAME = \"${VAR}\" }",
            ));
        }
        let Some(program) = command.first().filter(|p| !p.is_empty()) else {
            return Err(self.invalid(
                key("command"),
                "is empty",
                "name the program first, e.g. [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"]",
            ));
        };
        let cwd = u.cwd.as_deref().map(|dir| self.anchor(dir));
        if let Some(dir) = &cwd {
            if !dir.is_dir() {
                return Err(self.invalid(
                    key("cwd"),
                    format!("{} is not a directory", dir.display()),
                    "create it, or point cwd at an existing directory (relative paths are relative to this file)",
                ));
            }
        }
        let mut env = BTreeMap::new();
        for (name, value) in &u.env {
            let ekey = format!("upstreams[{i}].env.{name}");
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.invalid(
                    ekey,
                    "is not a valid environment variable name",
                    "use letters, digits and '_', not starting with a digit",
                ));
            }
            let resolved = self.resolve_env(&ekey, value)?;
            if resolved.contains('\0') {
                return Err(self.invalid(ekey, "contains a NUL byte", "remove it"));
            }
            env.insert(name.clone(), resolved);
        }
        if !program_exists(program, cwd.as_deref(), env.get("PATH")) {
            return Err(self.invalid(
                key("command"),
                format!("program `{program}` is not found (nor executable)"),
                "give an absolute path, or make sure it is on the PATH the proxy runs with",
            ));
        }
        let max_processes = u.max_processes.unwrap_or(DEFAULT_MAX_PROCESSES);
        let idle = u.idle_timeout_s.unwrap_or(DEFAULT_IDLE_TIMEOUT_S);
        let startup = u.startup_timeout_s.unwrap_or(DEFAULT_STARTUP_TIMEOUT_S);
        for (field, value, default) in [
            (
                "max_processes",
                max_processes as u64,
                DEFAULT_MAX_PROCESSES as u64,
            ),
            ("idle_timeout_s", idle, DEFAULT_IDLE_TIMEOUT_S),
            ("startup_timeout_s", startup, DEFAULT_STARTUP_TIMEOUT_S),
        ] {
            if value == 0 {
                return Err(self.invalid(
                    key(field),
                    "must be above 0",
                    &format!("the default is {default}"),
                ));
            }
        }
        Ok(StdioConfig {
            command: command.to_vec(),
            env,
            cwd,
            max_processes,
            idle_timeout: Duration::from_secs(idle),
            startup_timeout: Duration::from_secs(startup),
        })
    }

    fn upstream_headers(
        &self,
        i: usize,
        raw: &BTreeMap<String, String>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
        let mut headers = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let hkey = format!("upstreams[{i}].headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                self.invalid(
                    hkey.clone(),
                    "is not a valid header name",
                    "use a token such as Authorization or X-Api-Key",
                )
            })?;
            let resolved = self.resolve_env(&hkey, value)?;
            let value = HeaderValue::from_str(&resolved).map_err(|_| {
                self.invalid(
                    hkey.clone(),
                    "is not a valid header value",
                    "remove control characters and newlines",
                )
            })?;
            headers.push((header, value));
        }
        Ok(headers)
    }

    pub(super) fn federations(
        &self,
        raw: &[RawFederation],
        upstreams: &[UpstreamConfig],
    ) -> Result<Vec<FederationConfig>, ConfigError> {
        let mut out: Vec<FederationConfig> = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let key = |field: &str| format!("federations[{i}].{field}");
            let taken =
                upstreams.iter().any(|u| u.name == f.name) || out.iter().any(|o| o.name == f.name);
            if !valid_name(&f.name) || taken {
                return Err(self.invalid(
                    key("name"),
                    format!("`{}` is not a valid name or is already used", f.name),
                    "use letters, digits, '-' and '_', distinct from every upstream and federation",
                ));
            }
            if f.separator.is_empty() || f.separator.chars().any(char::is_whitespace) {
                return Err(self.invalid(
                    key("separator"),
                    "is empty or has spaces",
                    "the default is \"__\"",
                ));
            }
            if f.upstreams.is_empty() {
                return Err(self.invalid(
                    key("upstreams"),
                    "is empty",
                    "list the [[upstreams]] names to serve together",
                ));
            }
            for (j, member) in f.upstreams.iter().enumerate() {
                let mkey = format!("federations[{i}].upstreams[{j}]");
                if !upstreams.iter().any(|u| &u.name == member) {
                    return Err(self.invalid(
                        mkey,
                        format!("names no [[upstreams]] entry `{member}`"),
                        "list upstream names defined in this file",
                    ));
                }
                if member.contains(&f.separator) || f.upstreams[..j].contains(member) {
                    return Err(self.invalid(
                        mkey,
                        format!(
                            "`{member}` is listed twice or contains the separator `{}`",
                            f.separator
                        ),
                        "list each upstream once, or choose another separator",
                    ));
                }
            }
            out.push(FederationConfig {
                name: f.name.clone(),
                upstreams: f.upstreams.clone(),
                separator: f.separator.clone(),
            });
        }
        Ok(out)
    }
}

/// Whether `program` can be run: a path (with a `/`) that is an executable file,
/// or a name found on the child's `PATH` (its `env`'s, else the proxy's).
fn program_exists(program: &str, cwd: Option<&Path>, path: Option<&String>) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |candidate: &Path| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let candidate = Path::new(program);
        return match (candidate.is_relative(), cwd) {
            (true, Some(dir)) => executable(&dir.join(candidate)),
            _ => executable(candidate),
        };
    }
    let search = path
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&search).any(|dir| executable(&dir.join(program)))
}
