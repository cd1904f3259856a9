//! Memory for queries: one server-wide pool (sorts, aggregates and joins
//! reserve from it and spill to disk before they fail) and, per query, a
//! share of it, so one query cannot take what every other query needs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::spill::SpillSpace;

/// How much memory queries may use, and where they spill.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySettings {
    /// Bytes every running query together may reserve.
    pub limit: usize,
    /// Bytes one query may reserve.
    pub per_query: usize,
    /// Where sorts, aggregates and joins spill (the system's temporary folder when unset).
    pub spill_dir: Option<PathBuf>,
    /// Bytes every running query together may hold in spill files
    /// (`spill_limit`); the default of [`crate::spill::SpillLimits::resolve`] when unset.
    pub spill_limit: Option<u64>,
    /// Bytes one query may hold in spill files (`query_spill_limit`); the
    /// default of [`crate::spill::SpillLimits::resolve`] when unset.
    pub query_spill_limit: Option<u64>,
}

impl MemorySettings {
    /// Defaults from the machine: half of its memory for queries, half of
    /// that for any one query. The memory counted is the smaller of the
    /// machine's and the limit of the cgroup tsql runs in (a container's
    /// memory limit), see [`crate::container`].
    pub fn from_machine() -> MemorySettings {
        let total =
            crate::container::usable_memory(machine_memory(), crate::container::limits().memory)
                .unwrap_or(4 << 30);
        MemorySettings {
            limit: total / 2,
            per_query: total / 4,
            spill_dir: None,
            spill_limit: None,
            query_spill_limit: None,
        }
    }

    /// The spill folder and its limits: every query's spill files go there.
    pub fn spill_space(&self) -> Result<Arc<SpillSpace>> {
        SpillSpace::new(
            self.spill_dir.as_deref(),
            self.spill_limit,
            self.query_spill_limit,
        )
    }

    /// The runtime every query's share comes from; what runs on it directly
    /// spills into `spill` as one query.
    pub fn runtime(&self, spill: &Arc<SpillSpace>) -> Result<Arc<RuntimeEnv>> {
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(self.limit),
            std::num::NonZeroUsize::new(3).expect("3 is not zero"),
        );
        RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(spill.disk_manager_builder())
            .build_arc()
    }
}

/// Bytes of memory the machine has (`MemTotal`), if it can be read.
pub fn machine_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reads a size such as `4GB`, `512MB`, `64KiB` or a number of bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" | "TIB" => 1024.0_f64.powi(4),
        _ => return None,
    };
    let bytes = number * factor;
    (bytes >= 1.0 && bytes.is_finite()).then_some(bytes as usize)
}

/// Shows bytes for people: `1.5 GiB`.
pub fn show_size(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// One query's share of the server-wide pool: reservations go to the shared
/// pool, but the query together may not hold more than `limit`.
#[derive(Debug)]
pub struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    /// A share of `shared` of at most `limit` bytes.
    pub fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> QueryPool {
        QueryPool {
            shared,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a query's share: {} of {}",
            show_size(self.reserved()),
            show_size(self.limit)
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "tsql query share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.shared.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let used = self.used.fetch_add(additional, Ordering::Relaxed);
        if used + additional > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the query needs more than its share of memory ({} per query; it holds {} and asked for {} more for {})",
                show_size(self.limit),
                show_size(used),
                show_size(additional),
                reservation.consumer().name()
            )));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn sizes_read_with_units() {
        assert_eq!(parse_size("4GB"), Some(4 << 30));
        assert_eq!(parse_size("512 MiB"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("0"), None);
    }

    #[test]
    fn a_query_share_stops_before_the_shared_pool() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let q1: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 600));
        let q2: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 600));
        let r1 = MemoryConsumer::new("sort").register(&q1);
        let r2 = MemoryConsumer::new("join").register(&q2);
        r1.try_grow(500).unwrap();
        let e = r1.try_grow(200).unwrap_err().to_string();
        assert!(e.contains("share of memory"), "{e}");
        r2.try_grow(450).unwrap();
        // The shared pool (1000) is full before q2's share (600) is.
        assert!(r2.try_grow(100).is_err());
        assert_eq!(shared.reserved(), 950);
        r1.free();
        r2.try_grow(100).unwrap();
        assert_eq!(q2.reserved(), 550);
    }
}
