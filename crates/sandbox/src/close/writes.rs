//! Create, update (a partial update on every collection) and delete, with cascading deletes
//! and an event for every change.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::api_error::{ApiError, Changed};
use super::data::{Data, stamp};
use super::kinds::{Kind, event_type};
use super::listing::find;
use super::render::render;
use super::validate::validate;
use super::writable::keep_writable;

fn body_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::Errors(vec![
            "The request body must be a JSON object.".into(),
        ])),
    }
}

fn change_event(
    data: &mut Data,
    table: &'static str,
    action: &str,
    row: &Value,
    previous: Map<String, Value>,
    method: &str,
    path: &str,
) -> Option<Value> {
    if data.seeding {
        return None;
    }
    let object_type = event_type(table, row)?;
    let lead_id = if table == "lead" {
        row["id"].as_str()
    } else {
        row["lead_id"].as_str()
    }
    .map(str::to_string);
    // Delete events carry no data but the whole prior object in `previous_data`
    // (developer.close.com/resources/event-log; Close's restore_deleted_leads.py re-POSTs it).
    // A caller that rendered the object before removing its children passes that rendering.
    let (rendered, previous, changed) = if action == "deleted" {
        let prior = if previous.is_empty() {
            match render(data, table, row.clone()) {
                Value::Object(m) => m,
                _ => previous,
            }
        } else {
            previous
        };
        (Value::Null, prior, Vec::new())
    } else {
        let changed = previous.keys().cloned().collect();
        (render(data, table, row.clone()), previous, changed)
    };
    Some(data.record_event(
        &object_type,
        action,
        row["id"].as_str().unwrap_or_default(),
        lead_id.as_deref(),
        rendered,
        previous,
        changed,
        method,
        path,
    ))
}

/// A create body after the allow-list and validation, not yet stored.
struct Checked {
    obj: Map<String, Value>,
    /// Nested contacts of a lead, each checked too.
    contacts: Vec<Map<String, Value>>,
}

/// Checks a create body completely, nested contacts included, without changing `data`, so
/// a refused request leaves nothing behind.
fn check_create(data: &mut Data, kind: Kind, body: Value) -> Result<Checked, ApiError> {
    let mut obj = body_object(body)?;
    keep_writable(kind, &mut obj);
    let nested = if kind == Kind::Lead {
        obj.remove("contacts")
    } else {
        None
    };
    validate(data, kind, &mut obj, None)?;
    let mut contacts = Vec::new();
    if let Some(Value::Array(list)) = nested {
        for (i, c) in list.into_iter().enumerate() {
            let prefixed = |e: ApiError| match e {
                ApiError::Fields(f) => ApiError::Fields(
                    f.into_iter()
                        .map(|(k, v)| (format!("contacts.{i}.{k}"), v))
                        .collect(),
                ),
                e => e,
            };
            let mut c = body_object(c).map_err(prefixed)?;
            keep_writable(Kind::Contact, &mut c);
            // The lead they belong to does not exist yet; it is set when stored.
            c.remove("lead_id");
            validate(data, Kind::Contact, &mut c, None).map_err(prefixed)?;
            contacts.push(c);
        }
    }
    Ok(Checked { obj, contacts })
}

/// Stores a checked object of `kind` and records its event.
fn store(
    data: &mut Data,
    kind: Kind,
    mut obj: Map<String, Value>,
    path: &str,
    events: &mut Vec<Value>,
) -> String {
    let id = data.new_id(kind.prefix());
    let now = stamp(Utc::now());
    obj.insert("id".into(), json!(id));
    obj.entry("date_created").or_insert(json!(now));
    obj.insert("date_updated".into(), json!(now));
    obj.insert("organization_id".into(), json!(data.org_id));
    if matches!(
        kind,
        Kind::Lead | Kind::Contact | Kind::Opportunity | Kind::Task | Kind::Activity(_)
    ) {
        obj.insert("created_by".into(), json!(data.user_id));
        obj.insert("updated_by".into(), json!(data.user_id));
        obj.entry("user_id").or_insert(json!(data.user_id));
    }
    let row = Value::Object(obj);
    data.insert(kind.table(), row.clone());
    events.extend(change_event(
        data,
        kind.table(),
        "created",
        &row,
        Map::new(),
        "POST",
        path,
    ));
    id
}

/// `POST /{collection}/`. Everything is checked before anything is stored.
pub(crate) fn create(
    data: &mut Data,
    kind: Kind,
    body: Value,
    path: &str,
) -> Result<Changed, ApiError> {
    let Checked { mut obj, contacts } = check_create(data, kind, body)?;
    let mut events = Vec::new();
    if kind == Kind::Contact && obj.get("lead_id").is_none_or(Value::is_null) {
        // Close creates a lead named after the contact when none is given
        // (developer.close.com/resources/contacts); a null `lead_id` gives none either.
        let name = obj.get("name").cloned().unwrap_or(json!(""));
        let mut lead = body_object(json!({"name": name}))?;
        validate(data, Kind::Lead, &mut lead, None)?;
        let lead_id = store(data, Kind::Lead, lead, "/api/v1/lead/", &mut events);
        obj.insert("lead_id".into(), json!(lead_id));
    }
    let id = store(data, kind, obj, path, &mut events);
    for mut c in contacts {
        c.insert("lead_id".into(), json!(id));
        store(data, Kind::Contact, c, "/api/v1/contact/", &mut events);
    }
    let stored = data.get(kind.table(), &id).cloned().unwrap_or(Value::Null);
    let status = if kind == Kind::Webhook { 201 } else { 200 };
    Ok(Changed {
        status,
        body: render(data, kind.table(), stored),
        events,
    })
}

/// `PUT /{collection}/{id}/`: a partial update.
pub(crate) fn update(
    data: &mut Data,
    kind: Kind,
    id: &str,
    body: Value,
    path: &str,
) -> Result<Changed, ApiError> {
    let current = find(data, kind, id)?
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut obj = body_object(body)?;
    keep_writable(kind, &mut obj);
    // Kept on create only: what an object is and when it began do not change.
    for k in ["date_created", "_type"] {
        obj.remove(k);
    }
    validate(data, kind, &mut obj, Some(&current))?;
    let mut previous = Map::new();
    for (k, v) in &obj {
        let old = current.get(k).cloned().unwrap_or(Value::Null);
        if &old != v {
            previous.insert(k.clone(), old);
        }
    }
    let table = kind.table();
    let user_id = data.user_id.clone();
    let changed = !previous.is_empty();
    if changed {
        previous.insert(
            "date_updated".into(),
            current.get("date_updated").cloned().unwrap_or(Value::Null),
        );
    }
    let row = data
        .update_row(table, id, |row| {
            for (k, v) in obj {
                row[k.as_str()] = v;
            }
            if changed {
                row["date_updated"] = json!(stamp(Utc::now()));
                row["updated_by"] = json!(user_id);
            }
        })
        .ok_or_else(|| ApiError::NotFound(kind.model_name()))?;
    let events = if previous.is_empty() {
        Vec::new()
    } else {
        change_event(data, table, "updated", &row, previous, "PUT", path)
            .into_iter()
            .collect()
    };
    Ok(Changed {
        status: 200,
        body: render(data, table, row),
        events,
    })
}

/// `DELETE /{collection}/{id}/`; deleting a lead deletes everything under it.
pub(crate) fn delete(
    data: &mut Data,
    kind: Kind,
    id: &str,
    path: &str,
) -> Result<Changed, ApiError> {
    let found = find(data, kind, id)?.clone();
    // A lead's tombstone shows the lead as it was, its nested contacts, opportunities and
    // tasks included, so it is rendered before the cascade removes them.
    let prior = match kind {
        Kind::Lead => match render(data, kind.table(), found) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    let mut events = Vec::new();
    if kind == Kind::Lead {
        // Each cascaded child also gets its own `deleted` event, as Close logs them: "deleting
        // a lead will cause additional deleted events on child objects like activities,
        // opportunities, tasks, and contacts" (developer.close.com/resources/event-log/list-of-events).
        // The same children are also in the lead's `previous_data`, so a reader may take
        // them from either place.
        for table in ["contact", "opportunity", "task", "activity"] {
            let children: Vec<String> = data
                .children(table, id)
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect();
            for child in children {
                if let Some(row) = data.table_mut(table).remove(&child) {
                    events.extend(change_event(
                        data,
                        table,
                        "deleted",
                        &row,
                        Map::new(),
                        "DELETE",
                        path,
                    ));
                }
            }
        }
    }
    let row = data
        .table_mut(kind.table())
        .remove(id)
        .ok_or_else(|| ApiError::NotFound(kind.model_name()))?;
    events.extend(change_event(
        data,
        kind.table(),
        "deleted",
        &row,
        prior,
        "DELETE",
        path,
    ));
    let (status, body) = if kind == Kind::Pipeline {
        (204, Value::Null)
    } else {
        (200, json!({}))
    };
    Ok(Changed {
        status,
        body,
        events,
    })
}

/// `POST /lead/merge/` with `{"source": …, "destination": …}`: the source lead is merged
/// into the destination lead and then deleted (developer.close.com/api/resources/leads/merge
/// and developer.close.com/api/resources/activities/lead-merges). Its contacts,
/// opportunities, tasks and activities move to the destination; the destination keeps its
/// own fields (the docs point to the app's merge feature and say no more).
///
/// The event log follows developer.close.com/api/resources/events/list-of-event-types
/// (`lead` `merged`): "you will also get `updated` and `deleted` events for the leads and
/// any related objects involved in the merge. All events related to the merge contain
/// `merge_source_lead_id` and `merge_destination_lead_id` in the `meta` field", and the
/// `merged` event's "`lead_id` and `data` contain the lead ID and data of the resulting
/// (destination) lead". So a merge logs an `updated` event for each moved child (`lead_id`
/// changed), the source lead's `deleted` event, an `updated` event for the destination lead,
/// and one `merged` event whose `lead_id` and `data` are the destination's (its `object_id`
/// is the destination too: the docs do not say); every one of them carries both ids in
/// `meta`. The moved children get no `deleted` event: they still exist.
///
/// Close documents neither the order of these events nor what the source's `deleted` event
/// holds in `previous_data`. The sandbox takes an undocumented worst case, chosen to be harsh
/// on a client: the deletion is logged before the destination's `updated` and `merged`
/// events, and its `previous_data` is the source lead as it was before the merge, children
/// included, as a plain delete gives it, so a client that reads a lead's `previous_data`
/// children as deleted without looking at `meta` deletes the moved ones.
///
/// A LeadMerge activity records the merge ("LeadMerge activities are created when you merge
/// one lead into another", …/activities/lead-merges) with the fields of that page's schema.
/// The sandbox merges at once, so its `merge_status` is `completed`, and it sits on the
/// destination lead, where the source's activities went. Close's example shows an
/// `in_progress` one whose `lead_id` is the source; where a finished one sits is not
/// documented. The sandbox logs no event for it: whether Close does is not documented.
pub(crate) fn merge_leads(data: &mut Data, body: Value, path: &str) -> Result<Changed, ApiError> {
    let obj = body_object(body)?;
    let id_of = |key: &str| -> Result<String, ApiError> {
        match obj.get(key).and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(ApiError::field(key, "This field is required.")),
        }
    };
    let (source, destination) = (id_of("source")?, id_of("destination")?);
    if source == destination {
        return Err(ApiError::Errors(vec![
            "A lead cannot be merged into itself.".into(),
        ]));
    }
    let source_row = find(data, Kind::Lead, &source)?.clone();
    let destination_row = find(data, Kind::Lead, &destination)?.clone();
    // The source's tombstone shows it as it was, children included, like a plain delete's
    // (not documented: the harsh case, see above).
    let prior = match render(data, "lead", source_row) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // Every event logged after this one belongs to the merge and gets its `meta`.
    let logged_before = data.events.back().map_or(0, |(seq, _)| *seq);
    let now = json!(stamp(Utc::now()));
    for table in ["contact", "opportunity", "task", "activity"] {
        let children: Vec<String> = data
            .children(table, &source)
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        for child in children {
            let Some(row) = data.update_row(table, &child, |row| {
                row["lead_id"] = json!(destination);
                row["date_updated"] = now.clone();
            }) else {
                continue;
            };
            let previous: Map<String, Value> = [("lead_id".to_string(), json!(source))]
                .into_iter()
                .collect();
            change_event(data, table, "updated", &row, previous, "POST", path);
        }
    }
    let activity_id = data.new_id(Kind::Activity(None).prefix());
    let display = |lead: &Value| lead.get("name").cloned().unwrap_or(Value::Null);
    data.insert(
        "activity",
        json!({
            "id": activity_id,
            "_type": "LeadMerge",
            "organization_id": data.org_id,
            "lead_id": destination,
            "contact_id": null,
            "source_lead_id": source,
            "destination_lead_id": destination,
            "source_display_name": display(&Value::Object(prior.clone())),
            "destination_display_name": display(&destination_row),
            "merge_status": "completed",
            "error_message": null,
            "activity_at": now,
            "date_created": now,
            "date_updated": now,
            "created_by": data.user_id,
            "updated_by": data.user_id,
            "user_id": data.user_id,
            "users": [],
        }),
    );
    let removed = data
        .table_mut("lead")
        .remove(&source)
        .ok_or_else(|| ApiError::NotFound(Kind::Lead.model_name()))?;
    change_event(data, "lead", "deleted", &removed, prior, "POST", path);
    let previous: Map<String, Value> = [(
        "date_updated".to_string(),
        destination_row["date_updated"].clone(),
    )]
    .into_iter()
    .collect();
    let row = data
        .update_row("lead", &destination, |row| {
            row["date_updated"] = now.clone()
        })
        .ok_or_else(|| ApiError::NotFound(Kind::Lead.model_name()))?;
    change_event(data, "lead", "updated", &row, previous, "POST", path);
    if !data.seeding {
        data.record_event(
            "lead",
            "merged",
            &destination,
            Some(&destination),
            render(data, "lead", row),
            Map::new(),
            Vec::new(),
            "POST",
            path,
        );
    }
    let mut events = Vec::new();
    for (_, logged) in data
        .events
        .iter_mut()
        .rev()
        .take_while(|(seq, _)| *seq > logged_before)
    {
        logged["meta"]["merge_source_lead_id"] = json!(source);
        logged["meta"]["merge_destination_lead_id"] = json!(destination);
        events.push(logged.clone());
    }
    // Oldest first, as they were logged.
    events.reverse();
    Ok(Changed {
        status: 200,
        body: json!({}),
        events,
    })
}
