//! Secrets at rest: files that hold a secret are written 0600 in directories the
//! control plane creates 0700, and start-up warns about a config or key file that
//! others can read (the file stays usable: the warning says how to fix it).

use std::path::Path;

/// Creates `dir` and its missing parents, those it creates with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Logs a warning when `path` (which holds `what`) is readable by its group or by
/// everyone; returns whether it is.
pub fn warn_if_exposed(path: &Path, what: &str) -> bool {
    let Some(mode) = mode(path) else {
        return false;
    };
    let exposed = mode & 0o044 != 0;
    if exposed {
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{:o}", mode & 0o777),
            "{what} is readable by other users; run `chmod 600 {}`",
            path.display()
        );
    }
    exposed
}

#[cfg(unix)]
fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn mode(_path: &Path) -> Option<u32> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_group_or_world_readable_file_is_reported_and_a_private_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "secret").unwrap();
        for (mode, exposed) in [(0o600, false), (0o640, true), (0o604, true), (0o400, false)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(warn_if_exposed(&file, "the key"), exposed, "{mode:o}");
        }
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        let mode = std::fs::metadata(&nested).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
