//! `/crm/v3/owners` (crm-owners-v3.json): two seeded owners that records may name in
//! `hubspot_owner_id`.

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::objects::param;

fn owners() -> Vec<Value> {
    let at = "2026-01-01T00:00:00.000Z";
    [
        ("101", "201", "sam@sandbox.example", "Sam", "Seller"),
        ("102", "202", "ola@sandbox.example", "Ola", "Owner"),
    ]
    .iter()
    .map(|(id, user, email, first, last)| {
        json!({"id": id, "userId": user.parse::<u64>().unwrap_or_default(), "email": email,
                   "firstName": first, "lastName": last, "createdAt": at, "updatedAt": at,
                   "archived": false, "teams": []})
    })
    .collect()
}

/// `GET /crm/v3/owners` (optionally `email=`) and `/crm/v3/owners/{id}` (`idProperty=userId`).
pub(crate) fn get(rest: &[&str], params: &[(String, String)]) -> Result<Value, ApiError> {
    let all = owners();
    match rest {
        [] => {
            let email = param(params, "email");
            let results: Vec<Value> = all
                .into_iter()
                .filter(|o| {
                    email.is_none_or(|e| {
                        o["email"]
                            .as_str()
                            .is_some_and(|x| x.eq_ignore_ascii_case(e))
                    })
                })
                .collect();
            Ok(json!({"results": results}))
        }
        [id] => {
            let by_user = param(params, "idProperty") == Some("userId");
            all.into_iter()
                .find(|o| {
                    if by_user {
                        id.parse::<u64>().ok() == o["userId"].as_u64()
                    } else {
                        o["id"] == *id
                    }
                })
                .ok_or_else(|| ApiError::not_found(format!("Unable to find owner {id}")))
        }
        _ => Err(ApiError::not_found("No such owners path")),
    }
}
