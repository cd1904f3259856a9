//! The `tsql` binary as a user runs it: output formats, schema listing,
//! errors and exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn tsql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsql"))
        .args(args)
        .output()
        .expect("tsql runs")
}

/// Runs tsql, expects it to succeed (else shows its standard error) and
/// returns its standard output.
fn succeeds(args: &[&str]) -> String {
    let o = tsql(args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("folders");
        std::fs::write(p, text).expect("a file");
    }
    dir
}

fn data(dir: &Path) -> String {
    dir.to_string_lossy().into_owned()
}

const ORDERS: &str = concat!(
    r#"{"type":"ENTITY","data":{"id":"a","note":"x, \"quoted\"","n":1,"tags":["t1"]},"meta":{"id":"e1","state":"NEW","creationDate":"2024-01-01T00:00:00Z","lastUpdateTime":"2024-01-01T00:00:00Z"}}"#,
    "\n",
    r#"{"type":"ENTITY","data":{"id":"b","n":2},"meta":{"id":"e2","state":"NEW","creationDate":"2024-01-02T00:00:00Z","lastUpdateTime":"2024-01-02T00:00:00Z"}}"#,
    "\n"
);

#[test]
fn csv_is_rfc4180_with_header_and_empty_nulls() {
    let dir = folder(&[("orders/1/a.ndjson", ORDERS)]);
    let out = succeeds(&[
        "sql",
        "--data",
        &data(dir.path()),
        "--format",
        "csv",
        "SELECT id, note, n, creation_date FROM orders ORDER BY id",
    ]);
    assert_eq!(
        out,
        "id,note,n,creation_date\r\na,\"x, \"\"quoted\"\"\",1,2024-01-01T00:00:00Z\r\nb,,2,2024-01-02T00:00:00Z\r\n"
    );
}

#[test]
fn json_is_one_object_per_row_with_nulls() {
    let dir = folder(&[("orders/1/a.ndjson", ORDERS)]);
    let out = succeeds(&[
        "sql",
        "--data",
        &data(dir.path()),
        "--format",
        "json",
        "SELECT id, note, tags_array FROM orders ORDER BY id",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"id":"a","note":"x, \"quoted\"","tags_array":["t1"]}"#,
            r#"{"id":"b","note":null,"tags_array":null}"#
        ]
    );
}

#[test]
fn table_output_is_aligned_and_counts_rows() {
    let dir = folder(&[("orders/1/a.ndjson", ORDERS)]);
    let out = succeeds(&[
        "sql",
        "--data",
        &data(dir.path()),
        "SELECT id, note FROM orders ORDER BY id",
    ]);
    assert!(out.contains("| id | note        |"), "{out}");
    assert!(out.contains("| b  | NULL        |"), "{out}");
    assert!(out.ends_with("(2 rows)\n"), "{out}");
}

#[test]
fn query_from_standard_input() {
    let dir = folder(&[("orders/1/a.ndjson", ORDERS)]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsql"))
        .args(["sql", "--data", &data(dir.path()), "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tsql starts");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SELECT sum(n) AS s FROM orders")
        .expect("written");
    let o = child.wait_with_output().expect("tsql ends");
    assert_eq!(stdout(&o), "s\r\n3\r\n");
}

#[test]
fn schema_lists_tables_columns_and_types() {
    let dir = folder(&[("orders/1/a.ndjson", ORDERS)]);
    let out = succeeds(&["schema", "--data", &data(dir.path())]);
    assert!(out.contains("orders  (orders v1, $)"), "{out}");
    assert!(
        out.contains("  tags_array                       ARRAY(VARCHAR)"),
        "{out}"
    );
    assert!(
        out.contains("  n                                BIGINT"),
        "{out}"
    );
    assert!(out.contains("orders_json  (orders v1, $)"), "{out}");
    let one = tsql(&["schema", "--data", &data(dir.path()), "--table", "nope"]);
    assert!(!one.status.success());
    assert!(
        stderr(&one).contains("no table named nope"),
        "{}",
        stderr(&one)
    );
}

#[test]
fn errors_exit_non_zero_and_say_what_to_do() {
    let dir = folder(&[("orders/1/a.ndjson", "{\"a\": 1}\n{\"a\": \n")]);
    let o = tsql(&["sql", "--data", &data(dir.path()), "SELECT * FROM orders"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("orders/1/a.ndjson line 2: malformed JSON"),
        "{err}"
    );
    assert!(err.contains("--on-bad-record skip"), "{err}");

    let o = tsql(&[
        "sql",
        "--data",
        &data(dir.path()),
        "--on-bad-record",
        "skip",
        "--format",
        "csv",
        "SELECT a FROM orders",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "a\r\n1\r\n");
    assert!(
        stderr(&o)
            .contains("skipped 1 bad record (first: orders/1/a.ndjson line 2: malformed JSON"),
        "{}",
        stderr(&o)
    );

    let o = tsql(&["sql", "--data", "/does/not/exist", "SELECT 1"]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn help_teaches_the_model() {
    let o = tsql(&["--help"]);
    let out = stdout(&o);
    assert!(out.contains("point_time"), "{out}");
    let o = tsql(&["sql", "--help"]);
    let out = stdout(&o);
    assert!(out.contains("--on-bad-record"), "{out}");
    assert!(out.contains("tsql sql --demo"), "{out}");
}

#[test]
fn demo_data_answers() {
    let out = succeeds(&[
        "sql",
        "--demo",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM orders",
    ]);
    assert_eq!(out, "n\r\n2999\r\n");
}
