//! `AuditService.Prove`: the newest checkpoint with the proofs an auditor checks
//! offline, without trusting the control plane: that an event's record is in the
//! signed tree (inclusion), and that the log extends a checkpoint kept elsewhere
//! (consistency).

use super::Audit;
use crate::api;
use crate::bundles::blocking;
use crate::ControlPlaneError;

impl Audit {
    /// Builds the proofs `request` asks for, against the newest checkpoint.
    pub(super) async fn prove(
        &self,
        request: api::AuditServiceProveRequest,
    ) -> Result<api::AuditServiceProveResponse, ControlPlaneError> {
        let checkpoint = self.newest_checkpoint().ok_or_else(|| {
            ControlPlaneError::Serve("the audit log has no signed checkpoint yet".to_owned())
        })?;
        let log = self.log.clone();
        let verifier_key = self.verifier.key().to_owned();
        blocking(move || {
            let size = checkpoint.size();
            let mut answer = api::AuditServiceProveResponse {
                checkpoint: checkpoint.note().to_owned(),
                verifier_key,
                ..Default::default()
            };
            if !request.event_id.is_empty() {
                let record = log
                    .record_by_event(&request.event_id)?
                    .ok_or_else(|| ControlPlaneError::EventNotFound(request.event_id.clone()))?;
                if record.seq > size {
                    return Err(ControlPlaneError::Serve(format!(
                        "event {} is being committed and not yet under a checkpoint; ask again in a moment",
                        request.event_id
                    )));
                }
                answer.inclusion_proof = to_bytes(log.inclusion_proof(record.seq, size)?);
                answer.record = Some(record);
            }
            if request.from_size > 0 && request.from_size <= size {
                answer.consistency_proof =
                    to_bytes(log.consistency_proof(request.from_size, size)?);
            }
            Ok(answer)
        })
        .await
    }
}

fn to_bytes(hashes: Vec<[u8; 32]>) -> Vec<Vec<u8>> {
    hashes.iter().map(|h| h.to_vec()).collect()
}
