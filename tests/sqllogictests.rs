//! Runs every `sql-tests/*.slt` file against a real tsql engine over local entity
//! files. Each file gets its own empty data folder, filled by `tsql:` commands:
//!
//! - `tsql:write <path>` + lines: writes the lines to `<path>` in the data folder
//!   (each write gets a modification time one second after the previous one,
//!   starting at 2024-01-01T00:00:00Z, so bare records have known dates);
//! - `tsql:append <path>` + lines, `tsql:remove <path>`;
//! - `tsql:demo`: use the demo dataset instead;
//! - `tsql:option on_bad_record=skip|fail`: reopen the engine with that policy;
//! - `tsql:skipped` (as a query): how many records were skipped so far.
//!
//! The engine is opened once per file and kept, so files changed between
//! queries test that the next query sees them.
//!
//! `cargo test --test sqllogictests -- <filter>` runs only files whose name contains `<filter>`.
//!
//! The differential mode (used by `tests/python/test_cyoda.py`): with
//! `TSQL_SLT_CONFIG=<tsql.toml>` the engine reads the config file's
//! `[[source]]` entries instead, unqualified names resolve in catalog
//! `TSQL_SLT_CATALOG`, and the files come from `TSQL_SLT_DIR`. The same files
//! run once per catalog must give the same answers; `TSQL_SLT_SCHEMA` names
//! the schema in that catalog (default `entities`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::StreamExt;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tsql::{Caller, DataSource, Engine, EngineOptions, Source};
use tsql_entity_tables::BadRecordPolicy;

#[derive(Debug)]
struct TestError(String);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestError {}

struct TsqlDb {
    dir: tempfile::TempDir,
    demo: bool,
    policy: BadRecordPolicy,
    engine: Option<Engine>,
    /// With `TSQL_SLT_WORKERS=n`: the engine as coordinator of n worker processes.
    cluster: Option<(Engine, WorkerProcesses)>,
    writes: u64,
}

/// Worker processes (`tsql serve` on this data), stopped when dropped.
struct WorkerProcesses {
    children: Vec<std::process::Child>,
    _config: tempfile::TempDir,
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The cluster size asked for with `TSQL_SLT_WORKERS` (0: one node).
fn cluster_size() -> usize {
    std::env::var("TSQL_SLT_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const CLUSTER_SECRET: &str = "sqllogictests-cluster-secret-0123456789";

impl TsqlDb {
    fn new() -> Self {
        TsqlDb {
            dir: tempfile::tempdir().expect("a temporary folder"),
            demo: false,
            policy: BadRecordPolicy::Fail,
            engine: None,
            cluster: None,
            writes: 0,
        }
    }

    fn engine(&mut self) -> Result<&Engine, TestError> {
        if self.engine.is_none() {
            let sources = match std::env::var("TSQL_SLT_CONFIG") {
                Ok(config) => tsql::config::FileConfig::load(Path::new(&config))
                    .map_err(TestError)?
                    .sources
                    .iter()
                    .map(|s| s.to_source())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(TestError)?,
                Err(_) => vec![Source::Files {
                    catalog: tsql_entity_tables::CATALOG.to_string(),
                    schema: tsql_entity_tables::SCHEMA.to_string(),
                    data: if self.demo {
                        DataSource::Demo
                    } else {
                        DataSource::Folder(self.dir.path().to_path_buf())
                    },
                }],
            };
            let engine = Engine::with_sources(
                &sources,
                EngineOptions {
                    on_bad_record: self.policy,
                    ..EngineOptions::default()
                },
            )
            .map_err(|e| TestError(e.to_string()))?;
            self.engine = Some(engine);
        }
        Ok(self.engine.as_ref().expect("just opened"))
    }

    /// The engine as coordinator of `n` worker processes reading the same
    /// data, with `distributed = 'on'`: every query with an entity-table
    /// scan runs over the workers.
    async fn clustered(&mut self, n: usize) -> Result<Engine, TestError> {
        if let Some((engine, _)) = &self.cluster {
            return Ok(engine.clone());
        }
        let base = self.engine()?.clone();
        let err = |e: &dyn std::fmt::Display| TestError(e.to_string());
        let config = tempfile::tempdir().map_err(|e| err(&e))?;
        let mut children = Vec::new();
        let mut entries = Vec::new();
        let extra = match std::env::var("TSQL_SLT_CONFIG") {
            Ok(c) => std::fs::read_to_string(c).map_err(|e| err(&e))?,
            Err(_) => String::new(),
        };
        let data = if self.demo {
            "demo = true\n".to_string()
        } else {
            format!("data = {:?}\n", self.dir.path())
        };
        let policy = match self.policy {
            BadRecordPolicy::Skip => "skip",
            BadRecordPolicy::Fail => "fail",
        };
        for i in 0..n {
            let port = free_port();
            let text = format!(
                "{data}on_bad_record = \"{policy}\"\nlisten = \"127.0.0.1:{}\"\ntrino_listen = \"\"\nmetrics_listen = \"\"\n\
                 cluster_secret = \"{CLUSTER_SECRET}\"\nworker_listen = \"127.0.0.1:{port}\"\n\
                 [[users]]\nname = \"slt\"\npassword_hash = \"{}\"\n{extra}",
                free_port(),
                tsql::config::hash_password("slt")
            );
            let path = config.path().join(format!("worker{i}.toml"));
            std::fs::write(&path, text).map_err(|e| err(&e))?;
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_tsql"))
                .args(["serve", "--config"])
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| err(&e))?;
            children.push(child);
            entries.push(format!("127.0.0.1:{port}"));
        }
        let processes = WorkerProcesses {
            children,
            _config: config,
        };
        for e in &entries {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(e.as_str()).is_err() {
                if std::time::Instant::now() > deadline {
                    return Err(TestError(format!("worker {e} did not start in 30 s")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| err(&e))?;
        let settings = tsql::cluster::ClusterSettings {
            workers: entries,
            worker_listen: "127.0.0.1:0".into(),
            worker_url: None,
            secret: CLUSTER_SECRET.into(),
            mode: tsql::cluster::Mode::On,
            min_splits: None,
            max_running: None,
        };
        let cluster =
            tsql::cluster::Cluster::start(settings, listener.local_addr().map_err(|e| err(&e))?)
                .await
                .map_err(|e| err(&e))?;
        if cluster.workers.live().len() != n {
            return Err(TestError(format!(
                "only {} of {n} workers answer",
                cluster.workers.live().len()
            )));
        }
        let engine = base.with_cluster(cluster.clone()).map_err(|e| err(&e))?;
        cluster.serve(listener);
        self.cluster = Some((engine.clone(), processes));
        Ok(engine)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim())
    }

    fn write(&mut self, rel: &str, body: &str, append: bool) -> Result<(), TestError> {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("inside the folder"))
            .map_err(|e| TestError(e.to_string()))?;
        let mut text = if append {
            std::fs::read_to_string(&path).unwrap_or_default()
        } else {
            String::new()
        };
        text.push_str(body);
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| TestError(e.to_string()))?;
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + self.writes);
        self.writes += 1;
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| TestError(e.to_string()))?;
        f.set_modified(when).map_err(|e| TestError(e.to_string()))?;
        Ok(())
    }

    fn command(&mut self, sql: &str) -> Result<Option<DBOutput<DefaultColumnType>>, TestError> {
        let (first, body) = sql.split_once('\n').unwrap_or((sql, ""));
        let mut words = first.trim().splitn(2, ' ');
        let cmd = words.next().unwrap_or("");
        let arg = words.next().unwrap_or("").trim();
        match cmd {
            "tsql:write" => self.write(arg, body, false)?,
            "tsql:append" => self.write(arg, body, true)?,
            "tsql:remove" => {
                std::fs::remove_file(self.path(arg)).map_err(|e| TestError(e.to_string()))?
            }
            "tsql:demo" => {
                self.demo = true;
                self.engine = None;
                self.cluster = None;
            }
            "tsql:option" => {
                self.policy = match arg {
                    "on_bad_record=skip" => BadRecordPolicy::Skip,
                    "on_bad_record=fail" => BadRecordPolicy::Fail,
                    other => return Err(TestError(format!("unknown option {other}"))),
                };
                self.engine = None;
                self.cluster = None;
            }
            "tsql:skipped" => {
                let n = self.engine()?.skipped_records().0;
                return Ok(Some(DBOutput::Rows {
                    types: vec![DefaultColumnType::Integer],
                    rows: vec![vec![n.to_string()]],
                }));
            }
            _ => return Ok(None),
        }
        Ok(Some(DBOutput::StatementComplete(0)))
    }
}

#[async_trait]
impl AsyncDB for TsqlDb {
    type Error = TestError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        if sql.trim_start().starts_with("tsql:") {
            return Ok(self
                .command(sql.trim_start())?
                .expect("tsql: commands are handled"));
        }
        let base = match cluster_size() {
            0 => self.engine()?.clone(),
            n => self.clustered(n).await?,
        };
        let mut engine = base.for_caller(&Caller::named("slt")).await;
        if cluster_size() > 0 {
            // Stages of distributed plans carry progress markers, as a served query's do.
            engine = engine.with_query_id(&tsql::queries::new_query_id());
        }
        if let Ok(catalog) = std::env::var("TSQL_SLT_CATALOG") {
            let schema = std::env::var("TSQL_SLT_SCHEMA")
                .unwrap_or_else(|_| tsql_entity_tables::SCHEMA.to_string());
            engine = engine
                .with_defaults(&catalog, &schema)
                .map_err(|e| TestError(e.to_string()))?;
        }
        let mut stream = engine
            .execute(sql)
            .await
            .map_err(|e| TestError(e.to_string()))?;
        let schema = stream.schema();
        let types = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() || matches!(t, arrow::datatypes::DataType::Decimal128(..)) => {
                    DefaultColumnType::FloatingPoint
                }
                arrow::datatypes::DataType::Utf8 => DefaultColumnType::Text,
                _ => DefaultColumnType::Any,
            })
            .collect();
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| TestError(e.to_string()))?;
            let fmts = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TestError(e.to_string()))?;
            for r in 0..batch.num_rows() {
                rows.push(
                    fmts.iter()
                        .map(|f| {
                            let s = f.value(r).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tsql"
    }
}

fn slt_files(dir: &Path, filter: Option<&str>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("sql-tests/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = match std::env::var("TSQL_SLT_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests"),
    };
    let files = slt_files(&dir, filter.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .to_string();
        let mut runner = sqllogictest::Runner::new(|| async { Ok(TsqlDb::new()) });
        if cluster_size() > 0 {
            // Records marked `skipif cluster` hold for one process only.
            runner.add_label("cluster");
        }
        match runtime.block_on(runner.run_file_async(file)) {
            Ok(()) => {
                passed += 1;
                println!("ok     {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {name}\n{e}\n");
            }
        }
    }
    println!("sqllogictests: {passed} passed, {failed} failed");
    if cluster_size() > 0 {
        let distributed = tsql::metrics::metrics().cluster_queries.get();
        println!(
            "sqllogictests: {distributed} queries ran over {} workers",
            cluster_size()
        );
        if distributed == 0 {
            println!("FAILED: with TSQL_SLT_WORKERS set, no query ran over the workers");
            std::process::exit(1);
        }
    }
    if failed > 0 || files.is_empty() {
        std::process::exit(1);
    }
}
