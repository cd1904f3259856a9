//! The cluster part of the config file.

use std::net::SocketAddr;

use super::mode::Mode;

/// Where fragments are served when `worker_listen` is not given.
pub const DEFAULT_WORKER_LISTEN: &str = "0.0.0.0:32020";

/// What the config file says about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `workers` entries (host:port); empty on a node that only works.
    pub workers: Vec<String>,
    /// Where this node serves plan fragments.
    pub worker_listen: String,
    /// How other nodes reach `worker_listen`, when given.
    pub worker_url: Option<String>,
    /// The shared secret.
    pub secret: String,
    /// The default of the `distributed` session setting.
    pub mode: Mode,
    /// Splits from which `auto` distributes; `None`: twice the query threads.
    pub min_splits: Option<usize>,
    /// Queries the cluster runs at once, over all coordinators; `None`:
    /// this node's `max_running_queries`.
    pub max_running: Option<usize>,
}

impl ClusterSettings {
    /// The settings of `file`; `None` when it has neither `workers` nor `cluster_secret`.
    pub fn from_config(
        file: &crate::config::FileConfig,
    ) -> Result<Option<ClusterSettings>, String> {
        let workers = file.workers.clone().unwrap_or_default();
        if workers.is_empty() && file.cluster_secret.is_none() {
            if file.worker_listen.is_some() {
                return Err("worker_listen needs cluster_secret (the secret all nodes of the cluster share)".into());
            }
            return Ok(None);
        }
        let Some(secret) = file.cluster_secret.clone() else {
            return Err("workers needs cluster_secret: give every node of the cluster the same secret of 32+ characters (`openssl rand -base64 32`), as cluster_secret, cluster_secret_file or cluster_secret_env".into());
        };
        super::pass::PassKey::from_secret(&secret)?;
        for w in &workers {
            let ok = w
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!(
                    "workers: '{w}' is not host:port (e.g. tsql-workers.ns.svc.cluster.local:32020)"
                ));
            }
        }
        let worker_listen = file
            .worker_listen
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKER_LISTEN.to_string());
        if worker_listen.parse::<SocketAddr>().is_err() && !worker_listen.contains(':') {
            return Err(format!(
                "worker_listen: '{worker_listen}' is not host:port (e.g. 0.0.0.0:32020)"
            ));
        }
        if let Some(u) = &file.worker_url {
            url::Url::parse(u).map_err(|e| {
                format!("worker_url: '{u}' is not a URL ({e}); e.g. http://10.0.0.5:32020")
            })?;
        }
        let mode = match &file.distributed {
            Some(m) => Mode::parse(m)?,
            None => Mode::Auto,
        };
        if file.distribute_min_splits == Some(0) {
            return Err("distribute_min_splits must be 1 or more".into());
        }
        if file.cluster_max_running_queries == Some(0) {
            return Err("cluster_max_running_queries must be 1 or more".into());
        }
        Ok(Some(ClusterSettings {
            workers,
            worker_listen,
            worker_url: file.worker_url.clone(),
            secret,
            mode,
            min_splits: file.distribute_min_splits,
            max_running: file.cluster_max_running_queries,
        }))
    }
}
