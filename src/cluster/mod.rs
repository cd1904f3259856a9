//! A tsql cluster on datafusion-distributed: coordinators cut plans into
//! stages whose tasks run on workers, each scan's splits shared among them,
//! every fragment run as its caller.

mod codec;
mod faults;
mod mode;
mod node;
mod pass;
mod planner;
mod progress;
mod routing;
mod scan;
mod settings;
mod status;
mod workers;

pub use codec::ScanCodec;
pub use faults::WorkerFaultsExec;
pub use mode::{ClusterSessionOptions, Mode};
pub use node::Cluster;
pub use pass::{PASS_HEADER, PassKey};
pub use planner::{ClusterPlanner, desired_tasks, mode_of, share_scan};
pub use progress::{
    StageBoard, StageInfo, StageKey, StageProgressExec, TaskProgress, node_id, stage_boards,
    task_board,
};
pub use routing::{TaskRouter, assign};
pub use scan::{ClusterScanExec, ClusterTable, ScanRequest, WorkerTables};
pub use settings::{ClusterSettings, DEFAULT_WORKER_LISTEN};
pub use status::{STATUS_PATH, StatusReply, StatusRequest, StatusService};
pub use workers::{Channels, Workers, unavailable};
