//! The `tsql` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tsql::output::{Format, write_results};
use tsql::{Caller, DataSource, Engine, EngineOptions, Source};
use tsql_entity_tables::BadRecordPolicy;
use tsql_entity_tables::{CATALOG, SCHEMA};

/// SQL over Cyoda entities.
///
/// Every entity model becomes a set of tables in catalog `cyoda`, schema
/// `entities`: the root table `<model>` (one row per entity), one table per
/// array of objects (`<model>_<array>`, with `index_0…` positions), detached
/// tables for 2-D/3-D arrays (`<model>_<field>_array`) and `<model>_json`.
/// Every table starts with entity_id, point_time, creation_date,
/// last_update_date and state. Read an earlier instant with
/// `WHERE point_time = TIMESTAMP '2024-06-01 12:00:00'` (UTC).
#[derive(Parser)]
#[command(name = "tsql", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one SQL query and print the result.
    ///
    /// Examples:
    ///   tsql sql --demo "SELECT channel, count(*) FROM orders GROUP BY channel"
    ///   tsql sql --data ./entities --format csv "SELECT * FROM orders_lines"
    ///   tsql sql --config cyoda.toml --user CLIENT_ID --password SECRET \
    ///            "SELECT state, count(*) FROM cyoda.entities.orders GROUP BY state"
    #[command(verbatim_doc_comment)]
    Sql {
        #[command(flatten)]
        data: DataArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// The query (read from standard input when left out).
        query: Option<String>,
    },
    /// Serve Arrow Flight SQL (JDBC, ADBC, pyarrow, DBeaver, BI tools).
    ///
    /// Settings come from flags, then TSQL_* environment variables, then the
    /// config file (see the README for its keys).
    ///
    /// Examples:
    ///   tsql serve --demo      # 127.0.0.1:32010, user admin, password admin
    ///   tsql serve --data ./entities --listen 0.0.0.0:32010 --config tsql.toml
    ///   JDBC: jdbc:arrow-flight-sql://localhost:32010/?useEncryption=false&user=admin&password=admin
    ///   ADBC: adbc_driver_flightsql.dbapi.connect("grpc://localhost:32010",
    ///           db_kwargs={"username": "admin", "password": "admin"})
    ///
    /// A Cyoda entity service is a [[source]] in the config file:
    ///   [[source]]
    ///   kind = "cyoda"
    ///   catalog = "cyoda"                # tables: cyoda.entities.<table>
    ///   url = "http://cpm.internal:8080/api"
    ///   auth = "passthrough"             # users log in with Cyoda client id + secret
    ///                                    # (or a Cyoda access token as the password)
    ///
    /// So is a Cassandra or ScyllaDB cluster (tables: cassandra.<keyspace>.<table>):
    ///   [[source]]
    ///   kind = "cassandra"
    ///   catalog = "cassandra"
    ///   contact_points = ["10.0.0.1:9042"]
    ///   keyspaces = ["client_a"]
    ///   consistency = "QUORUM"
    ///   [source.tenants]                 # optional: who sees which keyspaces
    ///   alice = ["client_a"]
    ///   [[source.entity_table]]          # rows of entity revisions -> entity tables
    ///   table = "client_a.entities"      # (+ the column names: see the README)
    ///
    /// Many users: memory_limit, max_running_queries, query_timeout_seconds, …
    /// in the config file; SELECT * FROM system.runtime.queries shows what runs,
    /// CALL system.runtime.kill_query('<id>') stops a query; metrics and health
    /// on http://127.0.0.1:9464/metrics, /healthz, /readyz.
    ///
    /// The log (standard error) has one line per query; SIGTERM stops the
    /// server, giving running queries 10 s to finish.
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Print an argon2 hash of a password (read from standard input) for the
    /// `password_hash` of a user in the config file (bcrypt hashes are accepted too).
    HashPassword,
    /// List every table and column with its SQL type.
    Schema {
        #[command(flatten)]
        data: DataArgs,
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
    },
}

#[derive(Args)]
struct DataArgs {
    /// A folder of entities laid out as <model>/<version>/*.ndjson or *.json
    /// (Cyoda envelopes {"type":"ENTITY","data":…,"meta":…} or bare objects).
    #[arg(
        long,
        env = "TSQL_DATA",
        conflicts_with = "demo",
        required_unless_present_any = ["demo", "config"]
    )]
    data: Option<PathBuf>,
    /// Use the built-in demo dataset (orders, customers, products_2).
    #[arg(long)]
    demo: bool,
    /// TOML config file whose [[source]] entries (a Cyoda service, more
    /// folders) become catalogs besides --data/--demo.
    #[arg(long, env = "TSQL_CONFIG")]
    config: Option<PathBuf>,
    /// Who to read a Cyoda source in passthrough mode as: a Cyoda client id
    /// (leave it empty and give an access token as --password).
    #[arg(long, env = "TSQL_USER", default_value = "")]
    user: String,
    /// The client secret, or a Cyoda access token.
    #[arg(long, env = "TSQL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// What to do with a record that cannot be read: fail the query naming the
    /// file and line, or skip it and report how many were skipped.
    #[arg(long, value_enum, default_value = "fail")]
    on_bad_record: OnBadRecord,
}

#[derive(Args)]
struct ServeArgs {
    /// A folder of entities laid out as <model>/<version>/*.ndjson or *.json.
    #[arg(long, env = "TSQL_DATA", conflicts_with = "demo")]
    data: Option<PathBuf>,
    /// Serve the built-in demo dataset; without configured users, user
    /// `admin` with password `admin` may connect.
    #[arg(long)]
    demo: bool,
    /// Address to listen on [default: 127.0.0.1:32010].
    #[arg(long, env = "TSQL_LISTEN")]
    listen: Option<String>,
    /// Where Trino clients connect over HTTP [default: 127.0.0.1:8080;
    /// "" for nowhere]. Without TLS, Trino clients send no password: only
    /// the demo data or `trino_allow_insecure = true` lets them in.
    #[arg(long, env = "TSQL_TRINO_LISTEN")]
    trino_listen: Option<String>,
    /// TOML config file: listen, data, demo, on_bad_record, tls_cert, tls_key,
    /// [[users]], [[source]] entries (a Cyoda service, more folders), limits
    /// (memory_limit, query_memory_limit, spill_dir, max_running_queries,
    /// max_queued_queries, max_queries_per_user, query_timeout_seconds),
    /// metrics_listen and log_format.
    #[arg(long, env = "TSQL_CONFIG")]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve grpc+tls (with --tls-key).
    #[arg(long, env = "TSQL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TSQL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// What to do with a record that cannot be read [default: fail].
    #[arg(long, value_enum, env = "TSQL_ON_BAD_RECORD")]
    on_bad_record: Option<OnBadRecord>,
    /// Log lines as text or as JSON objects (query id, user, rows, … as fields)
    /// [default: text].
    #[arg(long, value_enum, env = "TSQL_LOG_FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to standard error, as text or JSON; a panic is logged once, with its backtrace.
fn start_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(backtrace = %backtrace, "panic: {info}");
    }));
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnBadRecord {
    Fail,
    Skip,
}

impl DataArgs {
    async fn open(&self) -> datafusion::error::Result<(Engine, Caller)> {
        let file = match &self.config {
            Some(p) => tsql::config::FileConfig::load(p).map_err(plan_error)?,
            None => tsql::config::FileConfig::default(),
        };
        let local = match (&self.data, self.demo) {
            (Some(d), _) => Some(DataSource::Folder(d.clone())),
            (None, true) => Some(DataSource::Demo),
            (None, false) => None,
        };
        let on_bad_record = match self.on_bad_record {
            OnBadRecord::Fail => BadRecordPolicy::Fail,
            OnBadRecord::Skip => BadRecordPolicy::Skip,
        };
        let engine = open_engine(local, &file, on_bad_record, false)?;
        let caller = match (engine.passthrough_service(), &self.password) {
            (Some(service), Some(password)) => {
                let identity = if self.user.is_empty() {
                    service.verify_token(password).await
                } else {
                    service.login(&self.user, password).await
                }
                .map_err(datafusion::error::DataFusionError::from)?;
                Caller {
                    name: format!("{}@{}", identity.subject, identity.tenant),
                    upstream: Some(identity),
                    sees_all: false,
                }
            }
            _ => Caller::named(&self.user),
        };
        let engine = engine.for_caller(&caller).await;
        Ok((engine, caller))
    }
}

/// An engine over the config file's sources and the local files.
fn open_engine(
    local: Option<DataSource>,
    file: &tsql::config::FileConfig,
    on_bad_record: BadRecordPolicy,
    serving: bool,
) -> datafusion::error::Result<Engine> {
    Engine::with_sources(
        &sources(local, file)?,
        EngineOptions {
            on_bad_record,
            schema: None,
            memory: file.memory(serving).map_err(plan_error)?,
        },
    )
}

/// The engine's sources: the config file's [[source]] entries, then local
/// files from --data/--demo (in catalog `cyoda`, or `local` when a configured
/// source already uses `cyoda`).
fn sources(
    local: Option<DataSource>,
    file: &tsql::config::FileConfig,
) -> datafusion::error::Result<Vec<Source>> {
    let mut out = file
        .sources
        .iter()
        .map(|s| s.to_source().map_err(plan_error))
        .collect::<datafusion::error::Result<Vec<Source>>>()?;
    if let Some(data) = local {
        let taken = out.iter().any(|s| s.catalog() == CATALOG);
        out.push(Source::Files {
            catalog: if taken { "local" } else { CATALOG }.to_string(),
            schema: SCHEMA.to_string(),
            data,
        });
    }
    Ok(out)
}

fn report_skipped(engine: &Engine) {
    let (n, first) = engine.skipped_records();
    if n > 0 {
        eprintln!(
            "skipped {n} bad record{} (first: {})",
            if n == 1 { "" } else { "s" },
            first.unwrap_or_default()
        );
    }
}

fn plan_error(msg: impl Into<String>) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Plan(msg.into())
}

async fn serve(args: ServeArgs) -> datafusion::error::Result<()> {
    let file = match &args.config {
        Some(p) => tsql::config::FileConfig::load(p).map_err(plan_error)?,
        None => tsql::config::FileConfig::default(),
    };
    let log_format = match (args.log_format, file.log_format.as_deref()) {
        (Some(f), _) => f,
        (None, None | Some("text")) => LogFormat::Text,
        (None, Some("json")) => LogFormat::Json,
        (None, Some(other)) => {
            return Err(plan_error(format!(
                "config: log_format must be \"text\" or \"json\", not \"{other}\""
            )));
        }
    };
    start_logging(log_format);
    let demo =
        args.demo || (args.data.is_none() && file.data.is_none() && file.demo.unwrap_or(false));
    let local = match (args.data.or(file.data.clone()), demo) {
        (_, true) => Some(DataSource::Demo),
        (Some(d), false) => Some(DataSource::Folder(d)),
        (None, false) => None,
    };
    if local.is_none() && file.sources.is_empty() {
        return Err(plan_error(
            "nothing to serve: give --data DIR (or `data` in the config file), --demo, or [[source]] entries in the config file",
        ));
    }
    let on_bad_record = match (args.on_bad_record, file.on_bad_record.as_deref()) {
        (Some(OnBadRecord::Skip), _) | (None, Some("skip")) => BadRecordPolicy::Skip,
        (Some(OnBadRecord::Fail), _) | (None, Some("fail")) | (None, None) => BadRecordPolicy::Fail,
        (None, Some(other)) => {
            return Err(plan_error(format!(
                "config: on_bad_record must be \"fail\" or \"skip\", not \"{other}\""
            )));
        }
    };
    let listen_text = args
        .listen
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:32010".into());
    let listen = tokio::net::lookup_host(&listen_text)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            plan_error(format!(
                "cannot listen on '{listen_text}': give host:port, e.g. 127.0.0.1:32010"
            ))
        })?;
    let tls = match (
        args.tls_cert.or(file.tls_cert.clone()),
        args.tls_key.or(file.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(plan_error(
                "TLS needs both a certificate and a key (tls_cert and tls_key)",
            ));
        }
    };
    let engine = open_engine(local, &file, on_bad_record, true)?;
    let upstream = engine.passthrough_service();
    let mut users = file.users.clone();
    let mut note = String::new();
    if users.is_empty() && upstream.is_none() {
        if !demo {
            return Err(plan_error(
                "no users configured: add [[users]] with name and password_hash (from `tsql hash-password`) to a config file and pass --config, or a Cyoda [[source]] with auth = \"passthrough\"",
            ));
        }
        let (name, password) = tsql::config::DEMO_USER;
        users.push(tsql::config::User {
            name: name.into(),
            password_hash: tsql::config::hash_password(password),
            roles: vec!["admin".into()],
        });
        note = format!(", user {name}, password {password}");
    }
    if let Some(service) = &upstream {
        note.push_str(&format!(
            "; Cyoda identities (client id and secret, or an access token) log in through {}",
            service.options().url
        ));
    }
    let mut catalogs = engine.context().catalog_names();
    catalogs.sort();
    note.push_str(&format!("; catalogs: {}", catalogs.join(", ")));
    let auth = std::sync::Arc::new(tsql::flight::Authenticator::new(users, upstream));
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let trino_tls = tls.clone();
    let options = tsql::flight::ServeOptions { listen, tls };
    let serving = tsql::serving::Serving::new(engine, auth, file.admission().map_err(plan_error)?)
        .map_err(plan_error)?;
    let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    serve_metrics(&file, &serving.engine, listening.clone()).await?;
    let allow_insecure = file.trino_allow_insecure.unwrap_or(demo);
    serve_trino(
        args.trino_listen.or(file.trino_listen.clone()),
        &serving,
        allow_insecure,
        trino_tls,
    )
    .await?;
    tsql::flight::serve(&serving, options, move |addr| {
        listening.store(true, std::sync::atomic::Ordering::Release);
        eprintln!("tsql: serving Arrow Flight SQL on {scheme}://{addr}{note}");
    })
    .await
    .map_err(plan_error)
}

/// Starts the Trino protocol front end where `trino_listen` says
/// (127.0.0.1:8080 by default; when that default port is taken, the server
/// runs without it and says so).
async fn serve_trino(
    configured: Option<String>,
    serving: &tsql::serving::Serving,
    allow_insecure: bool,
    tls: Option<(PathBuf, PathBuf)>,
) -> datafusion::error::Result<()> {
    let text = configured
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    if text.is_empty() {
        return Ok(());
    }
    let listen = tokio::net::lookup_host(&text)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            plan_error(format!(
                "cannot listen for Trino clients on '{text}': give host:port, or \"\" for none"
            ))
        })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = tsql::trino::TrinoOptions {
        listen,
        allow_insecure,
        tls,
    };
    match tsql::trino::serve_trino(serving.clone(), options).await {
        Ok(local) => {
            let how = if allow_insecure {
                "X-Trino-User without a password is trusted"
            } else {
                "users log in with a password"
            };
            eprintln!("tsql: serving the Trino protocol on {scheme}://{local} ({how})");
            Ok(())
        }
        Err(e) if configured.is_none() => {
            eprintln!("tsql: {e}; serving without the Trino protocol");
            Ok(())
        }
        Err(e) => Err(plan_error(e)),
    }
}

/// Starts `/metrics`, `/healthz` and `/readyz` where `metrics_listen` says
/// (127.0.0.1:9464 by default; when that default port is taken, the server
/// runs without them and says so).
async fn serve_metrics(
    file: &tsql::config::FileConfig,
    engine: &Engine,
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> datafusion::error::Result<()> {
    let configured = file.metrics_listen.clone();
    let text = configured
        .clone()
        .unwrap_or_else(|| "127.0.0.1:9464".into());
    if text.is_empty() {
        return Ok(());
    }
    let addr = tokio::net::lookup_host(&text)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            plan_error(format!(
                "cannot listen for metrics on '{text}': give host:port, or \"\" for none"
            ))
        })?;
    let m = tsql::metrics::metrics();
    if let Some(memory) = file.memory(true).map_err(plan_error)? {
        m.memory_limit.set(memory.limit as i64);
    }
    let ready_engine = engine.clone();
    let ready: tsql::metrics::ReadyCheck = std::sync::Arc::new(move || {
        let (engine, listening) = (ready_engine.clone(), listening.clone());
        Box::pin(async move {
            if !listening.load(std::sync::atomic::Ordering::Acquire) {
                return Err("the Flight SQL port is not listening yet".to_string());
            }
            engine.check_sources().await
        })
    });
    let gauge_engine = engine.clone();
    let refresh = std::sync::Arc::new(move || {
        m.memory_reserved.set(gauge_engine.memory_reserved() as i64);
        let (bytes, files) = gauge_engine.spilling();
        m.spill_bytes.set(bytes as i64);
        m.spill_files.set(files as i64);
    });
    match tsql::metrics::serve_metrics(addr, ready, refresh).await {
        Ok(local) => {
            eprintln!("tsql: metrics on http://{local}/metrics (health: /healthz, /readyz)");
            Ok(())
        }
        Err(e) if configured.is_none() => {
            eprintln!("tsql: {e}; running without metrics");
            Ok(())
        }
        Err(e) => Err(plan_error(e)),
    }
}

async fn run(cli: Cli) -> datafusion::error::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::HashPassword => {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let password = text.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(plan_error(
                    "give the password on standard input, e.g. `echo -n secret | tsql hash-password`",
                ));
            }
            println!("{}", tsql::config::hash_password(password));
            Ok(())
        }
        Command::Sql {
            data,
            format,
            query,
        } => {
            let query = match query {
                Some(q) => q,
                None => std::io::read_to_string(std::io::stdin())
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
            };
            let (engine, _caller) = data.open().await?;
            let stream = engine.execute(&query).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let result = write_results(stream, format, &mut out).await;
            report_skipped(&engine);
            result.map(|_| ())
        }
        Command::Schema { data, table } => {
            let (engine, _caller) = data.open().await?;
            let tables = engine.layouts()?;
            let qualified = engine.context().catalog_names().len() > 1;
            let mut found = false;
            let mut text = String::new();
            for (full, layout) in tables.iter() {
                let name = full.rsplit('.').next().unwrap_or(full);
                if table
                    .as_ref()
                    .is_some_and(|want| want != name && want != full)
                {
                    continue;
                }
                found = true;
                let shown = if qualified { full } else { name };
                text.push_str(&format!(
                    "{shown}  ({}, {})\n",
                    layout.model, layout.json_path
                ));
                for (col, ty) in layout.sql_columns() {
                    text.push_str(&format!("  {col:<32} {ty}\n"));
                }
            }
            // A closed pipe (`tsql schema | head`) is not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            report_skipped(&engine);
            if !found {
                let what = table
                    .map(|t| format!("no table named {t}"))
                    .unwrap_or_else(|| "no entity models found".into());
                return Err(datafusion::error::DataFusionError::Plan(format!(
                    "{what}: the data folder holds <model>/<version>/*.ndjson files"
                )));
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two TLS back ends are linked in (ring for Flight SQL and the Cyoda
    // client, aws-lc through the Cassandra driver): name the one TLS
    // servers and clients use, or building a TLS config panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(tsql::executor::QUERY_THREAD_STACK)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(run(cli));
    // Work still running (a stream past the shutdown grace period) is stopped here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.to_string().contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
