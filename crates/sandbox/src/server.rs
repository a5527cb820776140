//! Serving a sandbox router on a real socket, with the ability to drop connections.
//!
//! `axum::serve` always answers; fault injection also needs to break a connection without
//! any answer, so this loop serves each connection with hyper directly and aborts it when a
//! response is marked with [`DropConnection`].

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// A router being served; stops accepting when dropped.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Served {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves `router` on `addr` (use port 0 for any free port).
pub async fn serve(router: Router, addr: SocketAddr) -> std::io::Result<Served> {
    serve_with(router, addr, None).await
}

/// Serves `router` over TLS on `addr` (for clients that only speak `https://`).
pub async fn serve_tls(
    router: Router,
    addr: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
) -> std::io::Result<Served> {
    serve_with(router, addr, Some(tls)).await
}

async fn serve_with(
    router: Router,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<Served> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let router = router.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    // A failed handshake ends only that connection.
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            connection(router, stream).await;
                        }
                    }
                    None => connection(router, stream).await,
                }
            });
        }
    });
    Ok(Served { addr, accept })
}

/// Serves one connection until it closes, dropping it instead of answering when a response
/// is marked with [`DropConnection`].
async fn connection<I>(router: Router, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req.map(Body::new)).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            if resp.extensions().get::<DropConnection>().is_some() {
                return Err(Dropped);
            }
            Ok::<_, Dropped>(resp)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A TLS acceptor from a PEM certificate chain and its PEM private key.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("TLS certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| invalid(format!("TLS private key: {e}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}
