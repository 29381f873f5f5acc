//! Signed checkpoints: a checkpoint of the log tree (`tlog`) as a C2SP tlog-checkpoint
//! (origin line, tree size, base64 root) in a C2SP signed note, signed with the server's
//! Ed25519 key — text an auditor can keep outside the database and check with Accord or
//! with any tool that reads Go's `note` format.
//!
//! A signed note is the checkpoint text (ending in a newline), a blank line, and one line
//! per signature: em dash, space, key name, space, base64(key hash ‖ signature), where
//! the key hash is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key) and the
//! signature is Ed25519 over the checkpoint text. Keys are in Go's `note` encodings: the
//! private key `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>`, the verifier key
//! `<name>+<hash>+<base64(0x01 ‖ public key)>`. The format work is `signed_note`'s and
//! `tlog_tiles`' (both ports of Go's `sumdb` packages); this module holds Accord's
//! conventions: the key's name is the log's origin, so one key names one log, and a note
//! is only accepted when it is signed by the key given and its origin is that key's name.
//!
//! It also holds the record `accord audit checkpoint export` writes for each signed
//! checkpoint ([`KeptCheckpoint`]): the note, and beside it the checkpoint's frontier and
//! the stream heads that changed since the checkpoint before — unsigned hints that let a
//! verification say where a rewrite is; the verdict rests on the signed root alone.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::{Engine, prelude::BASE64_STANDARD};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use signed_note::{Note, NoteError, Signature, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};
use uuid::Uuid;

use super::audit::{CheckpointRecord, StreamHead};
use super::tlog::TreeMark;

/// The most text a note may hold here: a checkpoint note is a few hundred bytes.
const MAX_NOTE: usize = 64 * 1024;

/// The server's checkpoint signing key. Never printed: `Debug` shows the name and hash.
#[derive(Clone)]
pub struct CheckpointSigner {
    signer: StandardSigner,
    verifier: CheckpointVerifier,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointSigner({})", self.verifier.key)
    }
}

impl CheckpointSigner {
    /// A key in Go's note private key encoding, as `accord audit keygen` writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let refused = || {
            "is not a note signing key (PRIVATE+KEY+<name>+<hash>+<base64>, as `accord audit keygen` writes)".to_owned()
        };
        let signer = StandardSigner::new(text).map_err(|_| refused())?;
        // PRIVATE+KEY+<name>+<hash>+<base64>: names hold no '+', base64 may.
        let (name, rest) =
            text.strip_prefix("PRIVATE+KEY+").and_then(|rest| rest.split_once('+')).ok_or_else(refused)?;
        let (_, key) = rest.split_once('+').ok_or_else(refused)?;
        let key = BASE64_STANDARD.decode(key).map_err(|_| refused())?;
        let seed: [u8; 32] = key.get(1..).and_then(|seed| seed.try_into().ok()).ok_or_else(refused)?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier = CheckpointVerifier::parse(&signed_note::new_ed25519_verifier_key(name, &public))?;
        Ok(Self { signer, verifier })
    }

    /// Reads the key from a file; errors name the file, never its content.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{} {e}", path.display()))
    }

    /// The log's origin: the key's name.
    pub fn origin(&self) -> &str {
        &self.verifier.name
    }

    /// The key that checks this key's signatures.
    pub fn verifier(&self) -> &CheckpointVerifier {
        &self.verifier
    }

    /// The signed note of a checkpoint of `size` events with this root.
    pub fn sign(&self, size: u64, root: &[u8; 32]) -> Result<String, String> {
        let checkpoint = Checkpoint::new(self.origin(), size, Hash(*root), "")
            .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
        let mut note =
            Note::new(&checkpoint.to_bytes(), &[]).map_err(|e| format!("cannot write a checkpoint note: {e}"))?;
        note.add_sigs(&[&self.signer]).map_err(|e| format!("cannot sign a checkpoint: {e}"))?;
        String::from_utf8(note.to_bytes()).map_err(|e| format!("a signed note is not UTF-8: {e}"))
    }
}

/// A new signing key named `name` (the log's origin): (private key, verifier key).
pub fn generate_key(name: &str) -> Result<(String, String), String> {
    if !signed_note::is_key_name_valid(name) {
        return Err(format!("{name:?} cannot name a key: it must be non-empty, without spaces or '+'"));
    }
    let (private, verifier) = signed_note::generate_key(&mut rand_core::OsRng, name);
    Ok((private, verifier))
}

/// A verifier key (`<name>+<hash>+<base64>`): checks notes signed by one key.
#[derive(Clone)]
pub struct CheckpointVerifier {
    key: String,
    name: String,
    id: u32,
    verifier: StandardVerifier,
}

impl fmt::Debug for CheckpointVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointVerifier({})", self.key)
    }
}

/// What a signed checkpoint says: this log had `size` events with this root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

impl CheckpointVerifier {
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = text.trim();
        let verifier = StandardVerifier::new(key).map_err(|e| {
            format!("{:?} is not a note verifier key (<name>+<8 hex digits>+<base64>): {e}", prefix(key))
        })?;
        let (name, rest) = key.split_once('+').ok_or_else(|| format!("{:?} is not a verifier key", prefix(key)))?;
        let id = rest
            .split_once('+')
            .and_then(|(id, _)| u32::from_str_radix(id, 16).ok())
            .ok_or_else(|| format!("{:?} is not a verifier key", prefix(key)))?;
        Ok(Self { key: key.to_owned(), name: name.to_owned(), id, verifier })
    }

    /// The key as text, `<name>+<hash>+<base64>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key's name, which is the origin of the log it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks a signed note: well formed, signed by this key with a signature that
    /// verifies, a checkpoint whose origin is this key's name. Says what is wrong.
    pub fn open(&self, text: &str) -> Result<SignedCheckpoint, String> {
        let checkpoint = read_note(text)?;
        let note = Note::from_bytes(text.as_bytes()).map_err(|_| "is not a signed note".to_owned())?;
        let known = VerifierList::new(vec![Box::new(self.verifier.clone())]);
        match note.verify(&known) {
            Ok(_) => {}
            Err(NoteError::UnverifiedNote) => {
                return Err(format!(
                    "is not signed by the key given ({}+{:08x}): it is signed by {}",
                    self.name,
                    self.id,
                    signers(text).join(", ")
                ));
            }
            Err(NoteError::InvalidSignature { .. }) => {
                return Err(format!(
                    "has a signature of {}+{:08x} that does not verify: the note was altered or forged",
                    self.name, self.id
                ));
            }
            Err(error) => return Err(format!("cannot be verified: {error}")),
        }
        if checkpoint.origin != self.name {
            return Err(format!("is the checkpoint of log {:?}, not of {:?}", prefix(&checkpoint.origin), self.name));
        }
        Ok(checkpoint)
    }
}

/// The checkpoint a note carries, without checking any signature: what the database
/// holds beside each signed checkpoint must at least say the same size and root.
pub fn read_note(text: &str) -> Result<SignedCheckpoint, String> {
    if text.len() > MAX_NOTE {
        return Err(format!("is {} bytes, more than a checkpoint note holds", text.len()));
    }
    let note = Note::from_bytes(text.as_bytes()).map_err(|_| {
        "is not a signed note (checkpoint text, a blank line, and signature lines \"— <name> <base64>\")".to_owned()
    })?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|_| "does not hold a checkpoint (origin, tree size, base64 root)".to_owned())?;
    Ok(SignedCheckpoint { origin: checkpoint.origin().to_owned(), size: checkpoint.size(), root: checkpoint.hash().0 })
}

/// The names and key hashes of a note's signature lines.
fn signers(text: &str) -> Vec<String> {
    let names: Vec<String> = text
        .rsplit_once("\n\n")
        .map(|(_, lines)| lines)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Signature::from_bytes(line.as_bytes()).ok())
        .map(|signature| format!("{}+{:08x}", signature.name(), signature.id()))
        .collect();
    if names.is_empty() { vec!["nobody".to_owned()] } else { names }
}

/// At most 80 characters of some input, for an error message.
fn prefix(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// One signed checkpoint as `accord audit checkpoint export` writes it, one JSON object a
/// line: the id and time on the server, the signed note, the frontier (hex subtree roots,
/// see `tlog::Frontier`), and the heads of the streams that changed since the checkpoint
/// before it on the server (every head, for the first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptCheckpoint {
    pub id: u64,
    pub created_at: String,
    pub note: String,
    pub frontier: Vec<String>,
    pub heads: Vec<StreamHead>,
}

impl KeptCheckpoint {
    /// The records of a server's checkpoints (all of them, oldest first) to keep: one for
    /// each signed checkpoint, with the heads that changed since the signed checkpoint
    /// before it, so that records exported later follow on from those exported before.
    pub fn from_records(records: &[CheckpointRecord]) -> Vec<KeptCheckpoint> {
        let mut previous: HashMap<Uuid, [u8; 32]> = HashMap::new();
        let mut kept = Vec::new();
        for record in records {
            let Some(note) = &record.note else { continue };
            let heads = record.heads.iter().filter(|head| previous.get(&head.stream_id) != Some(&head.hash)).cloned();
            kept.push(KeptCheckpoint {
                id: record.id,
                created_at: record.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                note: note.clone(),
                frontier: record.frontier.iter().map(hex::encode).collect(),
                heads: heads.collect(),
            });
            previous = record.heads.iter().map(|head| (head.stream_id, head.hash)).collect();
        }
        kept
    }

    /// One line of a kept file; says what is wrong with it.
    pub fn parse(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| format!("is not a kept checkpoint ({{\"id\", \"note\", …}}): {e}"))
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("cannot encode a kept checkpoint: {e}"))
    }

    /// What the log must match, once the note is checked with `key`: its size and root,
    /// with the frontier and heads beside it to locate a difference.
    pub fn mark(&self, key: &CheckpointVerifier) -> Result<TreeMark, String> {
        let signed = key.open(&self.note).map_err(|e| format!("checkpoint {}: its note {e}", self.id))?;
        let frontier: Option<Vec<[u8; 32]>> = self
            .frontier
            .iter()
            .map(|node| {
                let mut hash = [0; 32];
                hex::decode_to_slice(node, &mut hash).ok().map(|()| hash)
            })
            .collect();
        Ok(TreeMark { id: self.id, size: signed.size, root: signed.root, frontier, heads: self.heads.clone() })
    }
}

/// Reads a file of kept checkpoints (JSON Lines; blank lines are skipped): each line
/// with its number. Refused, naming the line, if one is not a kept checkpoint.
pub fn parse_kept(text: &str) -> Result<Vec<(usize, KeptCheckpoint)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            KeptCheckpoint::parse(line).map(|kept| (number + 1, kept)).map_err(|e| format!("line {}: {e}", number + 1))
        })
        .collect()
}

/// Checks every kept note with `key` and returns what the log must match. Refused,
/// naming the line: a note not signed by the key, or two notes for one size with
/// different roots (the log was signed twice, differently: a fork).
pub fn kept_marks(kept: &[(usize, KeptCheckpoint)], key: &CheckpointVerifier) -> Result<Vec<TreeMark>, String> {
    let mut marks: Vec<TreeMark> = Vec::new();
    let mut sizes: HashMap<u64, (usize, [u8; 32])> = HashMap::new();
    for (line_no, kept) in kept {
        let mark = kept.mark(key).map_err(|e| format!("line {line_no}: {e}"))?;
        match sizes.get(&mark.size) {
            Some((first, root)) if *root != mark.root => {
                return Err(format!(
                    "line {line_no}: checkpoint {} has another root for size {} than the one on line {first}: the \
                     server signed two different logs (a fork)",
                    mark.id, mark.size
                ));
            }
            Some(_) => {}
            None => {
                sizes.insert(mark.size, (*line_no, mark.root));
            }
        }
        marks.push(mark);
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Go's `note` package documentation: a key pair, and a note it signed.
    const GO_SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn a_go_note_key_gives_go_s_verifier_key_and_signatures() {
        let signer = CheckpointSigner::parse(GO_SIGNER).expect("Go's example key");
        assert_eq!(signer.verifier().key(), GO_VERIFIER);
        assert_eq!(signer.origin(), "PeterNeumann");
        assert!(!format!("{signer:?}").contains("AYEKF"), "the private key never prints");
        // The key hash is SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4].
        let public = BASE64_STANDARD.decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").expect("base64");
        assert_eq!(signed_note::key_id("PeterNeumann", &public), 0xc74f20a3);
    }

    #[test]
    fn a_checkpoint_note_is_origin_size_root_then_the_signature_line() {
        let signer = CheckpointSigner::parse(GO_SIGNER).expect("key");
        let root = [7u8; 32];
        let note = signer.sign(42, &root).expect("sign");
        let (text, signature) = note.split_once("\n\n").expect("a blank line before the signature");
        assert_eq!(text, format!("PeterNeumann\n42\n{}", BASE64_STANDARD.encode(root)));
        let signature = signature.strip_prefix("— PeterNeumann ").expect("em dash, space, name, space");
        let bytes = BASE64_STANDARD.decode(signature.trim_end()).expect("base64");
        assert_eq!((bytes.len(), &bytes[..4]), (68, &[0xc7, 0x4f, 0x20, 0xa3][..]));
        let opened = signer.verifier().open(&note).expect("verifies");
        assert_eq!(opened, SignedCheckpoint { origin: "PeterNeumann".into(), size: 42, root });
        assert_eq!(read_note(&note), Ok(opened));
    }

    #[test]
    fn another_key_an_altered_note_and_another_log_are_refused() {
        let signer = CheckpointSigner::parse(GO_SIGNER).expect("key");
        let note = signer.sign(42, &[7; 32]).expect("sign");
        let (other, other_verifier) = generate_key("accord.example/other").expect("new key");
        let other = CheckpointSigner::parse(&other).expect("generated key parses");
        assert_eq!(other.verifier().key(), other_verifier);

        let refused = other.verifier().open(&note).expect_err("another key");
        assert!(refused.contains("is not signed by the key given") && refused.contains("PeterNeumann+c74f20a3"));
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        let refused = signer.verifier().open(&altered).expect_err("altered");
        assert!(refused.contains("does not verify"), "{refused}");
        assert!(signer.verifier().open("hello\n").is_err());

        // A key named like this one but for another log: same name, different key.
        let (twin, _) = generate_key("PeterNeumann").expect("new key");
        let twin = CheckpointSigner::parse(&twin).expect("parses");
        assert!(signer.verifier().open(&twin.sign(42, &[7; 32]).expect("sign")).is_err());
        assert!(generate_key("two words").is_err());
        assert!(CheckpointSigner::parse(GO_VERIFIER).is_err());
        assert!(CheckpointVerifier::parse(GO_SIGNER).is_err());
    }

    #[test]
    fn a_kept_file_is_read_line_by_line_and_two_roots_for_one_size_are_a_fork() {
        let signer = CheckpointSigner::parse(GO_SIGNER).expect("key");
        let record = |id: u64, size: u64, root: [u8; 32]| KeptCheckpoint {
            id,
            created_at: "2026-12-15T00:00:00.000000Z".into(),
            note: signer.sign(size, &root).expect("sign"),
            frontier: Vec::new(),
            heads: Vec::new(),
        };
        let line = |kept: KeptCheckpoint| kept.to_json().expect("encode");
        let text = [line(record(1, 3, [1; 32])), String::new(), line(record(2, 5, [2; 32]))].join("\n");
        let kept = parse_kept(&text).expect("two records and a blank line");
        assert_eq!(kept.iter().map(|(line, kept)| (*line, kept.id)).collect::<Vec<_>>(), [(1, 1), (3, 2)]);
        let marks = kept_marks(&kept, signer.verifier()).expect("signed by the key");
        assert_eq!(marks.iter().map(|mark| (mark.size, mark.root)).collect::<Vec<_>>(), [(3, [1; 32]), (5, [2; 32])]);

        let forked = [line(record(1, 3, [1; 32])), line(record(7, 3, [9; 32]))].join("\n");
        let refused = kept_marks(&parse_kept(&forked).expect("records"), signer.verifier()).expect_err("a fork");
        assert!(refused.starts_with("line 2: checkpoint 7 has another root for size 3 than the one on line 1"));
        assert!(parse_kept("{\"id\": 1}").is_err_and(|e| e.starts_with("line 1: is not a kept checkpoint")));
    }
}
