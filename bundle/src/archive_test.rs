use super::*;
use crate::{BundleVerifier, PublicKey};

const POLICY: &str = "package airlock\n\ndecision := {\"verdict\": \"allow\"}\n";

fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("airlock.rego"), POLICY).unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(
        dir.path().join("lib/sql.rego"),
        "package lib.sql\n\nddl if true\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("data.json"), "{\"limits\": {\"max\": 3}}").unwrap();
    std::fs::write(dir.path().join("README.md"), "not part of the bundle").unwrap();
    dir
}

fn built(key: &SigningKey) -> BuiltBundle {
    build_from_dir(policy_dir().path(), Some("r1"), key).unwrap()
}

fn verifier(key: &SigningKey) -> BundleVerifier {
    BundleVerifier::new([key.public_key()]).unwrap()
}

/// One forged entry: raw path, content, entry type.
type Entry<'a> = (&'a str, &'a [u8], tar::EntryType);

/// Writes a tar.gz with raw header names, so tests can forge what `tar::Builder` refuses.
fn forge(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes, kind) in entries {
        let mut header = tar::Header::new_old();
        let raw = name.as_bytes();
        header.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        header.set_entry_type(*kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        tar.append(&header, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn files_of(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    BundleArchive::from_tar_gz(bytes, Limits::default())
        .unwrap()
        .files
}

fn repack(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    BundleArchive {
        files: files.clone(),
    }
    .to_tar_gz()
    .unwrap()
}

#[test]
fn a_built_bundle_verifies_and_is_deterministic() {
    let key = SigningKey::generate();
    let first = built(&key);
    assert_eq!(first.bytes, built(&key).bytes, "same input, same bytes");
    let verified = verifier(&key).verify(&first.bytes).unwrap();
    assert_eq!(verified.manifest.revision, "r1");
    assert_eq!(verified.key_id, key.public_key().key_id());
    assert_eq!(verified.digest, first.digest);
    let paths: Vec<_> = verified
        .bundle
        .modules
        .iter()
        .map(|m| m.path.as_str())
        .collect();
    assert_eq!(paths, ["airlock.rego", "lib/sql.rego"]);
    assert_eq!(verified.bundle.data["limits"]["max"], 3);
    assert_eq!(verified.bundle.revision, "r1");
    assert!(!verified.archive.files.contains_key("README.md"));
}

#[test]
fn the_revision_comes_from_the_flag_the_manifest_or_the_content() {
    let key = SigningKey::generate();
    let dir = policy_dir();
    let stamped = build_from_dir(dir.path(), None, &key).unwrap();
    // The same string `airlock policy eval` names for the directory.
    let local = airlock_policy::Bundle::from_dir(dir.path()).unwrap();
    assert_eq!(stamped.revision, local.revision);
    assert!(
        stamped.revision.starts_with("sha256:"),
        "{}",
        stamped.revision
    );
    let verified = verifier(&key).verify(&stamped.bytes).unwrap();
    assert_eq!(verified.bundle.revision, local.revision);
    assert_eq!(verified.bundle.digest, local.digest);
    std::fs::write(
        dir.path().join(".manifest"),
        r#"{"revision": "from-manifest", "roots": ["airlock"]}"#,
    )
    .unwrap();
    let manifest = build_from_dir(dir.path(), None, &key).unwrap();
    assert_eq!(manifest.revision, "from-manifest");
    let verified = verifier(&key).verify(&manifest.bytes).unwrap();
    assert_eq!(verified.manifest.roots, ["airlock"]);
    assert_eq!(
        build_from_dir(dir.path(), Some("flag"), &key)
            .unwrap()
            .revision,
        "flag"
    );
}

#[test]
fn a_flipped_byte_in_a_file_is_refused_naming_the_file() {
    let key = SigningKey::generate();
    let mut files = files_of(&built(&key).bytes);
    let module = files.get_mut("lib/sql.rego").unwrap();
    module[0] ^= 0x01;
    let err = verifier(&key).verify(&repack(&files)).unwrap_err();
    assert!(
        matches!(&err, BundleError::DigestMismatch { path } if path == "lib/sql.rego"),
        "{err}"
    );
    assert!(err.to_string().starts_with("lib/sql.rego:"), "{err}");
}

#[test]
fn an_added_or_removed_file_is_refused() {
    let key = SigningKey::generate();
    let mut files = files_of(&built(&key).bytes);
    files.insert("extra.rego".into(), b"package extra\n".to_vec());
    let err = verifier(&key).verify(&repack(&files)).unwrap_err();
    assert!(
        matches!(&err, BundleError::NotSigned { path } if path == "extra.rego"),
        "{err}"
    );

    let mut files = files_of(&built(&key).bytes);
    files.remove("data.json");
    let err = verifier(&key).verify(&repack(&files)).unwrap_err();
    assert!(
        matches!(&err, BundleError::MissingFile { path } if path == "data.json"),
        "{err}"
    );
}

#[test]
fn a_wrong_key_or_forged_signature_is_refused() {
    let key = SigningKey::generate();
    let other = SigningKey::generate();
    let bundle = built(&key);
    let err = verifier(&other).verify(&bundle.bytes).unwrap_err();
    assert!(matches!(err, BundleError::UnknownKey { .. }), "{err}");

    // Same key id, but a signature over another file list.
    let mut files = files_of(&bundle.bytes);
    let mut sigs = Signatures::parse(&files[SIGNATURES]).unwrap();
    sigs.files[0].sha256 = "00".repeat(32);
    files.insert(SIGNATURES.into(), sigs.to_bytes());
    let err = verifier(&key).verify(&repack(&files)).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");

    let mut files = files_of(&bundle.bytes);
    files.remove(SIGNATURES);
    let err = verifier(&key).verify(&repack(&files)).unwrap_err();
    assert!(matches!(err, BundleError::Unsigned), "{err}");
    let public: PublicKey = other.public_key();
    assert!(BundleVerifier::new([public]).is_ok());
    assert!(matches!(
        BundleVerifier::new([]),
        Err(BundleError::NoTrustedKeys)
    ));
}

#[test]
fn path_traversal_links_and_odd_files_are_refused() {
    let reg = tar::EntryType::Regular;
    let cases: [(&[Entry<'_>], &str); 6] = [
        (&[("../evil.rego", b"package x", reg)], "`..` component"),
        (
            &[("a/../../evil.rego", b"package x", reg)],
            "`..` component",
        ),
        (&[("/etc/evil.rego", b"package x", reg)], "absolute path"),
        (
            &[("link.rego", b"", tar::EntryType::Symlink)],
            "not a regular file",
        ),
        (&[("notes.txt", b"hi", reg)], "unsupported file"),
        (
            &[
                ("a.rego", b"package a", reg),
                ("./a.rego", b"package b", reg),
            ],
            "appears twice",
        ),
    ];
    for (entries, expected) in cases {
        let err = BundleArchive::from_tar_gz(&forge(entries), Limits::default()).unwrap_err();
        assert!(err.to_string().contains(expected), "{entries:?}: {err}");
    }
}

#[test]
fn directories_and_a_pax_global_header_are_skipped() {
    let reg = tar::EntryType::Regular;
    let bytes = forge(&[
        (
            "pax_global_header",
            b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
            tar::EntryType::XGlobalHeader,
        ),
        ("./", b"", tar::EntryType::Directory),
        ("./lib/", b"", tar::EntryType::Directory),
        ("./lib/a.rego", b"package a", reg),
    ]);
    let archive = BundleArchive::from_tar_gz(&bytes, Limits::default()).unwrap();
    let paths: Vec<_> = archive.files.keys().map(String::as_str).collect();
    assert_eq!(paths, ["lib/a.rego"]);
}

#[test]
fn oversize_and_garbage_archives_are_refused() {
    let big = vec![b' '; 2048];
    let bytes = forge(&[("a.rego", &big, tar::EntryType::Regular)]);
    let err = BundleArchive::from_tar_gz(&bytes, Limits { max_bytes: 1024 }).unwrap_err();
    assert!(
        matches!(err, BundleError::TooLarge { limit: 1024 }),
        "{err}"
    );
    assert!(BundleArchive::from_tar_gz(&bytes, Limits { max_bytes: 4096 }).is_ok());
    let err = BundleArchive::from_tar_gz(b"definitely not gzip", Limits::default()).unwrap_err();
    assert!(matches!(err, BundleError::Archive { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn a_symlinked_module_in_the_source_directory_is_refused() {
    let dir = policy_dir();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("linked.rego")).unwrap();
    let err = build_from_dir(dir.path(), Some("r1"), &SigningKey::generate()).unwrap_err();
    assert!(
        matches!(&err, BundleError::NotRegularFile { path } if path == "linked.rego"),
        "{err}"
    );
}

#[test]
fn bad_data_json_is_refused_at_build() {
    let dir = policy_dir();
    std::fs::write(dir.path().join("data.json"), "{\n  \"a\": ,\n}").unwrap();
    let err = build_from_dir(dir.path(), Some("r1"), &SigningKey::generate()).unwrap_err();
    assert!(err.to_string().starts_with("data.json:"), "{err}");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn the_engine_proof_is_signed_into_the_manifest() {
    let key = SigningKey::generate();
    let dir = policy_dir();
    let built = build_from_dir(dir.path(), Some("r1"), &key).unwrap();
    let verified = verifier(&key).verify(&built.bytes).unwrap();
    let proof = verified.manifest.metadata["airlock"]["engine_proof"].clone();
    assert_eq!(proof["content"], verified.bundle.digest.as_str());
    assert_eq!(verified.bundle.engine_proof, Some(proof));
    assert_eq!(
        airlock_policy::CompiledPolicy::compile(&verified.bundle)
            .unwrap()
            .backend(),
        airlock_policy::Backend::Vm
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Untrusted bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let _ = BundleArchive::from_tar_gz(&bytes, Limits::default());
    }

    /// Any flipped bit in a signed archive either breaks verification or leaves the
    /// verified files unchanged (gzip header fields, tar padding).
    #[test]
    fn a_flipped_bit_never_yields_other_verified_content(index in 0usize..4096, bit in 0u8..8) {
        // Built once: building proves the engines agree, which is not what varies here.
        static BUILT: std::sync::OnceLock<(SigningKey, Vec<u8>)> = std::sync::OnceLock::new();
        let (key, original) = BUILT.get_or_init(|| {
            let key = SigningKey::generate();
            let bytes = built(&key).bytes;
            (key, bytes)
        });
        let original = original.clone();
        let mut bytes = original.clone();
        let at = index % bytes.len();
        bytes[at] ^= 1 << bit;
        let verifier = verifier(key);
        if let Ok(verified) = verifier.verify(&bytes) {
            let expected = verifier.verify(&original).unwrap();
            proptest::prop_assert_eq!(verified.archive, expected.archive);
        }
    }
}
