//! Bearer-token authentication and the role table: which roles may call which RPC.
//!
//! Tokens are configured as SHA-256 hex digests, never in clear. The presented
//! token is hashed and looked up; the plain token is never stored or logged.

use crate::ControlPlaneError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tonic::metadata::MetadataMap;

/// A role a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes and activates bundles; sees everything.
    Admin,
    /// Decides approvals; reads bundles.
    Reviewer,
    /// Reads bundles, the fleet and the audit log.
    Auditor,
    /// A data-plane proxy: watches bundles, reports status.
    Node,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Node => "node",
        })
    }
}

/// Every RPC of the control plane, and every call of the reviewer page's API that
/// is not one, for the role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// `BundleService.Publish`.
    BundlePublish,
    /// `BundleService.List`.
    BundleList,
    /// `BundleService.Get`.
    BundleGet,
    /// `BundleService.Activate`.
    BundleActivate,
    /// `BundleService.Watch`.
    BundleWatch,
    /// `NodeService.Report`.
    NodeReport,
    /// `NodeService.List`.
    NodeList,
    /// `AuditService.Append`.
    AuditAppend,
    /// `AuditService.Query`.
    AuditQuery,
    /// `AuditService.Verify`.
    AuditVerify,
    /// `AuditService.Prove`.
    AuditProve,
    /// `ApprovalService.Submit`.
    ApprovalSubmit,
    /// `ApprovalService.Watch`.
    ApprovalWatch,
    /// `ApprovalService.Consume`.
    ApprovalConsume,
    /// `ApprovalService.Cancel`.
    ApprovalCancel,
    /// `ApprovalService.List`.
    ApprovalList,
    /// `ApprovalService.Get`.
    ApprovalGet,
    /// `ApprovalService.Decide`.
    ApprovalDecide,
    /// `GET /ui/api/sessions`: recent sessions from the audit log.
    SessionList,
    /// `GET /ui/api/sessions/{id}`: any session's transcript.
    SessionGet,
    /// `GET /ui/api/approvals/{id}/session`: the session of an approval's held call,
    /// up to that call.
    ApprovalSession,
    /// `ToolService.Report`.
    ToolReport,
    /// `ToolService.Watch`.
    ToolWatch,
    /// `ToolService.List`.
    ToolList,
    /// `ToolService.Pin`.
    ToolPin,
    /// `ToolService.Accept`.
    ToolAccept,
}

impl Rpc {
    /// Every RPC, for tests that walk the table.
    pub const ALL: [Rpc; 26] = [
        Rpc::BundlePublish,
        Rpc::BundleList,
        Rpc::BundleGet,
        Rpc::BundleActivate,
        Rpc::BundleWatch,
        Rpc::NodeReport,
        Rpc::NodeList,
        Rpc::AuditAppend,
        Rpc::AuditQuery,
        Rpc::AuditVerify,
        Rpc::AuditProve,
        Rpc::ApprovalSubmit,
        Rpc::ApprovalWatch,
        Rpc::ApprovalConsume,
        Rpc::ApprovalCancel,
        Rpc::ApprovalList,
        Rpc::ApprovalGet,
        Rpc::ApprovalDecide,
        Rpc::SessionList,
        Rpc::SessionGet,
        Rpc::ApprovalSession,
        Rpc::ToolReport,
        Rpc::ToolWatch,
        Rpc::ToolList,
        Rpc::ToolPin,
        Rpc::ToolAccept,
    ];

    /// The roles that may call this RPC: the one role table of the control plane.
    pub fn allowed_roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Rpc::BundlePublish | Rpc::BundleActivate => &[Admin],
            Rpc::BundleList => &[Admin, Reviewer, Auditor],
            Rpc::BundleGet => &[Admin, Auditor, Node],
            Rpc::BundleWatch => &[Admin, Node],
            Rpc::NodeReport => &[Node],
            Rpc::NodeList => &[Admin, Auditor],
            Rpc::AuditAppend => &[Node],
            Rpc::AuditQuery | Rpc::AuditVerify | Rpc::AuditProve => &[Admin, Auditor],
            // A node only ever sees and uses the approvals it submitted (checked in
            // `approvals`); deciding also needs membership of a listed group.
            Rpc::ApprovalSubmit | Rpc::ApprovalConsume | Rpc::ApprovalCancel => &[Admin, Node],
            Rpc::ApprovalWatch => &[Admin, Reviewer, Node],
            Rpc::ApprovalList | Rpc::ApprovalGet => &[Admin, Reviewer, Auditor],
            Rpc::ApprovalDecide => &[Admin, Reviewer],
            // Sessions are the audit log's: readers of the log see them all. A
            // reviewer sees only what led to a call they may list (the approval
            // names it), not the log at large.
            Rpc::SessionList | Rpc::SessionGet => &[Admin, Auditor],
            Rpc::ApprovalSession => &[Admin, Reviewer, Auditor],
            // Proxies report what they see and follow the pins; pinning a tool never
            // seen before is an admin's call, accepting a changed one a reviewer's.
            Rpc::ToolReport => &[Node],
            Rpc::ToolWatch => &[Admin, Node],
            Rpc::ToolList => &[Admin, Reviewer, Auditor],
            Rpc::ToolPin => &[Admin],
            Rpc::ToolAccept => &[Admin, Reviewer],
        }
    }
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Rpc::BundlePublish => "BundleService.Publish",
            Rpc::BundleList => "BundleService.List",
            Rpc::BundleGet => "BundleService.Get",
            Rpc::BundleActivate => "BundleService.Activate",
            Rpc::BundleWatch => "BundleService.Watch",
            Rpc::NodeReport => "NodeService.Report",
            Rpc::NodeList => "NodeService.List",
            Rpc::AuditAppend => "AuditService.Append",
            Rpc::AuditQuery => "AuditService.Query",
            Rpc::AuditVerify => "AuditService.Verify",
            Rpc::AuditProve => "AuditService.Prove",
            Rpc::ApprovalSubmit => "ApprovalService.Submit",
            Rpc::ApprovalWatch => "ApprovalService.Watch",
            Rpc::ApprovalConsume => "ApprovalService.Consume",
            Rpc::ApprovalCancel => "ApprovalService.Cancel",
            Rpc::ApprovalList => "ApprovalService.List",
            Rpc::ApprovalGet => "ApprovalService.Get",
            Rpc::ApprovalDecide => "ApprovalService.Decide",
            Rpc::SessionList => "GET /ui/api/sessions",
            Rpc::SessionGet => "GET /ui/api/sessions/{id}",
            Rpc::ApprovalSession => "GET /ui/api/approvals/{id}/session",
            Rpc::ToolReport => "ToolService.Report",
            Rpc::ToolWatch => "ToolService.Watch",
            Rpc::ToolList => "ToolService.List",
            Rpc::ToolPin => "ToolService.Pin",
            Rpc::ToolAccept => "ToolService.Accept",
        };
        f.write_str(name)
    }
}

/// Who called: the token's subject and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// The token's roles.
    pub roles: Vec<Role>,
    /// The token's groups (who may decide which approvals).
    pub groups: Vec<String>,
}

impl Caller {
    /// Whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// One configured token: its SHA-256, subject and roles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who the token belongs to (recorded as `published_by`, `reported_by`).
    pub subject: String,
    /// Lower-case hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// The roles it grants.
    pub roles: Vec<Role>,
    /// Reviewer groups (e.g. `dba`): a reviewer decides only approvals whose policy
    /// lists one of them.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl TokenEntry {
    /// An entry for a plain token, hashed here (for `airlock dev` and tests).
    pub fn from_plain(subject: &str, token: &str, roles: &[Role]) -> TokenEntry {
        TokenEntry {
            subject: subject.to_owned(),
            sha256: token_sha256(token),
            roles: roles.to_vec(),
            groups: Vec::new(),
        }
    }

    /// The same entry with reviewer `groups`.
    pub fn with_groups(mut self, groups: &[&str]) -> TokenEntry {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

/// Lower-case hex SHA-256 of a token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks bearer tokens against the configured hashes and the role table.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    by_hash: HashMap<String, Caller>,
}

impl Authenticator {
    /// An authenticator for these tokens.
    pub fn new(tokens: &[TokenEntry]) -> Authenticator {
        let by_hash = tokens
            .iter()
            .map(|t| {
                let caller = Caller {
                    subject: t.subject.clone(),
                    roles: t.roles.clone(),
                    groups: t.groups.clone(),
                };
                (t.sha256.to_ascii_lowercase(), caller)
            })
            .collect();
        Authenticator { by_hash }
    }

    /// How many reviewers (tokens with the reviewer role) belong to each group.
    pub fn reviewers_by_group(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for caller in self
            .by_hash
            .values()
            .filter(|c| c.roles.contains(&Role::Reviewer))
        {
            for group in &caller.groups {
                *counts.entry(group.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Authenticates the request's bearer token and checks that its roles allow `rpc`.
    pub fn authorize(&self, metadata: &MetadataMap, rpc: Rpc) -> Result<Caller, ControlPlaneError> {
        let caller = self.authenticate(metadata)?;
        let allowed = rpc.allowed_roles();
        if caller.roles.iter().any(|r| allowed.contains(r)) {
            Ok(caller)
        } else {
            Err(ControlPlaneError::PermissionDenied {
                subject: caller.subject,
                rpc,
                allowed,
            })
        }
    }

    fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, ControlPlaneError> {
        let missing = || {
            ControlPlaneError::Unauthenticated(
                "missing bearer token: send `authorization: Bearer <token>` (CLI: --token or AIRLOCK_TOKEN)".to_owned(),
            )
        };
        let header = metadata.get("authorization").ok_or_else(missing)?;
        let value = header.to_str().map_err(|_| missing())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        self.by_hash.get(&token_sha256(token)).cloned().ok_or_else(|| {
            ControlPlaneError::Unauthenticated(
                "unknown bearer token; check --token / AIRLOCK_TOKEN against the control plane's [[tokens]]".to_owned(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    #[test]
    fn the_role_table_grants_exactly_what_it_lists() {
        let auth = Authenticator::new(&[
            TokenEntry::from_plain("ada", "t-admin", &[Role::Admin]),
            TokenEntry::from_plain("rex", "t-reviewer", &[Role::Reviewer]),
            TokenEntry::from_plain("aud", "t-auditor", &[Role::Auditor]),
            TokenEntry::from_plain("n1", "t-node", &[Role::Node]),
        ]);
        let expected: &[(Rpc, [bool; 4])] = &[
            // admin, reviewer, auditor, node
            (Rpc::BundlePublish, [true, false, false, false]),
            (Rpc::BundleList, [true, true, true, false]),
            (Rpc::BundleGet, [true, false, true, true]),
            (Rpc::BundleActivate, [true, false, false, false]),
            (Rpc::BundleWatch, [true, false, false, true]),
            (Rpc::NodeReport, [false, false, false, true]),
            (Rpc::NodeList, [true, false, true, false]),
            (Rpc::AuditAppend, [false, false, false, true]),
            (Rpc::AuditQuery, [true, false, true, false]),
            (Rpc::AuditVerify, [true, false, true, false]),
            (Rpc::AuditProve, [true, false, true, false]),
            (Rpc::ApprovalSubmit, [true, false, false, true]),
            (Rpc::ApprovalWatch, [true, true, false, true]),
            (Rpc::ApprovalConsume, [true, false, false, true]),
            (Rpc::ApprovalCancel, [true, false, false, true]),
            (Rpc::ApprovalList, [true, true, true, false]),
            (Rpc::ApprovalGet, [true, true, true, false]),
            (Rpc::ApprovalDecide, [true, true, false, false]),
            (Rpc::SessionList, [true, false, true, false]),
            (Rpc::SessionGet, [true, false, true, false]),
            (Rpc::ApprovalSession, [true, true, true, false]),
            (Rpc::ToolReport, [false, false, false, true]),
            (Rpc::ToolWatch, [true, false, false, true]),
            (Rpc::ToolList, [true, true, true, false]),
            (Rpc::ToolPin, [true, false, false, false]),
            (Rpc::ToolAccept, [true, true, false, false]),
        ];
        assert_eq!(expected.len(), Rpc::ALL.len());
        for (rpc, row) in expected {
            for (token, allowed) in ["t-admin", "t-reviewer", "t-auditor", "t-node"]
                .iter()
                .zip(row)
            {
                let result = auth.authorize(&metadata(&format!("Bearer {token}")), *rpc);
                assert_eq!(result.is_ok(), *allowed, "{rpc} with {token}: {result:?}");
                if let Err(err) = result {
                    assert!(
                        matches!(err, ControlPlaneError::PermissionDenied { .. }),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
        let auth = Authenticator::new(&[TokenEntry::from_plain("ada", "secret", &[Role::Admin])]);
        assert!(auth
            .authorize(&metadata("Bearer secret"), Rpc::BundleList)
            .is_ok());
        for bad in ["Bearer wrong", "Basic secret", "Bearer ", "secret"] {
            let err = auth.authorize(&metadata(bad), Rpc::BundleList).unwrap_err();
            assert!(
                matches!(err, ControlPlaneError::Unauthenticated(_)),
                "{bad}: {err}"
            );
        }
        let err = auth
            .authorize(&MetadataMap::new(), Rpc::BundleList)
            .unwrap_err();
        assert!(err.to_string().contains("missing bearer token"), "{err}");
    }
}
