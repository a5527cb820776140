//! Going live: an emulator that cannot bind leaves nothing running behind it.

use std::time::Duration;

use crmkit_sandbox::shared::listen::Listening;

#[tokio::test]
async fn a_failed_bind_stops_the_webhook_deliverer() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("an address");
    let (alive, gone) = tokio::sync::oneshot::channel::<()>();
    // Stands for the deliverer: it runs until aborted, and its end drops `alive`.
    let deliverer = tokio::spawn(async move {
        let _alive = alive;
        std::future::pending::<()>().await;
    });
    let started = Listening::start(axum::Router::new(), Some(addr), deliverer).await;
    assert!(started.is_err(), "the port is taken");
    let stopped = tokio::time::timeout(Duration::from_secs(5), gone).await;
    assert!(
        matches!(stopped, Ok(Err(_))),
        "the deliverer must be stopped when the server cannot start"
    );
}
