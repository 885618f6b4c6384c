//! The on-disk copy of the last good bundle: the signed archive exactly as
//! received, so it is verified again on load (the disk is not trusted more than
//! the network).

use std::path::{Path, PathBuf};

/// File name of the cached archive inside `bundle_cache_dir`.
const FILE: &str = "active-bundle.tar.gz";

/// A directory holding one cached archive.
#[derive(Debug, Clone)]
pub(crate) struct BundleCache {
    dir: PathBuf,
}

impl BundleCache {
    pub(crate) fn new(dir: PathBuf) -> BundleCache {
        BundleCache { dir }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The cached archive; `Ok(None)` when there is none yet.
    pub(crate) fn load(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the cached archive atomically (write aside, then rename), so a
    /// crash mid-write leaves the previous good one.
    pub(crate) fn store(&self, archive: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let aside = self.dir.join(format!("{FILE}.partial"));
        write_synced(&aside, archive)?;
        std::fs::rename(&aside, self.path())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_archive_is_loaded_back_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BundleCache::new(dir.path().join("cache"));
        assert!(cache.load().unwrap().is_none());
        cache.store(b"first").unwrap();
        cache.store(b"second").unwrap();
        assert_eq!(cache.load().unwrap().unwrap(), b"second");
        assert!(!dir
            .path()
            .join("cache")
            .join(format!("{FILE}.partial"))
            .exists());
    }
}
