//! The review rules (promise 5), as pure functions over a record so they are tested
//! without a server: who may decide, quorum, deny wins, a deny needs a reason, no
//! self-approval, one review per reviewer; and what a submission must look like.

use crate::auth::Caller;
use crate::store::{ApprovalRecord, ApprovalState, Review, Verdict};
use crate::ControlPlaneError;

/// Longest reason kept.
const MAX_REASON: usize = 2_000;
/// Longest canonical payload accepted.
pub(crate) const MAX_PAYLOAD: usize = 1024 * 1024;
/// Longest timeout a policy may ask for (one day).
pub(crate) const MAX_TIMEOUT_S: u64 = 86_400;

/// Records `caller`'s review on a pending `record` at `now_ms`, or says why not.
pub(crate) fn review(
    record: &mut ApprovalRecord,
    caller: &Caller,
    verdict: Verdict,
    reason: &str,
    now_ms: u64,
) -> Result<(), ControlPlaneError> {
    let refused = |message: String| ControlPlaneError::ReviewRefused(message);
    if record.state != ApprovalState::Pending {
        return Err(ControlPlaneError::NotPending {
            approval_id: record.approval_id.clone(),
            state: record.state,
        });
    }
    if now_ms >= record.expires_unix_ms {
        record.state = ApprovalState::Expired;
        return Err(ControlPlaneError::NotPending {
            approval_id: record.approval_id.clone(),
            state: record.state,
        });
    }
    let in_group = record.reviewer_groups.is_empty()
        || caller
            .groups
            .iter()
            .any(|g| record.reviewer_groups.contains(g));
    if !in_group {
        return Err(refused(format!(
            "{} is not in a reviewer group of approval {} (needs one of: {}); ask a member of those groups",
            caller.subject,
            record.approval_id,
            record.reviewer_groups.join(", ")
        )));
    }
    if verdict == Verdict::Approve && caller.subject == record.subject {
        return Err(refused(format!(
            "{} requested approval {} and may not approve their own call; ask another reviewer",
            caller.subject, record.approval_id
        )));
    }
    if record.reviews.iter().any(|r| r.reviewer == caller.subject) {
        return Err(refused(format!(
            "{} already reviewed approval {}; a reviewer counts once, ask another reviewer",
            caller.subject, record.approval_id
        )));
    }
    let reason = reason.trim();
    if verdict == Verdict::Deny && reason.is_empty() {
        return Err(ControlPlaneError::InvalidArgument(
            "a deny needs a reason: pass --reason TEXT (the agent and the audit see it)".into(),
        ));
    }
    record.reviews.push(Review {
        reviewer: caller.subject.clone(),
        verdict,
        reason: reason.chars().take(MAX_REASON).collect(),
        decided_unix_ms: now_ms,
    });
    record.state = outcome(record);
    Ok(())
}

/// Any deny wins; otherwise approved once `min_approvals` distinct reviewers approved.
fn outcome(record: &ApprovalRecord) -> ApprovalState {
    if record.reviews.iter().any(|r| r.verdict == Verdict::Deny) {
        return ApprovalState::Denied;
    }
    let approvals = record
        .reviews
        .iter()
        .filter(|r| r.verdict == Verdict::Approve)
        .count();
    if approvals >= record.min_approvals.max(1) as usize {
        ApprovalState::Approved
    } else {
        ApprovalState::Pending
    }
}

/// Whether a grant in `record` may be used now for this payload, identity and server.
pub(crate) fn usable(
    record: &ApprovalRecord,
    payload_sha256: &str,
    subject: &str,
    server: &str,
    now_ms: u64,
) -> bool {
    record.state == ApprovalState::Approved
        && now_ms < record.expires_unix_ms
        && record.payload_sha256 == payload_sha256
        && record.subject == subject
        && record.server == server
}

/// Checks an approval id: 8 to 64 characters among A-Z a-z 0-9 _ -.
pub(crate) fn check_id(id: &str) -> Result<(), ControlPlaneError> {
    let ok = (8..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ControlPlaneError::InvalidArgument(format!(
            "approval id {:?} is not valid; use 8 to 64 characters among A-Z a-z 0-9 _ -",
            id.chars().take(80).collect::<String>()
        )))
    }
}

#[cfg(test)]
#[path = "rules_test.rs"]
mod tests;
