//! Replays the fuzz corpus kept in the repository — `fuzz/corpus/<target>/`
//! (seeds and what the long `cargo fuzz` runs kept) and
//! `fuzz/regressions/<target>/` (inputs that once crashed) — through the
//! same `tsql::fuzzing` functions the fuzz targets call, so every test run
//! is a short fuzz run over known-interesting inputs.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus` writes
//! the seed files again (SQL of `sql-tests/`, real sealed tickets, header
//! values and encoded Flight SQL commands).

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Names the input being replayed if the target panics on it.
struct Replaying<'a>(&'a Path);

impl Drop for Replaying<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "the fuzz target panicked on {}: reproduce with `cargo fuzz run <target> {}` in fuzz/",
                self.0.display(),
                self.0.display()
            );
        }
    }
}

/// Replays the corpus of `target` on a thread with the stack tsql's query
/// and serving threads have (statements are parsed and planned there; the
/// debug build's frames need it for deeply nested statements).
fn replay(target: &'static str, run: fn(&[u8])) {
    std::thread::Builder::new()
        .name(format!("replay {target}"))
        .stack_size(tsql::executor::QUERY_THREAD_STACK)
        .spawn(move || replay_here(target, run))
        .expect("a replay thread starts")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn replay_here(target: &str, run: fn(&[u8])) {
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            let bytes = std::fs::read(path).expect("a corpus file is readable");
            let _name = Replaying(path);
            run(&bytes);
            replayed += 1;
        }
    }
    eprintln!("fuzz target {target}: {replayed} inputs replayed");
    assert!(
        replayed > 0,
        "no corpus for fuzz target {target} in fuzz/corpus/{target}: write the seeds with `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`"
    );
}

#[test]
fn sql_text_corpus() {
    replay("sql_text", tsql::fuzzing::sql_text);
}

#[test]
fn ticket_corpus() {
    replay("ticket", tsql::fuzzing::ticket);
}

#[test]
fn trino_headers_corpus() {
    replay("trino_headers", tsql::fuzzing::trino_headers);
}

#[test]
fn flight_command_corpus() {
    replay("flight_command", tsql::fuzzing::flight_command);
}

/// Writes the seed inputs of every target into `fuzz/corpus/<target>/seed-*`.
#[test]
#[ignore = "writes the seed corpus; run on purpose"]
fn write_seed_corpus() {
    for (target, seeds) in [
        ("sql_text", sql_seeds()),
        ("ticket", tsql::fuzzing::seeds::tickets()),
        ("trino_headers", header_seeds()),
        ("flight_command", tsql::fuzzing::seeds::flight_commands()),
    ] {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).unwrap();
        }
    }
}

/// Every statement and query of `sql-tests/*.slt`, and Trino's own statements.
fn sql_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests"))
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "slt"))
            .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if !(line.starts_with("query") || line.starts_with("statement")) {
                continue;
            }
            let mut sql = Vec::new();
            for l in lines.by_ref() {
                if l.trim().is_empty() || l == "----" {
                    break;
                }
                sql.push(l);
            }
            let sql = sql.join("\n");
            if !sql.starts_with("tsql:") && !sql.is_empty() && !out.contains(&sql) {
                out.push(sql);
            }
        }
    }
    for s in [
        "SHOW CATALOGS",
        "SHOW SCHEMAS FROM cyoda LIKE 'e%'",
        "SHOW TABLES",
        "SHOW COLUMNS FROM orders",
        "DESCRIBE cyoda.entities.orders",
        "SHOW FUNCTIONS LIKE 'date%'",
        "USE cyoda.entities",
        "SET SESSION query_max_run_time = '1h'",
        "RESET SESSION query_max_run_time",
        "START TRANSACTION",
        "COMMIT",
        "PREPARE q2 FROM SELECT * FROM orders WHERE state = ?",
        "DEALLOCATE PREPARE q2",
        "EXECUTE q USING 'O-00042'",
        "EXECUTE p USING 1, ARRAY[1,2]",
        "EXECUTE IMMEDIATE 'SELECT ''x'', ?' USING DATE '2024-01-01'",
        "DESCRIBE INPUT q",
        "DESCRIBE OUTPUT p",
        "CALL system.runtime.kill_query(query_id => 'q''1', message => 'slow')",
        "SELECT * FROM information_schema.columns WHERE table_name = 'orders'",
        "SELECT comment FROM cyoda.information_schema.columns",
        "SELECT * FROM system.jdbc.tables",
        "SELECT * FROM system.runtime.queries",
        "SELECT 1, 1 + 2, 'a' UNION ALL SELECT 2, 3, 'b'",
        "SELECT * FROM orders a CROSS JOIN orders b CROSS JOIN orders c",
        "EXPLAIN SELECT count(*) FROM orders",
        "CREATE TABLE t (a INT)",
        "SELECT ((((((((((1))))))))))",
    ] {
        out.push(s.to_string());
    }
    out.into_iter().map(String::into_bytes).collect()
}

/// Header values as Trino clients send them.
fn header_seeds() -> Vec<Vec<u8>> {
    [
        "q=SELECT+*+FROM+orders+WHERE+orderid+%3D+%3F",
        "q1=SELECT+1,q2=SELECT+%3F+%2B+1",
        "query_max_run_time=1h,join_distribution_type=BROADCAST",
        "my.prop=it%27s%2C+100%25",
        "PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION",
        "parametric_datetime",
        "a=%e2%82%ac,b=%zz,c=%4",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
