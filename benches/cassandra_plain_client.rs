//! The baseline of `benches/cassandra_scan.py`: a plain scylla-driver scan of a
//! table, the practical limit for tsql's Cassandra connector. It splits the
//! token ring into `splits` equal ranges, reads them with `workers`
//! concurrent paged queries (each range on a replica owning it, by token
//! awareness of the range's end), deserializes every row into typed Rust
//! values and, with a threshold, reads only `amount` and counts and sums the
//! rows whose `amount` exceeds it (the filtered scan).
//!
//! ```text
//! cassandra_plain_client HOST:PORT KEYSPACE TABLE SPLITS WORKERS [THRESHOLD]
//! ```
//! prints `rows=<read> matched=<n> sum=<s> seconds=<t>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;

type BenchRow = (
    i32,
    i32,
    i64,
    String,
    f64,
    Option<scylla::value::CqlTimestamp>,
);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!(
            "usage: cassandra_plain_client HOST:PORT KEYSPACE TABLE SPLITS WORKERS [THRESHOLD]"
        );
        std::process::exit(2);
    }
    let (host, ks, table) = (&args[1], &args[2], &args[3]);
    let splits: i128 = args[4].parse().expect("SPLITS is a number");
    let workers: usize = args[5].parse().expect("WORKERS is a number");
    let threshold: Option<f64> = args
        .get(6)
        .map(|t| t.parse().expect("THRESHOLD is a number"));
    let session = Arc::new(
        SessionBuilder::new()
            .known_node(host)
            .build()
            .await
            .expect("connect"),
    );
    // The filtered scan reads only the column it needs, as tsql does.
    let columns = if threshold.is_some() {
        "amount"
    } else {
        "bucket, seq, id, name, amount, ts"
    };
    let cql = format!(
        "SELECT {columns} FROM {ks}.{table} WHERE token(bucket) > ? AND token(bucket) <= ?"
    );
    let mut prepared = session.prepare(cql).await.expect("prepare");
    prepared.set_consistency(Consistency::Quorum);
    prepared.set_page_size(5000);
    let step = (u64::MAX as i128) / splits;
    let ranges: Vec<(i64, i64)> = (0..splits)
        .map(|k| {
            let lo = i64::MIN as i128 + step * k;
            let hi = if k == splits - 1 {
                i64::MAX as i128
            } else {
                lo + step
            };
            (lo as i64, hi as i64)
        })
        .collect();
    let ranges = Arc::new(ranges);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (session, prepared, ranges, next) = (
            session.clone(),
            prepared.clone(),
            ranges.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut rows, mut matched, mut sum) = (0usize, 0usize, 0f64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((lo, hi)) = ranges.get(i).copied() else {
                    break;
                };
                let pager = session
                    .execute_iter(prepared.clone(), (lo, hi))
                    .await
                    .expect("query");
                if let Some(t) = threshold {
                    let mut stream = pager.rows_stream::<(f64,)>().expect("row type");
                    while let Some(row) = stream.next().await {
                        let (amount,) = row.expect("row");
                        rows += 1;
                        if amount > t {
                            matched += 1;
                            sum += amount;
                        }
                    }
                } else {
                    let mut stream = pager.rows_stream::<BenchRow>().expect("row type");
                    while let Some(row) = stream.next().await {
                        let row = row.expect("row");
                        rows += 1;
                        matched += 1;
                        sum += row.4;
                        std::hint::black_box(&row);
                    }
                }
            }
            (rows, matched, sum)
        }));
    }
    let (mut rows, mut matched, mut sum) = (0, 0, 0.0);
    for t in tasks {
        let (r, m, s) = t.await.expect("worker");
        rows += r;
        matched += m;
        sum += s;
    }
    println!(
        "rows={rows} matched={matched} sum={sum} seconds={:.3}",
        started.elapsed().as_secs_f64()
    );
}
