//! `read_blob(path)`: the bytes of a file, read through the session's
//! object stores.
//!
//! Lets a query join image tables on cheap columns (`name`, `path`) and
//! read pixels only for the rows that survive, instead of joining decoded
//! images (a hash join holds its whole build side in memory).

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, BinaryViewBuilder};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, exec_err, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use object_store::ObjectStoreExt;
use rookery_udfs::args::{arg_arrays, coerce_args, text_arg, ArgKind};
use rookery_udfs::image_value::append_buffer;

const SYNTAX: &str = "read_blob(path)";

static DOCUMENTATION: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
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

/// Reads files through the object stores of the session it was made for.
#[derive(Debug)]
pub struct ReadBlob {
    signature: Signature,
    runtime: Arc<RuntimeEnv>,
}

impl ReadBlob {
    pub fn new(runtime: Arc<RuntimeEnv>) -> Self {
        Self {
            // Volatile: a file may change between two reads.
            signature: Signature::user_defined(Volatility::Volatile),
            runtime,
        }
    }

    fn read(&self, path: &str) -> Result<Bytes> {
        let url = ListingTableUrl::parse(path)?;
        // Local files are read here, on this thread: moving the runtime off
        // it with block_in_place per row churned threads, and the allocator
        // kept each retired thread's freed frames (1.8 GB for 32 decoded
        // full-size frames, against 0.5 GB this way).
        if url.scheme() == "file" {
            let local = std::path::PathBuf::from("/").join(url.prefix().as_ref());
            return match std::fs::read(&local) {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(e) => exec_err!("read_blob: cannot read '{path}': {e}"),
            };
        }
        let store = self.runtime.object_store(url.object_store())?;
        let location = url.prefix().clone();
        // UDFs are synchronous; the read waits on the runtime's own I/O.
        let read = async move {
            let result = store.get(&location).await?;
            result.bytes().await
        };
        let bytes = match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(read)),
            Err(_) => futures::executor::block_on(read),
        };
        match bytes {
            Ok(bytes) => Ok(bytes),
            Err(e) => exec_err!("read_blob: cannot read '{path}': {e}"),
        }
    }
}

impl PartialEq for ReadBlob {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.runtime, &other.runtime)
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

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SYNTAX, arg_types, &[ArgKind::Text], &[])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::BinaryView)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let paths = text_arg(self.name(), &arrays, 0)?;
        let mut out = BinaryViewBuilder::new();
        for row in 0..paths.len() {
            if paths.is_null(row) {
                out.append_null();
            } else {
                // The bytes as read become the array's buffer, uncopied.
                let bytes = self.read(paths.value(row))?;
                append_buffer(&mut out, Buffer::from(bytes))
                    .map_err(|e| exec_datafusion_err!("read_blob: '{}': {e}", paths.value(row)))?;
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
