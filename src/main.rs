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
    /// The log (standard error) has one line per query. SIGTERM (or Ctrl-C)
    /// shuts down gracefully: /readyz answers 503 at once, new queries are
    /// refused, running ones (and the fetching of their results) get
    /// shutdown_grace_seconds (default 30) to finish, then are cancelled;
    /// the exit code is 0. A second signal cancels them at once.
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Check a config file as `serve` would, without serving.
    ///
    /// Reads the config file (and the flags and TSQL_* variables `serve`
    /// reads) and checks everything `serve` checks before it starts: every
    /// key and value, sizes and limits, users and their password hashes,
    /// each [[source]]'s required keys, secrets given as <key>_file (the file
    /// must be readable) or <key>_env (the variable must be set), the TLS
    /// certificate and key (readable, and a pair), and the listen addresses.
    /// It contacts no upstream service and listens on nothing.
    ///
    /// Prints `config OK: FILE: <what would be served>` and exits 0, or
    /// prints the file, the key and the problem and exits 1.
    ///
    /// Examples:
    ///   tsql check-config --config /etc/tsql/tsql.toml
    ///   kubectl exec deploy/tsql -- tsql check-config --config /etc/tsql/tsql.toml
    ///   podman run --rm -v ./tsql.toml:/etc/tsql/tsql.toml:ro localhost/tsql:0.1.0     ///       check-config --config /etc/tsql/tsql.toml
    #[command(verbatim_doc_comment)]
    CheckConfig(ServeArgs),
    /// GET an http:// URL and exit 0 on a 2xx answer (probes without curl).
    ///
    /// Prints the answer's body and exits 0 when its status is 2xx, else 1
    /// (also when nothing answers within --timeout). The container image has
    /// no shell and no curl: Kubernetes exec probes and `helm test` pods run
    /// this instead. Plain HTTP only, as the metrics port serves it.
    ///
    /// Examples:
    ///   tsql probe http://127.0.0.1:9464/readyz
    ///   tsql probe --timeout 2 http://tsql.client-a.svc:9464/healthz
    ///   exec probe: command: ["/usr/local/bin/tsql", "probe", "http://127.0.0.1:9464/readyz"]
    #[command(verbatim_doc_comment)]
    Probe {
        /// The URL, e.g. http://127.0.0.1:9464/readyz.
        url: String,
        /// Seconds to wait for the whole answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
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
    /// Who to run as, exactly as the server would see this login: a user of
    /// the config's [[users]] (its password is checked; its Cassandra
    /// keyspaces and default schema apply), or a Cyoda client id for a
    /// source in passthrough mode (leave it empty and give an access token
    /// as --password).
    #[arg(long, env = "TSQL_USER", default_value = "")]
    user: String,
    /// The user's password, the client secret, or a Cyoda access token.
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
            Some(p) => tsql::config::FileConfig::load(p).map_err(usage_error)?,
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
        let caller = self.caller(&engine, &file).await?;
        // The same catalog and defaults a server gives this caller.
        let (catalog, schema) = engine.defaults_for(&caller.owner);
        let engine = engine
            .for_caller(&caller)
            .await
            .with_defaults(&catalog, &schema)?;
        Ok((engine, caller))
    }

    /// Who the command runs as, checked as a server checks a login: with
    /// `[[users]]` configured, a named `--user` needs its `--password`; a
    /// Cyoda identity (passthrough) is logged in at the service; without
    /// a name, nobody in particular (no tenant's keyspaces).
    async fn caller(
        &self,
        engine: &Engine,
        file: &tsql::config::FileConfig,
    ) -> datafusion::error::Result<Caller> {
        let upstream = engine.passthrough_service();
        let checked = !file.users.is_empty() || upstream.is_some();
        if !checked || (self.user.is_empty() && self.password.is_none()) {
            return Ok(Caller::named(&self.user));
        }
        let Some(password) = &self.password else {
            return Err(usage_error(format!(
                "user '{}' needs a password: give --password (or TSQL_PASSWORD)",
                self.user
            )));
        };
        let auth = tsql::auth::Authenticator::new(
            file.users.clone(),
            upstream,
            file.security().map_err(usage_error)?,
        );
        auth.basic_caller(&self.user, password, None)
            .await
            .map_err(|s| usage_error(s.message().to_string()))
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
            memory: file.memory(serving).map_err(usage_error)?,
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
        .map(|s| s.to_source().map_err(usage_error))
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

/// A mistake in how tsql was started (its config file, flags or input), or
/// a failure to start: shown as it is, not as a query's planning error.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage_error(msg: impl Into<String>) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(Usage(msg.into())))
}

/// What `serve` is to do: the flags, `TSQL_*` variables and config file
/// read and checked, before anything starts. `check-config` stops here, so
/// it checks exactly what `serve` checks.
struct ServePlan {
    file: tsql::config::FileConfig,
    log_format: LogFormat,
    local: Option<DataSource>,
    on_bad_record: BadRecordPolicy,
    listen: std::net::SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    /// Where Trino clients connect, and whether that was configured (a
    /// default that is taken is skipped).
    trino: Option<(std::net::SocketAddr, bool)>,
    /// Where metrics and health are served, and whether that was configured.
    metrics: Option<(std::net::SocketAddr, bool)>,
    /// The configured users, or the demo user.
    users: Vec<tsql::config::User>,
    /// Whether `users` is the demo user.
    demo_user: bool,
    /// Whether Cyoda identities log in through a passthrough source.
    passthrough: bool,
    allow_insecure: bool,
}

/// The address `text` names (`host:port`), or `problem` as the error.
async fn address(text: &str, problem: String) -> datafusion::error::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(text)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| usage_error(problem))
}

/// An optional listen address: `configured`, else `default`; "" for none.
async fn optional_address(
    configured: Option<String>,
    default: &str,
    problem: impl Fn(&str) -> String,
) -> datafusion::error::Result<Option<(std::net::SocketAddr, bool)>> {
    let text = configured.clone().unwrap_or_else(|| default.into());
    if text.is_empty() {
        return Ok(None);
    }
    let addr = address(&text, problem(&text)).await?;
    Ok(Some((addr, configured.is_some())))
}

/// Reads and checks everything `serve` needs, starting nothing: no
/// upstream is contacted, no port is bound.
async fn plan_serve(args: ServeArgs) -> datafusion::error::Result<ServePlan> {
    let file = match &args.config {
        Some(p) => tsql::config::FileConfig::load(p).map_err(usage_error)?,
        None => tsql::config::FileConfig::default(),
    };
    let log_format = match (args.log_format, file.log_format.as_deref()) {
        (Some(f), _) => f,
        (None, None | Some("text")) => LogFormat::Text,
        (None, Some("json")) => LogFormat::Json,
        (None, Some(other)) => {
            return Err(usage_error(format!(
                "key `log_format`: expected \"text\" or \"json\", got \"{other}\""
            )));
        }
    };
    let demo =
        args.demo || (args.data.is_none() && file.data.is_none() && file.demo.unwrap_or(false));
    let local = match (args.data.or(file.data.clone()), demo) {
        (_, true) => Some(DataSource::Demo),
        (Some(d), false) => Some(DataSource::Folder(d)),
        (None, false) => None,
    };
    if local.is_none() && file.sources.is_empty() {
        return Err(usage_error(
            "nothing to serve: give --data DIR (or `data` in the config file), --demo, or [[source]] entries in the config file",
        ));
    }
    let folders = file
        .sources
        .iter()
        .filter(|s| s.kind == "files")
        .filter_map(|s| s.data.clone())
        .chain(match &local {
            Some(DataSource::Folder(d)) => Some(d.clone()),
            _ => None,
        });
    for folder in folders {
        if !folder.is_dir() {
            return Err(usage_error(format!(
                "data folder {} does not exist or is not a folder: point `data` (or --data) at a folder laid out as <model>/<version>/*.ndjson",
                folder.display()
            )));
        }
    }
    let on_bad_record = match (args.on_bad_record, file.on_bad_record.as_deref()) {
        (Some(OnBadRecord::Skip), _) | (None, Some("skip")) => BadRecordPolicy::Skip,
        (Some(OnBadRecord::Fail), _) | (None, Some("fail")) | (None, None) => BadRecordPolicy::Fail,
        (None, Some(other)) => {
            return Err(usage_error(format!(
                "key `on_bad_record`: expected \"fail\" or \"skip\", got \"{other}\""
            )));
        }
    };
    let listen_text = args
        .listen
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:32010".into());
    let listen = address(
        &listen_text,
        format!("cannot listen on '{listen_text}': give host:port, e.g. 127.0.0.1:32010"),
    )
    .await?;
    let tls = match (
        args.tls_cert.or(file.tls_cert.clone()),
        args.tls_key.or(file.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(usage_error(
                "TLS needs both a certificate and a key (tls_cert and tls_key)",
            ));
        }
    };
    if let Some((cert, key)) = &tls {
        tsql::trino::check_tls(cert, key)
            .map_err(|e| usage_error(format!("keys `tls_cert` and `tls_key`: {e}")))?;
    }
    let trino = optional_address(
        args.trino_listen.or(file.trino_listen.clone()),
        "127.0.0.1:8080",
        |t| format!("cannot listen for Trino clients on '{t}': give host:port, or \"\" for none"),
    )
    .await?;
    let metrics = optional_address(file.metrics_listen.clone(), "127.0.0.1:9464", |t| {
        format!("cannot listen for metrics on '{t}': give host:port, or \"\" for none")
    })
    .await?;
    let passthrough = file
        .sources
        .iter()
        .any(|s| s.kind == "cyoda" && s.auth.as_deref() == Some("passthrough"));
    let mut users = file.users.clone();
    let mut demo_user = false;
    if users.is_empty() && !passthrough {
        if !demo {
            return Err(usage_error(
                "no users configured: add [[users]] with name and password_hash (from `tsql hash-password`) to a config file and pass --config, or a Cyoda [[source]] with auth = \"passthrough\"",
            ));
        }
        let (name, password) = tsql::config::DEMO_USER;
        users.push(tsql::config::User {
            name: name.into(),
            password_hash: tsql::config::hash_password(password),
            roles: vec!["admin".into()],
            ..Default::default()
        });
        demo_user = true;
    }
    file.memory(true).map_err(usage_error)?;
    file.cluster().map_err(usage_error)?;
    let allow_insecure = file.trino_allow_insecure.unwrap_or(demo);
    Ok(ServePlan {
        file,
        log_format,
        local,
        on_bad_record,
        listen,
        tls,
        trino,
        metrics,
        users,
        demo_user,
        passthrough,
        allow_insecure,
    })
}

impl ServePlan {
    /// One line saying what would be served (for `check-config`).
    fn summary(&self) -> datafusion::error::Result<String> {
        let scheme = if self.tls.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        };
        let mut parts = vec![format!("Flight SQL on {scheme}://{}", self.listen)];
        match self.trino {
            Some((a, _)) => parts.push(format!("Trino on {a}")),
            None => parts.push("no Trino port".into()),
        }
        match self.metrics {
            Some((a, _)) => parts.push(format!("metrics and health on {a}")),
            None => parts.push("no metrics port".into()),
        }
        let mut catalogs: Vec<String> = sources(self.local.clone(), &self.file)?
            .iter()
            .map(|s| s.catalog().to_string())
            .collect();
        catalogs.sort();
        parts.push(format!("catalogs: {}", catalogs.join(", ")));
        if self.demo_user {
            parts.push("the demo user admin".into());
        } else {
            parts.push(format!(
                "{} user{}",
                self.users.len(),
                if self.users.len() == 1 { "" } else { "s" }
            ));
        }
        if self.passthrough {
            parts.push("Cyoda identities log in (passthrough)".into());
        }
        if let Some(m) = self.file.memory(true).map_err(usage_error)? {
            parts.push(format!(
                "memory_limit {} (per query {})",
                tsql::memory::show_size(m.limit),
                tsql::memory::show_size(m.per_query)
            ));
        }
        if let Some(c) = self.file.cluster().map_err(usage_error)? {
            parts.push(format!(
                "cluster: fragments on {}, workers [{}], distributed {}",
                c.worker_listen,
                c.workers.join(", "),
                c.mode.name()
            ));
        }
        let a = self.file.admission().map_err(usage_error)?;
        parts.push(format!(
            "max_running_queries {}, max_queries_per_user {}",
            a.max_running, a.per_user
        ));
        parts.push(format!(
            "shutdown_grace_seconds {}",
            self.file
                .shutdown_grace()
                .map_err(usage_error)?
                .as_secs_f64()
        ));
        Ok(parts.join("; "))
    }
}

/// `tsql check-config`: what `serve` would check, and a summary.
async fn check_config(args: ServeArgs) -> datafusion::error::Result<()> {
    let Some(path) = args.config.clone() else {
        return Err(usage_error(
            "give the config file to check: tsql check-config --config FILE (or TSQL_CONFIG)",
        ));
    };
    match plan_serve(args).await.and_then(|plan| plan.summary()) {
        Ok(summary) => {
            println!("config OK: {}: {summary}", path.display());
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            let message = message.strip_prefix("External error: ").unwrap_or(&message);
            if message.starts_with("config file ") {
                Err(usage_error(message))
            } else {
                Err(usage_error(format!(
                    "config file {}: {message}",
                    path.display()
                )))
            }
        }
    }
}

async fn serve(args: ServeArgs) -> datafusion::error::Result<()> {
    let plan = plan_serve(args).await?;
    start_logging(plan.log_format);
    tsql::container::log_limits();
    let file = &plan.file;
    let engine = open_engine(plan.local.clone(), file, plan.on_bad_record, true)?;
    let engine = join_cluster(engine, file).await?;
    let upstream = engine.passthrough_service();
    let mut note = String::new();
    if plan.demo_user {
        let (name, password) = tsql::config::DEMO_USER;
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
    let security = file.security().map_err(usage_error)?;
    let auth = std::sync::Arc::new(tsql::auth::Authenticator::new(
        plan.users.clone(),
        upstream,
        security,
    ));
    let scheme = if plan.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let options = tsql::flight::ServeOptions {
        listen: plan.listen,
        tls: plan.tls.clone(),
    };
    let serving = tsql::serving::Serving::new(
        engine,
        auth,
        file.admission().map_err(usage_error)?,
        file.shutdown_grace().map_err(usage_error)?,
    )
    .map_err(usage_error)?;
    if let Some(cluster) = serving.engine.cluster() {
        let workers = cluster.workers.clone();
        serving
            .admission
            .join_cluster(tsql::admission::ClusterGate {
                limit: cluster
                    .settings
                    .max_running
                    .unwrap_or(serving.admission.settings().max_running),
                elsewhere: Box::new(move || workers.running_elsewhere()),
            });
    }
    let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    serve_metrics(&plan, &serving, listening.clone()).await?;
    serve_trino(&plan, &serving).await?;
    tsql::flight::serve(&serving, options, move |addr| {
        listening.store(true, std::sync::atomic::Ordering::Release);
        tracing::info!("tsql: serving Arrow Flight SQL on {scheme}://{addr}{note}");
    })
    .await
    .map_err(usage_error)?;
    tracing::info!("tsql: stopped");
    Ok(())
}

/// The engine as a node of the config file's cluster (it serves fragments
/// on `worker_listen` and plans over `workers`), or as it is without one.
async fn join_cluster(
    engine: Engine,
    file: &tsql::config::FileConfig,
) -> datafusion::error::Result<Engine> {
    let Some(settings) = file.cluster().map_err(usage_error)? else {
        return Ok(engine);
    };
    let listen = settings.worker_listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
        usage_error(format!(
            "cannot listen for cluster fragments on '{listen}': {e}; give worker_listen as a free host:port"
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| usage_error(e.to_string()))?;
    let entries = settings.workers.join(", ");
    let cluster = tsql::cluster::Cluster::start(settings, addr).await?;
    let engine = engine.with_cluster(cluster.clone())?;
    cluster.serve(listener);
    tracing::info!(
        "tsql: serving cluster fragments on {addr} (reached as {}); workers: [{entries}], {} answering",
        cluster.self_url,
        cluster.workers.live().len()
    );
    Ok(engine)
}

/// Starts the Trino protocol front end where `trino_listen` says
/// (127.0.0.1:8080 by default; when that default port is taken, the server
/// runs without it and says so).
async fn serve_trino(
    plan: &ServePlan,
    serving: &tsql::serving::Serving,
) -> datafusion::error::Result<()> {
    let Some((listen, configured)) = plan.trino else {
        return Ok(());
    };
    let tls = plan.tls.clone();
    let allow_insecure = plan.allow_insecure;
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
            tracing::info!("tsql: serving the Trino protocol on {scheme}://{local} ({how})");
            Ok(())
        }
        Err(e) if !configured => {
            tracing::warn!("tsql: {e}; serving without the Trino protocol");
            Ok(())
        }
        Err(e) => Err(usage_error(e)),
    }
}

/// Starts `/metrics`, `/healthz` and `/readyz` where `metrics_listen` says
/// (127.0.0.1:9464 by default; when that default port is taken, the server
/// runs without them and says so). `/readyz` answers 503 from the moment
/// shutdown begins.
async fn serve_metrics(
    plan: &ServePlan,
    serving: &tsql::serving::Serving,
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> datafusion::error::Result<()> {
    let engine = &serving.engine;
    let Some((addr, configured)) = plan.metrics else {
        return Ok(());
    };
    let m = tsql::metrics::metrics();
    if let Some(memory) = plan.file.memory(true).map_err(usage_error)? {
        m.memory_limit.set(memory.limit as i64);
    }
    let ready_engine = engine.clone();
    let shutdown = serving.shutdown.clone();
    let ready: tsql::metrics::ReadyCheck = std::sync::Arc::new(move || {
        let (engine, listening) = (ready_engine.clone(), listening.clone());
        let draining = shutdown.is_draining();
        Box::pin(async move {
            if draining {
                // At once, so the load balancer sends no new clients here.
                return Err("shutting down".to_string());
            }
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
        if let Some(c) = gauge_engine.cluster() {
            m.cluster_workers.set(c.workers.live().len() as i64);
            m.cluster_running_elsewhere
                .set(c.workers.running_elsewhere() as i64);
        }
    });
    match tsql::metrics::serve_metrics(addr, ready, refresh).await {
        Ok(local) => {
            tracing::info!("tsql: metrics on http://{local}/metrics (health: /healthz, /readyz)");
            Ok(())
        }
        Err(e) if !configured => {
            tracing::warn!("tsql: {e}; running without metrics");
            Ok(())
        }
        Err(e) => Err(usage_error(e)),
    }
}

async fn run(cli: Cli) -> datafusion::error::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig(args) => check_config(args).await,
        Command::Probe { url, timeout } => {
            let timeout = std::time::Duration::from_secs_f64(timeout.max(0.1));
            let answer = tsql::probe::get(&url, timeout).await.map_err(usage_error)?;
            print!("{}", answer.body);
            if !answer.body.is_empty() && !answer.body.ends_with('\n') {
                println!();
            }
            if answer.is_success() {
                Ok(())
            } else {
                Err(usage_error(format!("{url} answered {}", answer.status)))
            }
        }
        Command::HashPassword => {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let password = text.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(usage_error(
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
            // A spill limit is answered plainly, not as the I/O error it travels in.
            let result = write_results(stream, format, &mut out)
                .await
                .map_err(tsql::spill::limit_error);
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
        // The cores the container's CPU quota allows, not the node's.
        .worker_threads(tsql::container::query_threads())
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
        Err(datafusion::error::DataFusionError::External(e)) if e.is::<Usage>() => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
