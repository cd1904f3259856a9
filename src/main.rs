//! The `tsql` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tsql::output::{Format, write_results};
use tsql::{DataSource, Engine, EngineOptions};
use tsql_entity_tables::BadRecordPolicy;

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
    Sql {
        #[command(flatten)]
        data: DataArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// The query (read from standard input when left out).
        query: Option<String>,
    },
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
        required_unless_present = "demo"
    )]
    data: Option<PathBuf>,
    /// Use the built-in demo dataset (orders, customers, products_2).
    #[arg(long)]
    demo: bool,
    /// What to do with a record that cannot be read: fail the query naming the
    /// file and line, or skip it and report how many were skipped.
    #[arg(long, value_enum, default_value = "fail")]
    on_bad_record: OnBadRecord,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnBadRecord {
    Fail,
    Skip,
}

impl DataArgs {
    fn open(&self) -> datafusion::error::Result<Engine> {
        let source = match &self.data {
            Some(d) => DataSource::Folder(d.clone()),
            None => DataSource::Demo,
        };
        let on_bad_record = match self.on_bad_record {
            OnBadRecord::Fail => BadRecordPolicy::Fail,
            OnBadRecord::Skip => BadRecordPolicy::Skip,
        };
        Engine::open(
            &source,
            EngineOptions {
                on_bad_record,
                schema: None,
            },
        )
    }
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

async fn run(cli: Cli) -> datafusion::error::Result<()> {
    match cli.command {
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
            let engine = data.open()?;
            let stream = engine.execute(&query).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let result = write_results(stream, format, &mut out).await;
            report_skipped(&engine);
            result.map(|_| ())
        }
        Command::Schema { data, table } => {
            let engine = data.open()?;
            let tables = engine.entity_schema().tables()?;
            let mut found = false;
            let mut text = String::new();
            for (name, t) in tables.iter() {
                if table.as_ref().is_some_and(|want| want != name) {
                    continue;
                }
                found = true;
                text.push_str(&format!(
                    "{name}  ({}, {})\n",
                    t.layout.model, t.layout.json_path
                ));
                for (col, ty) in t.layout.sql_columns() {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.to_string().contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
