//! Serving an axum router over TLS, with the acceptor looked up per connection
//! so credentials installed later (at unseal) take effect without a restart.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Where a TLS listener gets its acceptor; `None` refuses the connection.
pub trait AcceptorSource: Send + Sync + 'static {
    /// The acceptor to use for a new connection.
    fn acceptor(&self) -> Option<TlsAcceptor>;
}

impl AcceptorSource for TlsAcceptor {
    fn acceptor(&self) -> Option<TlsAcceptor> {
        Some(self.clone())
    }
}

/// Accepts connections until `stop` changes, handshakes each in its own task and
/// serves `router` on it over HTTP/1.1.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn AcceptorSource>,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Some(acceptor) = source.acceptor() else {
            tracing::debug!(%peer, "refusing a connection: no TLS credentials yet (sealed)");
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let role = super::peer_role(tls.get_ref().1.peer_certificates().and_then(|c| c.first()));
            let service = TowerToHyperService::new(router.layer(axum::Extension(role)));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
