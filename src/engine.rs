//! The query engine: a DataFusion session with one catalog per source —
//! local entity files (the embedded default) and live Cyoda services — and,
//! per caller, the live catalogs as that caller's identity sees them.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use tsql_cassandra::{CassandraOptions, CassandraSource};
use tsql_cyoda::{CyodaOptions, CyodaService};
use tsql_entity_tables::{
    BadRecordPolicy, BadRecords, CATALOG, EntitySchema, EntitySource, LiveSchema, SCHEMA,
    ScanOptions, TableLayout, UnavailableSchema,
};
use tsql_local_files::LocalStore;

pub use crate::caller::{Caller, Owner};
use crate::cooperative::CooperativeJoins;
use crate::memory::QueryPool;
use tsql_local_files::demo::demo_dir;

/// Where entities come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// A folder of entity files.
    Folder(std::path::PathBuf),
    /// The generated demo dataset.
    Demo,
}

/// One source of the engine, with the catalog and schema its tables live in.
#[derive(Debug, Clone)]
pub enum Source {
    /// Local entity files.
    Files {
        /// Catalog name.
        catalog: String,
        /// Schema name.
        schema: String,
        /// The files.
        data: DataSource,
    },
    /// A Cyoda entity service.
    Cyoda {
        /// Catalog name.
        catalog: String,
        /// Schema name.
        schema: String,
        /// How to reach and read it.
        options: CyodaOptions,
    },
    /// A Cassandra or ScyllaDB cluster: one schema per keyspace.
    Cassandra {
        /// Catalog name.
        catalog: String,
        /// How to reach and read it.
        options: CassandraOptions,
        /// User name -> keyspaces that user may see; everyone sees every keyspace when unset.
        tenants: Option<std::collections::BTreeMap<String, Vec<String>>>,
    },
}

impl Source {
    /// The catalog this source's tables live in.
    pub fn catalog(&self) -> &str {
        match self {
            Source::Files { catalog, .. }
            | Source::Cyoda { catalog, .. }
            | Source::Cassandra { catalog, .. } => catalog,
        }
    }

    fn schema(&self) -> &str {
        match self {
            Source::Files { schema, .. } | Source::Cyoda { schema, .. } => schema,
            Source::Cassandra { options, .. } => &options.keyspaces[0],
        }
    }
}

/// How the engine treats its data.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// What to do with records that cannot be read.
    pub on_bad_record: BadRecordPolicy,
    /// Schema name (default `entities`).
    pub schema: Option<String>,
    /// Memory limits and spilling; unlimited when unset.
    pub memory: Option<crate::memory::MemorySettings>,
}

/// A live catalog: a source whose tables depend on who asks.
#[derive(Debug)]
struct LiveCatalog {
    catalog: String,
    kind: LiveKind,
}

#[derive(Debug)]
enum LiveKind {
    /// A Cyoda service: the caller's identity decides the models.
    Cyoda {
        schema: String,
        service: Arc<CyodaService>,
    },
    /// A Cassandra cluster: the caller's name decides the keyspaces.
    Cassandra {
        source: Arc<CassandraSource>,
        tenants: Option<std::collections::BTreeMap<String, Vec<String>>>,
    },
}

/// The default schema of a user who may see no keyspace of the default catalog.
const NO_KEYSPACE: &str = "no_keyspace";

/// A query engine over its sources.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    /// Bytes one query may reserve, when memory is limited.
    per_query: Option<usize>,
    /// Where queries spill, under `spill_limit` and `query_spill_limit`, when memory is limited.
    spill: Option<Arc<crate::spill::SpillSpace>>,
    /// The server's queries, shown as `system.runtime.queries`.
    queries: Option<Arc<crate::queries::QueryLog>>,
    bad_records: Arc<BadRecords>,
    live: Arc<Vec<LiveCatalog>>,
    scan: ScanOptions,
    /// The cluster this node coordinates, when it has workers.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Engine {
    /// An engine over one local source, in catalog `cyoda`.
    pub fn open(source: &DataSource, options: EngineOptions) -> Result<Engine> {
        let schema = options.schema.clone().unwrap_or_else(|| SCHEMA.to_string());
        Self::with_sources(
            &[Source::Files {
                catalog: CATALOG.to_string(),
                schema,
                data: source.clone(),
            }],
            options,
        )
    }

    /// An engine over several sources, each in its own catalog; unqualified
    /// names resolve in the first source's catalog and schema.
    pub fn with_sources(sources: &[Source], options: EngineOptions) -> Result<Engine> {
        let Some(first) = sources.first() else {
            return Err(DataFusionError::Plan(
                "no sources: give --data DIR, --demo, or [[source]] entries in the config file"
                    .into(),
            ));
        };
        for (i, s) in sources.iter().enumerate() {
            if sources[..i].iter().any(|o| o.catalog() == s.catalog()) {
                return Err(DataFusionError::Plan(format!(
                    "two sources use catalog '{}': give each [[source]] its own `catalog` (local files from --data/--demo are in catalog '{CATALOG}')",
                    s.catalog()
                )));
            }
        }
        let bad_records = Arc::new(BadRecords::default());
        let scan = ScanOptions {
            on_bad_record: options.on_bad_record,
            bad_records: bad_records.clone(),
        };
        let mut config = SessionConfig::new()
            // As many partitions as query threads (the container's CPU quota, not the node's cores).
            .with_target_partitions(crate::container::query_threads())
            .with_information_schema(true)
            .with_default_catalog_and_schema(first.catalog(), first.schema())
            .with_create_default_catalog_and_schema(false);
        // `CAST(x AS VARCHAR)` gives plain strings, the type results are sent
        // in, instead of string views that must be converted for clients.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        // NULLs sort last in both directions, as in Trino (DataFusion's
        // default puts them first in DESC, so `ORDER BY x DESC LIMIT n`
        // would show NULLs as the top values).
        config.options_mut().sql_parser.default_null_ordering = "nulls_last".into();
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(CooperativeJoins));
        let mut spill = None;
        if let Some(memory) = &options.memory {
            let space = memory.spill_space()?;
            builder = builder.with_runtime_env(memory.runtime(&space)?);
            spill = Some(space);
        }
        let state = builder.build();
        let ctx = SessionContext::new_with_state(state);
        crate::trino_functions::register(&ctx);
        if std::env::var_os("TSQL_TEST_PANIC_FUNCTION").is_some() {
            // Test-only (off unless the variable is set): a function that
            // panics when it runs, to check how the server survives a panic
            // inside the engine.
            ctx.register_udf(datafusion::logical_expr::create_udf(
                "tsql_test_panic",
                vec![arrow::datatypes::DataType::Int64],
                arrow::datatypes::DataType::Int64,
                datafusion::logical_expr::Volatility::Volatile,
                Arc::new(|_| panic!("tsql_test_panic was called")),
            ));
        }
        let mut live = Vec::new();
        for source in sources {
            let catalog = MemoryCatalogProvider::new();
            match source {
                Source::Files { schema, data, .. } => {
                    let dir = match data {
                        DataSource::Folder(d) => d.clone(),
                        DataSource::Demo => demo_dir().map_err(|e| {
                            DataFusionError::Execution(format!(
                                "cannot write the demo data to the temporary folder: {e}"
                            ))
                        })?,
                    };
                    let store: Arc<dyn EntitySource> = Arc::new(LocalStore::new(
                        dir,
                        options.on_bad_record,
                        bad_records.clone(),
                    )?);
                    let entities = Arc::new(EntitySchema::new(store, scan.clone()));
                    catalog
                        .register_schema(schema, entities)
                        .expect("a memory catalog accepts schemas");
                }
                Source::Cyoda {
                    catalog: name,
                    schema,
                    options,
                } => {
                    let service =
                        CyodaService::new(options.clone()).map_err(DataFusionError::from)?;
                    // Until a caller's identity fills it, the schema is empty.
                    catalog
                        .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                        .expect("a memory catalog accepts schemas");
                    live.push(LiveCatalog {
                        catalog: name.clone(),
                        kind: LiveKind::Cyoda {
                            schema: schema.clone(),
                            service: Arc::new(service),
                        },
                    });
                }
                Source::Cassandra {
                    catalog: name,
                    options,
                    tenants,
                } => {
                    // Until a query loads it, each schema is empty.
                    let names = options
                        .keyspaces
                        .iter()
                        .chain(options.entity_tables.iter().map(|e| &e.schema));
                    for name in names.chain(std::iter::once(&NO_KEYSPACE.to_string())) {
                        catalog
                            .register_schema(name, Arc::new(MemorySchemaProvider::new()))
                            .expect("a memory catalog accepts schemas");
                    }
                    live.push(LiveCatalog {
                        catalog: name.clone(),
                        kind: LiveKind::Cassandra {
                            source: Arc::new(CassandraSource::new(options.clone())),
                            tenants: tenants.clone(),
                        },
                    });
                }
            }
            ctx.register_catalog(source.catalog(), Arc::new(catalog));
        }
        Ok(Engine {
            ctx,
            per_query: options.memory.as_ref().map(|m| m.per_query),
            spill,
            queries: None,
            bad_records,
            live: Arc::new(live),
            scan,
            cluster: None,
        })
    }

    /// This engine as a node of `cluster`: it plans queries over the
    /// workers (as the `distributed` setting says), runs its own
    /// single-task stages in process, and runs the fragments other nodes
    /// send it on this engine, as their callers.
    pub fn with_cluster(&self, cluster: Arc<crate::cluster::Cluster>) -> Result<Engine> {
        use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
        let settings = &cluster.settings;
        let min_splits = settings
            .min_splits
            .unwrap_or(2 * crate::container::query_threads());
        let options = crate::cluster::ClusterSessionOptions {
            distributed: settings.mode.name().to_string(),
            ..Default::default()
        };
        let router =
            crate::cluster::TaskRouter::new(cluster.workers.clone(), cluster.self_url.clone());
        let mut builder = SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_distributed_planner()
            .with_query_planner(Arc::new(crate::cluster::ClusterPlanner::new(
                cluster.workers.clone(),
                min_splits,
                router.clone(),
            )))
            .with_distributed_worker_resolver(cluster.workers.clone())
            .with_distributed_channel_resolver(cluster.channels.clone())
            .with_distributed_user_codec(crate::cluster::ScanCodec)
            .with_distributed_desired_task_count_handler(crate::cluster::desired_tasks)
            .with_distributed_scale_up_leaf_node_handler(crate::cluster::share_scan)
            .with_distributed_route_tasks_handler(router)
            .with_distributed_local_worker_context(
                cluster
                    .worker()
                    .to_local_worker_context(cluster.self_url.clone()),
            );
        if let Some(config) = builder.config().as_mut() {
            config.options_mut().extensions.insert(options);
        }
        let ctx = SessionContext::new_with_state(builder.build());
        crate::trino_functions::register(&ctx);
        let engine = Engine {
            ctx,
            cluster: Some(cluster.clone()),
            ..self.clone()
        };
        cluster.attach(engine.clone());
        Ok(engine)
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.as_ref()
    }

    /// The `distributed` setting this engine's queries plan under: the
    /// session's or the config's, `off` on a node without a cluster.
    pub fn distributed(&self) -> &'static str {
        if self.cluster.is_none() {
            return crate::cluster::Mode::Off.name();
        }
        self.ctx
            .state()
            .config()
            .options()
            .extensions
            .get::<crate::cluster::ClusterSessionOptions>()
            .map_or(crate::cluster::Mode::Auto, |o| o.mode())
            .name()
    }

    /// This engine with the session setting `distributed` (`on`, `off`,
    /// `auto`); an error names the values when `value` is none of them or
    /// when this node has no cluster.
    pub fn with_distributed(&self, value: &str) -> Result<Engine> {
        let mode = crate::cluster::Mode::parse(value).map_err(DataFusionError::Plan)?;
        if self.cluster.is_none() {
            if mode == crate::cluster::Mode::On {
                return Err(DataFusionError::Plan(
                    "distributed = 'on' needs a cluster: this node has no `workers` in its config"
                        .into(),
                ));
            }
            return Ok(self.clone());
        }
        Ok(self.with_cluster_options(|o| o.distributed = mode.name().to_string()))
    }

    /// This engine with its session's cluster options changed by `change`.
    fn with_cluster_options(
        &self,
        change: impl FnOnce(&mut crate::cluster::ClusterSessionOptions),
    ) -> Engine {
        let mut state = self.ctx.state();
        if let Some(o) = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<crate::cluster::ClusterSessionOptions>()
        {
            change(o);
        }
        Engine {
            ctx: SessionContext::new_with_state(state),
            ..self.clone()
        }
    }

    /// This engine planning for the query `id` (as the query view names
    /// it): the stages of a distributed plan report their progress under it.
    /// Without a cluster, the engine itself.
    pub fn with_query_id(&self, id: &str) -> Engine {
        if self.cluster.is_none() {
            return self.clone();
        }
        self.with_cluster_options(|o| o.query_id = id.to_string())
    }

    /// Bytes the query memory pool holds now.
    pub fn memory_reserved(&self) -> usize {
        self.ctx.runtime_env().memory_pool.reserved()
    }

    /// Bytes and files queries have spilled to disk and still hold.
    pub fn spilling(&self) -> (u64, usize) {
        if let Some(space) = &self.spill {
            return space.usage();
        }
        let p = self.ctx.runtime_env().disk_manager.spilling_progress();
        (p.current_bytes, p.active_files_count)
    }

    /// Whether every live source answers, or which one does not and why.
    pub async fn check_sources(&self) -> std::result::Result<(), String> {
        for l in self.live.iter() {
            let checked = match &l.kind {
                LiveKind::Cyoda { service, .. } => service.check_reachable().await,
                LiveKind::Cassandra { source, .. } => source.check_reachable().await,
            };
            checked.map_err(|e| format!("catalog {}: {}", l.catalog, e.message))?;
        }
        Ok(())
    }

    /// This engine showing `log` as `system.runtime.queries`.
    pub fn with_query_log(mut self, log: Arc<crate::queries::QueryLog>) -> Engine {
        self.queries = Some(log);
        self
    }

    /// The Cyoda service that checks callers' own identities (passthrough mode), if any.
    pub fn passthrough_service(&self) -> Option<Arc<CyodaService>> {
        self.live.iter().find_map(|l| match &l.kind {
            LiveKind::Cyoda { service, .. } if service.passthrough() => Some(service.clone()),
            _ => None,
        })
    }

    /// This engine as `caller` sees it: every live catalog holds the tables
    /// the caller's identity may read (read from the service, cached per
    /// tenant). A live source that cannot be read now keeps an empty schema
    /// whose tables fail with the reason; other catalogs work as usual.
    ///
    /// With limited memory, the engine also gets its own share of the
    /// server-wide pool: call this once per query.
    pub async fn for_caller(&self, caller: &Caller) -> Engine {
        self.for_caller_reading(caller, None).await
    }

    /// The catalogs `sql` reads, when that can be told from its text (a plain
    /// query); unqualified names are in `default_catalog`. `None`: any may be.
    pub fn catalogs_of(&self, sql: &str, default_catalog: &str) -> Option<Vec<String>> {
        use datafusion::sql::parser::Statement as Parsed;
        use datafusion::sql::sqlparser::ast::Statement;
        let statement = self.parse(sql).ok()?;
        let state = self.ctx.state_ref();
        let state = state.read();
        if !matches!(&statement, Parsed::Statement(s) if matches!(s.as_ref(), Statement::Query(_)))
        {
            return None;
        }
        let mut out = Vec::new();
        for r in state.resolve_table_references(&statement).ok()? {
            if r.schema() == Some("information_schema") {
                return None;
            }
            let catalog = r.catalog().unwrap_or(default_catalog).to_string();
            if !out.contains(&catalog) {
                out.push(catalog);
            }
        }
        Some(out)
    }

    /// Like [`Engine::for_caller`], loading only the live catalogs in
    /// `reading` (all when `None`): a query of local files never waits for a
    /// slow or unreachable service.
    pub async fn for_caller_reading(&self, caller: &Caller, reading: Option<&[String]>) -> Engine {
        if self.live.is_empty()
            && self.per_query.is_none()
            && self.queries.is_none()
            && self.cluster.is_none()
        {
            return self.clone();
        }
        let state = self.ctx.state();
        let shared_runtime = state.runtime_env().clone();
        let shared = state.catalog_list().clone();
        let mut builder = SessionStateBuilder::new_from_existing(state);
        if let Some(limit) = self.per_query {
            // Its own spill files too, under query_spill_limit and spill_limit.
            let disk_manager = match &self.spill {
                Some(space) => space
                    .disk_manager()
                    .unwrap_or_else(|_| shared_runtime.disk_manager.clone()),
                None => shared_runtime.disk_manager.clone(),
            };
            let share = RuntimeEnv {
                memory_pool: Arc::new(QueryPool::new(shared_runtime.memory_pool.clone(), limit)),
                disk_manager,
                cache_manager: shared_runtime.cache_manager.clone(),
                object_store_registry: shared_runtime.object_store_registry.clone(),
            };
            builder = builder.with_runtime_env(Arc::new(share));
        }
        // A catalog list of its own: the shared one must never hold one caller's tables.
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        for name in shared.catalog_names() {
            if let Some(c) = shared.catalog(&name) {
                catalogs.register_catalog(name, c);
            }
        }
        if let Some(log) = &self.queries {
            let table =
                crate::queries::QueriesTable::new(log.clone(), &caller.owner, caller.sees_all);
            let runtime = MemorySchemaProvider::new();
            runtime
                .register_table("queries".into(), Arc::new(table))
                .expect("a memory schema accepts tables");
            let system = MemoryCatalogProvider::new();
            system
                .register_schema("runtime", Arc::new(runtime))
                .expect("a memory catalog accepts schemas");
            catalogs.register_catalog("system".into(), Arc::new(system));
        }
        for l in self.live.iter() {
            if reading.is_some_and(|w| !w.contains(&l.catalog)) {
                continue; // keeps its empty placeholder schema
            }
            let catalog: Arc<dyn CatalogProvider> = match &l.kind {
                LiveKind::Cyoda { schema, service } => {
                    let tables: Arc<dyn SchemaProvider> =
                        match service.identity(caller.upstream.as_ref()).await {
                            Ok(identity) => match service.schema(identity, self.scan.clone()).await
                            {
                                Ok(s) => s,
                                Err(e) => Arc::new(UnavailableSchema(e)),
                            },
                            Err(e) => Arc::new(UnavailableSchema(e)),
                        };
                    let catalog = MemoryCatalogProvider::new();
                    catalog
                        .register_schema(schema, tables)
                        .expect("a memory catalog accepts schemas");
                    Arc::new(catalog)
                }
                LiveKind::Cassandra { source, tenants } => {
                    // A caller sees only their keyspaces: other keyspaces are
                    // not in their catalog at all, so no name, table or error
                    // of another tenant can reach them.
                    let keyspaces: Vec<String> = match tenants {
                        None => source.keyspaces().to_vec(),
                        Some(t) => t
                            .get(&caller.owner.tenants_key())
                            .cloned()
                            .unwrap_or_default(),
                    };
                    let catalog = source.catalog(&keyspaces, &self.scan).await;
                    if keyspaces.is_empty() {
                        // The default schema of a user without keyspaces.
                        let _ = catalog
                            .register_schema(NO_KEYSPACE, Arc::new(MemorySchemaProvider::new()));
                    }
                    catalog
                }
            };
            catalogs.register_catalog(l.catalog.clone(), catalog);
        }
        if let Some(cluster) = &self.cluster {
            // Workers read as this caller: the sealed pass travels with every fragment.
            use datafusion_distributed::DistributedExt;
            builder = builder
                .with_distributed_passthrough_headers(cluster.pass.headers(caller))
                .expect("the pass header is not a reserved name");
        }
        let ctx = SessionContext::new_with_state(builder.with_catalog_list(catalogs).build());
        // Rebuilding the state registers every function again, aliases in
        // any order (DataFusion's `date_format` alias of `to_char` could win
        // over Trino's `date_format`): Trino's functions go in last.
        crate::trino_functions::register(&ctx);
        ctx.register_udf(crate::trino_functions::current_user(caller.user()));
        Engine {
            ctx,
            ..self.clone()
        }
    }

    /// Every schema of every catalog, sorted by catalog and schema name.
    pub fn schemas(&self) -> Vec<(String, String, Arc<dyn SchemaProvider>)> {
        let mut out = Vec::new();
        for c in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&c) else {
                continue;
            };
            for s in catalog.schema_names() {
                if let Some(schema) = catalog.schema(&s) {
                    out.push((c.clone(), s, schema));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Every entity table of every catalog, with its layout (for `tsql schema`).
    pub fn layouts(&self) -> Result<Vec<(String, Arc<TableLayout>)>> {
        let mut out = Vec::new();
        for (c, s, schema) in self.schemas() {
            let any: &dyn std::any::Any = schema.as_ref();
            let prefix = format!("{c}.{s}.");
            if let Some(entities) = any.downcast_ref::<EntitySchema>() {
                for (name, t) in entities.tables()?.iter() {
                    out.push((format!("{prefix}{name}"), t.layout.clone()));
                }
            } else if let Some(live) = any.downcast_ref::<LiveSchema>() {
                for (name, layout) in live.layouts() {
                    out.push((format!("{prefix}{name}"), layout));
                }
            } else if let Some(down) = any.downcast_ref::<UnavailableSchema>() {
                return Err(down.0.clone().into());
            }
        }
        Ok(out)
    }

    /// The default catalog and schema of unqualified table names.
    pub fn defaults(&self) -> (String, String) {
        let state = self.ctx.state_ref();
        let state = state.read();
        let options = &state.config().options().catalog;
        (
            options.default_catalog.clone(),
            options.default_schema.clone(),
        )
    }

    /// The default catalog and schema of `user`: [`Engine::defaults`], except
    /// where the default catalog gives each user their own keyspaces — then
    /// the user's first keyspace (no other tenant's keyspace is ever a
    /// user's default, so none shows up in their error messages).
    pub fn defaults_for(&self, owner: &Owner) -> (String, String) {
        let (catalog, schema) = self.defaults();
        for l in self.live.iter() {
            if let LiveKind::Cassandra {
                tenants: Some(tenants),
                ..
            } = &l.kind
                && l.catalog == catalog
            {
                let own = tenants
                    .get(&owner.tenants_key())
                    .and_then(|k| k.first())
                    .cloned();
                return (catalog, own.unwrap_or_else(|| NO_KEYSPACE.to_string()));
            }
        }
        (catalog, schema)
    }

    /// Checks that `catalog` and `schema` exist, so they can be the defaults.
    pub fn check_defaults(&self, catalog: &str, schema: &str) -> Result<()> {
        let Some(found) = self.ctx.catalog(catalog) else {
            let mut known = self.ctx.catalog_names();
            known.sort();
            return Err(DataFusionError::Plan(format!(
                "catalog '{catalog}' not found; the catalogs are: {}",
                known.join(", ")
            )));
        };
        let information_schema = schema == "information_schema"
            && self
                .ctx
                .state_ref()
                .read()
                .config()
                .options()
                .catalog
                .information_schema;
        if found.schema(schema).is_none() && !information_schema {
            let mut known = found.schema_names();
            known.sort();
            return Err(DataFusionError::Plan(format!(
                "schema '{schema}' not found in catalog '{catalog}'; its schemas are: {}",
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// This engine with other defaults for unqualified table names; both must exist.
    pub fn with_defaults(&self, catalog: &str, schema: &str) -> Result<Engine> {
        if self.defaults() == (catalog.to_string(), schema.to_string()) {
            return Ok(self.clone());
        }
        self.check_defaults(catalog, schema)?;
        let mut state = self.ctx.state();
        let options = state.config_mut().options_mut();
        options.catalog.default_catalog = catalog.to_string();
        options.catalog.default_schema = schema.to_string();
        Ok(Engine {
            ctx: SessionContext::new_with_state(state),
            ..self.clone()
        })
    }

    /// The DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Records skipped so far under `--on-bad-record skip`, and the first reason.
    pub fn skipped_records(&self) -> (usize, Option<String>) {
        self.bad_records.summary()
    }

    /// `sql` parsed in the engine's dialect, `?` parameters numbered and
    /// Trino's syntax rewritten (`crate::trino_functions::rewrite`).
    fn parse(&self, sql: &str) -> Result<datafusion::sql::parser::Statement> {
        check_nesting(sql)?;
        check_name_chains(sql)?;
        let state = self.ctx.state_ref();
        let state = state.read();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(&number_placeholders(sql), &dialect)?;
        crate::trino_functions::rewrite(&mut statement);
        Ok(statement)
    }

    /// Plans `sql`. tsql is read-only: DDL, DML and `SET` statements are
    /// refused. Column types in `information_schema.columns` and `DESCRIBE`
    /// are SQL names ([`crate::sql_types`]).
    pub async fn plan(&self, sql: &str) -> Result<DataFrame> {
        self.plan_with(sql, |_| {}, true).await
    }

    /// [`Engine::plan`] with the parsed statement adapted by `adapt` first
    /// (a protocol front end's own naming or metadata shape); column types
    /// in `information_schema` stay the engine's Arrow names, which the
    /// front end maps to its own.
    pub async fn plan_adapted(
        &self,
        sql: &str,
        adapt: impl FnOnce(&mut datafusion::sql::parser::Statement),
    ) -> Result<DataFrame> {
        self.plan_with(sql, adapt, false).await
    }

    async fn plan_with(
        &self,
        sql: &str,
        adapt: impl FnOnce(&mut datafusion::sql::parser::Statement),
        sql_type_names: bool,
    ) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let planned = async {
            let mut statement = self.parse(sql)?;
            adapt(&mut statement);
            let state = self.ctx.state();
            let mut plan = state.statement_to_plan(statement).await?;
            options.verify_plan(&plan)?;
            if sql_type_names {
                plan = crate::sql_types::with_sql_type_names(plan)?;
            }
            self.ctx.execute_logical_plan(plan).await
        };
        planned.await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("not supported") && (msg.contains("DDL") || msg.contains("DML") || msg.contains("Statement")) {
                DataFusionError::Plan(format!("{msg}\nhint: tsql is read-only; it answers queries (SELECT, SHOW, DESCRIBE, EXPLAIN)"))
            } else {
                explain(e)
            }
        })
    }

    /// Plans and starts `sql`, returning a stream of its result.
    pub async fn execute(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let df = self.plan(sql).await?;
        df.execute_stream().await.map_err(explain)
    }
}

/// How deeply parentheses may nest in a statement: the parser's time grows
/// steeply past this (48 nested CASTs kept a thread busy for minutes).
const MAX_NESTING: usize = 40;

/// Refuses a statement whose parentheses nest deeper than [`MAX_NESTING`]
/// (outside string literals, quoted names and comments).
fn check_nesting(sql: &str) -> Result<()> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for (text, code) in code_and_literals(sql) {
        for c in text.chars().filter(|_| code) {
            match c {
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    if deepest > MAX_NESTING {
        return Err(DataFusionError::SQL(
            Box::new(
                datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                    "the statement nests parentheses {deepest} deep; tsql reads at most {MAX_NESTING}: \
                 name parts of it in a WITH clause"
                )),
            ),
            None,
        ));
    }
    Ok(())
}

/// How many dots one chain of names may have (`catalog.schema.table.column`
/// has 3). The parser tries each part after a dot two ways, so its time can
/// double with every part: a 25-part chain kept it busy for minutes (found
/// by fuzzing `sql_text`).
const MAX_CHAIN_DOTS: usize = 12;

/// Refuses a statement with a chain of more than [`MAX_CHAIN_DOTS`] dots
/// (`a.b.c…`, spaces and comments around the dots included; string
/// literals and quoted names count as parts).
fn check_name_chains(sql: &str) -> Result<()> {
    #[derive(PartialEq)]
    enum Last {
        Other,
        Word,
        Dot,
    }
    let (mut dots, mut longest, mut last, mut in_word) = (0usize, 0usize, Last::Other, false);
    let word = |dots: &mut usize, last: &mut Last| {
        // Two names with only space between them are two chains.
        if *last == Last::Word {
            *dots = 0;
        }
        *last = Last::Word;
    };
    for (text, code) in code_and_literals(sql) {
        if !code {
            if !(text.starts_with("--") || text.starts_with("/*")) {
                word(&mut dots, &mut last);
            }
            in_word = false;
            continue;
        }
        for c in text.chars() {
            if c == '.' {
                dots += 1;
                longest = longest.max(dots);
                last = Last::Dot;
                in_word = false;
            } else if c.is_whitespace() {
                in_word = false;
            } else if c.is_alphanumeric() || !c.is_ascii() || "_#@$".contains(c) {
                if !in_word {
                    word(&mut dots, &mut last);
                }
                in_word = true;
            } else {
                dots = 0;
                last = Last::Other;
                in_word = false;
            }
        }
    }
    if longest > MAX_CHAIN_DOTS {
        return Err(DataFusionError::SQL(
            Box::new(
                datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                    "the statement has a name of {} parts joined by dots; tsql reads at most {}: \
                 put a name that contains dots in double quotes",
                    longest + 1,
                    MAX_CHAIN_DOTS + 1
                )),
            ),
            None,
        ));
    }
    Ok(())
}

/// Turns JDBC/ODBC-style `?` parameters into DataFusion's `$1`, `$2`, … (outside
/// string literals, quoted identifiers and comments).
pub fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for (text, code) in code_and_literals(sql) {
        if !code {
            out.push_str(text);
            continue;
        }
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// `sql` cut into consecutive pieces, each with whether it is code (`true`)
/// or a string literal, quoted name or comment (`false`, quotes and comment
/// marks included).
fn code_and_literals(sql: &str) -> Vec<(&str, bool)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        // Where the literal or comment starting at i ends (exclusive), if one does.
        let end = match (bytes[i], bytes.get(i + 1)) {
            (q @ (b'\'' | b'"'), _) => Some(
                bytes[i + 1..]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(bytes.len(), |p| i + 1 + p + 1),
            ),
            (b'-', Some(b'-')) => Some(
                bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1),
            ),
            (b'/', Some(b'*')) => Some(
                sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2),
            ),
            _ => None,
        };
        match end {
            Some(end) => {
                if start < i {
                    out.push((&sql[start..i], true));
                }
                out.push((&sql[i..end], false));
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        out.push((&sql[start..], true));
    }
    out
}

/// Adds what to do next to common planning errors.
pub fn explain(e: DataFusionError) -> DataFusionError {
    let msg = e.to_string();
    let hint = if msg.contains("table") && msg.contains("not found") {
        Some("run `tsql schema` (or SHOW TABLES) to list the tables; names are lower-case")
    } else if msg.contains("No field named") || msg.contains("Schema error") {
        Some("run `tsql schema` (or DESCRIBE <table>) to list the columns; names are lower-case")
    } else {
        None
    };
    match hint {
        Some(h) => DataFusionError::Plan(format!(
            "{}\nhint: {h}",
            msg.trim_start_matches("Error during planning: ")
        )),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::{
        MAX_CHAIN_DOTS, MAX_NESTING, check_name_chains, check_nesting, number_placeholders,
    };

    #[test]
    fn nesting_counts_parentheses_of_code_only() {
        let deep = format!(
            "SELECT {}1{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert!(check_nesting(&deep).is_err());
        let quoted = format!(
            "SELECT '{0}' -- {0}\n, /* {0} */ 1",
            "(".repeat(MAX_NESTING + 1)
        );
        assert!(check_nesting(&quoted).is_ok());
        assert!(
            check_nesting(&format!(
                "SELECT {}1{}",
                "(".repeat(MAX_NESTING),
                ")".repeat(MAX_NESTING)
            ))
            .is_ok()
        );
    }

    #[test]
    fn long_name_chains_are_refused_before_parsing() {
        // What the fuzzer found: the parser's time doubles with each part.
        let found = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/sql_text/timeout-6e1b58ebe4ed96426049fc34887114ef7f9bdb2a"
        ))
        .unwrap();
        let e = check_name_chains(&String::from_utf8_lossy(&found)).unwrap_err();
        assert!(e.to_string().contains("joined by dots"), "{e}");
        let chain = |n: usize, sep: &str| vec!["a"; n + 1].join(sep);
        assert!(check_name_chains(&format!("SELECT {}", chain(MAX_CHAIN_DOTS, "."))).is_ok());
        assert!(check_name_chains(&format!("SELECT {}", chain(MAX_CHAIN_DOTS + 1, "."))).is_err());
        assert!(
            check_name_chains(&format!("SELECT {}", chain(MAX_CHAIN_DOTS + 1, " . "))).is_err()
        );
        assert!(
            check_name_chains(&format!("SELECT {}", chain(MAX_CHAIN_DOTS + 1, ".\"x\"."))).is_err()
        );
        // Separate names, numbers and dots in literals do not add up.
        assert!(check_name_chains(&format!("SELECT {}", chain(40, ".b c."))).is_ok());
        assert!(check_name_chains(&format!("SELECT {}", chain(40, ".b, c."))).is_ok());
        assert!(check_name_chains(&format!("SELECT 1.5, '{}'", chain(40, "."))).is_ok());
        assert!(
            check_name_chains("SELECT cyoda.entities.orders.state FROM cyoda.entities.orders")
                .is_ok()
        );
    }

    #[test]
    fn question_marks_become_numbered_parameters() {
        assert_eq!(
            number_placeholders("SELECT ? , x FROM t WHERE a = ?"),
            "SELECT $1 , x FROM t WHERE a = $2"
        );
        assert_eq!(
            number_placeholders("SELECT '?', \"?\" -- ?\n, /* ? */ ?"),
            "SELECT '?', \"?\" -- ?\n, /* ? */ $1"
        );
        assert_eq!(
            number_placeholders("SELECT 'it''s ?', ?"),
            "SELECT 'it''s ?', $1"
        );
    }
}
