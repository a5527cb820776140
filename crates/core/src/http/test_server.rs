//! A scripted loopback HTTP/1.1 server for the transport's own tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone)]
pub(crate) enum Answer {
    /// Status and JSON body.
    Json(u16, &'static str),
    /// Status, extra header lines (`name: value\r\n` each) and JSON body.
    Headed(u16, &'static str, &'static str),
    /// Waits this long, then answers 200 with the body (to trip a timeout).
    Slow(Duration, &'static str),
    /// Promises a longer body than it sends, then closes.
    Truncated,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The request line's target, e.g. `/api/lead/`.
    pub path: String,
    /// The body.
    pub body: String,
}

/// Serves `answers` in order (the last one repeats); returns `http://127.0.0.1:PORT` and the
/// requests received.
pub(crate) async fn script(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answers[n.min(answers.len() - 1)].clone();
            n += 1;
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(k) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let path = text
                                .lines()
                                .next()
                                .and_then(|l| l.split(' ').nth(1))
                                .unwrap_or_default()
                                .to_string();
                            let body = text[end + 4..].to_string();
                            log.lock().expect("log").push(Seen { path, body });
                            break;
                        }
                    }
                }
                let reply = |status: u16, extra: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let out = match answer {
                    Answer::Json(status, body) => reply(status, "", body),
                    Answer::Headed(status, extra, body) => reply(status, extra, body),
                    Answer::Slow(d, body) => {
                        tokio::time::sleep(d).await;
                        reply(200, "", body)
                    }
                    Answer::Truncated => {
                        "HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"access_token\":"
                            .to_string()
                    }
                };
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}
