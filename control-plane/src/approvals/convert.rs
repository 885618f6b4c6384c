//! Protobuf ↔ domain at the border of the approval service.

use crate::api;
use crate::store::{ApprovalRecord, ApprovalState, Mode, Review, Verdict};

impl From<ApprovalState> for api::ApprovalState {
    fn from(state: ApprovalState) -> Self {
        match state {
            ApprovalState::Pending => api::ApprovalState::Pending,
            ApprovalState::Approved => api::ApprovalState::Approved,
            ApprovalState::Denied => api::ApprovalState::Denied,
            ApprovalState::Expired => api::ApprovalState::Expired,
            ApprovalState::Cancelled => api::ApprovalState::Cancelled,
            ApprovalState::Consumed => api::ApprovalState::Consumed,
        }
    }
}

/// The wire mode; unspecified means sync.
pub(crate) fn mode(wire: i32) -> Mode {
    match api::ApprovalMode::try_from(wire) {
        Ok(api::ApprovalMode::Async) => Mode::Async,
        _ => Mode::Sync,
    }
}

/// The wire verdict; `None` when unspecified or unknown.
pub(crate) fn verdict(wire: i32) -> Option<Verdict> {
    match api::ApprovalVerdict::try_from(wire) {
        Ok(api::ApprovalVerdict::Approve) => Some(Verdict::Approve),
        Ok(api::ApprovalVerdict::Deny) => Some(Verdict::Deny),
        _ => None,
    }
}

fn review(r: &Review) -> api::ApprovalReview {
    api::ApprovalReview {
        reviewer: r.reviewer.clone(),
        verdict: match r.verdict {
            Verdict::Approve => api::ApprovalVerdict::Approve,
            Verdict::Deny => api::ApprovalVerdict::Deny,
        } as i32,
        reason: r.reason.clone(),
        decided_unix_ms: r.decided_unix_ms,
    }
}

impl From<&ApprovalRecord> for api::Approval {
    fn from(r: &ApprovalRecord) -> Self {
        api::Approval {
            approval_id: r.approval_id.clone(),
            state: api::ApprovalState::from(r.state) as i32,
            subject: r.subject.clone(),
            subject_groups: r.subject_groups.clone(),
            server: r.server.clone(),
            node_id: r.node_id.clone(),
            method: r.method.clone(),
            tool: r.tool.clone(),
            payload_json: r.payload_json.clone(),
            payload_sha256: r.payload_sha256.clone(),
            reasons: r.reasons.clone(),
            message: r.message.clone(),
            policy_revision: r.policy_revision.clone(),
            reviewer_groups: r.reviewer_groups.clone(),
            min_approvals: r.min_approvals,
            mode: match r.mode {
                Mode::Sync => api::ApprovalMode::Sync,
                Mode::Async => api::ApprovalMode::Async,
            } as i32,
            created_unix_ms: r.created_unix_ms,
            expires_unix_ms: r.expires_unix_ms,
            reviews: r.reviews.iter().map(review).collect(),
            requested_by: r.requested_by.clone(),
            payload_masked: r.payload_masked,
            summary_json: r.summary_json.clone(),
        }
    }
}
