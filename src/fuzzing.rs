//! Fuzzing entry points: one function per fuzz target of `fuzz/` (run with
//! `cargo fuzz`) and of `tests/fuzz_corpus.rs` (which replays the kept
//! corpus in every test run). Each takes arbitrary bytes and sends them the
//! way a client's input goes through tsql: SQL text through parsing, the
//! Trino rewrites and planning (never execution); sealed tickets; the Trino
//! client headers; Flight SQL commands, tickets and actions through the
//! Flight service itself.
//!
//! None of them may panic on any input: an input refused with an error is
//! fine, a panic is a bug in tsql (or below it) to fix there.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandPreparedStatementQuery, ProstMessageExt,
};
use arrow_flight::{Action, FlightDescriptor, Ticket};
use futures::StreamExt;
use prost::Message;

use crate::caller::{Caller, Owner};
use crate::flight::ticket::QueryTicket;
use crate::flight::{TsqlFlightService, TsqlFlightSql};
use crate::seal::Sealer;
use crate::serving::Serving;
use crate::trino::statements::{Statement, interpret, prepared_header};
use crate::{DataSource, Engine, EngineOptions};

/// The longest input the targets read; longer ones are ignored (a client's
/// statement can be longer, but the fuzzer learns nothing more from length).
pub const MAX_INPUT: usize = 4096;

/// The catalog of the demo data the targets plan against.
const CATALOG: &str = "cyoda";

/// The schema of the demo data.
const SCHEMA: &str = "entities";

/// The planning defaults of fuzzed tickets.
fn ticket_defaults() -> crate::flight::session::QueryDefaults {
    crate::flight::session::QueryDefaults {
        catalog: CATALOG.into(),
        schema: SCHEMA.into(),
        distributed: None,
    }
}

/// What every target shares: built once per process.
struct Harness {
    runtime: tokio::runtime::Runtime,
    /// The engine as a Flight SQL statement is planned on.
    engine: Engine,
    /// The engine as a Trino statement is planned on (with `system.jdbc`).
    trino: Engine,
    /// The Flight service over the same engine.
    flight: TsqlFlightService,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        let engine = Engine::open(&DataSource::Demo, EngineOptions::default())
            .expect("the demo engine opens");
        let auth = Arc::new(crate::auth::Authenticator::new(
            Vec::new(),
            None,
            Default::default(),
        ));
        let serving = Serving::new(
            engine,
            auth,
            Default::default(),
            crate::shutdown::DEFAULT_GRACE,
        )
        .expect("the query threads start");
        let caller = fuzz_caller();
        let trino = runtime.block_on(serving.engine.for_caller_reading(&caller, None));
        crate::trino::jdbc::register(&trino);
        let trino = trino
            .with_defaults(CATALOG, SCHEMA)
            .expect("the demo catalog and schema exist");
        let engine = runtime
            .block_on(serving.engine.for_caller_reading(&caller, None))
            .with_defaults(CATALOG, SCHEMA)
            .expect("the demo catalog and schema exist");
        let flight = TsqlFlightService::new(TsqlFlightSql::new(&serving));
        Harness {
            runtime,
            engine,
            trino,
            flight,
        }
    })
}

fn fuzz_caller() -> Caller {
    Caller::named("fuzz")
}

/// The prepared statements a Trino client holds in the fuzz runs.
fn held_statements() -> HashMap<String, String> {
    HashMap::from([
        (
            "q".to_string(),
            "SELECT orderid, state FROM orders WHERE orderid = ?".to_string(),
        ),
        ("p".to_string(), "SELECT ?, '?', ? + 1".to_string()),
    ])
}

/// SQL text as a client sends it: Flight SQL's path (the `kill_query`
/// call, the catalogs it reads, parsing with tsql's rewrites, planning)
/// and the Trino front end's (session statements, `EXECUTE`/`DESCRIBE`
/// of prepared statements, `SHOW` rewrites, Trino's naming and
/// `information_schema`, planning, error answers). Plans only: nothing runs.
pub fn sql_text(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let sql = String::from_utf8_lossy(data);
    let h = harness();
    // Planning is most of the time an input takes: each input is planned
    // by one front end (by the parity of its length, so the fuzzer's
    // mutations reach both), which doubles the inputs tried per second.
    let flight = data.len() % 2 == 0;
    h.runtime.block_on(async {
        if crate::serving::kill_request(&sql).is_none() {
            let _ = h.engine.catalogs_of(&sql, CATALOG);
            if flight && let Err(e) = h.engine.plan(&sql).await {
                let _ = crate::flight::errors::to_status(e);
            }
        }
        trino_statement(h, &sql, !flight).await;
    });
}

/// A statement through the Trino front end, as far as planning (when `plan`).
async fn trino_statement(h: &Harness, sql: &str, plan: bool) {
    use crate::trino::errors::{codes, error_json, kind_of, refine_not_found, with_place};
    let (sql, describe) = match interpret(sql, &held_statements()) {
        Ok(Statement::Query(q)) => match crate::trino::show::rewrite(&q, CATALOG, SCHEMA) {
            Some(shown) => (shown.sql, None),
            None => (q, None),
        },
        Ok(Statement::Describe { output, sql }) => (sql, Some(output)),
        Ok(Statement::Session { headers, .. }) => {
            for (_, value) in headers {
                let _ = hyper::header::HeaderValue::from_str(&value);
            }
            return;
        }
        Err(message) => {
            let _ = error_json(codes::GENERIC_USER_ERROR, &message);
            return;
        }
    };
    if !plan {
        return;
    }
    let planned = h
        .trino
        .plan_adapted(&sql, |s| crate::trino::dialect::adapt(s, CATALOG))
        .await;
    let planned = match (planned, describe) {
        (Ok(df), Some(output)) => {
            crate::trino::describe::description(&df, output, h.trino.context())
        }
        (planned, _) => planned,
    };
    if let Err(e) = planned {
        let kind = refine_not_found(kind_of(&e), &e.to_string(), &h.trino);
        let message = if kind == codes::SYNTAX_ERROR {
            with_place(e.to_string(), &sql)
        } else {
            e.to_string()
        };
        let _ = error_json(kind, &message);
    }
}

/// The purpose Flight tickets are sealed for (what [`QueryTicket`] uses).
const TICKET_PURPOSE: &str = "tsql flight ticket v2";

/// The key the ticket target seals with.
fn fuzz_sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| {
        Sealer::from_secret("a fixed ticket key for fuzzing, not a secret")
            .expect("a long enough key")
    })
}

/// Sealed handles: arbitrary bytes opened as a Flight ticket and as a
/// sealed value; then a real ticket made from the input (decoded as a
/// ticket, or with the input as its SQL) is sealed and must open for its
/// owner only, and every change the input picks (a flipped byte, cut or
/// added bytes) must be refused.
///
/// # Panics
/// When a changed ticket opens, or a ticket opens for another owner: a
/// security bug.
pub fn ticket(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let sealer = fuzz_sealer();
    let ann = Owner::local("ann");
    let _ = QueryTicket::open(sealer, data, &ann);
    let _ = sealer.open(TICKET_PURPOSE, data);

    let mut t = QueryTicket::decode(data).unwrap_or_else(|_| {
        let mut t = QueryTicket::new(&ann, &ticket_defaults());
        t.sql = String::from_utf8_lossy(data).into_owned();
        t
    });
    t.issued = chrono::Utc::now().timestamp();
    let owner = t.owner();
    let sealed = t.seal(sealer);
    let opened = QueryTicket::open(sealer, &sealed, &owner);
    assert_eq!(opened.ok().as_ref(), Some(&t), "a fresh ticket opens");
    for other in [
        Owner::local(&format!("{}x", owner.subject)),
        Owner {
            tenant: Some(owner.tenant.clone().unwrap_or_default() + "x"),
            subject: owner.subject.clone(),
        },
    ] {
        assert!(
            QueryTicket::open(sealer, &sealed, &other).is_err(),
            "a ticket opened for another owner"
        );
    }
    assert!(
        sealer.open("another purpose", &sealed).is_none(),
        "a ticket opened for another purpose"
    );

    let pick = |i: usize| data.get(i).copied().unwrap_or(0) as usize;
    let at = (pick(0) << 8 | pick(1)) % sealed.len();
    let mut flipped = sealed.clone();
    flipped[at] ^= (pick(2) as u8) | 1;
    assert!(
        QueryTicket::open(sealer, &flipped, &owner).is_err(),
        "a ticket with byte {at} changed opened"
    );
    let cut = &sealed[..at];
    assert!(
        QueryTicket::open(sealer, cut, &owner).is_err(),
        "a ticket cut to {at} bytes opened"
    );
    let mut longer = sealed.clone();
    longer.extend_from_slice(&data[..data.len().min(8)]);
    if longer.len() > sealed.len() {
        assert!(
            QueryTicket::open(sealer, &longer, &owner).is_err(),
            "a ticket with bytes added opened"
        );
    }
}

/// The Trino client headers: the input as `X-Trino-Prepared-Statement`,
/// `X-Trino-Session` and `X-Trino-Client-Capabilities` values, the
/// prepared statements it names run through `EXECUTE` and `DESCRIBE`, and
/// the form encoding the headers use must give back what it encoded.
///
/// # Panics
/// When a value encoded for a header does not decode to itself.
pub fn trino_headers(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let value = String::from_utf8_lossy(data);
    let prepared = prepared_header(&value);
    let _ = crate::trino::headers::session_properties(&value);
    let _ = crate::trino::headers::ClientCapabilities::parse(&value);
    for name in prepared.keys().take(4) {
        let _ = interpret(&format!("EXECUTE {name} USING 1, 'a'"), &prepared);
        let _ = interpret(&format!("DESCRIBE OUTPUT {name}"), &prepared);
    }
    let encoded = crate::trino::statements::encode(&value);
    let back = prepared_header(&format!("q={encoded}"));
    assert_eq!(
        back.get("q").map(String::as_str),
        Some(value.as_ref()),
        "form encoding round trip"
    );
    let session = crate::trino::headers::session_properties(&format!("p={encoded}"));
    assert_eq!(
        session,
        vec![("p".to_string(), value.to_string())],
        "session property round trip"
    );
}

/// The Flight calls a command, ticket or action reaches.
const ACTIONS: &[&str] = &[
    "CreatePreparedStatement",
    "ClosePreparedStatement",
    "CancelQuery",
    "CancelFlightInfo",
    "SetSessionOptions",
    "GetSessionOptions",
    "CloseSession",
    "BeginTransaction",
    "EndTransaction",
    "CreatePreparedSubstraitPlan",
];

/// A Flight SQL message through tsql's Flight service, as an authenticated
/// caller sends it: the first byte picks the call (`GetFlightInfo`,
/// `GetSchema`, `PollFlightInfo` with the rest as the descriptor's command;
/// `DoGet` with the rest as the ticket; `DoAction` of one of the known
/// action types with the rest as the body). A prepared statement the input
/// creates is planned through its handle, then closed. Statements are
/// planned, and tickets only opened: a statement never runs.
pub fn flight_command(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let body = bytes::Bytes::copy_from_slice(body);
    let service = &h.flight;
    h.runtime.block_on(async {
        match route % 16 {
            0 => {
                let _ = service
                    .get_flight_info(request(FlightDescriptor::new_cmd(body)))
                    .await;
            }
            1 => {
                let _ = service
                    .get_schema(request(FlightDescriptor::new_cmd(body)))
                    .await;
            }
            2 => {
                let _ = service
                    .poll_flight_info(request(FlightDescriptor::new_cmd(body)))
                    .await;
            }
            3 => {
                if let Ok(stream) = service.do_get(request(Ticket::new(body))).await {
                    // Metadata answers are small; a statement ticket never opens here.
                    let _ = stream.into_inner().take(64).collect::<Vec<_>>().await;
                }
            }
            n => {
                let kind = ACTIONS[(n as usize - 4) % ACTIONS.len()];
                let action = Action::new(kind, body);
                let Ok(results) = service.do_action(request(action)).await else {
                    return;
                };
                let results: Vec<_> = results.into_inner().take(16).collect().await;
                if kind == "CreatePreparedStatement" {
                    for r in results.into_iter().flatten() {
                        prepared_round_trip(service, &r.body).await;
                    }
                }
            }
        }
    });
}

/// Plans a prepared statement through the handle the server gave, then closes it.
async fn prepared_round_trip(service: &TsqlFlightService, result: &[u8]) {
    let Ok(Some(created)) = Any::decode(result).map_err(|_| ()).and_then(|a| {
        a.unpack::<ActionCreatePreparedStatementResult>()
            .map_err(|_| ())
    }) else {
        return;
    };
    let handle = created.prepared_statement_handle;
    let query = CommandPreparedStatementQuery {
        prepared_statement_handle: handle.clone(),
    };
    let descriptor = FlightDescriptor::new_cmd(query.as_any().encode_to_vec());
    let _ = service.get_flight_info(request(descriptor)).await;
    let close = ActionClosePreparedStatementRequest {
        prepared_statement_handle: handle,
    };
    let action = Action::new("ClosePreparedStatement", close.as_any().encode_to_vec());
    if let Ok(results) = service.do_action(request(action)).await {
        let _ = results.into_inner().collect::<Vec<_>>().await;
    }
}

/// `message` as a call of the fuzzing caller (already authenticated).
fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(fuzz_caller());
    request
}

/// Seed inputs of the targets whose inputs only tsql can make (sealed
/// tickets, encoded Flight SQL messages); `tests/fuzz_corpus.rs` writes
/// them into `fuzz/corpus/`.
pub mod seeds {
    use arrow_flight::sql::{
        ActionCancelQueryRequest, ActionClosePreparedStatementRequest,
        ActionCreatePreparedStatementRequest, CommandGetCatalogs, CommandGetCrossReference,
        CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
        CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
        CommandPreparedStatementQuery, CommandStatementQuery, CommandStatementUpdate,
        ProstMessageExt, TicketStatementQuery,
    };
    use arrow_flight::{CancelFlightInfoRequest, FlightEndpoint, FlightInfo, Ticket};
    use prost::Message;

    use super::{ACTIONS, CATALOG, SCHEMA, fuzz_sealer, ticket_defaults};
    use crate::caller::Owner;
    use crate::flight::session_protocol::{SessionOptionValue, SetSessionOptionsRequest};
    use crate::flight::ticket::QueryTicket;

    /// Real tickets sealed with the fuzzing key (they expire after 12
    /// hours, as every ticket does), and their plain protobuf bytes.
    pub fn tickets() -> Vec<Vec<u8>> {
        let mut t = QueryTicket::new(&Owner::local("ann"), &ticket_defaults());
        t.sql = "SELECT count(*) FROM orders".into();
        let mut tenant = QueryTicket::new(&Owner::of_tenant("acme", "bob"), &ticket_defaults());
        tenant.prepared = b"0123456789abcdef".to_vec();
        vec![
            t.seal(fuzz_sealer()),
            tenant.seal(fuzz_sealer()),
            t.encode_to_vec(),
            tenant.encode_to_vec(),
            b"tsql2".to_vec(),
        ]
    }

    /// `route` (the call [`super::flight_command`] makes) followed by `body`.
    fn routed(route: u8, body: Vec<u8>) -> Vec<u8> {
        let mut out = vec![route];
        out.extend(body);
        out
    }

    /// The route of action `kind`.
    fn action(kind: &str) -> u8 {
        4 + ACTIONS
            .iter()
            .position(|a| *a == kind)
            .expect("a known action") as u8
    }

    /// Every Flight SQL command tsql answers, encoded as clients send them,
    /// for each call that reads one, and the actions' bodies.
    pub fn flight_commands() -> Vec<Vec<u8>> {
        let statement = CommandStatementQuery {
            query: "SELECT state, count(*) FROM orders WHERE orderid = 'O-1' GROUP BY state".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec();
        let commands = vec![
            statement.clone(),
            CommandGetCatalogs {}.as_any().encode_to_vec(),
            CommandGetDbSchemas {
                catalog: Some(CATALOG.into()),
                db_schema_filter_pattern: Some("e%".into()),
            }
            .as_any()
            .encode_to_vec(),
            CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: None,
                table_name_filter_pattern: Some("ord%".into()),
                table_types: vec!["TABLE".into()],
                include_schema: true,
            }
            .as_any()
            .encode_to_vec(),
            CommandGetTableTypes {}.as_any().encode_to_vec(),
            CommandGetSqlInfo { info: vec![0, 1] }
                .as_any()
                .encode_to_vec(),
            CommandGetXdbcTypeInfo { data_type: Some(4) }
                .as_any()
                .encode_to_vec(),
            CommandGetPrimaryKeys {
                catalog: None,
                db_schema: None,
                table: "orders".into(),
            }
            .as_any()
            .encode_to_vec(),
            CommandGetExportedKeys {
                catalog: None,
                db_schema: None,
                table: "orders".into(),
            }
            .as_any()
            .encode_to_vec(),
            CommandGetImportedKeys {
                catalog: None,
                db_schema: None,
                table: "orders".into(),
            }
            .as_any()
            .encode_to_vec(),
            CommandGetCrossReference {
                pk_catalog: None,
                pk_db_schema: None,
                pk_table: "orders".into(),
                fk_catalog: None,
                fk_db_schema: None,
                fk_table: "orders_lines".into(),
            }
            .as_any()
            .encode_to_vec(),
            CommandPreparedStatementQuery {
                prepared_statement_handle: b"no such handle".to_vec().into(),
            }
            .as_any()
            .encode_to_vec(),
            CommandStatementUpdate {
                query: "DELETE FROM orders".into(),
                transaction_id: None,
            }
            .as_any()
            .encode_to_vec(),
        ];
        let mut out = Vec::new();
        for c in &commands {
            out.push(routed(0, c.clone()));
        }
        out.push(routed(1, statement.clone()));
        out.push(routed(2, statement));
        let mut t = QueryTicket::new(&Owner::local("fuzz"), &ticket_defaults());
        t.sql = "SELECT 1".into();
        let ticket = TicketStatementQuery {
            statement_handle: t.seal(fuzz_sealer()).into(),
        }
        .as_any()
        .encode_to_vec();
        out.push(routed(3, ticket.clone()));
        for c in &commands[1..7] {
            out.push(routed(3, c.clone()));
        }
        let info = FlightInfo::new()
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .encode_to_vec();
        out.extend([
            routed(
                action("CreatePreparedStatement"),
                ActionCreatePreparedStatementRequest {
                    query: "SELECT state FROM orders WHERE orderid = ?".into(),
                    transaction_id: None,
                }
                .as_any()
                .encode_to_vec(),
            ),
            routed(
                action("ClosePreparedStatement"),
                ActionClosePreparedStatementRequest {
                    prepared_statement_handle: b"no such handle".to_vec().into(),
                }
                .as_any()
                .encode_to_vec(),
            ),
            routed(
                action("CancelQuery"),
                ActionCancelQueryRequest {
                    info: info.clone().into(),
                }
                .as_any()
                .encode_to_vec(),
            ),
            routed(
                action("CancelFlightInfo"),
                CancelFlightInfoRequest {
                    info: FlightInfo::decode(info.as_slice()).ok(),
                }
                .encode_to_vec(),
            ),
            routed(
                action("SetSessionOptions"),
                SetSessionOptionsRequest {
                    session_options: [
                        ("catalog".to_string(), SessionOptionValue::string(CATALOG)),
                        ("schema".to_string(), SessionOptionValue::string(SCHEMA)),
                    ]
                    .into(),
                }
                .encode_to_vec(),
            ),
            routed(action("GetSessionOptions"), Vec::new()),
            routed(action("CloseSession"), Vec::new()),
        ]);
        out
    }
}
