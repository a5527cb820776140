//! Advanced Filtering (`POST /data/search/`): a typed builder for its query JSON, and the
//! search as a stream that follows the cursor.

use chrono::{DateTime, SecondsFormat, Utc};
use crmkit_core::Result;
use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::keyset::{self, KeysetConfig, KeysetCursor, SlicePage, SliceRequest, Sliced};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;

/// A field to test: a regular field of an object type, or a custom field by id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Field {
    /// A built-in field (`name`, `status_id`, `date_updated`…).
    RegularField {
        /// `lead`, `contact`, `opportunity`…
        object_type: String,
        /// The field name.
        field_name: String,
    },
    /// A custom field.
    CustomField {
        /// `cf_…`.
        custom_field_id: String,
    },
}

/// A condition on a field's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    /// Text match: `full_words`, `phrase` or `beginning_of_words`.
    Text {
        /// The match mode.
        mode: String,
        /// The text.
        value: String,
    },
    /// Exact match of any of `values`.
    Term {
        /// Accepted values.
        values: Vec<Value>,
    },
    /// A reference to other objects by id.
    Reference {
        /// What the ids are (`lead`, `user`…).
        reference_type: String,
        /// The ids.
        object_ids: Vec<String>,
    },
    /// A numeric range; unset bounds are open.
    NumberRange {
        /// Greater than.
        #[serde(skip_serializing_if = "Option::is_none")]
        gt: Option<f64>,
        /// Greater than or equal.
        #[serde(skip_serializing_if = "Option::is_none")]
        gte: Option<f64>,
        /// Less than.
        #[serde(skip_serializing_if = "Option::is_none")]
        lt: Option<f64>,
        /// Less than or equal.
        #[serde(skip_serializing_if = "Option::is_none")]
        lte: Option<f64>,
    },
    /// A time range; an unset bound is open. Build it with [`Condition::moment_range`].
    MomentRange {
        /// From (inclusive).
        on_or_after: Option<Moment>,
        /// Until (exclusive).
        before: Option<Moment>,
    },
    /// The field has a value.
    Exists,
}

/// A point in time in a [`Condition::MomentRange`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Moment {
    /// An exact instant in UTC.
    FixedUtc {
        /// ISO 8601 with an offset (`2025-12-08T21:12:12.000000+00:00`).
        value: String,
    },
}

impl Condition {
    /// `on_or_after ≤ t < before`, each bound open when `None`, in the form the Close app's
    /// "Copy Filters" emits: `{"type":"moment_range","on_or_after":{"type":"fixed_utc",
    /// "value":…},"before":null}` (developer.close.com/api/resources/advanced-filtering/search).
    pub fn moment_range(on_or_after: Option<DateTime<Utc>>, before: Option<DateTime<Utc>>) -> Self {
        let fixed = |t: DateTime<Utc>| Moment::FixedUtc {
            value: t.to_rfc3339_opts(SecondsFormat::Micros, false),
        };
        Condition::MomentRange {
            on_or_after: on_or_after.map(fixed),
            before: before.map(fixed),
        }
    }
}

/// A node of an Advanced Filtering query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Query {
    /// All of the queries.
    And {
        /// The parts.
        queries: Vec<Query>,
        /// Inverts the result.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        negate: bool,
    },
    /// Any of the queries.
    Or {
        /// The parts.
        queries: Vec<Query>,
        /// Inverts the result.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        negate: bool,
    },
    /// Results of this object type.
    ObjectType {
        /// `lead`, `contact`, `opportunity`…
        object_type: String,
    },
    /// A condition on one field.
    FieldCondition {
        /// The field.
        field: Field,
        /// The condition.
        condition: Condition,
        /// Inverts the result.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        negate: bool,
    },
    /// The object has a related object matching `related_query`.
    HasRelated {
        /// The object type of the results.
        this_object_type: String,
        /// The related object type.
        related_object_type: String,
        /// The condition on the related object.
        related_query: Box<Query>,
        /// Inverts the result.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        negate: bool,
    },
}

impl Query {
    /// `and` of `queries`.
    pub fn and(queries: Vec<Query>) -> Self {
        Query::And {
            queries,
            negate: false,
        }
    }

    /// `or` of `queries`.
    pub fn or(queries: Vec<Query>) -> Self {
        Query::Or {
            queries,
            negate: false,
        }
    }

    /// Results of `object_type`.
    pub fn object_type(object_type: &str) -> Self {
        Query::ObjectType {
            object_type: object_type.into(),
        }
    }

    /// `condition` on `field`.
    pub fn field(field: Field, condition: Condition) -> Self {
        Query::FieldCondition {
            field,
            condition,
            negate: false,
        }
    }

    /// Inverts this node.
    pub fn negated(mut self) -> Self {
        match &mut self {
            Query::And { negate, .. }
            | Query::Or { negate, .. }
            | Query::FieldCondition { negate, .. }
            | Query::HasRelated { negate, .. } => *negate = !*negate,
            Query::ObjectType { .. } => {
                return Query::And {
                    queries: vec![self],
                    negate: true,
                };
            }
        }
        self
    }
}

/// A sort rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sort {
    /// `asc` or `desc`.
    pub direction: String,
    /// The field.
    pub field: Field,
}

/// A whole `/data/search/` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchRequest {
    /// The query.
    pub query: Query,
    /// Sort rules, most significant first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Sort>,
    /// Fields to return per object type (`{"lead": ["id", "display_name"]}`); without it each
    /// result is only `id` and `__object_type`.
    #[serde(rename = "_fields", skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// Results per page (at most 200).
    #[serde(rename = "_limit")]
    pub limit: u32,
    /// Where to continue.
    pub cursor: Option<String>,
}

impl SearchRequest {
    /// Searches with `query`, 200 results per page.
    pub fn new(query: Query) -> Self {
        Self {
            query,
            sort: Vec::new(),
            fields: None,
            limit: 200,
            cursor: None,
        }
    }

    /// Returns these fields of `object_type`.
    pub fn fields(mut self, object_type: &str, fields: &[&str]) -> Self {
        self.fields = Some(json!({ object_type: fields }));
        self
    }
}

/// Whether a search failed because its `cursor` expired or is unknown: a public Close
/// integration reports search cursors living about 30 s, and Close names the field in its
/// 400. The keyset slicer then reads the instant again from its first page.
pub(crate) fn expired_cursor(e: &crmkit_core::Error) -> bool {
    let names_cursor = |s: &str| s.to_ascii_lowercase().contains("cursor");
    e.status() == Some(400)
        && (names_cursor(e.message()) || e.field_errors().iter().any(|f| f.field == "cursor"))
}

#[derive(Deserialize)]
struct SearchPage {
    data: Vec<Value>,
    cursor: Option<String>,
}

impl Client {
    /// Every `object_type` object (with `fields`) from `start` on, by keyset slices on
    /// (`time_field`, id) over `/data/search/`; an expired search cursor restarts its instant.
    pub(crate) fn search_slices(
        &self,
        object_type: &'static str,
        time_field: &'static str,
        fields: Vec<String>,
        config: KeysetConfig,
        start: Option<KeysetCursor>,
    ) -> BoxStream<'static, Result<Sliced<Value>>> {
        let client = self.clone();
        keyset::slices(
            config.expired_token(expired_cursor),
            start,
            move |raw: &Value| crate::fields::key(raw, time_field),
            move |req| {
                let client = client.clone();
                let fields = fields.clone();
                async move { client.slice(object_type, time_field, &fields, &req).await }
            },
        )
    }

    /// Runs one page of a keyset slice: `object_type` objects with `from ≤ time_field <
    /// until`, oldest first, with `fields` named.
    pub(crate) async fn slice(
        &self,
        object_type: &str,
        time_field: &str,
        fields: &[String],
        req: &SliceRequest,
    ) -> Result<SlicePage<Value>> {
        let field = || Field::RegularField {
            object_type: object_type.into(),
            field_name: time_field.into(),
        };
        let query = Query::and(vec![
            Query::object_type(object_type),
            Query::field(
                field(),
                Condition::moment_range(req.from, req.upper_bound()),
            ),
        ]);
        let body = SearchRequest {
            query,
            sort: vec![Sort {
                direction: "asc".into(),
                field: field(),
            }],
            fields: Some(json!({ object_type: fields })),
            limit: req.limit.clamp(1, 200) as u32,
            cursor: req.page.clone(),
        };
        let page = self.search_page(&body).await?;
        Ok(SlicePage {
            items: page.data,
            next: page.cursor,
        })
    }

    async fn search_page(&self, body: &SearchRequest) -> Result<SearchPage> {
        let mut body = serde_json::to_value(body)?;
        self.expand_custom(&mut body["_fields"]).await?;
        // A search changes nothing, so repeating it after a 5xx is safe.
        let req = ApiRequest::post("data/search/", body).repeat_safe();
        self.json(&req).await
    }

    /// Replaces `custom` in a search's `_fields` with each custom field by name
    /// (`custom.cf_…`): `custom` as "every custom field" is documented for `GET ?_fields=`
    /// (developer.close.com/topics/fields), not for search, whose `_fields` take named
    /// `custom.cf_…` entries. Activities have no schema to read (built-in activities hold no
    /// custom fields), so `custom` is simply dropped there.
    async fn expand_custom(&self, fields: &mut Value) -> Result<()> {
        let Some(per_type) = fields.as_object_mut() else {
            return Ok(());
        };
        for (object_type, names) in per_type.iter_mut() {
            let Some(list) = names.as_array_mut() else {
                continue;
            };
            let Some(at) = list.iter().position(|n| n == "custom") else {
                continue;
            };
            list.remove(at);
            if matches!(object_type.as_str(), "lead" | "contact" | "opportunity") {
                for id in self.custom_field_ids(object_type).await? {
                    list.push(Value::String(format!("custom.{id}")));
                }
            }
        }
        Ok(())
    }

    /// Runs an Advanced Filtering search, following the cursor; yields the result objects.
    /// Close's search cursors expire (about 30 s is reported): drain the stream promptly,
    /// or buffer it, when the consumer is slow.
    pub fn search(&self, request: SearchRequest) -> BoxStream<'static, Result<Value>> {
        let client = self.clone();
        paginate(request.cursor.clone(), move |cursor| {
            let client = client.clone();
            let mut body = request.clone();
            body.cursor = cursor;
            async move {
                let page = client.search_page(&body).await?;
                Ok(Page {
                    items: page.data,
                    next: page.cursor.map(Some),
                })
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_documented_shape() {
        let q = Query::and(vec![
            Query::object_type("lead"),
            Query::field(
                Field::RegularField {
                    object_type: "lead".into(),
                    field_name: "status_id".into(),
                },
                Condition::Term {
                    values: vec![json!("stat_1")],
                },
            ),
            Query::field(
                Field::CustomField {
                    custom_field_id: "cf_1".into(),
                },
                Condition::Text {
                    mode: "phrase".into(),
                    value: "abc".into(),
                },
            )
            .negated(),
        ]);
        let req = SearchRequest::new(q).fields("lead", &["id", "display_name"]);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"query": {"type": "and", "queries": [
                {"type": "object_type", "object_type": "lead"},
                {"type": "field_condition", "field": {"type": "regular_field", "object_type": "lead", "field_name": "status_id"},
                 "condition": {"type": "term", "values": ["stat_1"]}},
                {"type": "field_condition", "field": {"type": "custom_field", "custom_field_id": "cf_1"},
                 "condition": {"type": "text", "mode": "phrase", "value": "abc"}, "negate": true}]},
             "_fields": {"lead": ["id", "display_name"]}, "_limit": 200, "cursor": null})
        );
    }
}
