//! How tsql's own plan nodes cross the network: a [`ClusterScanExec`] as
//! its request in protobuf (filters and schema in DataFusion's own protobuf
//! forms), a [`StageProgressExec`] as the stage it counts for. Registered
//! on the coordinator and on every worker.

use std::sync::Arc;

use datafusion::common::ResolvedTableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::logical_plan::from_proto::parse_exprs;
use datafusion_proto::logical_plan::to_proto::serialize_exprs;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;

use super::progress::{StageKey, StageProgressExec};
use super::scan::{ClusterScanExec, ScanRequest};

/// One of tsql's nodes on the wire.
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(oneof = "Node", tags = "1, 2")]
    node: Option<Node>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Node {
    #[prost(message, tag = "1")]
    Scan(ScanProto),
    #[prost(message, tag = "2")]
    Progress(ProgressProto),
}

/// A [`StageProgressExec`] on the wire (its input travels as its child).
#[derive(Clone, PartialEq, Message)]
struct ProgressProto {
    #[prost(string, tag = "1")]
    node: String,
    #[prost(string, tag = "2")]
    query: String,
    #[prost(uint32, tag = "3")]
    stage: u32,
}

/// A [`ClusterScanExec`] on the wire.
#[derive(Clone, PartialEq, Message)]
struct ScanProto {
    #[prost(string, tag = "1")]
    catalog: String,
    #[prost(string, tag = "2")]
    schema: String,
    #[prost(string, tag = "3")]
    table: String,
    #[prost(bool, tag = "4")]
    projected: bool,
    #[prost(uint64, repeated, tag = "5")]
    projection: Vec<u64>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    filters: Vec<Vec<u8>>,
    #[prost(uint64, optional, tag = "7")]
    limit: Option<u64>,
    #[prost(int64, tag = "8")]
    start_micros: i64,
    #[prost(uint64, tag = "9")]
    target_partitions: u64,
    #[prost(uint64, tag = "10")]
    splits: u64,
    #[prost(uint64, tag = "11")]
    tasks: u64,
    #[prost(bytes = "vec", tag = "12")]
    arrow_schema: Vec<u8>,
}

/// Encodes and decodes [`ClusterScanExec`] and [`StageProgressExec`] nodes.
#[derive(Debug, Default)]
pub struct ScanCodec;

fn codec_error(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("cluster scan codec: {what}: {e}"))
}

impl PhysicalExtensionCodec for ScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = NodeProto::decode(buf).map_err(|e| codec_error("unreadable node", e))?;
        match node.node {
            Some(Node::Scan(p)) => decode_scan(p, ctx),
            Some(Node::Progress(p)) => {
                let [input] = inputs else {
                    return Err(codec_error("progress marker", "needs exactly one input"));
                };
                Ok(Arc::new(StageProgressExec::new(
                    Arc::clone(input),
                    StageKey {
                        node: p.node,
                        query: p.query,
                        stage: p.stage,
                    },
                )))
            }
            None => Err(codec_error("unreadable node", "empty")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let node = if let Some(scan) = node.downcast_ref::<ClusterScanExec>() {
            Node::Scan(encode_scan(scan)?)
        } else if let Some(marker) = node.downcast_ref::<StageProgressExec>() {
            let key = marker.key();
            Node::Progress(ProgressProto {
                node: key.node.clone(),
                query: key.query.clone(),
                stage: key.stage,
            })
        } else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} cannot run on a worker (only scans of entity tables travel)",
                node.name()
            )));
        };
        NodeProto { node: Some(node) }
            .encode(buf)
            .map_err(|e| codec_error("encode", e))
    }
}

fn decode_scan(p: ScanProto, ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    let nodes = p
        .filters
        .iter()
        .map(|b| datafusion_proto::protobuf::LogicalExprNode::decode(b.as_slice()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| codec_error("unreadable filter", e))?;
    let filters = parse_exprs(&nodes, ctx, &DefaultLogicalExtensionCodec {})?;
    let schema = datafusion_proto::protobuf::Schema::decode(p.arrow_schema.as_slice())
        .map_err(|e| codec_error("unreadable schema", e))?;
    let schema: arrow::datatypes::Schema = (&schema)
        .try_into()
        .map_err(|e| codec_error("unreadable schema", e))?;
    let request = ScanRequest {
        table: ResolvedTableReference {
            catalog: p.catalog.into(),
            schema: p.schema.into(),
            table: p.table.into(),
        },
        projection: p
            .projected
            .then(|| p.projection.iter().map(|&i| i as usize).collect()),
        filters,
        limit: p.limit.map(|l| l as usize),
        start_micros: p.start_micros,
        target_partitions: p.target_partitions as usize,
        splits: p.splits as usize,
        schema: Arc::new(schema),
    };
    Ok(Arc::new(ClusterScanExec::new(
        request,
        None,
        p.tasks as usize,
    )))
}

fn encode_scan(scan: &ClusterScanExec) -> Result<ScanProto> {
    let r = scan.request();
    let filters = serialize_exprs(&r.filters, &DefaultLogicalExtensionCodec {})?
        .iter()
        .map(|f| f.encode_to_vec())
        .collect();
    let schema = datafusion_proto::protobuf::Schema::try_from(r.schema.as_ref())
        .map_err(|e| codec_error("schema", e))?;
    Ok(ScanProto {
        catalog: r.table.catalog.to_string(),
        schema: r.table.schema.to_string(),
        table: r.table.table.to_string(),
        projected: r.projection.is_some(),
        projection: r.projection.iter().flatten().map(|&i| i as u64).collect(),
        filters,
        limit: r.limit.map(|l| l as u64),
        start_micros: r.start_micros,
        target_partitions: r.target_partitions as u64,
        splits: r.splits as u64,
        tasks: scan.tasks() as u64,
        arrow_schema: schema.encode_to_vec(),
    })
}
