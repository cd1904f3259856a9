//! The gRPC service clients talk to: the Flight SQL service, plus the two
//! Flight calls arrow-flight's Flight SQL layer leaves unanswered —
//! `GetSchema` (ADBC's `execute_schema`: a result's schema without running
//! the query) and `PollFlightInfo` (ADBC's incremental execution: tsql plans
//! at once, so the first poll is already complete).
//!
//! While the server shuts down, calls that would start a new query
//! (`GetFlightInfo`, `GetSchema`, `PollFlightInfo`) are refused with
//! UNAVAILABLE; `DoGet` of tickets already issued goes on.
//!
//! Every call but `Handshake` is authenticated here first, before its
//! ticket, command or action is even decoded: a caller without valid
//! credentials learns nothing from how tsql reads what they sent.

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use tonic::{Request, Response, Status, Streaming};

use super::service::TsqlFlightSql;

type Inner = TsqlFlightSql;

/// The Flight service of tsql.
#[derive(Clone)]
pub struct TsqlFlightService {
    sql: Arc<Inner>,
}

impl TsqlFlightService {
    /// Serves `sql` with the additions above.
    pub fn new(sql: TsqlFlightSql) -> Self {
        TsqlFlightService { sql: Arc::new(sql) }
    }
}

#[tonic::async_trait]
impl FlightService for TsqlFlightService {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&*self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::list_flights(&*self.sql, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        self.sql.refuse_when_draining()?;
        FlightService::get_flight_info(&*self.sql, request).await
    }

    /// Plans the command (nothing runs) and answers with its result schema.
    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        self.sql.refuse_when_draining()?;
        let info = FlightService::get_flight_info(&*self.sql, request)
            .await?
            .into_inner();
        Ok(Response::new(SchemaResult {
            schema: info.schema,
        }))
    }

    /// Plans the command and answers with a finished poll.
    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        self.sql.refuse_when_draining()?;
        let info = FlightService::get_flight_info(&*self.sql, request)
            .await?
            .into_inner();
        Ok(Response::new(PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        }))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::do_get(&*self.sql, request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::do_put(&*self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::do_action(&*self.sql, request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::list_actions(&*self.sql, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let mut request = request;
        self.sql.authenticate(&mut request).await?;
        FlightService::do_exchange(&*self.sql, request).await
    }
}
