//! The derived fields Close adds to stored rows when it answers: a lead's nested children,
//! status labels, pipeline names and formatted values.

use serde_json::{Value, json};

use super::data::Data;

/// Adds the derived fields Close returns: nested children of a lead, labels, formatted values.
pub(crate) fn render(data: &Data, table: &str, mut row: Value) -> Value {
    match table {
        "lead" => {
            let id = row["id"].as_str().unwrap_or_default().to_string();
            let children = |t: &'static str| -> Vec<Value> {
                data.children(t, &id)
                    .map(|c| render(data, t, c.clone()))
                    .collect()
            };
            row["contacts"] = Value::Array(children("contact"));
            row["opportunities"] = Value::Array(children("opportunity"));
            row["tasks"] = Value::Array(children("task"));
            row["display_name"] = row["name"].clone();
            if let Some(s) = row["status_id"]
                .as_str()
                .and_then(|s| data.get("status_lead", s))
            {
                row["status_label"] = s["label"].clone();
            }
            row["html_url"] = json!(format!("https://app.close.com/lead/{id}/"));
        }
        "opportunity" => {
            if let Some(s) = row["status_id"]
                .as_str()
                .and_then(|s| data.get("status_opportunity", s))
            {
                row["status_label"] = s["label"].clone();
                row["status_type"] = s["type"].clone();
                row["pipeline_id"] = s["pipeline_id"].clone();
                if let Some(p) = s["pipeline_id"]
                    .as_str()
                    .and_then(|p| data.get("pipeline", p))
                {
                    row["pipeline_name"] = p["name"].clone();
                }
            }
            if let Some(lead) = row["lead_id"].as_str().and_then(|l| data.get("lead", l)) {
                row["lead_name"] = lead["name"].clone();
            }
            let cents = row["value"].as_i64().unwrap_or(0);
            row["value_formatted"] = json!(format_dollars(cents));
        }
        "pipeline" => {
            let id = row["id"].as_str().unwrap_or_default().to_string();
            row["statuses"] =
                Value::Array(data.children("status_opportunity", &id).cloned().collect());
        }
        _ => {}
    }
    row
}

fn format_dollars(cents: i64) -> String {
    let dollars = cents / 100;
    let digits = dollars.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if dollars < 0 { "-" } else { "" };
    match cents % 100 {
        0 => format!("{sign}${grouped}"),
        c => format!("{sign}${grouped}.{:02}", c.abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_grouped() {
        assert_eq!(format_dollars(50000), "$500");
        assert_eq!(format_dollars(100000000), "$1,000,000");
        assert_eq!(format_dollars(12345), "$123.45");
    }
}
