//! Checkpoints as C2SP signed notes: signing with the control plane's ed25519 key,
//! parsing, and verification against one verifier key.

use crate::CheckpointError;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use ed25519_dalek::Signer as _;
use signed_note::{Note, StandardVerifier, VerifierList};

/// The signed-note algorithm byte of ed25519 keys.
const ALG_ED25519: u8 = 1;

/// A checkpoint: the log `origin` had `size` records whose Merkle tree hashes to
/// `root`, with the signed note it was read from (kept byte for byte, so it can be
/// handed on and verified by anyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: [u8; 32],
    note: String,
}

impl Checkpoint {
    /// Reads a signed note holding a checkpoint. Only the syntax is checked: use
    /// [`CheckpointVerifier::verify`] before trusting it.
    pub fn parse(note: &str) -> Result<Checkpoint, CheckpointError> {
        let parsed = Note::from_bytes(note.as_bytes())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        Checkpoint::from_text(parsed.text(), note)
    }

    fn from_text(text: &[u8], note: &str) -> Result<Checkpoint, CheckpointError> {
        let body = tlog_tiles::Checkpoint::from_bytes(text)
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        Ok(Checkpoint {
            origin: body.origin().to_owned(),
            size: body.size(),
            root: body.hash().0,
            note: note.to_owned(),
        })
    }

    /// The log's name (first line).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many records the tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The Merkle tree hash of those records.
    pub fn root(&self) -> &[u8; 32] {
        &self.root
    }

    /// The whole signed note, as signed.
    pub fn note(&self) -> &str {
        &self.note
    }
}

/// Signs checkpoints for one log: the key name is the log's origin.
pub struct CheckpointSigner {
    key: ed25519_dalek::SigningKey,
    origin: String,
    id: u32,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CheckpointSigner")
            .field("origin", &self.origin)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer for the log `origin` (also the key name).
    pub fn new(
        key: ed25519_dalek::SigningKey,
        origin: &str,
    ) -> Result<CheckpointSigner, CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::BadOrigin(origin.to_owned()));
        }
        let id = signed_note::key_id(origin, &public_key_bytes(&key.verifying_key()));
        Ok(CheckpointSigner {
            key,
            origin: origin.to_owned(),
            id,
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs "the log has `size` records with tree hash `root`".
    pub fn sign(&self, size: u64, root: &[u8; 32]) -> Result<Checkpoint, CheckpointError> {
        let text = format!(
            "{}\n{size}\n{}\n",
            self.origin,
            BASE64_STANDARD.encode(root)
        );
        let signature = self.key.sign(text.as_bytes()).to_bytes().to_vec();
        let line = signed_note::Signature::new(self.origin.clone(), self.id, signature)
            .map_err(|e| CheckpointError::Signing(e.to_string()))?;
        let note = Note::new(text.as_bytes(), &[line])
            .map_err(|e| CheckpointError::Signing(e.to_string()))?;
        let note = String::from_utf8(note.to_bytes())
            .map_err(|e| CheckpointError::Signing(e.to_string()))?;
        Ok(Checkpoint {
            origin: self.origin.clone(),
            size,
            root: *root,
            note,
        })
    }

    /// The verifier of this signer's checkpoints.
    pub fn verifier(&self) -> CheckpointVerifier {
        let key = signed_note::new_ed25519_verifier_key(&self.origin, &self.key.verifying_key());
        CheckpointVerifier {
            inner: verifier_of(&key),
            key,
            origin: self.origin.clone(),
        }
    }
}

fn public_key_bytes(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

/// A key string built from a valid key always parses; `None` keeps this total.
fn verifier_of(key: &str) -> Option<StandardVerifier> {
    StandardVerifier::new(key).ok()
}

/// Verifies checkpoints against one verifier key, whose name must be the
/// checkpoint's origin.
#[derive(Clone)]
pub struct CheckpointVerifier {
    inner: Option<StandardVerifier>,
    key: String,
    origin: String,
}

impl std::fmt::Debug for CheckpointVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointVerifier")
            .field("key", &self.key)
            .finish()
    }
}

impl PartialEq for CheckpointVerifier {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl CheckpointVerifier {
    /// Reads a verifier key: `<name>+<key id hex>+<base64(0x01 || public key)>`.
    pub fn from_key(key: &str) -> Result<CheckpointVerifier, CheckpointError> {
        let key = key.trim();
        let inner = StandardVerifier::new(key)
            .map_err(|_| CheckpointError::BadKey(key.chars().take(200).collect()))?;
        let origin = signed_note::Verifier::name(&inner).to_owned();
        Ok(CheckpointVerifier {
            inner: Some(inner),
            key: key.to_owned(),
            origin,
        })
    }

    /// The verifier key, as it is written down and compared.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The log's origin (the key's name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Parses `note` and checks that it carries a valid signature by this key and
    /// names this key's log.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let parsed = Note::from_bytes(note.as_bytes())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let unsigned = |why: String| CheckpointError::Unsigned {
            key: self.key.clone(),
            why,
        };
        let Some(inner) = &self.inner else {
            return Err(unsigned("the key is not usable".to_owned()));
        };
        let known = VerifierList::new(vec![Box::new(inner.clone())]);
        parsed.verify(&known).map_err(|e| {
            unsigned(match e {
                signed_note::NoteError::UnverifiedNote => {
                    "it carries no signature by this key (signed by another key)".to_owned()
                }
                other => other.to_string(),
            })
        })?;
        let checkpoint = Checkpoint::from_text(parsed.text(), note)?;
        if checkpoint.origin != self.origin {
            return Err(CheckpointError::WrongOrigin {
                expected: self.origin.clone(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8, origin: &str) -> CheckpointSigner {
        CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]), origin).unwrap()
    }

    #[test]
    fn a_signed_checkpoint_is_a_c2sp_note_that_verifies_and_parses_back() {
        let signer = signer(7, "audit.example/test");
        let cp = signer.sign(42, &[9; 32]).unwrap();
        let lines: Vec<&str> = cp.note().lines().collect();
        assert_eq!(lines[0], "audit.example/test");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[2], BASE64_STANDARD.encode([9; 32]));
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with("— audit.example/test "),
            "{}",
            lines[4]
        );
        // The signature line holds the 4-byte key id, then the 64-byte signature.
        let sig = BASE64_STANDARD
            .decode(lines[4].rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 68);
        let verifier = CheckpointVerifier::from_key(signer.verifier().key()).unwrap();
        assert_eq!(verifier.verify(cp.note()).unwrap(), cp);
        assert_eq!(Checkpoint::parse(cp.note()).unwrap(), cp);
        // The key id is SHA-256(name || 0x0A || 0x01 || public key)[:4].
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut preimage = b"audit.example/test\n\x01".to_vec();
        preimage.extend_from_slice(key.as_bytes());
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&preimage);
        assert_eq!(&sig[..4], &digest[..4]);
    }

    #[test]
    fn another_key_an_edited_note_and_another_origin_are_refused() {
        let good = signer(7, "audit.example/test");
        let cp = good.sign(42, &[9; 32]).unwrap();
        let verifier = good.verifier();
        let forged = signer(8, "audit.example/test").sign(42, &[9; 32]).unwrap();
        assert!(matches!(
            verifier.verify(forged.note()),
            Err(CheckpointError::Unsigned { .. })
        ));
        let edited = cp.note().replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            verifier.verify(&edited),
            Err(CheckpointError::Unsigned { .. })
        ));
        assert!(matches!(
            verifier.verify("not a note"),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), "a b"),
            Err(CheckpointError::BadOrigin(_))
        ));
        assert!(CheckpointVerifier::from_key("nope").is_err());
    }
}
