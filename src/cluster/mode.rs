//! When a query runs over the cluster: the `distributed` session setting.

use datafusion::common::extensions_options;
use datafusion::config::ConfigExtension;

/// Whether a query's plan is spread over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Always, when there are workers (every scan is split over them).
    On,
    /// Never: the coordinator runs the whole plan, as a single node does.
    Off,
    /// When the query's scans have more splits than `distribute_min_splits`.
    Auto,
}

impl Mode {
    /// `on`, `off` or `auto` (any case; `true`/`false` too).
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Ok(Mode::On),
            "off" | "false" => Ok(Mode::Off),
            "auto" => Ok(Mode::Auto),
            other => Err(format!(
                "distributed must be 'on', 'off' or 'auto', not '{other}'"
            )),
        }
    }

    /// The setting's text.
    pub fn name(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::Off => "off",
            Mode::Auto => "auto",
        }
    }
}

extensions_options! {
    /// The cluster settings of one session (`tsql.distributed`).
    pub struct ClusterSessionOptions {
        /// `on`, `off` or `auto` (see [`Mode`]).
        pub distributed: String, default = "auto".to_string()
        /// The tsql query id being planned (for per-stage progress); empty when none.
        pub query_id: String, default = String::new()
    }
}

impl ConfigExtension for ClusterSessionOptions {
    const PREFIX: &'static str = "tsql";
}

impl ClusterSessionOptions {
    /// The mode this session asks for (`auto` when the text is not a mode).
    pub fn mode(&self) -> Mode {
        Mode::parse(&self.distributed).unwrap_or(Mode::Auto)
    }
}
