//! The baseline of the streaming benchmark: a bare arrow-flight server that
//! answers every `DoGet` with the record batches of one Arrow IPC file, held
//! in memory. No SQL, no auth, no conversion: what plain Flight can do on
//! this machine. `GetFlightInfo` of any descriptor points at those batches,
//! so a Flight SQL client (ADBC) can fetch them as if it ran a query.
//! `benches/flight.py` starts it next to `tsql serve`.
//!
//! Usage: raw_flight_server <batches.arrow> [listen address, default 127.0.0.1:0]

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::{Stream, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct RawServer {
    schema: SchemaRef,
    batches: Arc<Vec<RecordBatch>>,
}

fn not_here<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the raw benchmark server only answers DoGet",
    ))
}

#[tonic::async_trait]
impl FlightService for RawServer {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        not_here()
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        not_here()
    }
    /// Any descriptor (a Flight SQL query from ADBC, say) names the batches.
    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        // ADBC asks for SqlInfo on connecting and copes without it.
        let command = &request.get_ref().cmd;
        if command.windows(17).any(|w| w == b"CommandGetSqlInfo") {
            return not_here();
        }
        let info = FlightInfo::new()
            .try_with_schema(&self.schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new("all")))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        not_here()
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        not_here()
    }
    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let batches = self.batches.clone();
        let source = futures::stream::iter((0..batches.len()).map(move |i| Ok(batches[i].clone())));
        let out = FlightDataEncoderBuilder::new()
            .with_schema(self.schema.clone())
            .build(source)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(out)))
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        not_here()
    }
    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        not_here()
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        not_here()
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        not_here()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: raw_flight_server <batches.arrow> [listen address]")?;
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let file = std::fs::File::open(&path)?;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "raw_flight_server: {} batches, {} rows on grpc://{}",
        batches.len(),
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        listener.local_addr()?
    );
    let service = RawServer {
        schema,
        batches: Arc::new(batches),
    };
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
