//! `/crm/v3/pipelines/{objectType}`: the default deal pipeline (id `default`; legacy
//! pipelines doc: "Every account initially contains a default pipeline with the pipelineId
//! 'default'") and its stages, read-only.

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::kinds::ObjectType;

/// The default stages with their probabilities; the last two are closed (stage ids as
/// HubSpot's default deal pipeline names them).
pub(crate) const STAGES: &[(&str, &str, &str)] = &[
    ("appointmentscheduled", "Appointment Scheduled", "0.2"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4"),
    ("presentationscheduled", "Presentation Scheduled", "0.6"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
    ("contractsent", "Contract Sent", "0.9"),
    ("closedwon", "Closed Won", "1.0"),
    ("closedlost", "Closed Lost", "0.0"),
];

const CREATED: &str = "2026-01-01T00:00:00.000Z";

fn stage(i: usize, (id, label, p): &(&str, &str, &str)) -> Value {
    let closed = *id == "closedwon" || *id == "closedlost";
    json!({"id": id, "label": label, "displayOrder": i,
           "metadata": {"probability": p, "isClosed": closed.to_string()},
           "archived": false, "createdAt": CREATED, "updatedAt": CREATED})
}

fn pipeline() -> Value {
    let stages: Vec<Value> = STAGES
        .iter()
        .enumerate()
        .map(|(i, s)| stage(i, s))
        .collect();
    json!({"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false,
           "createdAt": CREATED, "updatedAt": CREATED, "stages": stages})
}

/// `GET /crm/v3/pipelines/{type}[/{id}[/stages[/{stageId}]]]`.
pub(crate) fn get(t: &ObjectType, rest: &[&str]) -> Result<Value, ApiError> {
    let pipelines = if t.plural == "deals" {
        vec![pipeline()]
    } else {
        vec![]
    };
    let find = |id: &str| {
        pipelines
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("Unable to find pipeline {id}")))
    };
    match rest {
        [] => Ok(json!({"results": pipelines})),
        [id] => find(id),
        [id, "stages"] => Ok(json!({"results": find(id)?["stages"]})),
        [id, "stages", stage] => find(id)?["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"] == *stage)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("Unable to find stage {stage}"))),
        _ => Err(ApiError::not_found("No such pipelines path")),
    }
}
