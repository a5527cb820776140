//! The HubSpot emulator over real loopback HTTP, pinning each documented behaviour.

mod associations;
mod batch;
mod gate;
mod merges;
mod objects;
mod search;
mod settings;
mod webhooks;

use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use serde_json::Value;

/// A started emulator seeded with a world of `companies` companies.
pub async fn hubspot(companies: usize) -> RunningHubSpot {
    HubSpotSandbox::builder()
        .seed(5)
        .companies(companies)
        .start()
        .await
        .expect("sandbox starts")
}

/// A plain HTTP client speaking to one emulator with a Bearer token.
pub struct Hs {
    http: reqwest::Client,
    root: String,
    token: String,
}

/// An answer: status, headers and the JSON body (null when empty).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body, or null.
    pub body: Value,
}

impl Answer {
    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// A header as an integer.
    pub fn int(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

impl Hs {
    /// A client for `sb` with the token `pat-na1-test`.
    pub fn new(sb: &RunningHubSpot) -> Self {
        Self::with_token(sb, "pat-na1-test")
    }

    /// A client for `sb` with `token`.
    pub fn with_token(sb: &RunningHubSpot, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            root: sb.base_url(),
            token: token.to_string(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .bearer_auth(&self.token)
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

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.patch(format!("{}{path}", self.root)).json(body))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(format!("{}{path}", self.root)))
            .await
    }
}

/// The `id`s of a list or search answer's `results`.
pub fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}
