//! The control plane's one error type, and its mapping to `tonic::Status`.

use crate::auth::{Role, Rpc};
use crate::store::StoreError;
use std::path::PathBuf;

/// Everything that can go wrong in the control plane, at start-up or in an RPC.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// No usable bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid but its roles do not allow the RPC.
    #[error("{subject} may not call {rpc}: it needs the role {}; ask an admin for such a token", role_list(.allowed))]
    PermissionDenied {
        /// The caller.
        subject: String,
        /// The RPC called.
        rpc: Rpc,
        /// The roles that may call it.
        allowed: &'static [Role],
    },
    /// A bundle that does not read, verify or parse.
    #[error("bundle refused: {0}")]
    Bundle(#[from] airlock_bundle::BundleError),
    /// A bundle whose Rego does not compile.
    #[error("bundle refused: {0}")]
    Policy(#[from] airlock_policy::PolicyError),
    /// A bundle whose own Rego tests fail.
    #[error("bundle refused: {failed} Rego test(s) failed: {}; fix them and run `airlock policy test DIR` before pushing", failures.join("; "))]
    TestsFailed {
        /// How many failed.
        failed: usize,
        /// `file:line: name: why` of each failing test.
        failures: Vec<String>,
    },
    /// The revision is already stored with other content.
    #[error("revision {revision} already exists with different content; bump the revision (`airlock bundle build --revision`)")]
    RevisionExists {
        /// The revision.
        revision: String,
    },
    /// No bundle of that revision is stored.
    #[error("no bundle with revision {revision}; see `airlock bundle list`")]
    NotFound {
        /// The revision asked for.
        revision: String,
    },
    /// No approval with that id (or none the caller may see).
    #[error("no approval with id {0}; see `airlock approvals list`")]
    ApprovalNotFound(String),
    /// No message of that session (or of an approval's held call) in the part of
    /// the audit log scanned.
    #[error("{0}")]
    SessionNotFound(String),
    /// No stored event with that id.
    #[error("no event {0:?} in the audit log (pruned, never stored, or a typo); find ids with `airlock audit query`")]
    EventNotFound(String),
    /// The approval is no longer pending.
    #[error("approval {approval_id} is already {state:?}; nothing can change it any more")]
    NotPending {
        /// The approval.
        approval_id: String,
        /// Its state.
        state: crate::store::ApprovalState,
    },
    /// A review rule refused the review (group, self-approval, twice).
    #[error("{0}")]
    ReviewRefused(String),
    /// The approval id exists with another payload or requester.
    #[error("approval id {0} is already used for another call; choose a fresh id")]
    ApprovalIdTaken(String),
    /// No proxy has reported that tool.
    #[error("{0}")]
    ToolNotFound(String),
    /// A pin or accept that does not fit the tool's state.
    #[error("{0}")]
    ToolRefused(String),
    /// A request field is missing or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error("{file}: {message}")]
    Config {
        /// The configuration file (or `<inline>`).
        file: PathBuf,
        /// What is wrong, with the key and a hint.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another control plane running? pick another `listen` address")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Serve(String),
    /// The audit log does not match its newest signed checkpoint (found at
    /// start-up): the control plane refuses to sign over it.
    #[error("the audit log does not match its signed checkpoints, first bad sequence number {first_bad_seq}: {problem}. The control plane will not sign over an altered log. Keep this data directory for investigation, restore it from a backup taken before the change, and compare with the checkpoints your proxies and witness hold (`airlock audit verify --checkpoint FILE`)")]
    AuditMismatch {
        /// The first sequence number that is wrong.
        first_bad_seq: u64,
        /// What is wrong there.
        problem: String,
    },
    /// A checkpoint cannot be made or used (bad origin or key).
    #[error("audit checkpoint: {0}")]
    Checkpoint(#[from] airlock_checkpoint::CheckpointError),
}

fn role_list(roles: &[Role]) -> String {
    let names: Vec<String> = roles.iter().map(ToString::to_string).collect();
    names.join(" or ")
}

impl From<ControlPlaneError> for tonic::Status {
    fn from(err: ControlPlaneError) -> tonic::Status {
        use ControlPlaneError as E;
        let message = err.to_string();
        match err {
            E::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            E::PermissionDenied { .. } => tonic::Status::permission_denied(message),
            E::Bundle(_) | E::Policy(_) | E::TestsFailed { .. } | E::InvalidArgument(_) => {
                tonic::Status::invalid_argument(message)
            }
            E::RevisionExists { .. } => tonic::Status::already_exists(message),
            E::NotFound { .. }
            | E::ApprovalNotFound(_)
            | E::SessionNotFound(_)
            | E::EventNotFound(_)
            | E::ToolNotFound(_) => tonic::Status::not_found(message),
            E::NotPending { .. } | E::ToolRefused(_) => tonic::Status::failed_precondition(message),
            E::ReviewRefused(_) => tonic::Status::permission_denied(message),
            E::ApprovalIdTaken(_) => tonic::Status::already_exists(message),
            E::Store(_) => tonic::Status::unavailable(message),
            E::Config { .. }
            | E::Bind { .. }
            | E::Serve(_)
            | E::AuditMismatch { .. }
            | E::Checkpoint(_) => tonic::Status::internal(message),
        }
    }
}
