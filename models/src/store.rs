//! Where the model functions read and write model files: a local path as
//! it is, or a URL (`s3://bucket/m.onnx`, `gs://`, `az://`, `http(s)://`)
//! through the session's object stores, so a model lives where the data
//! does and every executor of a cluster can read it.
//!
//! ONNX Runtime loads models from files, so a model at a URL is downloaded
//! once per version (its ETag) into the user's cache folder and run from
//! there; a changed object is a new file, which the functions' caches pick
//! up as they do a changed local file.

use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::ModelCache;
use crate::error::Result;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::onnx::{write_model_bytes, PartialFile};

/// Finds the object store of a URL: in a session, its object store
/// registry.
pub trait StoreLookup: Send + Sync {
    fn store(&self, url: &Url) -> std::result::Result<Arc<dyn ObjectStore>, String>;
}

/// Only local files: URLs are refused.
struct LocalOnly;

impl StoreLookup for LocalOnly {
    fn store(&self, url: &Url) -> std::result::Result<Arc<dyn ObjectStore>, String> {
        Err(format!("no object store registered for {url}"))
    }
}

/// Where a session's models live: the object stores that model locations
/// with a URL scheme resolve in, and the models it has loaded.
#[derive(Clone)]
pub struct ModelStore {
    stores: Arc<dyn StoreLookup>,
    loaded: Arc<ModelCache>,
}

impl ModelStore {
    /// Models at URLs resolve through `stores` (a session's object store
    /// registry).
    pub fn new(stores: Arc<dyn StoreLookup>) -> Self {
        Self {
            stores,
            loaded: Arc::new(ModelCache::default()),
        }
    }

    /// The models this store has loaded (bounded, least recently used out
    /// first).
    pub fn loaded(&self) -> &ModelCache {
        &self.loaded
    }

    /// A local file with the model at `location`: the path itself, or the
    /// cached download of the object's current version.
    pub fn local_file(&self, location: &str) -> Result<PathBuf> {
        let url = match parse_location(location)? {
            Location::Local(path) => return Ok(path),
            Location::Remote(url) => url,
        };
        let (store, path) = self.store_and_path(&url)?;
        let cache = download_folder()?;
        let location = location.to_string();
        run_io(async move {
            let cannot = |e: object_store::Error| crate::failure!("cannot read model {location}: {e}");
            let meta = store.head(&path).await.map_err(cannot)?;
            let version = meta.e_tag.clone().unwrap_or_else(|| meta.last_modified.to_rfc3339());
            let file = cache.join(cached_name(url.as_str(), &version, meta.size));
            // The name holds the URL, ETag and size; an entry of another
            // size (cut short by something else) is downloaded again.
            if std::fs::metadata(&file).is_ok_and(|m| m.is_file() && m.len() == meta.size) {
                return Ok(file);
            }
            // Only the version the name says: a changed object is an error
            // to retry, not a mismatched cache entry.
            let options = GetOptions {
                if_match: meta.e_tag.clone(),
                ..Default::default()
            };
            let mut body = store.get_opts(&path, options).await.map_err(cannot)?.into_stream();
            // Streamed to a partial file of this download's own, synced and
            // renamed: parallel downloads never share a file, and no model
            // is held whole in memory.
            let mut partial = PartialFile::create(&file)?;
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(cannot)?;
                size += chunk.len() as u64;
                if size > meta.size {
                    break;
                }
                partial.write(&chunk)?;
            }
            if size != meta.size {
                return crate::failed!(
                    "cannot read model {location}: the store listed {} bytes but sent {size}{}",
                    meta.size,
                    if size > meta.size { " or more" } else { "" }
                );
            }
            partial.commit()?;
            Ok(file)
        })?
    }

    /// Writes a model to `location`: a local file (renamed into place) or
    /// one object (an object store's put is all or nothing).
    pub fn write(&self, location: &str, bytes: &[u8]) -> Result<()> {
        let url = match parse_location(location)? {
            Location::Local(path) => return write_model_bytes(bytes, &path),
            Location::Remote(url) => url,
        };
        let (store, path) = self.store_and_path(&url)?;
        let payload = PutPayload::from(bytes.to_vec());
        let location = location.to_string();
        run_io(async move {
            store
                .put(&path, payload)
                .await
                .map(|_| ())
                .map_err(|e| crate::failure!("cannot write model {location}: {e}"))
        })?
    }

    fn store_and_path(&self, url: &Url) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
        let store = self.stores.store(url).map_err(|e| crate::failure!("{e}"))?;
        let path =
            StorePath::from_url_path(url.path()).map_err(|e| crate::failure!("bad model location {url}: {e}"))?;
        Ok((store, path))
    }
}

/// Local files only (`file://` and plain paths), for functions made
/// outside a session.
impl Default for ModelStore {
    fn default() -> Self {
        Self::new(Arc::new(LocalOnly))
    }
}

impl fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelStore").finish_non_exhaustive()
    }
}

/// Two functions are the same when they resolve in the same stores.
impl PartialEq for ModelStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.stores, &other.stores)
    }
}

impl Eq for ModelStore {}

impl Hash for ModelStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.stores) as *const () as usize).hash(state);
    }
}

/// A model's location: a local file or an object's URL.
#[derive(Debug, PartialEq)]
enum Location {
    Local(PathBuf),
    Remote(Url),
}

/// A plain path (a Windows drive letter such as `C:\` is one too) or a
/// `file://` URL is local; any other URL is an object store's.
fn parse_location(location: &str) -> Result<Location> {
    match Url::parse(location) {
        Ok(url) if url.scheme() == "file" => match url.to_file_path() {
            Ok(path) => Ok(Location::Local(path)),
            Err(()) => crate::failed!("bad model location {location}: not a local file"),
        },
        Ok(url) if url.scheme().len() > 1 => Ok(Location::Remote(url)),
        _ => Ok(Location::Local(PathBuf::from(location))),
    }
}

/// The path a model written to `location` gets for `suffix` (`.int8.onnx`):
/// the `.onnx` extension replaced, for a path or a URL alike.
pub fn with_model_suffix(location: &str, suffix: &str) -> String {
    let stem = location.strip_suffix(".onnx").unwrap_or(location);
    format!("{stem}{suffix}")
}

fn download_folder() -> Result<PathBuf> {
    let folder = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("rookery")
        .join("models");
    std::fs::create_dir_all(&folder)
        .map_err(|e| crate::failure!("cannot create the model cache {}: {e}", folder.display()))?;
    Ok(folder)
}

/// A file name unique to (URL, version, size) that keeps the model's
/// own name readable.
fn cached_name(url: &str, version: &str, size: u64) -> String {
    let mut hasher = DefaultHasher::new();
    (url, version, size).hash(&mut hasher);
    let name: String = url
        .rsplit('/')
        .next()
        .unwrap_or("model.onnx")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = name.strip_suffix(".onnx").unwrap_or(&name);
    format!("{stem}-{:016x}.onnx", hasher.finish())
}

/// Model downloads and uploads from synchronous model code: see
/// [`rookery_image::blocking::block_on_io`].
fn run_io<T: Send>(work: impl Future<Output = T> + Send) -> Result<T> {
    rookery_image::blocking::block_on_io(work).map_err(|e| crate::failure!("model I/O: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    struct OneStore(Arc<InMemory>);

    impl StoreLookup for OneStore {
        fn store(&self, url: &Url) -> std::result::Result<Arc<dyn ObjectStore>, String> {
            match url.scheme() {
                "memory" => Ok(self.0.clone()),
                other => Err(format!("no store for {other}")),
            }
        }
    }

    fn memory_store() -> (ModelStore, Arc<InMemory>) {
        let memory = Arc::new(InMemory::new());
        (ModelStore::new(Arc::new(OneStore(memory.clone()))), memory)
    }

    #[test]
    fn tells_urls_from_paths() {
        for remote in ["s3://bucket/m.onnx", "https://host/m.onnx"] {
            assert!(
                matches!(parse_location(remote).unwrap(), Location::Remote(_)),
                "{remote}"
            );
        }
        for (local, path) in [
            ("m.onnx", "m.onnx"),
            ("/tmp/m.onnx", "/tmp/m.onnx"),
            ("file:///tmp/m.onnx", "/tmp/m.onnx"),
            ("C:\\m.onnx", "C:\\m.onnx"),
            ("out/s3:x.onnx", "out/s3:x.onnx"),
        ] {
            assert_eq!(
                parse_location(local).unwrap(),
                Location::Local(PathBuf::from(path)),
                "{local}"
            );
        }
    }

    /// A function's body calls the store on a DataFusion worker: the I/O
    /// runs on that runtime, and a current-thread runtime works too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_models_from_a_worker_thread() {
        let (store, _) = memory_store();
        store.write("memory://models/w.onnx", b"bytes").unwrap();
        let local = store.local_file("memory://models/w.onnx").unwrap();
        assert_eq!(std::fs::read(local).unwrap(), b"bytes");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_models_from_a_current_thread_runtime() {
        let (store, _) = memory_store();
        store.write("memory://models/c.onnx", b"more").unwrap();
        let local = store.local_file("memory://models/c.onnx").unwrap();
        assert_eq!(std::fs::read(local).unwrap(), b"more");
    }

    #[test]
    fn writes_and_reads_back_a_model_at_a_url() {
        let (store, memory) = memory_store();
        store.write("memory://models/dir/m.onnx", b"first").unwrap();
        let local = store.local_file("memory://models/dir/m.onnx").unwrap();
        assert_eq!(std::fs::read(&local).unwrap(), b"first");
        assert!(local.file_name().unwrap().to_string_lossy().starts_with("m-"));
        // A new version is a new file: caches keyed by path reload it.
        store.write("memory://models/dir/m.onnx", b"second").unwrap();
        let again = store.local_file("memory://models/dir/m.onnx").unwrap();
        assert_ne!(local, again);
        assert_eq!(std::fs::read(&again).unwrap(), b"second");
        let listed = run_io(async move { memory.head(&StorePath::from("dir/m.onnx")).await.map(|m| m.size) })
            .unwrap()
            .unwrap();
        assert_eq!(listed, 6);
    }

    #[test]
    fn parallel_downloads_agree_and_a_cut_entry_is_fetched_again() {
        let (store, _) = memory_store();
        let unique = format!("model {:?} {}", std::time::SystemTime::now(), std::process::id());
        let bytes = unique.into_bytes().repeat(20_000);
        store.write("memory://models/p.onnx", &bytes).unwrap();
        let downloads: Vec<_> = (0..6)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || store.local_file("memory://models/p.onnx").unwrap())
            })
            .collect();
        let files: Vec<PathBuf> = downloads.into_iter().map(|d| d.join().unwrap()).collect();
        assert!(files.iter().all(|f| f == &files[0]), "{files:?}");
        assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        let partials = std::fs::read_dir(files[0].parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.contains(&name) && n.ends_with(".partial")
            })
            .count();
        assert_eq!(partials, 0);
        // An entry of the wrong size (cut short) is not trusted.
        std::fs::write(&files[0], &bytes[..10]).unwrap();
        let again = store.local_file("memory://models/p.onnx").unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), bytes);
        std::fs::remove_file(&again).unwrap();
    }

    #[test]
    fn names_a_missing_model_and_an_unknown_store() {
        let (store, _) = memory_store();
        let err = store.local_file("memory://models/none.onnx").unwrap_err().to_string();
        assert!(err.contains("cannot read model memory://models/none.onnx"), "{err}");
        let err = store.local_file("memory://elsewhere/m.onnx").unwrap_err().to_string();
        assert!(err.contains("memory://elsewhere"), "{err}");
    }

    #[test]
    fn local_paths_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/m.onnx");
        let location = path.to_string_lossy().to_string();
        let store = ModelStore::default();
        store.write(&location, b"model").unwrap();
        assert_eq!(store.local_file(&location).unwrap(), path);
        assert_eq!(with_model_suffix("s3://b/m.onnx", ".int8.onnx"), "s3://b/m.int8.onnx");
        assert_eq!(with_model_suffix("m", ".int8.onnx"), "m.int8.onnx");
    }
}
