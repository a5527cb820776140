//! `query` and `queryAll` as streams of records, following `nextRecordsUrl` (never OFFSET,
//! which Salesforce caps at 2,000 rows).
//!
//! A parent-to-child subquery comes back inside each parent as a nested result
//! (`{"totalSize","done","records","nextRecordsUrl"}`); when it is cut short (`done: false`),
//! its further pages are read before the parent is handed out, so every record carries all
//! its children.

use crmkit_core::http::ApiRequest;
use crmkit_core::{Error, Result};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Client;
use crate::sobjects::Fields;
use crate::soql::Soql;

/// One page of a query answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// How many records the whole query matches.
    #[serde(default)]
    pub total_size: u64,
    /// Whether this is the last page.
    #[serde(default = "yes")]
    pub done: bool,
    /// Where the next page is, when not done.
    #[serde(default)]
    pub next_records_url: Option<String>,
    /// The records of this page.
    #[serde(default)]
    pub records: Vec<Fields>,
}

fn yes() -> bool {
    true
}

/// Which records a query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `query`: live records.
    Live,
    /// `queryAll`: also deleted (in the recycle bin) and archived records.
    All,
}

impl Client {
    /// The first page of `soql` (`GET query/?q=` or `queryAll/?q=`).
    pub async fn query_page(&self, soql: &str, scope: Scope) -> Result<QueryPage> {
        let path = match scope {
            Scope::Live => "query/",
            Scope::All => "queryAll/",
        };
        self.json(&ApiRequest::get(path).query("q", soql)).await
    }

    /// The page at `next_records_url`.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        self.json(&ApiRequest::get(self.relative(next_records_url)))
            .await
    }

    /// Every record of `soql`, page after page, with nested subquery pages filled in.
    pub fn query(&self, soql: impl Into<String>) -> BoxStream<'static, Result<Fields>> {
        self.stream(soql.into(), Scope::Live)
    }

    /// [`Self::query`] through `queryAll`: deleted and archived records too (`IsDeleted`).
    pub fn query_all(&self, soql: impl Into<String>) -> BoxStream<'static, Result<Fields>> {
        self.stream(soql.into(), Scope::All)
    }

    /// Builds `soql` and streams its records ([`Self::query`]).
    pub fn query_soql(&self, soql: &Soql) -> BoxStream<'static, Result<Fields>> {
        match soql.build() {
            Ok(q) => self.query(q),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    /// [`Self::query`] decoding each record into `T`; a record that does not fit is an
    /// error naming its id and the field.
    pub fn query_as<T: DeserializeOwned + Send + 'static>(
        &self,
        soql: impl Into<String>,
    ) -> BoxStream<'static, Result<T>> {
        self.query(soql)
            .map(|r| {
                r.and_then(|fields| {
                    let id = fields.get("Id").and_then(Value::as_str).map(str::to_string);
                    serde_json::from_value(Value::Object(fields)).map_err(|e| {
                        let e = Error::bad_response(format!("a record does not fit: {e}"));
                        match id {
                            Some(id) => e.with_record(id),
                            None => e,
                        }
                    })
                })
            })
            .boxed()
    }

    fn stream(&self, soql: String, scope: Scope) -> BoxStream<'static, Result<Fields>> {
        enum Next {
            First(String),
            More(String),
            Done,
        }
        let client = self.clone();
        stream::try_unfold(Next::First(soql), move |next| {
            let client = client.clone();
            async move {
                let page = match next {
                    Next::First(q) => client.query_page(&q, scope).await?,
                    Next::More(url) => client.query_more(&url).await?,
                    Next::Done => return Ok(None),
                };
                let mut records = page.records;
                for r in &mut records {
                    client.complete_children(r).await?;
                }
                let next = match (page.done, page.next_records_url) {
                    (false, Some(url)) => Next::More(url),
                    _ => Next::Done,
                };
                Ok(Some((stream::iter(records.into_iter().map(Ok)), next)))
            }
        })
        .map(|page: Result<_>| match page {
            Ok(s) => s.left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
        .boxed()
    }

    /// Reads the missing pages of every cut-short child result in `record`.
    async fn complete_children(&self, record: &mut Fields) -> Result<()> {
        for value in record.values_mut() {
            let Value::Object(child) = value else {
                continue;
            };
            if !child.contains_key("records") {
                continue;
            }
            let mut next = match (
                child.get("done").and_then(Value::as_bool),
                child.get("nextRecordsUrl"),
            ) {
                (Some(false), Some(Value::String(url))) => Some(url.clone()),
                _ => None,
            };
            while let Some(url) = next.take() {
                let page = self.query_more(&url).await?;
                if let Some(Value::Array(list)) = child.get_mut("records") {
                    list.extend(page.records.into_iter().map(Value::Object));
                }
                if !page.done {
                    next = page.next_records_url;
                }
            }
            child.insert("done".into(), Value::Bool(true));
            child.remove("nextRecordsUrl");
        }
        Ok(())
    }
}
