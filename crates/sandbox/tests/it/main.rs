//! The sandbox's integration tests: raw HTTP over real loopback against a running Close
//! emulator, pinning each documented behaviour.

mod events;
mod gate;
mod hubspot;
mod lists;
mod scale;
mod search;
mod search_ranges;
mod webhooks;
mod writes;

use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use serde_json::Value;

/// A started emulator with `leads` seeded leads.
pub async fn sandbox(leads: usize) -> RunningClose {
    CloseSandbox::builder()
        .seed(11)
        .leads(leads)
        .start()
        .await
        .expect("sandbox starts")
}

/// A plain HTTP client speaking to one emulator with an API key.
pub struct Api {
    http: reqwest::Client,
    root: String,
}

/// An answer: status, the `RateLimit`-family headers, and the JSON body (null when empty).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body, or null.
    pub body: Value,
}

impl Api {
    /// A client for `sb`.
    pub fn new(sb: &RunningClose) -> Self {
        Self {
            http: reqwest::Client::new(),
            root: sb.api_url(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .basic_auth("test-key", Some(""))
            .send()
            .await
            .expect("the sandbox answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.root)).query(query))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.root)).json(body))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.put(format!("{}{path}", self.root)).json(body))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(format!("{}{path}", self.root)))
            .await
    }

    /// The raw request builder for `method path`, for tests that expect no answer.
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.root))
            .basic_auth("test-key", Some(""))
    }
}

/// The `id`s of a list answer's `data`.
pub fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}
