//! The sandbox's integration tests: raw HTTP over real loopback against a running Close
//! emulator, pinning each documented behaviour.

mod events;
mod gate;
mod hubspot;
mod listen;
mod lists;
mod salesforce;
mod scale;
mod search;
mod search_ranges;
mod webhooks;
mod writes;

use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::hubspot::RunningHubSpot;
use crmkit_sandbox::salesforce::RunningSalesforce;
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

/// A plain HTTP client speaking to one emulator: HTTP Basic with an API key (Close) or a
/// Bearer token (HubSpot, Salesforce).
pub struct Api {
    http: reqwest::Client,
    root: String,
    token: String,
    bearer: bool,
}

/// An emulator an [`Api`] can speak to, with its default credential.
pub trait Target {
    /// The root paths are relative to, the credential, and whether it goes as a Bearer.
    fn endpoint(&self) -> (String, String, bool);
}

impl Target for RunningClose {
    fn endpoint(&self) -> (String, String, bool) {
        (self.api_url(), "test-key".into(), false)
    }
}

impl Target for RunningSalesforce {
    fn endpoint(&self) -> (String, String, bool) {
        (
            format!("{}/services/data/v59.0", self.instance_url()),
            "00D000000000001!ARsandbox".into(),
            true,
        )
    }
}

impl Target for RunningHubSpot {
    fn endpoint(&self) -> (String, String, bool) {
        (self.base_url(), "pat-na1-test".into(), true)
    }
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

impl Api {
    /// A client for `sb` with its default credential.
    pub fn new(sb: &impl Target) -> Self {
        let (root, token, bearer) = sb.endpoint();
        Self {
            http: reqwest::Client::new(),
            root,
            token,
            bearer,
        }
    }

    /// A client for `sb` with `token` instead of the default one.
    pub fn with_token(sb: &impl Target, token: &str) -> Self {
        Self {
            token: token.to_string(),
            ..Self::new(sb)
        }
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.bearer {
            req.bearer_auth(&self.token)
        } else {
            req.basic_auth(&self.token, Some(""))
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = self.authed(req).send().await.expect("the sandbox answers");
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
        self.authed(self.http.request(method, format!("{}{path}", self.root)))
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
