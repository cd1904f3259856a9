//! The Flight SQL service: statements and prepared statements plan in
//! `GetFlightInfo` and execute only in `DoGet`, streaming; catalog metadata;
//! sessions; cancellation; a read-only answer to everything that would write.
//!
//! Query work (planning, indexing, execution) runs on the [`QueryExecutor`],
//! never on the threads serving calls, so a heavy query cannot hold up
//! cancellation, other clients or shutdown.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::errors::{to_status, to_status_for};
use super::metadata::{list_schemas, list_tables, shared_sql_info, xdbc_types};
use super::query_log::LoggedStream;
use super::running::{RunningQueries, Unredeemed};
use super::session::{COOKIE, QueryDefaults, SessionKey, Sessions};
use super::session_protocol::{
    CLOSE_SESSION, CloseSessionResult, CloseSessionStatus, GET_SESSION_OPTIONS,
    GetSessionOptionsResult, OptionValue, SET_SESSION_OPTIONS, SessionOptionValue,
    SetSessionOptionsError, SetSessionOptionsErrorValue, SetSessionOptionsRequest,
    SetSessionOptionsResult,
};
use super::ticket::QueryTicket;
use super::types::{to_wire, wire_schema, with_column_metadata};
use crate::auth::Authenticator;
use crate::caller::{Caller, Owner};
use crate::{Engine, QueryExecutor};

type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;
type ActionStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::Result, Status>> + Send + 'static>>;

/// Action type of `CancelFlightInfo`.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// A prepared statement: its SQL, where it was prepared, and the parameters bound last.
#[derive(Debug, Clone)]
struct Prepared {
    owner: Owner,
    sql: String,
    defaults: QueryDefaults,
    /// The type the plan expects for each parameter, when known.
    expected: Vec<Option<DataType>>,
    params: Option<Vec<ScalarValue>>,
    last_used: std::time::Instant,
}

/// Prepared statements unused this long are closed by the server.
const PREPARED_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The Flight SQL service over one engine.
pub struct TsqlFlightSql {
    admission: Arc<crate::admission::Admission>,
    queries: Arc<crate::queries::QueryLog>,
    engine: Engine,
    executor: QueryExecutor,
    auth: Arc<Authenticator>,
    sessions: Sessions,
    running: Arc<RunningQueries>,
    /// Tickets just issued, whose DoGet a shutdown waits for a moment.
    unredeemed: Arc<Unredeemed>,
    /// The shared parts (query view, stoppers of every front end).
    serving: crate::serving::Serving,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    sql_info: Arc<SqlInfoData>,
    xdbc: Arc<XdbcTypeInfoData>,
}

const READ_ONLY: &str = "tsql is read-only: it answers queries (SELECT, SHOW, DESCRIBE, EXPLAIN) and takes no updates, ingestion or DDL";

impl TsqlFlightSql {
    /// A service over the shared parts of the server (engine, query
    /// threads, admission, query view, users).
    pub fn new(serving: &crate::serving::Serving) -> Self {
        let unredeemed = Arc::new(Unredeemed::default());
        let waiting = Arc::downgrade(&unredeemed);
        serving.shutdown.count_busy_with(Box::new(move || {
            waiting.upgrade().map_or(0, |u| u.waiting())
        }));
        TsqlFlightSql {
            unredeemed,
            admission: serving.admission.clone(),
            engine: serving.engine.clone(),
            queries: serving.queries.clone(),
            executor: serving.executor.clone(),
            auth: serving.auth.clone(),
            sessions: Sessions::default(),
            running: Arc::new(RunningQueries::default()),
            serving: serving.clone(),
            prepared: Mutex::new(HashMap::new()),
            sql_info: shared_sql_info(),
            xdbc: Arc::new(xdbc_types()),
        }
    }

    /// Who makes the call (checked credentials).
    fn caller<T>(
        &self,
        request: &Request<T>,
    ) -> impl std::future::Future<Output = Result<Caller, Status>> + Send + '_ {
        // The front end checked the credentials before the call got here.
        let known = request.extensions().get::<Caller>().cloned();
        let metadata = request.metadata().clone();
        let peer = request.remote_addr().map(|a| a.ip());
        async move {
            if let Some(caller) = known {
                return Ok(caller);
            }
            self.auth.check(&metadata, peer).await.inspect_err(|s| {
                if s.code() == tonic::Code::Unauthenticated {
                    crate::metrics::metrics().auth_failures.inc();
                }
            })
        }
    }

    /// Refuses a new query while the server shuts down (UNAVAILABLE: the
    /// client may retry on another replica); running ones go on.
    pub(crate) fn refuse_when_draining(&self) -> Result<(), Status> {
        if self.serving.shutdown.is_draining() {
            return Err(crate::shutdown::unavailable());
        }
        Ok(())
    }

    /// Checks a call's credentials before anything of the call is read, and
    /// keeps the caller with the request for the handler.
    pub(crate) async fn authenticate<T>(&self, request: &mut Request<T>) -> Result<(), Status> {
        let caller = self.caller(request).await?;
        request.extensions_mut().insert(caller);
        Ok(())
    }

    /// The SQL to plan for a statement the client sent: the statement itself,
    /// or, for a `kill_query` call, the kill done and the query that reports it.
    fn statement_sql(&self, caller: &Caller, sql: String) -> Result<String, Status> {
        match crate::serving::kill_request(&sql) {
            Some(id) => self.kill(caller, &id),
            None => Ok(sql),
        }
    }

    /// `CALL system.runtime.kill_query('<id>')`: stops the query (the
    /// caller's own, or anyone's for role `admin`) and answers with a query
    /// that reports it.
    fn kill(&self, caller: &Caller, id: &str) -> Result<String, Status> {
        self.serving.kill(caller, id).map_err(Status::not_found)?;
        // Refuses the execution's later DoGets too.
        self.running.cancel(id);
        let quoted = id.replace('\'', "''");
        Ok(format!(
            "SELECT '{quoted}' AS query_id, 'cancelled' AS state"
        ))
    }

    /// What the caller's session plans queries under.
    fn session_defaults<T>(&self, request: &Request<T>, owner: &Owner) -> QueryDefaults {
        let key = SessionKey::of(request.metadata());
        let chosen = self.sessions.settings(key.as_ref(), owner);
        let (catalog, schema) = self.engine.defaults_for(owner);
        QueryDefaults {
            catalog: chosen.catalog.unwrap_or(catalog),
            schema: chosen.schema.unwrap_or(schema),
            distributed: chosen.distributed,
        }
    }

    /// Plans `sql` (with `params` bound) under the given defaults, on the
    /// query threads; as the query `id` of the query view when it will run.
    async fn plan(
        &self,
        caller: &Caller,
        defaults: &QueryDefaults,
        sql: String,
        params: Option<Vec<ScalarValue>>,
        id: Option<&str>,
    ) -> Result<DataFrame, Status> {
        let reads = self.engine.catalogs_of(&sql, &defaults.catalog);
        let mut engine = self
            .engine
            .for_caller_reading(caller, reads.as_deref())
            .await
            .with_defaults(&defaults.catalog, &defaults.schema)
            .map_err(to_status)?;
        if let Some(distributed) = &defaults.distributed {
            engine = engine.with_distributed(distributed).map_err(to_status)?;
        }
        if let Some(id) = id {
            engine = engine.with_query_id(id);
        }
        self.executor
            .run(async move {
                let df = engine.plan(&sql).await?;
                match params {
                    Some(p) => df.with_param_values(ParamValues::List(
                        p.into_iter().map(Into::into).collect(),
                    )),
                    None => Ok(df),
                }
            })
            .await
            .map_err(to_status)
    }

    fn flight_info(
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_ordered(true))
    }

    /// The FlightInfo of a planned execution: the wire schema and its ticket.
    fn execution_info(
        &self,
        df: &DataFrame,
        ticket: &QueryTicket,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = wire_schema(df.schema().as_arrow());
        let handle = TicketStatementQuery {
            statement_handle: ticket.seal(self.auth.sealer()).into(),
        };
        self.unredeemed.issue(&ticket.execution);
        Ok(Response::new(Self::flight_info(
            &schema,
            handle.as_any().encode_to_vec(),
            descriptor,
        )?))
    }

    /// Executes a planned query on the query threads and streams it in the
    /// wire schema. The execution can be cancelled by its ticket's id; a
    /// client dropping the stream stops it too.
    fn stream(
        &self,
        df: DataFrame,
        ticket: &QueryTicket,
        sql: &str,
        admitted: crate::admission::Ticket,
        entry: crate::queries::QueryEntry,
    ) -> Result<Response<DoGetStream>, Status> {
        let query_id = entry.id();
        let pool = df.task_ctx().memory_pool().clone();
        let schema = wire_schema(df.schema().as_arrow());
        let wire = schema.clone();
        let (batches, abort) = self.executor.stream(schema.clone(), async move {
            let stream = df.execute_stream().await?;
            let out = wire.clone();
            let converted = stream.map(move |b| b.and_then(|b| Ok(to_wire(&b, &wire)?)));
            Ok(Box::pin(RecordBatchStreamAdapter::new(out, converted))
                as datafusion::execution::SendableRecordBatchStream)
        });
        let registration = self.running.register(&ticket.execution, abort)?;
        let running = self.running.clone();
        let execution = ticket.execution.clone();
        let stopper = self
            .serving
            .stoppers
            .register(&query_id, move || running.cancel(&execution));
        let batches = Box::pin(crate::admission::until_deadline(batches, admitted));
        let batches =
            LoggedStream::new(batches, &query_id, &ticket.owner(), sql).with_entry(entry, pool);
        let batches = batches.map(move |b| {
            let _running = (&registration, &stopper);
            b.map_err(|e| FlightError::Tonic(Box::new(to_status_for(e, &query_id))))
        });
        let out = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(out)))
    }

    /// The FlightInfo of a metadata command: its result schema and a ticket
    /// that is the command itself.
    async fn describe(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: Vec<u8>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        Ok(Response::new(Self::flight_info(
            schema,
            command,
            request.into_inner(),
        )?))
    }

    /// An empty answer of `schema` (keys: tsql tables have none), for a known caller.
    async fn no_rows<T>(
        &self,
        request: &Request<T>,
        schema: Schema,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(request).await?;
        Ok(Self::batch_stream(RecordBatch::new_empty(Arc::new(schema))))
    }

    /// The answer to anything that would write, for a known caller.
    async fn refuse_write<T, R>(&self, request: &Request<T>) -> Result<R, Status> {
        self.caller(request).await?;
        Err(Status::permission_denied(READ_ONLY))
    }

    fn batch_stream(batch: RecordBatch) -> Response<DoGetStream> {
        let schema = batch.schema();
        let out = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { Ok(batch) }))
            .map_err(Status::from);
        Response::new(Box::pin(out))
    }

    fn prepared(&self, handle: &[u8], owner: &Owner) -> Result<Prepared, Status> {
        let mut map = self.prepared.lock().expect("not poisoned");
        match map.get_mut(handle) {
            Some(p) if p.owner == *owner => {
                p.last_used = std::time::Instant::now();
                Ok(p.clone())
            }
            _ => Err(Status::not_found(
                "unknown prepared statement: it was closed, or expired after 12 hours unused; prepare it again",
            )),
        }
    }

    /// Cancels every execution named by the tickets of `info` that belongs
    /// to `owner` (the ticket's sealed owner, never a field the client wrote).
    fn cancel(&self, info: &FlightInfo, owner: &Owner) -> CancelStatus {
        let mut any = false;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Ok(Some(handle)) = Any::decode(ticket.ticket.as_ref())
                .map_err(|_| ())
                .and_then(|a| a.unpack::<TicketStatementQuery>().map_err(|_| ()))
            else {
                continue;
            };
            if let Ok(t) = QueryTicket::open(self.auth.sealer(), &handle.statement_handle, owner) {
                self.running.cancel(&t.execution);
                any = true;
            }
        }
        if any {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        }
    }

    /// `SetSessionOptions`: `catalog`, `schema` and `distributed` (valueless
    /// resets to the default).
    /// The catalog and schema are checked as `caller` sees them (another
    /// tenant's keyspace does not exist for them).
    async fn set_session_options(
        &self,
        request: &Request<arrow_flight::Action>,
        caller: &Caller,
    ) -> Result<Response<ActionStream>, Status> {
        let owner = &caller.owner;
        let body =
            SetSessionOptionsRequest::decode(request.get_ref().body.as_ref()).map_err(|e| {
                Status::invalid_argument(format!("cannot read SetSessionOptionsRequest: {e}"))
            })?;
        // Without the session cookie a new session starts; a client without
        // cookie support keeps it through its credentials (`fallback`).
        let (key, new_cookie, fallback) = match SessionKey::of(request.metadata()) {
            Some(k) if k.from_cookie => (k, None, None),
            credentials => {
                let (k, id) = SessionKey::fresh();
                (k, Some(id), credentials)
            }
        };
        let mut settings = self
            .sessions
            .settings(Some(fallback.as_ref().unwrap_or(&key)), owner);
        let mut errors = HashMap::new();
        let (default_catalog, default_schema) = self.engine.defaults_for(owner);
        for (name, value) in body.session_options {
            let slot = match name.as_str() {
                "catalog" => &mut settings.catalog,
                "schema" => &mut settings.schema,
                "distributed" => &mut settings.distributed,
                _ => {
                    errors.insert(name, set_error(SetSessionOptionsErrorValue::InvalidName));
                    continue;
                }
            };
            match value.option_value {
                None => *slot = None,
                Some(OptionValue::StringValue(v)) if v.is_empty() => *slot = None,
                Some(OptionValue::StringValue(v)) => *slot = Some(v),
                Some(OptionValue::BoolValue(on)) if name == "distributed" => {
                    *slot = Some(if on { "on" } else { "off" }.to_string())
                }
                Some(_) => {
                    errors.insert(name, set_error(SetSessionOptionsErrorValue::InvalidValue));
                }
            }
        }
        if let Some(d) = &settings.distributed
            && self.engine.with_distributed(d).is_err()
        {
            errors.insert(
                "distributed".to_string(),
                set_error(SetSessionOptionsErrorValue::InvalidValue),
            );
        }
        let catalog = settings.catalog.clone().unwrap_or(default_catalog);
        let schema = settings.schema.clone().unwrap_or(default_schema);
        let seen = self.engine.for_caller(caller).await;
        if seen.check_defaults(&catalog, &schema).is_err() {
            let bad = if seen.context().catalog(&catalog).is_none() {
                "catalog"
            } else {
                "schema"
            };
            errors.insert(
                bad.to_string(),
                set_error(SetSessionOptionsErrorValue::InvalidValue),
            );
        }
        if errors.is_empty() {
            self.sessions.store(&key, owner, settings.clone())?;
            if let Some(f) = &fallback {
                self.sessions.store(f, owner, settings)?;
            }
        }
        let result = SetSessionOptionsResult { errors };
        let mut response = action_response(result.encode_to_vec());
        if let Some(id) = new_cookie {
            let cookie = MetadataValue::try_from(format!("{COOKIE}={id}; Path=/; HttpOnly"))
                .map_err(|_| Status::internal("the session cookie is not a header value"))?;
            response.metadata_mut().insert("set-cookie", cookie);
        }
        Ok(response)
    }

    /// `GetSessionOptions`: the effective catalog, schema and `distributed`
    /// (the session's choice, else the server's).
    fn get_session_options<T>(
        &self,
        request: &Request<T>,
        owner: &Owner,
    ) -> Response<ActionStream> {
        let defaults = self.session_defaults(request, owner);
        let distributed = defaults
            .distributed
            .unwrap_or_else(|| self.engine.distributed().to_string());
        let result = GetSessionOptionsResult {
            session_options: HashMap::from([
                (
                    "catalog".to_string(),
                    SessionOptionValue::string(defaults.catalog),
                ),
                (
                    "schema".to_string(),
                    SessionOptionValue::string(defaults.schema),
                ),
                (
                    "distributed".to_string(),
                    SessionOptionValue::string(distributed),
                ),
            ]),
        };
        action_response(result.encode_to_vec())
    }
}

fn set_error(value: SetSessionOptionsErrorValue) -> SetSessionOptionsError {
    SetSessionOptionsError {
        value: value as i32,
    }
}

fn action_response(body: Vec<u8>) -> Response<ActionStream> {
    let result = arrow_flight::Result { body: body.into() };
    Response::new(Box::pin(futures::stream::iter(vec![Ok(result)])))
}

fn arrow_status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("cannot build the answer: {e}"))
}
/// The parameter schema of a plan (`$1`, `$2`, … in order, typed when known)
/// and the types the plan expects. Instants are announced in milliseconds, the
/// unit JDBC's `setTimestamp` fills reliably; values are cast back on binding.
fn parameter_schema(
    df: &datafusion::dataframe::DataFrame,
) -> Result<(Schema, Vec<Option<DataType>>), Status> {
    let types = df.logical_plan().get_parameter_types().map_err(to_status)?;
    let mut names: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .map(|(k, t)| {
            (
                k.trim_start_matches('$')
                    .parse::<usize>()
                    .unwrap_or(usize::MAX),
                k,
                t,
            )
        })
        .collect();
    names.sort();
    let fields: Vec<Field> = names
        .iter()
        .map(|(_, n, t)| {
            let announced = match t {
                Some(DataType::Timestamp(_, tz)) => {
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, tz.clone())
                }
                Some(t) => super::types::wire_type(t),
                None => DataType::Utf8,
            };
            Field::new(n, announced, true)
        })
        .collect();
    Ok((
        Schema::new(fields),
        names.into_iter().map(|(_, _, t)| t).collect(),
    ))
}

fn ipc_schema(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options)
        .try_into()
        .map_err(arrow_status)?;
    Ok(bytes)
}

#[tonic::async_trait]
impl FlightSqlService for TsqlFlightSql {
    type FlightService = TsqlFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let token = self
            .auth
            .handshake(request.metadata(), request.remote_addr().map(|a| a.ip()))
            .await
            .inspect_err(|s| {
                if s.code() == tonic::Code::Unauthenticated {
                    crate::metrics::metrics().auth_failures.inc();
                }
            })?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter(vec![Ok(reply)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("token is not a header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let defaults = self.session_defaults(&request, &owner);
        let sql = self.statement_sql(&caller, query.query)?;
        let df = self
            .plan(&caller, &defaults, sql.clone(), None, None)
            .await?;
        let mut ticket = QueryTicket::new(&owner, &defaults);
        ticket.sql = sql;
        self.execution_info(&df, &ticket, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        handle: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let ticket = QueryTicket::open(self.auth.sealer(), &handle.statement_handle, &owner)?;
        self.unredeemed.redeem(&ticket.execution);
        self.running.check(&ticket.execution)?;
        let (sql, params) = if ticket.prepared.is_empty() {
            (ticket.sql.clone(), None)
        } else {
            let p = self.prepared(&ticket.prepared, &owner)?;
            (p.sql, p.params)
        };
        // Waits for its turn (or is refused) before it plans and runs. A
        // ticket redeemed again runs under a new query id (ids are unique).
        let entry = match self.queries.start(&ticket.execution, &owner, &sql) {
            Ok(entry) => entry,
            Err(_) => self
                .queries
                .start(&crate::queries::new_query_id(), &owner, &sql)
                .map_err(|e| Status::internal(format!("query id {} is taken twice", e.0)))?,
        };
        let failed = |status: Status| {
            entry.end(
                crate::queries::QueryState::Failed,
                Some(status.message().to_string()),
            );
            status
        };
        let admitted = self.admission.admit(&owner).await.map_err(failed)?;
        entry.running();
        let df = self
            .plan(
                &caller,
                &ticket.defaults(),
                sql.clone(),
                params,
                Some(&entry.id()),
            )
            .await
            .map_err(failed)?;
        self.stream(df, &ticket, &sql, admitted, entry)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let defaults = self.session_defaults(&request, &owner);
        let sql = self.statement_sql(&caller, query.query)?;
        let df = self
            .plan(&caller, &defaults, sql.clone(), None, None)
            .await?;
        let dataset = wire_schema(df.schema().as_arrow());
        let (params, expected) = parameter_schema(&df)?;
        let handle = uuid::Uuid::new_v4().simple().to_string().into_bytes();
        let now = std::time::Instant::now();
        let mut prepared = self.prepared.lock().expect("not poisoned");
        // Clients that never close their statements do not fill the memory.
        prepared.retain(|_, p| now.duration_since(p.last_used) < PREPARED_IDLE_LIMIT);
        prepared.insert(
            handle.clone(),
            Prepared {
                owner,
                sql,
                defaults,
                expected,
                params: None,
                last_used: now,
            },
        );
        drop(prepared);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&params)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let prepared = self.prepared(&query.prepared_statement_handle, &owner)?;
        let stream = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        let params = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(b) => (0..b.num_columns())
                .map(|i| {
                    let v = ScalarValue::try_from_array(b.column(i), 0)?;
                    match prepared.expected.get(i).cloned().flatten() {
                        Some(t) if t != v.data_type() && !v.is_null() => v.cast_to(&t),
                        _ => Ok(v),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    Status::invalid_argument(format!("cannot use the bound parameters: {e}"))
                })?,
            None => Vec::new(),
        };
        if let Some(p) = self
            .prepared
            .lock()
            .expect("not poisoned")
            .get_mut(query.prepared_statement_handle.as_ref())
        {
            p.params = Some(params);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let p = self.prepared(&query.prepared_statement_handle, &owner)?;
        let df = self
            .plan(&caller, &p.defaults, p.sql, p.params, None)
            .await?;
        let mut ticket = QueryTicket::new(&owner, &p.defaults);
        ticket.prepared = query.prepared_statement_handle.to_vec();
        self.execution_info(&df, &ticket, request.into_inner())
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let mut map = self.prepared.lock().expect("not poisoned");
        if map
            .get(query.prepared_statement_handle.as_ref())
            .is_some_and(|p| p.owner == owner)
        {
            map.remove(query.prepared_statement_handle.as_ref());
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        let info = FlightInfo::decode(query.info.as_ref()).map_err(|e| {
            Status::invalid_argument(format!("cannot read the FlightInfo to cancel: {e}"))
        })?;
        // CancelQuery's result values follow CancelStatus's numbering.
        Ok(ActionCancelQueryResult {
            result: self.cancel(&info, &owner) as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let caller = self.caller(&request).await?;
        let owner = caller.owner.clone();
        match request.get_ref().r#type.as_str() {
            CANCEL_FLIGHT_INFO => {
                let body = CancelFlightInfoRequest::decode(request.get_ref().body.as_ref())
                    .map_err(|e| {
                        Status::invalid_argument(format!(
                            "cannot read CancelFlightInfoRequest: {e}"
                        ))
                    })?;
                let info = body.info.ok_or_else(|| {
                    Status::invalid_argument("CancelFlightInfoRequest names no FlightInfo")
                })?;
                let result = CancelFlightInfoResult::new(self.cancel(&info, &owner));
                Ok(action_response(result.encode_to_vec()))
            }
            SET_SESSION_OPTIONS => self.set_session_options(&request, &caller).await,
            GET_SESSION_OPTIONS => Ok(self.get_session_options(&request, &owner)),
            CLOSE_SESSION => {
                self.sessions
                    .close(SessionKey::of(request.metadata()).as_ref(), &owner)?;
                let result = CloseSessionResult {
                    status: CloseSessionStatus::Closed as i32,
                };
                Ok(action_response(result.encode_to_vec()))
            }
            other => Err(Status::invalid_argument(format!(
                "tsql does not know the action '{other}'; ListActions names the ones it does"
            ))),
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let action = |name: &str, description: &str| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: description.to_string(),
            })
        };
        Some(vec![
            action(
                CANCEL_FLIGHT_INFO,
                "Cancels the executions of a FlightInfo.",
            ),
            action(
                SET_SESSION_OPTIONS,
                "Sets session options: catalog, schema (the defaults for unqualified names).",
            ),
            action(
                GET_SESSION_OPTIONS,
                "Returns the session's catalog and schema.",
            ),
            action(CLOSE_SESSION, "Closes the session."),
        ])
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let mut b = query.into_builder();
        let engine = self.engine.for_caller(&caller).await;
        let mut names = engine.context().catalog_names();
        names.sort();
        for c in names {
            b.append(c);
        }
        Ok(Self::batch_stream(b.build().map_err(arrow_status)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let mut b = query.into_builder();
        for (c, s) in list_schemas(&self.engine.for_caller(&caller).await) {
            b.append(c, s);
        }
        Ok(Self::batch_stream(b.build().map_err(arrow_status)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let mut b = query.into_builder();
        let engine = self.engine.for_caller(&caller).await;
        let tables = self
            .executor
            .run(async move { list_tables(&engine).await })
            .await
            .map_err(to_status)?;
        for t in tables {
            let kind = if t.schema == "information_schema" {
                "VIEW"
            } else {
                "TABLE"
            };
            let columns = with_column_metadata(&t.columns, &t.catalog, &t.schema, &t.table);
            b.append(&t.catalog, &t.schema, &t.table, kind, &columns)
                .map_err(arrow_status)?;
        }
        Ok(Self::batch_stream(b.build().map_err(arrow_status)?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut b = query.into_builder();
        b.append("TABLE");
        b.append("VIEW");
        Ok(Self::batch_stream(b.build().map_err(arrow_status)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(arrow_status)?;
        Ok(Self::batch_stream(batch))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.xdbc).schema();
        self.describe(request, &schema, query.as_any().encode_to_vec())
            .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(arrow_status)?;
        Ok(Self::batch_stream(batch))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.describe(
            request,
            &primary_keys_schema(),
            query.as_any().encode_to_vec(),
        )
        .await
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_rows(&request, primary_keys_schema()).await
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.describe(
            request,
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
        )
        .await
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_rows(&request, foreign_keys_schema()).await
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.describe(
            request,
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
        )
        .await
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_rows(&request, foreign_keys_schema()).await
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.describe(
            request,
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
        )
        .await
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.no_rows(&request, foreign_keys_schema()).await
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.refuse_write(&request).await
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.refuse_write(&request).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.refuse_write(&request).await
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        Err(Status::invalid_argument(format!(
            "tsql does not know tickets of type {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

fn foreign_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}
