//! How Rookery's tables, scans and sinks travel between a Ballista client,
//! its scheduler and its executors. DataFusion's protobuf covers its own
//! plans; Rookery's nodes go through these extension codecs, which every
//! process of a cluster must use (the client's session config, the
//! scheduler's and the executors' settings).
//!
//! Rookery's encodings start with [`TAG`], then a JSON description (and,
//! for a filtered scan, its filter as a protobuf expression); anything else
//! is passed to Ballista's own codecs, which know DataFusion's file formats.

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::config::{ConfigField, CsvOptions, Visit};
use datafusion::common::{internal_datafusion_err, internal_err, DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::csv::CsvFormatFactory;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileOutputMode, FileSinkConfig};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::MemTable;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::PhysicalExprNode;
use prost::Message;
use rookery_image::pixels::TileEdge;
use serde_json::{json, Value};

use crate::atomic_copy::{CopyTarget, StagedCopyExec};
use crate::images::{
    image_table_schema_with, tile_table_schema, BatchSizeCap, ImageBatchSizeExec, ImageFileFormatFactory, ImageOptions,
    ImageScanExec, ImageSink, ImageTable, ImageTileTable, ImageWriteOptions, TileExec, TileSpec,
};

/// The first byte of Rookery's own encodings.
pub const TAG: u8 = 0xB7;

/// `TAG`, the JSON's length and the JSON, then `extra` bytes.
fn envelope(value: &Value, extra: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let text = serde_json::to_vec(value).map_err(|e| DataFusionError::External(Box::new(e)))?;
    buf.push(TAG);
    buf.extend_from_slice(&(text.len() as u32).to_le_bytes());
    buf.extend_from_slice(&text);
    buf.extend_from_slice(extra);
    Ok(())
}

/// The JSON and the extra bytes of an [`envelope`], or `None` when `buf`
/// is not Rookery's.
fn open(buf: &[u8]) -> Result<Option<(Value, &[u8])>> {
    let Some((&TAG, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let bad = || internal_datafusion_err!("truncated Rookery plan encoding");
    let len_bytes: [u8; 4] = rest.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let text = rest.get(4..4 + len).ok_or_else(bad)?;
    let value = serde_json::from_slice(text).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(Some((value, &rest[4 + len..])))
}

fn text(value: &Value, key: &str) -> Result<String> {
    value[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| internal_datafusion_err!("Rookery plan encoding lacks '{key}'"))
}

fn number(value: &Value, key: &str) -> Result<u64> {
    value[key]
        .as_u64()
        .ok_or_else(|| internal_datafusion_err!("Rookery plan encoding lacks '{key}'"))
}

fn options_json(options: &ImageOptions) -> Value {
    json!(options.to_map())
}

fn options_from(value: &Value) -> Result<ImageOptions> {
    let map = value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    ImageOptions::from_map(&map)
}

fn spec_json(spec: TileSpec) -> Value {
    json!({
        "size": spec.size,
        "stride": spec.stride,
        "edge": match spec.edge { TileEdge::Pad => "pad", TileEdge::Drop => "drop" },
        "rows": spec.rows,
    })
}

fn spec_from(value: &Value) -> Result<TileSpec> {
    Ok(TileSpec {
        size: number(value, "size")? as u32,
        stride: number(value, "stride")? as u32,
        edge: if text(value, "edge")? == "pad" {
            TileEdge::Pad
        } else {
            TileEdge::Drop
        },
        rows: number(value, "rows")? as usize,
    })
}

/// An in-memory table (`CREATE TABLE ... AS`, made on the client) as
/// Arrow IPC streams, one per partition, each after its length: the
/// scheduler and executors get the rows themselves.
fn encode_memory_table(table: &MemTable) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for partition in &table.batches {
        let batches = partition
            .try_read()
            .map_err(|_| internal_datafusion_err!("an in-memory table is being written while a query is planned"))?;
        let mut stream = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut stream, &table.schema())?;
            for batch in batches.iter() {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        out.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        out.extend_from_slice(&stream);
    }
    Ok(out)
}

fn decode_memory_table(schema: SchemaRef, mut bytes: &[u8]) -> Result<Arc<dyn TableProvider>> {
    let mut partitions = Vec::new();
    while !bytes.is_empty() {
        let bad = || internal_datafusion_err!("truncated in-memory table encoding");
        let len_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        let len = u64::from_le_bytes(len_bytes) as usize;
        let stream = bytes.get(8..8 + len).ok_or_else(bad)?;
        let reader = StreamReader::try_new(stream, None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
        bytes = &bytes[8 + len..];
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// The set options of a `ConfigField`, as `key -> value` text.
#[derive(Default)]
struct ConfigEntries(Vec<(String, String)>);

impl Visit for ConfigEntries {
    fn some<V: std::fmt::Display>(&mut self, key: &str, value: V, _description: &'static str) {
        self.0
            .push((key.trim_start_matches('.').to_string(), value.to_string()));
    }

    fn none(&mut self, _key: &str, _description: &'static str) {}
}

/// Rookery's tables and file format, over Ballista's logical codec.
#[derive(Debug, Default)]
pub struct RookeryLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for RookeryLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some((value, extra)) = open(buf)? else {
            return self.inner.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let options = options_from(&value["options"])?;
        match text(&value, "kind")?.as_str() {
            "image_table" => Ok(Arc::new(ImageTable::with_partition_keys(
                &text(&value, "location")?,
                options,
                crate::images::partition_keys(&value)?,
            )?)),
            "memory" => decode_memory_table(schema, extra),
            "tile_table" => Ok(Arc::new(ImageTileTable::try_new(
                &text(&value, "location")?,
                options,
                spec_from(&value["spec"])?,
            )?)),
            other => internal_err!("unknown Rookery table kind '{other}'"),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<ImageTable>() {
            let value = json!({"kind": "image_table", "location": table.source(), "options": options_json(table.options()), "partition_keys": table.partition_keys()});
            return envelope(&value, &[], buf);
        }
        if let Some(table) = node.downcast_ref::<ImageTileTable>() {
            let value = json!({
                "kind": "tile_table",
                "location": table.source(),
                "options": options_json(table.options()),
                "spec": spec_json(table.spec()),
            });
            return envelope(&value, &[], buf);
        }
        if let Some(table) = node.downcast_ref::<MemTable>() {
            return envelope(
                &json!({"kind": "memory", "options": {}}),
                &encode_memory_table(table)?,
                buf,
            );
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        match open(buf)? {
            Some((value, _)) if text(&value, "kind")? == "images_format" => Ok(Arc::new(ImageFileFormatFactory)),
            Some((value, _)) if text(&value, "kind")? == "csv_format" => {
                let options = match value["options"].as_object() {
                    Some(entries) => {
                        let mut options = CsvOptions::default();
                        for (key, value) in entries {
                            if let Some(value) = value.as_str() {
                                options.set(key, value)?;
                            }
                        }
                        Some(options)
                    }
                    None => None,
                };
                Ok(Arc::new(CsvFormatFactory { options }))
            }
            Some(_) => internal_err!("unknown Rookery file format encoding"),
            None => self.inner.try_decode_file_format(buf, ctx),
        }
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        if node.downcast_ref::<ImageFileFormatFactory>().is_some() {
            return envelope(&json!({"kind": "images_format"}), &[], buf);
        }
        // DataFusion's protobuf of CSV options loses some of them on the
        // way (the quoting style among them); every option goes as text.
        if let Some(csv) = node.downcast_ref::<CsvFormatFactory>() {
            let options = csv.options.as_ref().map(|options| {
                let mut entries = ConfigEntries::default();
                options.visit(&mut entries, "", "");
                serde_json::Map::from_iter(entries.0.into_iter().map(|(k, v)| (k, Value::String(v))))
            });
            return envelope(&json!({"kind": "csv_format", "options": options}), &[], buf);
        }
        self.inner.try_encode_file_format(buf, node)
    }
}

/// Rookery's scans, tiles, image sink and guards, over Ballista's
/// physical codec.
#[derive(Debug, Default)]
pub struct RookeryPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl RookeryPhysicalCodec {
    fn one_input(inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Arc<dyn ExecutionPlan>> {
        match inputs {
            [input] => Ok(Arc::clone(input)),
            _ => internal_err!("a Rookery plan node expects one input, got {}", inputs.len()),
        }
    }

    fn encode_sink(sink: &ImageSink) -> Value {
        let config = sink.config();
        let options = sink.options();
        json!({
            "kind": "image_sink",
            "original_url": config.original_url,
            "object_store_url": config.object_store_url.as_str(),
            "table_path": config.table_paths.first().map(|p| p.as_str().to_string()),
            "insert_op": match config.insert_op { InsertOp::Append => "append", InsertOp::Overwrite => "overwrite", InsertOp::Replace => "replace" },
            "file_extension": config.file_extension,
            "single_file": matches!(config.file_output_mode, FileOutputMode::SingleFile),
            "format": options.format,
            "quality": options.quality.to_string(),
        })
    }

    fn decode_sink(value: &Value, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let table_path = text(value, "table_path")?;
        let config = FileSinkConfig {
            original_url: text(value, "original_url")?,
            object_store_url: ObjectStoreUrl::parse(text(value, "object_store_url")?)?,
            file_group: FileGroup::default(),
            table_paths: vec![ListingTableUrl::parse(&table_path)?],
            output_schema: input.schema(),
            table_partition_cols: vec![],
            insert_op: match text(value, "insert_op")?.as_str() {
                "overwrite" => InsertOp::Overwrite,
                "replace" => InsertOp::Replace,
                _ => InsertOp::Append,
            },
            keep_partition_by_columns: false,
            file_extension: text(value, "file_extension")?,
            file_output_mode: if value["single_file"].as_bool() == Some(true) {
                FileOutputMode::SingleFile
            } else {
                FileOutputMode::Automatic
            },
        };
        // Read back as COPY's options are, with their checks.
        let options = ImageWriteOptions::from_map(&HashMap::from([
            ("format".to_string(), text(value, "format")?),
            ("quality".to_string(), text(value, "quality")?),
        ]))?;
        let sink = ImageSink::try_new(config, options)?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

impl PhysicalExtensionCodec for RookeryPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some((value, extra)) = open(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        match text(&value, "kind")?.as_str() {
            "image_scan" => {
                let filter = if extra.is_empty() {
                    None
                } else {
                    let proto = PhysicalExprNode::decode(extra).map_err(|e| DataFusionError::External(Box::new(e)))?;
                    let schema = image_table_schema_with(&crate::images::partition_keys(&value["scan"])?);
                    Some(parse_physical_expr(&proto, ctx, &schema, self)?)
                };
                let scan = ImageScanExec::from_json(&value["scan"], filter)?;
                match inputs {
                    [] => Ok(Arc::new(scan)),
                    [ids] => Ok(Arc::new(scan.with_partition_ids_child(Arc::clone(ids))?)),
                    _ => internal_err!("an image scan has at most one input"),
                }
            }
            "tiles" => {
                let projection: Vec<usize> = value["projection"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i.as_u64()).map(|i| i as usize).collect())
                    .unwrap_or_default();
                let schema = Arc::new(tile_table_schema().project(&projection)?);
                Ok(Arc::new(TileExec::new(
                    Self::one_input(inputs)?,
                    spec_from(&value["spec"])?,
                    value["drop_invalid"].as_bool().unwrap_or(false),
                    schema,
                    projection,
                )))
            }
            "image_sink" => Self::decode_sink(&value, Self::one_input(inputs)?),
            "batch_cap" => Ok(Arc::new(ImageBatchSizeExec::new(
                Self::one_input(inputs)?,
                BatchSizeCap::new(number(&value, "batch_rows")? as usize),
            ))),
            "staged_copy" => {
                let target = CopyTarget {
                    store: ObjectStoreUrl::parse(text(&value, "store")?)?,
                    prefix: object_store::path::Path::from(text(&value, "prefix")?),
                    single_file: value["single_file"].as_bool().unwrap_or(false),
                };
                Ok(Arc::new(StagedCopyExec::new(Self::one_input(inputs)?, target)))
            }
            other => internal_err!("unknown Rookery plan node '{other}'"),
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(scan) = node.downcast_ref::<ImageScanExec>() {
            let filter = match scan.filter() {
                Some(expr) => serialize_physical_expr(expr, self)?.encode_to_vec(),
                None => Vec::new(),
            };
            return envelope(&json!({"kind": "image_scan", "scan": scan.to_json()}), &filter, buf);
        }
        if let Some(tiles) = node.downcast_ref::<TileExec>() {
            let value = json!({
                "kind": "tiles",
                "spec": spec_json(tiles.spec()),
                "drop_invalid": tiles.drops_invalid(),
                "projection": tiles.projection(),
            });
            return envelope(&value, &[], buf);
        }
        if let Some(sink) = node
            .downcast_ref::<DataSinkExec>()
            .and_then(|exec| exec.sink().downcast_ref::<ImageSink>())
        {
            return envelope(&Self::encode_sink(sink), &[], buf);
        }
        if let Some(cap) = node.downcast_ref::<ImageBatchSizeExec>() {
            return envelope(
                &json!({"kind": "batch_cap", "batch_rows": cap.around().batch_rows()}),
                &[],
                buf,
            );
        }
        if let Some(staged) = node.downcast_ref::<StagedCopyExec>() {
            let target = staged.around();
            let value = json!({
                "kind": "staged_copy",
                "store": target.store.as_str(),
                "prefix": target.prefix.as_ref(),
                "single_file": target.single_file,
            });
            return envelope(&value, &[], buf);
        }
        self.inner.try_encode(node, buf, proto_converter)
    }
}
