//! The Flight SQL service: statements and prepared statements plan in
//! `GetFlightInfo` and execute only in `DoGet`, streaming; catalog metadata;
//! a read-only answer to everything that would write.

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
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::common::{ParamValues, ScalarValue};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Authenticator;
use super::errors::to_status;
use super::metadata::{list_schemas, list_tables, shared_sql_info, xdbc_types};
use super::types::{to_wire, wire_schema, with_column_metadata};
use crate::Engine;

type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// A prepared statement: its SQL and the parameters bound last.
#[derive(Debug, Clone)]
struct Prepared {
    user: String,
    sql: String,
    /// The type the plan expects for each parameter, when known.
    expected: Vec<Option<DataType>>,
    params: Option<Vec<ScalarValue>>,
}

/// The Flight SQL service over one engine.
pub struct TsqlFlightSql {
    engine: Engine,
    auth: Arc<Authenticator>,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    sql_info: Arc<SqlInfoData>,
    xdbc: Arc<XdbcTypeInfoData>,
}

const READ_ONLY: &str = "tsql is read-only: it answers queries (SELECT, SHOW, DESCRIBE, EXPLAIN) and takes no updates, ingestion or DDL";

impl TsqlFlightSql {
    /// A service answering from `engine`, accepting callers `auth` knows.
    pub fn new(engine: Engine, auth: Arc<Authenticator>) -> Self {
        TsqlFlightSql {
            engine,
            auth,
            prepared: Mutex::new(HashMap::new()),
            sql_info: shared_sql_info(),
            xdbc: Arc::new(xdbc_types()),
        }
    }

    fn user<T>(&self, request: &Request<T>) -> Result<String, Status> {
        self.auth.check(request.metadata())
    }

    /// Plans `sql` (with `params` bound) and returns the wire schema of its result.
    async fn plan(
        &self,
        sql: &str,
        params: Option<&[ScalarValue]>,
    ) -> Result<datafusion::dataframe::DataFrame, Status> {
        let df = self.engine.plan(sql).await.map_err(to_status)?;
        match params {
            Some(p) => df
                .with_param_values(ParamValues::List(
                    p.iter().cloned().map(Into::into).collect(),
                ))
                .map_err(to_status),
            None => Ok(df),
        }
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

    /// Executes and streams a planned query, converting to the wire schema.
    async fn stream(
        &self,
        df: datafusion::dataframe::DataFrame,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = wire_schema(df.schema().as_arrow());
        let stream = df.execute_stream().await.map_err(to_status)?;
        let wire = schema.clone();
        let batches = stream.map(move |b| match b {
            Ok(b) => to_wire(&b, &wire).map_err(|e| FlightError::from(e)),
            Err(e) => Err(FlightError::Tonic(Box::new(to_status(e)))),
        });
        let out = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(out)))
    }

    /// The FlightInfo of a metadata command: its result schema and a ticket
    /// that is the command itself.
    fn describe(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: Vec<u8>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        Ok(Response::new(Self::flight_info(
            schema,
            command,
            request.into_inner(),
        )?))
    }

    fn batch_stream(batch: RecordBatch) -> Response<DoGetStream> {
        let schema = batch.schema();
        let out = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { Ok(batch) }))
            .map_err(Status::from);
        Response::new(Box::pin(out))
    }

    fn prepared(&self, handle: &[u8], user: &str) -> Result<Prepared, Status> {
        let map = self.prepared.lock().expect("not poisoned");
        match map.get(handle) {
            Some(p) if p.user == user => Ok(p.clone()),
            _ => Err(Status::not_found(
                "unknown prepared statement: it was closed, or belongs to another session; prepare it again",
            )),
        }
    }
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
        let token = self.auth.handshake(request.metadata())?;
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
        self.user(&request)?;
        let df = self.plan(&query.query, None).await?;
        let schema = wire_schema(df.schema().as_arrow());
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Ok(Response::new(Self::flight_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a tsql statement ticket"))?;
        let df = self.plan(&sql, None).await?;
        self.stream(df).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let user = self.user(&request)?;
        let df = self.plan(&query.query, None).await?;
        let dataset = wire_schema(df.schema().as_arrow());
        let (params, expected) = parameter_schema(&df)?;
        let handle = uuid::Uuid::new_v4().simple().to_string().into_bytes();
        self.prepared.lock().expect("not poisoned").insert(
            handle.clone(),
            Prepared {
                user,
                sql: query.query,
                expected,
                params: None,
            },
        );
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
        let user = self.user(&request)?;
        let prepared = self.prepared(&query.prepared_statement_handle, &user)?;
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
        let user = self.user(&request)?;
        let p = self.prepared(&query.prepared_statement_handle, &user)?;
        let df = self.plan(&p.sql, p.params.as_deref()).await?;
        let schema = wire_schema(df.schema().as_arrow());
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let user = self.user(&request)?;
        let p = self.prepared(&query.prepared_statement_handle, &user)?;
        let df = self.plan(&p.sql, p.params.as_deref()).await?;
        self.stream(df).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let user = self.user(&request)?;
        let mut map = self.prepared.lock().expect("not poisoned");
        if map
            .get(query.prepared_statement_handle.as_ref())
            .is_some_and(|p| p.user == user)
        {
            map.remove(query.prepared_statement_handle.as_ref());
        }
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        let mut b = query.into_builder();
        let mut names = self.engine.context().catalog_names();
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
        self.user(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        let mut b = query.into_builder();
        for (c, s) in list_schemas(&self.engine) {
            b.append(c, s);
        }
        Ok(Self::batch_stream(b.build().map_err(arrow_status)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        let mut b = query.into_builder();
        for t in list_tables(&self.engine).await.map_err(to_status)? {
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
        self.user(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
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
        self.user(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
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
        self.user(&request)?;
        let schema = query.clone().into_builder(&self.xdbc).schema();
        Ok(Response::new(Self::flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
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
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        Ok(Self::batch_stream(RecordBatch::new_empty(Arc::new(
            primary_keys_schema(),
        ))))
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
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        Ok(Self::batch_stream(RecordBatch::new_empty(Arc::new(
            foreign_keys_schema(),
        ))))
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
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        Ok(Self::batch_stream(RecordBatch::new_empty(Arc::new(
            foreign_keys_schema(),
        ))))
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
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
        Ok(Self::batch_stream(RecordBatch::new_empty(Arc::new(
            foreign_keys_schema(),
        ))))
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.user(&request)?;
        Err(Status::permission_denied(READ_ONLY))
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.user(&request)?;
        Err(Status::permission_denied(READ_ONLY))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.user(&request)?;
        Err(Status::permission_denied(READ_ONLY))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.user(&request)?;
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
