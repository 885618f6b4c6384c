//! The audit log's RFC 6962 Merkle tree on sled.
//!
//! The tree keeps every stored hash in the order of `tlog_tiles::stored_hash_index`
//! (Crosby and Wallach's layout, Go's `sumdb/tlog`): appending leaf `n` adds the
//! leaf and each perfect subtree it completes at consecutive indexes from
//! `stored_hash_index(0, n)`, two hashes per leaf on average, always at the end.
//! The root of any size is then at most `log2(n) + 1` reads and a proof O(log n)
//! reads, and nothing is ever recomputed over the whole log. Leaf `n` is record
//! `n + 1`: `SHA-256(0x00 || record hash)`.
//!
//! Tree `audit_tree` holds that array in chunks of [`CHUNK`] hashes (key: chunk
//! number, big-endian; value: the hashes, 32 bytes each): one sled write per 256
//! hashes instead of one per hash, which keeps the tree's cost on ingest small
//! next to the records'. Only the last chunk is partial; a commit rewrites it.
//!
//! Tree `audit_checkpoints` keeps every signed checkpoint (a C2SP signed note) by
//! tree size, big-endian.

use super::StoreError;
use tlog_tiles::{Hash, HashReader};

/// The sled tree of stored hashes.
pub(super) const NODES: &str = "audit_tree";
/// Stored hashes per sled value.
pub(super) const CHUNK: u64 = 256;
const HASH: usize = 32;
/// The sled tree of signed checkpoints.
pub(super) const CHECKPOINTS: &str = "audit_checkpoints";

/// The right edge of the tree: the root of each perfect subtree the leaves split
/// into (one per set bit of the size, the largest first). Enough to append a leaf
/// and to compute the root without reading anything.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// `peaks[level]` is meaningful when bit `level` of `size` is set.
    peaks: Vec<[u8; 32]>,
}

impl PartialEq for Frontier {
    fn eq(&self, other: &Self) -> bool {
        let peak = |f: &Frontier, level: usize| f.peaks.get(level).copied();
        self.size == other.size
            && (0..64)
                .filter(|l| (self.size >> l) & 1 == 1)
                .all(|l| peak(self, l) == peak(other, l))
    }
}

impl Eq for Frontier {}

impl Frontier {
    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns the hashes to store from
    /// `stored_hash_index(0, old size)` on: the leaf, then each completed subtree.
    pub fn push(&mut self, leaf: [u8; 32]) -> Vec<[u8; 32]> {
        let n = self.size;
        let mut hash = leaf;
        let mut stored = vec![hash];
        let mut level = 0;
        while (n >> level) & 1 == 1 {
            let left = self.peaks.get(level).copied().unwrap_or_default();
            hash = tlog_tiles::node_hash(Hash(left), Hash(hash)).0;
            stored.push(hash);
            level += 1;
        }
        if self.peaks.len() <= level {
            self.peaks.resize(level + 1, [0; 32]);
        }
        self.peaks[level] = hash;
        self.size += 1;
        stored
    }

    /// The tree hash (RFC 6962 MTH) of the leaves so far.
    pub fn root(&self) -> [u8; 32] {
        let mut root: Option<[u8; 32]> = None;
        for (level, peak) in self.peaks.iter().enumerate() {
            if (self.size >> level) & 1 == 1 {
                root = Some(match root {
                    None => *peak,
                    Some(right) => tlog_tiles::node_hash(Hash(*peak), Hash(right)).0,
                });
            }
        }
        root.unwrap_or(tlog_tiles::EMPTY_HASH.0)
    }

    /// The frontier of the tree of `size` leaves, read from stored hashes.
    pub(super) fn load(size: u64, nodes: &sled::Tree) -> Result<Frontier, StoreError> {
        let levels: Vec<u8> = (0..64u8).rev().filter(|l| (size >> l) & 1 == 1).collect();
        let indexes: Vec<u64> = levels
            .iter()
            .map(|&l| tlog_tiles::stored_hash_index(l, (size >> l) - 1))
            .collect();
        let hashes = SledHashes(nodes)
            .read_hashes(&indexes)
            .map_err(|_| missing(size))?;
        let mut frontier = Frontier {
            size,
            peaks: vec![[0; 32]; levels.first().map_or(0, |&l| usize::from(l) + 1)],
        };
        for (level, hash) in levels.iter().zip(hashes) {
            frontier.peaks[usize::from(*level)] = hash.0;
        }
        Ok(frontier)
    }
}

fn missing(size: u64) -> StoreError {
    StoreError::Corrupt {
        key: format!("audit_tree (tree of {size} records)"),
        message: "stored Merkle tree hashes are missing or malformed".to_owned(),
    }
}

/// Reads stored hashes from sled for the `tlog_tiles` proof functions.
pub(super) struct SledHashes<'a>(pub(super) &'a sled::Tree);

impl HashReader for SledHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut chunk: Option<(u64, sled::IVec)> = None;
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            let number = index / CHUNK;
            if chunk.as_ref().map(|c| c.0) != Some(number) {
                let value = self
                    .0
                    .get(number.to_be_bytes())
                    .ok()
                    .flatten()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                chunk = Some((number, value));
            }
            let bytes = chunk.as_ref().map(|c| &c.1[..]).unwrap_or_default();
            let at = usize::try_from(index % CHUNK).unwrap_or_default() * HASH;
            let hash = bytes
                .get(at..at + HASH)
                .and_then(|h| <[u8; HASH]>::try_from(h).ok())
                .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
            out.push(Hash(hash));
        }
        Ok(out)
    }
}

/// How many hashes are stored.
fn stored_count(nodes: &sled::Tree) -> Result<u64, StoreError> {
    let last = nodes.last().map_err(|e| StoreError::Corrupt {
        key: NODES.to_owned(),
        message: e.to_string(),
    })?;
    Ok(last.map_or(0, |(key, value)| {
        super::key_seq(&key) * CHUNK + (value.len() / HASH) as u64
    }))
}

/// How many leaves the stored hashes describe, from the last stored index: the
/// last hash written for leaf `n` is `(m, n >> m)` with `m` the trailing ones of
/// `n`, so the size is `(n >> m) + 1` shifted back by `m`.
pub(super) fn stored_size(nodes: &sled::Tree) -> Result<u64, StoreError> {
    let count = stored_count(nodes)?;
    if count == 0 {
        return Ok(0);
    }
    let (level, index) = tlog_tiles::split_stored_hash_index(count - 1);
    let size = (index + 1) << level;
    if tlog_tiles::stored_hash_count(size) != count {
        return Err(missing(size));
    }
    Ok(size)
}

/// The end of the stored array: how many hashes, and the bytes of the last,
/// partial chunk (kept in memory so an append never reads it back).
#[derive(Debug, Clone, Default)]
pub struct Tail {
    count: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// The tail of what is stored.
    pub(super) fn load(nodes: &sled::Tree) -> Result<Tail, StoreError> {
        let count = stored_count(nodes)?;
        let mut partial = Vec::new();
        if !count.is_multiple_of(CHUNK) {
            let number = count / CHUNK;
            let value = nodes
                .get(number.to_be_bytes())
                .map_err(|e| StoreError::Corrupt {
                    key: NODES.to_owned(),
                    message: e.to_string(),
                })?
                .ok_or_else(|| missing(count))?;
            partial = value.to_vec();
        }
        Ok(Tail { count, partial })
    }

    /// Stages the hashes of leaf `leaf` (as [`Frontier::push`] returned them)
    /// into `batch`: they must go at the end of the array. Completed chunks are
    /// staged at once; the partial one by [`Tail::stage_partial`], once per batch.
    pub(super) fn stage(
        &mut self,
        batch: &mut sled::Batch,
        leaf: u64,
        hashes: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        if tlog_tiles::stored_hash_index(0, leaf) != self.count {
            return Err(missing(leaf));
        }
        for hash in hashes {
            self.partial.extend_from_slice(hash);
            self.count += 1;
            if self.count.is_multiple_of(CHUNK) {
                let number = (self.count - 1) / CHUNK;
                batch.insert(&number.to_be_bytes(), std::mem::take(&mut self.partial));
            }
        }
        Ok(())
    }

    /// Stages the partial last chunk (after the leaves of a batch).
    pub(super) fn stage_partial(&self, batch: &mut sled::Batch) {
        if !self.partial.is_empty() {
            batch.insert(&(self.count / CHUNK).to_be_bytes(), self.partial.clone());
        }
    }
}

/// Drops every stored hash from index `keep` on.
pub(super) fn truncate(nodes: &sled::Tree, keep: u64) -> Result<(), StoreError> {
    let err = |e: sled::Error| StoreError::Corrupt {
        key: NODES.to_owned(),
        message: e.to_string(),
    };
    let first = keep.div_ceil(CHUNK);
    for key in nodes.range(first.to_be_bytes()..).keys() {
        nodes.remove(key.map_err(err)?).map_err(err)?;
    }
    if !keep.is_multiple_of(CHUNK) {
        let number = (keep / CHUNK).to_be_bytes();
        if let Some(value) = nodes.get(number).map_err(err)? {
            let len = usize::try_from(keep % CHUNK).unwrap_or_default() * HASH;
            nodes
                .insert(number, &value[..len.min(value.len())])
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Stored hashes from `index` on, in order, with their index.
pub(super) fn hashes_from(
    nodes: &sled::Tree,
    index: u64,
) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
    nodes
        .range((index / CHUNK).to_be_bytes()..)
        .flat_map(move |item| {
            let rows: Vec<Result<(u64, Vec<u8>), StoreError>> = match item {
                Err(e) => vec![Err(StoreError::Corrupt {
                    key: NODES.to_owned(),
                    message: e.to_string(),
                })],
                Ok((key, value)) => {
                    let first = super::key_seq(&key) * CHUNK;
                    value
                        .chunks(HASH)
                        .zip(first..)
                        .filter(|(_, at)| *at >= index)
                        .map(|(hash, at)| Ok((at, hash.to_vec())))
                        .collect()
                }
            };
            rows
        })
}

/// RFC 6962 consistency proof from `from` to `to` leaves, from stored hashes.
pub(super) fn consistency(
    nodes: &sled::Tree,
    from: u64,
    to: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    if from == 0 || from >= to {
        return Ok(Vec::new());
    }
    tlog_tiles::prove_tree(to, from, &SledHashes(nodes))
        .map(|p| p.into_iter().map(|h| h.0).collect())
        .map_err(|_| missing(to))
}

/// RFC 6962 audit path of leaf `index` in the tree of `size` leaves.
pub(super) fn inclusion(
    nodes: &sled::Tree,
    index: u64,
    size: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    tlog_tiles::prove_record(size, index, &SledHashes(nodes))
        .map(|p| p.into_iter().map(|h| h.0).collect())
        .map_err(|_| missing(size))
}

/// The tree hash of the first `size` leaves, from stored hashes.
pub(super) fn root(nodes: &sled::Tree, size: u64) -> Result<[u8; 32], StoreError> {
    tlog_tiles::tree_hash(size, &SledHashes(nodes))
        .map(|h| h.0)
        .map_err(|_| missing(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_stores_what_tlog_stores_and_agrees_on_every_root() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let nodes = db.open_tree(NODES).unwrap();
        let mut frontier = Frontier::default();
        let mut tail = Tail::default();
        let mut reference: Vec<Hash> = Vec::new();
        struct Reference<'a>(&'a [Hash]);
        impl HashReader for Reference<'_> {
            fn read_hashes(&self, i: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
                Ok(i.iter().map(|&i| self.0[i as usize]).collect())
            }
        }
        for n in 0..300u64 {
            let leaf = airlock_checkpoint::leaf_hash(&n.to_be_bytes());
            let expected =
                tlog_tiles::stored_hashes_for_record_hash(n, Hash(leaf), &Reference(&reference))
                    .unwrap();
            let stored = frontier.push(leaf);
            assert_eq!(stored, expected.iter().map(|h| h.0).collect::<Vec<_>>());
            reference.extend(expected);
            let mut batch = sled::Batch::default();
            tail.stage(&mut batch, n, &stored).unwrap();
            tail.stage_partial(&mut batch);
            nodes.apply_batch(batch).unwrap();
            let size = n + 1;
            let want = tlog_tiles::tree_hash(size, &Reference(&reference))
                .unwrap()
                .0;
            assert_eq!(frontier.root(), want, "root of {size}");
            assert_eq!(root(&nodes, size).unwrap(), want);
            assert_eq!(stored_size(&nodes).unwrap(), size);
            assert_eq!(Frontier::load(size, &nodes).unwrap(), frontier);
        }
        // The whole array reads back in order, and a truncation keeps a prefix.
        let all: Vec<Vec<u8>> = hashes_from(&nodes, 0).map(|r| r.unwrap().1).collect();
        assert_eq!(
            all,
            reference.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>()
        );
        let keep = tlog_tiles::stored_hash_count(100);
        truncate(&nodes, keep).unwrap();
        assert_eq!(stored_size(&nodes).unwrap(), 100);
        assert_eq!(Tail::load(&nodes).unwrap().count, keep);
        assert_eq!(
            root(&nodes, 100).unwrap(),
            tlog_tiles::tree_hash(100, &Reference(&reference))
                .unwrap()
                .0
        );
        assert_eq!(Frontier::default().root(), tlog_tiles::EMPTY_HASH.0);
    }
}
