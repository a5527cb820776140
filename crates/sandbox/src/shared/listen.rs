//! How an emulator goes live: its router served on the chosen address and its webhook
//! deliverer running beside it, both stopped when the running emulator is dropped.

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

use crate::server::{Served, serve, serve_tls};

/// A served emulator and its webhook deliverer; dropping it stops both.
pub struct Listening {
    served: Served,
    deliverer: JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.deliverer.abort();
    }
}

impl Listening {
    /// Serves `router` on `addr` (`127.0.0.1:0`, any free port, when `None`) next to
    /// `deliverer`; when serving fails (the address is taken), `deliverer` is stopped.
    pub async fn start(
        router: Router,
        addr: Option<SocketAddr>,
        deliverer: JoinHandle<()>,
    ) -> std::io::Result<Self> {
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        match serve(router, addr).await {
            Ok(served) => Ok(Self { served, deliverer }),
            Err(e) => {
                // Nothing will ever drop a `Listening` for this deliverer: stop it here.
                deliverer.abort();
                Err(e)
            }
        }
    }

    /// Like [`Listening::start`], over TLS.
    pub async fn start_tls(
        router: Router,
        addr: Option<SocketAddr>,
        deliverer: JoinHandle<()>,
        tls: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<Self> {
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let served = serve_tls(router, addr, tls).await?;
        Ok(Self { served, deliverer })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.served.addr()
    }
}
