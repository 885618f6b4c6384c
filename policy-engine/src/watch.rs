//! Hot reload: watch a bundle directory and install each good new revision.

use crate::{Bundle, CompiledPolicy, PolicyError, PolicyStore};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last file event before reloading, so an editor's
/// write-rename-chmod burst is one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches a bundle directory; dropping it stops watching.
pub struct BundleWatcher {
    // Dropping the watcher drops the event sender, which ends the reload thread.
    _watcher: notify::RecommendedWatcher,
    dir: PathBuf,
}

impl std::fmt::Debug for BundleWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWatcher")
            .field("dir", &self.dir)
            .finish()
    }
}

/// Loads `dir` into `store` now (the error is returned if this first load fails),
/// then watches `dir` and hot-reloads it. A broken change keeps the last good bundle
/// and logs why (`tracing::warn` with the file and line).
pub fn watch_dir(store: Arc<PolicyStore>, dir: &Path) -> Result<BundleWatcher, PolicyError> {
    let policy = load(dir)?;
    store.install(policy);

    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // The receiver is gone only when the watcher is being dropped.
            let _ = tx.send(());
        }
    })
    .map_err(|err| watch_error(dir, &err))?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|err| watch_error(dir, &err))?;

    let thread_dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("airlock-policy-watch".to_owned())
        .spawn(move || reload_loop(&rx, &store, &thread_dir))
        .map_err(|err| watch_error(dir, &err))?;
    Ok(BundleWatcher {
        _watcher: watcher,
        dir: dir.to_path_buf(),
    })
}

fn load(dir: &Path) -> Result<CompiledPolicy, PolicyError> {
    compile_local(Bundle::from_dir(dir)?)
}

/// A local directory has no publisher to prove it: this node proves it (a fraction
/// of a second for the default bundle) so it can run on the RVM when the engines
/// agree, and on the interpreter otherwise.
fn compile_local(mut bundle: Bundle) -> Result<CompiledPolicy, PolicyError> {
    if bundle.engine_proof.is_none() {
        let report = crate::proof::prove(&bundle, &crate::proof::ProofOptions::default())?;
        bundle.engine_proof = report
            .proof
            .and_then(|proof| serde_json::to_value(proof).ok());
    }
    CompiledPolicy::compile(&bundle)
}

fn reload_loop(rx: &mpsc::Receiver<()>, store: &PolicyStore, dir: &Path) {
    while rx.recv().is_ok() {
        // Wait until the directory has been quiet for DEBOUNCE.
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        match Bundle::from_dir(dir) {
            Ok(bundle) if store.revision().as_deref() == Some(bundle.revision.as_str()) => {}
            Ok(bundle) => match compile_local(bundle) {
                Ok(policy) => store.install(policy),
                Err(err) => keep_last_good(store, dir, &err),
            },
            Err(err) => keep_last_good(store, dir, &err),
        }
    }
}

fn keep_last_good(store: &PolicyStore, dir: &Path, err: &PolicyError) {
    tracing::warn!(dir = %dir.display(), error = %err,
        active_revision = store.revision().as_deref().unwrap_or("none"),
        "policy change rejected; keeping the last good bundle");
}

fn watch_error(dir: &Path, err: &dyn std::fmt::Display) -> PolicyError {
    PolicyError::Watch {
        dir: dir.to_path_buf(),
        message: err.to_string(),
    }
}
