use super::*;
use crate::auth::Role;
use crate::store::Mode;

fn pending(min: u32) -> ApprovalRecord {
    ApprovalRecord {
        approval_id: "apr_0001".into(),
        state: ApprovalState::Pending,
        subject: "agent-7".into(),
        subject_groups: vec![],
        server: "warehouse".into(),
        node_id: "n1".into(),
        requested_by: "node".into(),
        method: "tools/call".into(),
        tool: "execute".into(),
        payload_json: "{}".into(),
        payload_sha256: "aa".into(),
        payload_masked: false,
        summary_json: String::new(),
        reasons: vec!["sql.write_on_prod".into()],
        message: String::new(),
        policy_revision: "r1".into(),
        reviewer_groups: vec!["dba".into()],
        min_approvals: min,
        mode: Mode::Sync,
        created_unix_ms: 0,
        expires_unix_ms: 1_000,
        reviews: vec![],
    }
}

fn reviewer(subject: &str, groups: &[&str]) -> Caller {
    Caller {
        subject: subject.into(),
        roles: vec![Role::Reviewer],
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

#[test]
fn a_member_of_a_listed_group_approves() {
    let mut r = pending(1);
    review(
        &mut r,
        &reviewer("dana", &["dba"]),
        Verdict::Approve,
        "",
        10,
    )
    .unwrap();
    assert_eq!(r.state, ApprovalState::Approved);
    assert_eq!(r.reviews[0].reviewer, "dana");
}

#[test]
fn a_reviewer_outside_the_groups_is_refused() {
    let mut r = pending(1);
    let err = review(
        &mut r,
        &reviewer("sam", &["security"]),
        Verdict::Approve,
        "",
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in a reviewer group"), "{err}");
    assert_eq!(r.state, ApprovalState::Pending);
    assert!(r.reviews.is_empty());
}

#[test]
fn the_requester_may_not_approve_their_own_call() {
    let mut r = pending(1);
    let err = review(
        &mut r,
        &reviewer("agent-7", &["dba"]),
        Verdict::Approve,
        "",
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("own call"), "{err}");
}

#[test]
fn a_quorum_of_two_needs_two_different_people() {
    let mut r = pending(2);
    let dana = reviewer("dana", &["dba"]);
    review(&mut r, &dana, Verdict::Approve, "", 10).unwrap();
    assert_eq!(r.state, ApprovalState::Pending);
    let again = review(&mut r, &dana, Verdict::Approve, "", 11).unwrap_err();
    assert!(again.to_string().contains("already reviewed"), "{again}");
    review(
        &mut r,
        &reviewer("omar", &["dba"]),
        Verdict::Approve,
        "",
        12,
    )
    .unwrap();
    assert_eq!(r.state, ApprovalState::Approved);
}

#[test]
fn any_deny_wins_and_needs_a_reason() {
    let mut r = pending(2);
    review(
        &mut r,
        &reviewer("dana", &["dba"]),
        Verdict::Approve,
        "",
        10,
    )
    .unwrap();
    let err = review(&mut r, &reviewer("omar", &["dba"]), Verdict::Deny, "  ", 11).unwrap_err();
    assert!(err.to_string().contains("needs a reason"), "{err}");
    review(
        &mut r,
        &reviewer("omar", &["dba"]),
        Verdict::Deny,
        "not in a change window",
        12,
    )
    .unwrap();
    assert_eq!(r.state, ApprovalState::Denied);
    assert_eq!(r.reviews.len(), 2, "every review is kept");
    let late = review(&mut r, &reviewer("lee", &["dba"]), Verdict::Approve, "", 13).unwrap_err();
    assert!(
        matches!(late, ControlPlaneError::NotPending { .. }),
        "{late}"
    );
}

#[test]
fn an_expired_request_cannot_be_decided() {
    let mut r = pending(1);
    let err = review(
        &mut r,
        &reviewer("dana", &["dba"]),
        Verdict::Approve,
        "",
        1_000,
    )
    .unwrap_err();
    assert!(matches!(err, ControlPlaneError::NotPending { .. }), "{err}");
    assert_eq!(r.state, ApprovalState::Expired);
}

#[test]
fn a_grant_binds_payload_identity_server_state_and_time() {
    let mut r = pending(1);
    assert!(
        !usable(&r, "aa", "agent-7", "warehouse", 10),
        "pending is no grant"
    );
    r.state = ApprovalState::Approved;
    assert!(usable(&r, "aa", "agent-7", "warehouse", 10));
    assert!(
        !usable(&r, "bb", "agent-7", "warehouse", 10),
        "other payload"
    );
    assert!(
        !usable(&r, "aa", "agent-8", "warehouse", 10),
        "other identity"
    );
    assert!(!usable(&r, "aa", "agent-7", "crm", 10), "other server");
    assert!(!usable(&r, "aa", "agent-7", "warehouse", 1_000), "expired");
    r.state = ApprovalState::Consumed;
    assert!(!usable(&r, "aa", "agent-7", "warehouse", 10), "used once");
}

#[test]
fn ids_are_checked() {
    assert!(check_id("apr_0123456789abcdef").is_ok());
    for bad in [
        "short",
        "has space in it",
        "../../etc/passwd",
        &"x".repeat(65),
    ] {
        assert!(check_id(bad).is_err(), "{bad}");
    }
}
