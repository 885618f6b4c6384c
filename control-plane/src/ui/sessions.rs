//! The page's session view: recent sessions and one session's transcript for the
//! readers of the audit log (admin, auditor), and for reviewers the session of an
//! approval's held call, up to that call. The grouping and the bounds are
//! [`crate::audit::sessions`]'s, shared with `airlock sessions`.

use super::{json_reply, metadata, Page};
use crate::audit::sessions::Bounds;
use crate::auth::Rpc;
use crate::ControlPlaneError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

type Reply = Result<Response<Full<Bytes>>, ControlPlaneError>;

/// Answers a session call; `None` when `path` is not one.
pub(super) async fn route(req: &Request<Incoming>, page: &Page, path: &str) -> Option<Reply> {
    if path == "/ui/api/sessions" {
        return Some(list(req, page).await);
    }
    if let Some(id) = path.strip_prefix("/ui/api/sessions/") {
        return Some(match percent_decode(id) {
            Some(id) if !id.is_empty() => session(req, page, id).await,
            _ => Err(bad_id()),
        });
    }
    let id = path
        .strip_prefix("/ui/api/approvals/")?
        .strip_suffix("/session")?;
    Some(match percent_decode(id) {
        Some(id) if !id.is_empty() => approval_session(req, page, id).await,
        _ => Err(bad_id()),
    })
}

fn bad_id() -> ControlPlaneError {
    ControlPlaneError::InvalidArgument(
        "the id in the path is empty or not valid percent-encoded UTF-8; encode it with encodeURIComponent".into(),
    )
}

/// `GET /ui/api/sessions`: the most recently active sessions (admin, auditor).
async fn list(req: &Request<Incoming>, page: &Page) -> Reply {
    let auth = page.approvals.auth();
    auth.authorize(&metadata(req), Rpc::SessionList)?;
    let sessions = page.audit.recent_sessions(Bounds::PAGE).await?;
    Ok(json_reply(StatusCode::OK, &json!(sessions)))
}

/// `GET /ui/api/sessions/{id}`: one session's transcript (admin, auditor).
async fn session(req: &Request<Incoming>, page: &Page, id: String) -> Reply {
    let auth = page.approvals.auth();
    auth.authorize(&metadata(req), Rpc::SessionGet)?;
    let transcript = page.audit.session(id, Bounds::PAGE).await?;
    Ok(json_reply(StatusCode::OK, &json!(transcript)))
}

/// `GET /ui/api/approvals/{id}/session`: the messages of the held call's session up
/// to and including it (admin, reviewer, auditor): context for the decision.
async fn approval_session(req: &Request<Incoming>, page: &Page, id: String) -> Reply {
    let auth = page.approvals.auth();
    auth.authorize(&metadata(req), Rpc::ApprovalSession)?;
    let approval = page.approvals.get(id.clone()).await?;
    let transcript = page.audit.held_call_session(approval, Bounds::PAGE).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"approval_id": id, "session": transcript}),
    ))
}

/// Decodes `%XX` escapes; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn ids_in_paths_are_percent_decoded_and_malformed_ones_refused() {
        assert_eq!(percent_decode("abc.D%2Bx%2F").as_deref(), Some("abc.D+x/"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        for bad in ["%", "%2", "%zz", "%+1", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
