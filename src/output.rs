//! Writing query results: an aligned table, CSV (RFC 4180) or JSON lines.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

/// Result formats of `tsql sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table (reads the whole result first to size the columns).
    Table,
    /// RFC 4180 CSV with a header row; NULL is an empty field.
    Csv,
    /// One JSON object per row; NULL is `null`.
    Json,
}

fn io(e: std::io::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Writes every batch of `stream` to `out` in `format` and returns the row count.
/// CSV and JSON stream batch by batch; the table waits for the whole result.
pub async fn write_results(
    mut stream: SendableRecordBatchStream,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize> {
    let schema = stream.schema();
    let mut rows = 0;
    match format {
        Format::Table => {
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                batches.push(b);
            }
            let opts = FormatOptions::default().with_null("NULL");
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), &[])?
                    .to_string()
            } else {
                arrow::util::pretty::pretty_format_batches_with_options(&batches, &opts)?
                    .to_string()
            };
            writeln!(out, "{table}").map_err(io)?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(io)?;
        }
        Format::Csv => {
            let header: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| csv_field(f.name()))
                .collect();
            write!(out, "{}\r\n", header.join(",")).map_err(io)?;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                write_csv(&b, out)?;
            }
        }
        Format::Json => {
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
                w.write(&b)?;
                w.finish()?;
            }
        }
    }
    out.flush().map_err(io)?;
    Ok(rows)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(batch: &RecordBatch, out: &mut dyn Write) -> Result<()> {
    let opts = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        for (i, f) in formatters.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            if batch.column(i).is_valid(row) {
                line.push_str(&csv_field(&f.value(row).to_string()));
            }
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes()).map_err(io)?;
    }
    Ok(())
}
