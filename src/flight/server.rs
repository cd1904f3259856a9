//! Running the Flight SQL server: listen, optional TLS, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use super::front_end::TsqlFlightService;
use super::service::TsqlFlightSql;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Serves Flight SQL over `serving` until SIGTERM or Ctrl-C has been
/// handled as [`crate::shutdown`] says (running queries finish within the
/// grace period, new ones are refused), then stops accepting calls.
/// `ready` is called once the port is bound.
pub async fn serve(
    serving: &crate::serving::Serving,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let service = TsqlFlightService::new(TsqlFlightSql::new(serving));
    let mut builder = Server::builder();
    if let Some((cert, key)) = &options.tls {
        let cert_pem = std::fs::read(cert)
            .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?;
        let key_pem = std::fs::read(key)
            .map_err(|e| format!("cannot read TLS key {}: {e}", key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
            .map_err(|e| format!("cannot use the TLS certificate and key: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e} (is another server using the port? pick one with --listen)", options.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    ready(local);
    // No Nagle: small answers (a point lookup, a metadata call) go out at
    // once instead of waiting for the client's delayed ACK (~40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)));
    // The drain (see crate::shutdown) runs while the server still answers:
    // DoGet of tickets already issued goes on; new queries are refused by
    // the service. Once it ends, the server stops accepting calls.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = serving.shutdown.clone();
    let all = serving.clone();
    let signal = async move {
        crate::shutdown::on_signal(shutdown, move || {
            all.cancel_all("cancelled: the server shut down (shutdown_grace_seconds passed)")
        })
        .await;
        let _ = stopping.send(());
    };
    let server = builder
        .add_service(FlightServiceServer::new(service).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    // Connections get a moment to close after the drain; then the process ends anyway.
    let closing = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(CLOSING).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = &mut server => r.map_err(|e| format!("server failed: {e}")),
        _ = closing => {
            tracing::warn!("connections still open {} s after the drain; closing them", CLOSING.as_secs());
            Ok(())
        }
    }
}

/// How long connections may take to close once the drain is over.
const CLOSING: std::time::Duration = std::time::Duration::from_secs(5);
