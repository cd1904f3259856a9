//! The limits of the container tsql runs in: the memory and CPU a Linux
//! control group (cgroup v2 or v1) allows this process, so that the default
//! `memory_limit` and the number of query threads fit a Kubernetes pod's
//! `resources.limits` rather than the whole node.
//!
//! Every reader takes the cgroup file system's root (normally
//! `/sys/fs/cgroup`) and the text of `/proc/self/cgroup`, so tests run
//! against fake cgroup files. A limit is looked up in the process's own
//! cgroup and in each of its ancestors (the smallest one applies); where the
//! process's cgroup path is not visible (a container with its own cgroup
//! namespace or mount), the root of the mount is the container's cgroup.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which cgroup interface the limits were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The unified hierarchy (`memory.max`, `cpu.max`).
    V2,
    /// The per-controller hierarchies (`memory.limit_in_bytes`, `cpu.cfs_quota_us`).
    V1,
}

/// What the process's cgroup allows; `None` where it sets no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupLimits {
    /// The cgroup interface found, if any.
    pub version: Option<CgroupVersion>,
    /// Bytes of memory the process may use.
    pub memory: Option<u64>,
    /// CPUs' worth of time per period the process may use (`1.5`: one and a half cores).
    pub cpus: Option<f64>,
}

/// A v1 memory limit at or above this many bytes means "no limit" (the
/// kernel reports an unlimited cgroup as about 2^63, rounded to pages).
const UNLIMITED_V1_MEMORY: u64 = 1 << 60;

/// Reads the limits of the cgroup that `self_cgroup` (the text of
/// `/proc/self/cgroup`) names, under the cgroup file system at `root`.
/// Missing or unreadable files count as "no limit".
pub fn read_limits(root: &Path, self_cgroup: &str) -> CgroupLimits {
    if root.join("cgroup.controllers").is_file() {
        let path = self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/");
        let dirs = ancestors(root, path);
        return CgroupLimits {
            version: Some(CgroupVersion::V2),
            memory: smallest(&dirs, |d| read_v2_memory(&d.join("memory.max"))),
            cpus: smallest(&dirs, |d| read_v2_cpu(&d.join("cpu.max"))),
        };
    }
    let memory_dirs = v1_dirs(root, self_cgroup, "memory", &["memory"]);
    let cpu_dirs = v1_dirs(
        root,
        self_cgroup,
        "cpu",
        &["cpu", "cpu,cpuacct", "cpuacct,cpu"],
    );
    if memory_dirs.is_empty() && cpu_dirs.is_empty() {
        return CgroupLimits::default();
    }
    CgroupLimits {
        version: Some(CgroupVersion::V1),
        memory: smallest(&memory_dirs, |d| {
            read_number(&d.join("memory.limit_in_bytes")).filter(|&b| b < UNLIMITED_V1_MEMORY)
        }),
        cpus: smallest(&cpu_dirs, |d| {
            let quota = read_signed(&d.join("cpu.cfs_quota_us"))?;
            let period = read_number(&d.join("cpu.cfs_period_us"))?;
            (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
        }),
    }
}

/// The limits of this process, read once from `/sys/fs/cgroup` and `/proc/self/cgroup`.
pub fn limits() -> &'static CgroupLimits {
    static LIMITS: OnceLock<CgroupLimits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        read_limits(Path::new("/sys/fs/cgroup"), &own)
    })
}

/// Bytes of memory this process may use: the smaller of the machine's
/// memory (`machine`) and the cgroup's limit (`cgroup`), if either is known.
pub fn usable_memory(machine: Option<usize>, cgroup: Option<u64>) -> Option<usize> {
    let cgroup = cgroup.map(|b| usize::try_from(b).unwrap_or(usize::MAX));
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// Threads that can run at once given `cores` and a CPU quota of `cpus`:
/// the smaller of the cores and the quota rounded up, at least one.
pub fn threads_for(cores: usize, cpus: Option<f64>) -> usize {
    let quota = cpus
        .filter(|c| c.is_finite() && *c > 0.0)
        .map(|c| c.ceil() as usize);
    quota.map_or(cores, |q| q.min(cores)).max(1)
}

/// The cores this process may run on: its CPU affinity
/// (`Cpus_allowed_list` of `/proc/self/status`). Not the standard library's
/// `available_parallelism`, which already rounds a CPU quota down (1.5 → 1);
/// [`query_threads`] rounds it up.
pub fn cores() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let list = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            count_cpus(list.trim())
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The number of CPUs in a list such as `0-3,8,10-11`.
fn count_cpus(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>()
                    .ok()?
                    .checked_sub(a.parse::<usize>().ok()?)?
                    + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// How many query threads to run, and the "per core" unit of the default
/// limits: the cores this process may use, capped by its cgroup's CPU quota.
pub fn query_threads() -> usize {
    threads_for(cores(), limits().cpus)
}

/// One line saying which limits were taken from the cgroup (`None` when it sets none).
pub fn describe(limits: &CgroupLimits, machine: Option<usize>, cores: usize) -> Option<String> {
    let version = match limits.version? {
        CgroupVersion::V2 => "cgroup v2",
        CgroupVersion::V1 => "cgroup v1",
    };
    let mut taken = Vec::new();
    if let Some(bytes) = limits.memory
        && machine.is_none_or(|m| (bytes as u128) < m as u128)
    {
        taken.push(format!(
            "memory {} (the default memory_limit is half of it)",
            crate::memory::show_size(usize::try_from(bytes).unwrap_or(usize::MAX))
        ));
    }
    if let Some(cpus) = limits.cpus {
        taken.push(format!(
            "CPU quota {cpus:.2} cores (counted as {} of the {cores} cores: query threads and the per-core defaults)",
            threads_for(cores, Some(cpus))
        ));
    }
    if taken.is_empty() {
        return None;
    }
    Some(format!("limits from the {version}: {}", taken.join(", ")))
}

/// Logs, once at startup, which limits were taken from the cgroup.
pub fn log_limits() {
    let machine = crate::memory::machine_memory();
    match describe(limits(), machine, cores()) {
        Some(line) => tracing::info!("{line}"),
        None => tracing::debug!("no cgroup memory or CPU limit below the machine's"),
    }
}

/// `dir` for `path` under `root` and each of its ancestors, deepest first,
/// that exist; `root` itself always (the container's own cgroup when its
/// path is not visible).
fn ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut rel = PathBuf::from(path.trim_start_matches('/'));
    loop {
        if rel.as_os_str().is_empty() {
            break;
        }
        let dir = root.join(&rel);
        if dir.is_dir() {
            out.push(dir);
        }
        if !rel.pop() {
            break;
        }
    }
    out.push(root.to_path_buf());
    out
}

/// The v1 directories of `controller` for this process: its path (from
/// the `/proc/self/cgroup` line naming the controller) under the first of
/// `mounts` that exists below `root`, and that path's ancestors.
fn v1_dirs(root: &Path, self_cgroup: &str, controller: &str, mounts: &[&str]) -> Vec<PathBuf> {
    let Some(mount) = mounts.iter().map(|m| root.join(m)).find(|m| m.is_dir()) else {
        return Vec::new();
    };
    let path = self_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names.split(',').any(|n| n == controller).then_some(path)
        })
        .next()
        .unwrap_or("/");
    ancestors(&mount, path)
}

/// The smallest limit `read` finds in `dirs`.
fn smallest<T: PartialOrd + Copy>(
    dirs: &[PathBuf],
    read: impl Fn(&Path) -> Option<T>,
) -> Option<T> {
    dirs.iter()
        .filter_map(|d| read(d))
        .fold(None, |best: Option<T>, v| match best {
            Some(b) if b <= v => Some(b),
            _ => Some(v),
        })
}

fn read_number(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn read_signed(file: &Path) -> Option<i64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// `memory.max`: bytes, or `max` for no limit.
fn read_v2_memory(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    match text.trim() {
        "max" => None,
        n => n.parse().ok(),
    }
}

/// `cpu.max`: `<quota> <period>` in microseconds, or `max <period>` for no limit.
fn read_v2_cpu(file: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut parts = text.split_whitespace();
    let quota: u64 = parts.next()?.parse().ok()?;
    let period: u64 = parts.next().unwrap_or("100000").parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_limits_are_read_from_the_own_cgroup_and_its_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cgroup.controllers", "cpu memory\n");
        write(root, "kubepods/memory.max", "4294967296\n");
        write(root, "kubepods/pod1/memory.max", "max\n");
        write(root, "kubepods/pod1/cpu.max", "150000 100000\n");
        let limits = read_limits(root, "0::/kubepods/pod1\n");
        assert_eq!(limits.version, Some(CgroupVersion::V2));
        assert_eq!(limits.memory, Some(4 << 30));
        assert_eq!(limits.cpus, Some(1.5));
    }

    #[test]
    fn v2_max_means_no_limit_and_a_hidden_path_reads_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cgroup.controllers", "cpu memory\n");
        write(root, "memory.max", "max\n");
        write(root, "cpu.max", "max 100000\n");
        let limits = read_limits(root, "0::/not/visible/here\n");
        assert_eq!(limits.memory, None);
        assert_eq!(limits.cpus, None);
        // A container's own namespace: its cgroup is the root of the mount.
        write(root, "memory.max", "536870912\n");
        write(root, "cpu.max", "50000 100000\n");
        let limits = read_limits(root, "0::/\n");
        assert_eq!(limits.memory, Some(512 << 20));
        assert_eq!(limits.cpus, Some(0.5));
    }

    #[test]
    fn v1_limits_and_unlimited_values() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let own = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        write(
            root,
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            root,
            "memory/docker/abc/memory.limit_in_bytes",
            "2147483648\n",
        );
        write(root, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        write(root, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
        let limits = read_limits(root, own);
        assert_eq!(limits.version, Some(CgroupVersion::V1));
        assert_eq!(limits.memory, Some(2 << 30));
        assert_eq!(limits.cpus, Some(2.5));
        // Unlimited: the huge v1 value and a quota of -1.
        write(
            root,
            "memory/docker/abc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
        let limits = read_limits(root, own);
        assert_eq!((limits.memory, limits.cpus), (None, None));
    }

    #[test]
    fn missing_files_mean_no_limits() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_limits(dir.path(), "0::/\n"), CgroupLimits::default());
        assert_eq!(
            read_limits(&dir.path().join("absent"), ""),
            CgroupLimits::default()
        );
        // A v1 mount without the limit files.
        std::fs::create_dir_all(dir.path().join("memory")).unwrap();
        let limits = read_limits(dir.path(), "4:memory:/x\n");
        assert_eq!(limits.version, Some(CgroupVersion::V1));
        assert_eq!((limits.memory, limits.cpus), (None, None));
    }

    #[test]
    fn defaults_follow_the_smaller_of_machine_and_cgroup() {
        assert_eq!(usable_memory(Some(16 << 30), Some(2 << 30)), Some(2 << 30));
        assert_eq!(usable_memory(Some(1 << 30), Some(2 << 30)), Some(1 << 30));
        assert_eq!(usable_memory(None, Some(2 << 30)), Some(2 << 30));
        assert_eq!(usable_memory(Some(8 << 30), None), Some(8 << 30));
        assert_eq!(threads_for(8, Some(1.5)), 2);
        assert_eq!(threads_for(2, Some(4.0)), 2);
        assert_eq!(threads_for(8, Some(0.1)), 1);
        assert_eq!(threads_for(8, None), 8);
        let limits = CgroupLimits {
            version: Some(CgroupVersion::V2),
            memory: Some(1 << 30),
            cpus: Some(1.5),
        };
        let line = describe(&limits, Some(16 << 30), 8).unwrap();
        assert!(line.contains("cgroup v2: memory 1.0 GiB"), "{line}");
        assert!(line.contains("counted as 2 of the 8 cores"), "{line}");
        let cpu_only = describe(&limits, Some(512 << 20), 1).unwrap();
        assert!(!cpu_only.contains("memory"), "{cpu_only}");
        assert!(
            cpu_only.contains("counted as 1 of the 1 cores"),
            "{cpu_only}"
        );
        let none = CgroupLimits {
            cpus: None,
            ..limits
        };
        assert_eq!(describe(&none, Some(512 << 20), 1), None);
        assert_eq!(count_cpus("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus("x"), None);
    }
}
