//! `read_blob(path)`: the bytes of a file, read through the session's
//! object stores.
//!
//! Lets a query join image tables on cheap columns (`name`, `path`) and
//! read pixels only for the rows that survive, instead of joining decoded
//! images (a hash join holds its whole build side in memory).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, BinaryViewBuilder};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, internal_err, DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use rookery_image::args::{arg_arrays, signature, text_arg, ArgKind};
use rookery_image::image_value::append_buffer;

const SYNTAX: &str = "read_blob(path)";

pub static DOCUMENTATION: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Image Functions",
            description: None,
        },
        "Returns the bytes of the file at path (a local path or an object store URL such as s3://bucket/key), like an image table's content column. With image_decode it reads pixels late: join image tables on name or path first, then read only the rows that are left.",
        SYNTAX,
    )
    .with_argument("path", "Location of the file, as in an image table's path column.")
    .with_sql_example(
        "```sql\n> SELECT name, image_decode(read_blob(path)) AS image FROM images('data/sealions/Train/*.jpg') WHERE name = '0';\n+------+-------------------+\n| name | image             |\n+------+-------------------+\n| 0    | <image 960x640x3> |\n+------+-------------------+\n```",
    )
    .with_related_udf("image_decode")
    .build()
});

/// Reads files through the object stores of the session it was made for,
/// as an async function: DataFusion runs it in an `AsyncFuncExec`, so no
/// runtime thread blocks on a read.
#[derive(Debug)]
pub struct ReadBlob {
    signature: Signature,
    runtime: Arc<RuntimeEnv>,
    /// When set, the only locations it reads: files at or under these
    /// (a server's tables); any other path or URL is an error.
    allowed: Option<Arc<Vec<ListingTableUrl>>>,
}

/// Object store reads in flight per batch.
const CONCURRENT_READS: usize = 16;

impl ReadBlob {
    pub fn new(runtime: Arc<RuntimeEnv>) -> Self {
        Self {
            // Volatile: a file may change between two reads, and the
            // planner must not read one while folding constants.
            signature: signature(&[ArgKind::Text], &[], Volatility::Volatile),
            runtime,
            allowed: None,
        }
    }

    /// `read_blob` as the `ScalarUDF` to register.
    pub fn udf(runtime: Arc<RuntimeEnv>) -> ScalarUDF {
        AsyncScalarUDF::new(Arc::new(Self::new(runtime))).into_scalar_udf()
    }

    /// `read_blob` reading only files at or under `allowed` (folders,
    /// files or globs, as table locations are written).
    pub fn restricted_udf(runtime: Arc<RuntimeEnv>, allowed: &[String]) -> Result<ScalarUDF> {
        let allowed = allowed.iter().map(ListingTableUrl::parse).collect::<Result<Vec<_>>>()?;
        let function = Self {
            allowed: Some(Arc::new(allowed)),
            ..Self::new(runtime)
        };
        Ok(AsyncScalarUDF::new(Arc::new(function)).into_scalar_udf())
    }

    /// An error unless `url` may be read.
    fn check_allowed(&self, shown: &str, url: &ListingTableUrl) -> Result<()> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        // Paths are compared after parsing, so `a/../b` cannot step out.
        if url.prefix().parts().any(|p| p.as_ref() == "..") {
            return Err(exec_datafusion_err!("read_blob: '{shown}' may not contain '..'"));
        }
        let inside = allowed.iter().any(|root| {
            root.object_store() == url.object_store()
                && (root.prefix() == url.prefix() || url.prefix().prefix_matches(root.prefix()))
        });
        if inside {
            Ok(())
        } else {
            Err(exec_datafusion_err!(
                "read_blob: '{shown}' is outside the locations this session may read"
            ))
        }
    }

    async fn read_entry(
        &self,
        entry: Option<&(String, ListingTableUrl)>,
        reservation: &MemoryReservation,
    ) -> Result<Option<Bytes>> {
        match entry {
            Some((shown, url)) => self.read_object(shown, url, reservation).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reads one object, reserving its size (known from the response's
    /// metadata) before its body is read; a body longer than that is an
    /// error, not a larger buffer.
    async fn read_object(&self, path: &str, url: &ListingTableUrl, reservation: &MemoryReservation) -> Result<Bytes> {
        let cannot = |e: object_store::Error| exec_datafusion_err!("read_blob: cannot read '{path}': {e}");
        let store = self.runtime.object_store(url.object_store())?;
        let result = store.get(url.prefix()).await.map_err(cannot)?;
        let size = usize::try_from(result.meta.size).unwrap_or(usize::MAX);
        reservation.try_grow(size)?;
        let mut body = result.into_stream();
        let mut bytes = Vec::with_capacity(size);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(cannot)?;
            if bytes.len() + chunk.len() > size {
                return Err(grew(path, size));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    }
}

fn grew(path: &str, size: usize) -> DataFusionError {
    exec_datafusion_err!("read_blob: '{path}' grew past the {size} bytes it had when its read began")
}

/// Reads one local regular file of at most the size it had when its
/// bytes were reserved: a device (`/dev/zero`), a pipe or a file that is
/// still growing never reads on past the reservation.
fn read_local_file(shown: &str, local: &std::path::Path, reservation: &MemoryReservation) -> Result<Bytes> {
    use std::io::Read;
    let cannot = |e: std::io::Error| exec_datafusion_err!("read_blob: cannot read '{shown}': {e}");
    let not_a_file = || {
        exec_datafusion_err!(
            "read_blob: '{shown}' is not a regular file (read_blob reads files, not devices, pipes or folders)"
        )
    };
    // Asked before opening: opening a pipe waits for a writer.
    if !std::fs::metadata(local).map_err(cannot)?.is_file() {
        return Err(not_a_file());
    }
    let mut file = std::fs::File::open(local).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    reservation.try_grow(size)?;
    let mut bytes = Vec::with_capacity(size);
    // One byte more than reserved tells a file that grew from one that did not.
    (&mut file)
        .take(size as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > size {
        return Err(grew(shown, size));
    }
    Ok(Bytes::from(bytes))
}

/// Reads local `paths` (None for NULL rows) in one blocking task: a hop to
/// a blocking thread per file would churn threads for nothing. Each file's
/// size is reserved before it is read; the reservation comes back with the
/// bytes.
async fn read_local(
    paths: Vec<Option<(String, PathBuf)>>,
    reservation: MemoryReservation,
) -> Result<(Vec<Option<Bytes>>, MemoryReservation)> {
    let read = move || -> Result<(Vec<Option<Bytes>>, MemoryReservation)> {
        let mut out = Vec::with_capacity(paths.len());
        for entry in paths {
            out.push(match entry {
                Some((shown, local)) => Some(read_local_file(&shown, &local, &reservation)?),
                None => None,
            });
        }
        Ok((out, reservation))
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
}

impl PartialEq for ReadBlob {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.runtime, &other.runtime) && self.allowed == other.allowed
    }
}

impl Eq for ReadBlob {}

impl std::hash::Hash for ReadBlob {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "read_blob".hash(state);
    }
}

impl ScalarUDFImpl for ReadBlob {
    fn name(&self) -> &str {
        "read_blob"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::BinaryView)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("read_blob is an async function: DataFusion calls invoke_async_with_args")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ReadBlob {
    /// Reads a batch's files: local ones in one blocking task, object
    /// store ones 16 at a time. Every file's bytes are reserved in the
    /// session's pool before they are read, and handed on uncopied.
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let paths = text_arg(self.name(), &arrays, 0)?;
        let reservation = MemoryConsumer::new("read_blob").register(&self.runtime.memory_pool);
        let urls = (0..paths.len())
            .map(|row| {
                paths
                    .is_valid(row)
                    .then(|| {
                        let url = ListingTableUrl::parse(paths.value(row))?;
                        self.check_allowed(paths.value(row), &url)?;
                        Ok((paths.value(row).to_string(), url))
                    })
                    .transpose()
            })
            .collect::<Result<Vec<Option<(String, ListingTableUrl)>>>>()?;
        let all_local = urls.iter().flatten().all(|(_, url)| url.scheme() == "file");
        // The reservation lives until the batch is built.
        let (bytes, _reservation) = if all_local {
            let local = urls
                .into_iter()
                .map(|entry| entry.map(|(shown, url)| (shown, PathBuf::from("/").join(url.prefix().as_ref()))))
                .collect();
            read_local(local, reservation).await?
        } else {
            let reads: Vec<_> = urls
                .iter()
                .map(|entry| self.read_entry(entry.as_ref(), &reservation))
                .collect();
            let bytes: Vec<Option<Bytes>> = futures::stream::iter(reads)
                .buffered(CONCURRENT_READS)
                .try_collect()
                .await?;
            (bytes, reservation)
        };
        let mut out = BinaryViewBuilder::with_capacity(bytes.len());
        for (row, value) in bytes.into_iter().enumerate() {
            match value {
                // The bytes as read become the array's buffer, uncopied.
                Some(bytes) => append_buffer(&mut out, Buffer::from(bytes))
                    .map_err(|e| exec_datafusion_err!("read_blob: '{}': {e}", paths.value(row)))?,
                None => out.append_null(),
            }
        }
        // What was read is now the next operator's to account for.
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};

    fn reservation(limit: usize) -> MemoryReservation {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(limit));
        MemoryConsumer::new("test").register(&pool)
    }

    #[test]
    fn reads_regular_files_within_their_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, [7u8; 100]).unwrap();
        let bytes = read_local_file("a.bin", &file, &reservation(1000)).unwrap();
        assert_eq!(bytes.len(), 100);
        // More than the pool has: refused before reading.
        let err = read_local_file("a.bin", &file, &reservation(10)).unwrap_err();
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
        // A device, a folder and a pipe (which would block an open) are refused.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let mut refused = vec![std::path::PathBuf::from("/dev/zero"), dir.path().to_path_buf()];
        if made.is_ok_and(|s| s.success()) {
            refused.push(fifo);
        }
        for path in refused {
            let err = read_local_file("x", &path, &reservation(1 << 20)).unwrap_err();
            assert!(
                err.to_string().contains("is not a regular file"),
                "{}: {err}",
                path.display()
            );
        }
    }
}
