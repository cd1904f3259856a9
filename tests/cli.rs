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
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("tsql.toml");
    let shown = config.to_string_lossy().into_owned();
    let cases = [
        // A value tsql cannot use.
        (
            "memory_limit = \"8 apples\"\n",
            ": key `memory_limit`: expected a size like \"8GB\" or \"512MB\", got \"8 apples\"",
        ),
        // A value of the wrong type: the line too.
        (
            "demo = true\nmax_running_queries = \"eight\"\n",
            ", line 2: key `max_running_queries`: expected a whole number, got string \"eight\"",
        ),
        // A key tsql does not know.
        (
            "demo = true\nmemory_limt = \"8GB\"\n",
            ", line 2: key `memory_limt`: tsql has no such setting here (check the spelling)",
        ),
        // A key of a [[source]].
        (
            "[[source]]\nkind = \"filez\"\ncatalog = \"f\"\n",
            ": [[source]] catalog = \"f\": key `kind`: expected \"cyoda\", \"cassandra\" or \"files\", got \"filez\"",
        ),
    ];
    for (text, said) in cases {
        std::fs::write(&config, text).expect("a config file");
        for args in [
            vec!["sql", "--config", &shown, "--demo", "SELECT 1"],
            vec![
                "serve",
                "--config",
                &shown,
                "--demo",
                "--listen",
                "127.0.0.1:0",
            ],
        ] {
            let o = tsql(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("error: config file {shown}{said}")),
                "{args:?} with {text:?}: {err}"
            );
            assert!(!err.contains("planning"), "{err}");
        }
    }
    let o = tsql(&[
        "sql",
        "--config",
        "/no/such/tsql.toml",
        "--demo",
        "SELECT 1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cannot read config file /no/such/tsql.toml: "),
        "{}",
        stderr(&o)
    );
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

/// Runs `tsql check-config --config <dir>/tsql.toml` with `config` as the
/// file's text and the environment variables `env`.
fn check_config(dir: &Path, config: &str, env: &[(&str, &str)]) -> Output {
    let path = dir.join("tsql.toml");
    std::fs::write(&path, config).expect("a config file");
    Command::new(env!("CARGO_BIN_EXE_tsql"))
        .args(["check-config", "--config", &path.to_string_lossy()])
        .envs(env.iter().copied())
        .env_remove("TSQL_TICKET_KEY")
        .output()
        .expect("tsql runs")
}

#[test]
fn check_config_passes_a_good_config_and_names_the_key_of_a_bad_one() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let hash = succeeds_with_input(&["hash-password"], "s3cret");
    let hash_file = dir.path().join("ann.hash");
    std::fs::write(&hash_file, hash.trim()).expect("a hash file");
    let good = format!(
        "demo = true\nlisten = \"0.0.0.0:32010\"\nmetrics_listen = \"127.0.0.1:9464\"\n\
         ticket_key_env = \"TSQL_TEST_TICKET_KEY\"\nmemory_limit = \"2GB\"\nshutdown_grace_seconds = 45\n\
         [[users]]\nname = \"ann\"\npassword_hash_file = \"{}\"\n",
        hash_file.display()
    );
    let o = check_config(
        dir.path(),
        &good,
        &[("TSQL_TEST_TICKET_KEY", "0123456789abcdef0123456789abcdef")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("config OK: "), "{out}");
    for part in [
        "Flight SQL on grpc://0.0.0.0:32010",
        "1 user",
        "memory_limit 2.0 GiB",
        "shutdown_grace_seconds 45",
    ] {
        assert!(out.contains(part), "{part} in {out}");
    }

    let path = dir.path().join("tsql.toml").display().to_string();
    let cases: Vec<(String, &[(&str, &str)], String)> = vec![
        // The secret's variable is not set.
        (
            good.clone(),
            &[],
            "key `ticket_key_env`: environment variable TSQL_TEST_TICKET_KEY is not set".into(),
        ),
        // The secret file is missing.
        (
            good.replace(&hash_file.display().to_string(), "/nonexistent/ann.hash"),
            &[("TSQL_TEST_TICKET_KEY", "0123456789abcdef0123456789abcdef")],
            "user ann: key `password_hash_file`: cannot read /nonexistent/ann.hash".into(),
        ),
        (
            "demo = true\nmemory_limit = \"lots\"\n".into(),
            &[],
            "key `memory_limit`: expected a size like \"8GB\" or \"512MB\", got \"lots\"".into(),
        ),
        (
            "demo = true\nlisten = \"nowhere\"\n".into(),
            &[],
            "cannot listen on 'nowhere'".into(),
        ),
        (
            "demo = true\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n"
                .into(),
            &[],
            "keys `tls_cert` and `tls_key`: cannot read TLS certificate /nonexistent/c.pem".into(),
        ),
        (
            "[[source]]\nkind = \"cyoda\"\ncatalog = \"c\"\n".into(),
            &[],
            "[[source]] catalog = \"c\": a cyoda source needs `url`".into(),
        ),
        (
            "data = \"/nonexistent/entities\"\n[[users]]\nname = \"a\"\npassword_hash = \"$2b$04$abcdefghijklmnopqrstuuCi9cVzDFhOLcESP5PzTmjMUJYULkDh2\"\n".into(),
            &[],
            "data folder /nonexistent/entities does not exist".into(),
        ),
        (
            "demo = true\nshutdown_grace_seconds = -1\n".into(),
            &[],
            "key `shutdown_grace_seconds`: expected a number of seconds (0 or more), got -1".into(),
        ),
    ];
    for (config, env, want) in cases {
        let o = check_config(dir.path(), &config, env);
        let err = stderr(&o);
        assert!(!o.status.success(), "{config} passed");
        assert!(
            err.starts_with(&format!("error: config file {path}")),
            "{config}: {err}"
        );
        assert!(err.contains(&want), "{config}: want {want}, got {err}");
        assert!(stdout(&o).is_empty(), "{config}");
    }
    let help = succeeds(&["check-config", "--help"]);
    assert!(help.contains("without serving"), "{help}");
    assert!(help.contains("<key>_file"), "{help}");
}

fn succeeds_with_input(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsql"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tsql runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input written");
    let o = child.wait_with_output().expect("tsql ends");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn probe_exits_0_on_2xx_and_1_otherwise() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = std::thread::spawn(move || {
        for answer in [
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nready\n",
            "HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready: shutting down\n",
        ] {
            let (mut s, _) = listener.accept().expect("a connection");
            let mut request = [0u8; 2048];
            let n = s.read(&mut request).expect("a request");
            assert!(
                String::from_utf8_lossy(&request[..n]).starts_with("GET /readyz HTTP/1.0\r\n"),
                "{}",
                String::from_utf8_lossy(&request[..n])
            );
            s.write_all(answer.as_bytes()).expect("an answer");
        }
    });
    let url = format!("http://{addr}/readyz");
    assert_eq!(succeeds(&["probe", &url]), "ready\n");
    let o = tsql(&["probe", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "not ready: shutting down\n");
    assert!(stderr(&o).contains("answered 503"), "{}", stderr(&o));
    server.join().expect("the server thread");
    // Nothing listens there any more; https is refused with a hint.
    let o = tsql(&["probe", "--timeout", "2", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    let o = tsql(&["probe", "https://127.0.0.1:9464/readyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("give an http:// URL"), "{}", stderr(&o));
}
