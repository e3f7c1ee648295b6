//! The models a session has loaded, kept for its next calls: ONNX Runtime
//! sessions take tens of milliseconds to load and are reused for every
//! batch. The cache belongs to the session's [`ModelStore`](crate::ModelStore)
//! and is bounded: past its capacity the least recently used model goes.
//! A model file changed on disk is a new entry, and its older versions go.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::Result;
use crate::heatmap::HeatmapModel;
use crate::runtime::{poisoned, Classifier, ClassifyOptions, ModelOutput};
use rookery_image::ExecutionProviders;

/// Loaded models of each kind a session keeps at most.
pub const DEFAULT_CAPACITY: usize = 8;

type ClassifierKey = (PathBuf, Option<SystemTime>, String, ModelOutput);
type HeatmapKey = (PathBuf, Option<SystemTime>, usize, usize, ExecutionProviders);

/// Loaded classifiers and heatmap models, each kind bounded.
pub struct ModelCache {
    classifiers: Mutex<Lru<ClassifierKey, Arc<Classifier>>>,
    heatmaps: Mutex<Lru<HeatmapKey, Arc<HeatmapModel>>>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache").field("models", &self.len()).finish()
    }
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl ModelCache {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            classifiers: Mutex::new(Lru::new(capacity)),
            heatmaps: Mutex::new(Lru::new(capacity)),
        }
    }

    /// The classifier of a model file giving `output`: one per (path,
    /// modification time, options, threads), so a retrained model is
    /// picked up.
    pub fn classifier(
        &self,
        path: &Path,
        options: &ClassifyOptions,
        output: &ModelOutput,
        threads: usize,
    ) -> Result<Arc<Classifier>> {
        let key = (
            path.to_path_buf(),
            modified(path),
            format!("{options:?}/{threads}"),
            output.clone(),
        );
        // Loaded in place, not through `off_async_worker`: while a worker
        // handed its tasks on, the scans ran ahead of the model and
        // buffered decoded frames (seed count on 6 full-size frames: peak
        // RSS 0.42-0.71 GB -> 0.56-0.91 GB).
        get_or_load(&self.classifiers, key, || {
            Classifier::load(path, options, output, threads).map(Arc::new)
        })
    }

    /// The heatmap model of a file scoring every `step`-th position of the
    /// network's stride, on the first of `providers` that loads.
    pub fn heatmap(
        &self,
        path: &Path,
        step: usize,
        threads: usize,
        providers: &ExecutionProviders,
    ) -> Result<Arc<HeatmapModel>> {
        let key = (path.to_path_buf(), modified(path), step, threads, providers.clone());
        get_or_load(&self.heatmaps, key, || {
            HeatmapModel::load(path, step, threads, providers).map(Arc::new)
        })
    }

    /// Models held now, of both kinds.
    pub fn len(&self) -> usize {
        let classifiers = self.classifiers.lock().map_or(0, |c| c.entries.len());
        let heatmaps = self.heatmaps.lock().map_or(0, |h| h.entries.len());
        classifiers + heatmaps
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Keys lead with the file's path and modification time.
trait FileKey {
    fn file(&self) -> (&PathBuf, &Option<SystemTime>);
}

impl FileKey for ClassifierKey {
    fn file(&self) -> (&PathBuf, &Option<SystemTime>) {
        (&self.0, &self.1)
    }
}

impl FileKey for HeatmapKey {
    fn file(&self) -> (&PathBuf, &Option<SystemTime>) {
        (&self.0, &self.1)
    }
}

fn get_or_load<K: PartialEq + FileKey, V: Clone>(
    cache: &Mutex<Lru<K, V>>,
    key: K,
    load: impl FnOnce() -> Result<V>,
) -> Result<V> {
    if let Some(found) = cache.lock().map_err(|_| poisoned())?.get(&key) {
        return Ok(found);
    }
    // Loaded outside the lock: other models stay usable meanwhile.
    let loaded = load()?;
    let mut cache = cache.lock().map_err(|_| poisoned())?;
    let (path, version) = key.file();
    let (path, version) = (path.clone(), *version);
    cache.entries.retain(|(k, _)| {
        let (p, v) = k.file();
        *p != path || *v == version
    });
    Ok(cache.insert(key, loaded))
}

/// A few entries, most recently used last; small enough to scan.
#[derive(Debug)]
struct Lru<K, V> {
    entries: Vec<(K, V)>,
    capacity: usize,
}

impl<K: PartialEq, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(i);
        let value = entry.1.clone();
        self.entries.push(entry);
        Some(value)
    }

    /// Inserts unless another caller did first; returns the value kept.
    fn insert(&mut self, key: K, value: V) -> V {
        if let Some(found) = self.get(&key) {
            return found;
        }
        if self.entries.len() >= self.capacity {
            self.entries.remove(0);
        }
        self.entries.push((key, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1));
        lru.insert("c", 3);
        assert_eq!(lru.get(&"b"), None, "b was used least recently");
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.insert("c", 4), 3, "a second load of a cached key keeps the first");
    }
}
