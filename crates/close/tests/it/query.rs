use chrono::{DateTime, Utc};
use crmkit_close::text_query::{compile, parse};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn compiled(q: &str) -> Value {
    let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let resolve = |name: &str| (name == "Industry").then(|| "cf_IND".to_string());
    serde_json::to_value(compile(&parsed, now(), &resolve).unwrap()).unwrap()
}

fn lead_and(parts: Value) -> Value {
    json!({"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}, parts]})
}

fn regular(object: &str, field: &str) -> Value {
    json!({"type": "regular_field", "object_type": object, "field_name": field})
}

#[test]
fn company_word_match() {
    let c = compiled("company:Coperniq");
    assert_eq!(
        c["query"],
        lead_and(
            json!({"type": "field_condition", "field": regular("lead", "name"),
            "condition": {"type": "text", "mode": "full_words", "value": "Coperniq"}})
        )
    );
}

#[test]
fn custom_field_exact_by_id_and_by_name() {
    let by_id = compiled(r#"custom.cf_industry = "MEP Contractor""#);
    assert_eq!(
        by_id["query"]["queries"][1],
        json!({"type": "field_condition", "field": {"type": "custom_field", "custom_field_id": "cf_industry"},
               "condition": {"type": "term", "values": ["MEP Contractor"]}})
    );
    let by_name = compiled(r#"custom.Industry = "MEP Contractor""#);
    assert_eq!(
        by_name["query"]["queries"][1]["field"]["custom_field_id"],
        "cf_IND"
    );
}

#[test]
fn or_of_custom_fields() {
    let c = compiled("custom.cf_trades:HVAC OR custom.cf_trades:Electrical");
    let q = &c["query"]["queries"][1];
    assert_eq!(q["type"], "or");
    assert_eq!(q["queries"][0]["condition"]["value"], "HVAC");
    assert_eq!(q["queries"][1]["condition"]["value"], "Electrical");
}

#[test]
fn related_conditions_share_one_opportunity() {
    let c = compiled("opportunities.value >= 50000 opportunities.status_type:active");
    assert_eq!(
        c["query"]["queries"][1],
        json!({"type": "has_related", "this_object_type": "lead", "related_object_type": "opportunity",
               "related_query": {"type": "and", "queries": [
                 {"type": "field_condition", "field": regular("opportunity", "value"),
                  "condition": {"type": "number_range", "gte": 50000.0}},
                 {"type": "field_condition", "field": regular("opportunity", "status_type"),
                  "condition": {"type": "term", "values": ["active"]}}]}})
    );
}

#[test]
fn relative_dates_and_sort() {
    let c = compiled(r#"date_updated < "30 days ago" sort:date_updated asc"#);
    assert_eq!(
        c["query"]["queries"][1],
        json!({"type": "field_condition", "field": regular("lead", "date_updated"),
               "condition": {"type": "moment_range", "on_or_after": null,
                 "before": {"type": "fixed_utc", "value": "2026-10-28T12:00:00.000000+00:00"}}})
    );
    assert_eq!(
        c["sort"],
        json!([{"direction": "asc", "field": regular("lead", "date_updated")}])
    );
}

#[test]
fn dates_cover_whole_days_and_not_negates() {
    let c = compiled("NOT date_created = 2026-01-05");
    let q = &c["query"]["queries"][1];
    assert_eq!(q["negate"], true);
    assert_eq!(
        q["condition"],
        json!({"type": "moment_range",
               "on_or_after": {"type": "fixed_utc", "value": "2026-01-05T00:00:00.000000+00:00"},
               "before": {"type": "fixed_utc", "value": "2026-01-06T00:00:00.000000+00:00"}})
    );
}

#[test]
fn errors_name_position_and_expectation() {
    let cases = [
        (
            "company:",
            "at position 9: expected a value after `:`, found end of input",
        ),
        (
            "company Acme",
            "at position 9: expected an operator (`:`, `=`, `!=`, `<`, `<=`, `>`, `>=`) after `company`, found `Acme`",
        ),
        (
            "(company:a",
            "at position 11: expected `)`, found end of input",
        ),
        (
            "company:a OR",
            "at position 13: expected a condition after OR, found end of input",
        ),
        (
            r#"name:"open"#,
            "at position 6: expected a closing `\"`, found end of input",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(parse(q).unwrap_err().to_string(), want, "{q}");
    }
}

#[test]
fn meaning_errors_name_the_field() {
    let p = parse("colour:red").unwrap();
    let e = compile(&p, now(), &|_: &str| None).unwrap_err();
    assert_eq!(e.position, 1);
    assert!(e.expected.starts_with("a known field"), "{e}");
    let p = parse("opportunities.value >= lots").unwrap();
    let e = compile(&p, now(), &|_: &str| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "at position 1: expected a finite number, found \"lots\""
    );
    let p = parse("custom.Nope:x").unwrap();
    assert!(compile(&p, now(), &|_: &str| None).is_err());
}

/// Parses and compiles `q`, returning the error text if either step refuses it.
fn refusal(q: &str) -> Option<String> {
    let resolve = |_: &str| None;
    match parse(q) {
        Err(e) => Some(e.to_string()),
        Ok(p) => compile(&p, now(), &resolve).err().map(|e| e.to_string()),
    }
}

#[test]
fn out_of_range_input_is_a_clear_error_not_a_panic() {
    let e = refusal(r#"date_created > "1000000 years ago""#).expect("refused");
    assert!(e.contains("between the years"), "{e}");
    let e = refusal(r#"date_created > "99999999999999999999 days ago""#).expect("refused");
    assert!(e.contains("expected a date"), "{e}");
    let e = refusal(r#"date_created > "9223372036854775807 weeks ago""#).expect("refused");
    assert!(e.contains("between the years"), "{e}");
    let e = refusal("opportunities.value > 1e999").expect("refused");
    assert!(e.contains("finite number"), "{e}");
    let deep = format!("{}company:x{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = refusal(&deep).expect("refused");
    assert!(e.contains("levels of parentheses"), "{e}");
    let e = refusal(&"NOT ".repeat(10_000)).expect("refused");
    assert!(e.contains("levels of parentheses"), "{e}");
    // Still fine just under the limit.
    assert_eq!(
        refusal(&format!("{}company:x{}", "(".repeat(60), ")".repeat(60))),
        None
    );
}

#[test]
fn a_syntax_error_is_invalid_input_not_misconfiguration() {
    let e: crmkit_core::Error = parse("company:").unwrap_err().into();
    assert_eq!(e.kind(), crmkit_core::ErrorKind::Validation);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("(".to_string()),
            Just(")".to_string()),
            Just("AND".to_string()),
            Just("OR".to_string()),
            Just("NOT".to_string()),
            Just("sort:".to_string()),
            Just("desc".to_string()),
            Just("\"".to_string()),
            prop::sample::select(vec![":", "=", "!=", "<", "<=", ">", ">="]).prop_map(String::from),
            prop::sample::select(vec![
                "company",
                "date_created",
                "date_updated",
                "custom.Industry",
                "custom.cf_x",
                "opportunities.value",
                "opportunities.date_won",
                "contacts.email",
                "status",
            ])
            .prop_map(String::from),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            (
                any::<i64>(),
                prop::sample::select(vec!["minutes", "days", "weeks", "years", "months"])
            )
                .prop_map(|(n, u)| format!("\"{n} {u} ago\"")),
            "[a-zA-Z0-9_.:\\-]{0,12}",
            "\\PC{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn no_token_soup_panics(tokens in prop::collection::vec(token(), 0..24)) {
            let _ = refusal(&tokens.join(" "));
        }

        #[test]
        fn no_string_panics(s in "\\PC{0,64}") {
            let _ = refusal(&s);
        }

        #[test]
        fn a_refusal_names_a_position_inside_the_input(tokens in prop::collection::vec(token(), 1..12)) {
            let q = tokens.join(" ");
            if let Err(e) = parse(&q) {
                prop_assert!(e.position >= 1 && e.position <= q.chars().count() + 1, "{q}: {e}");
            }
        }
    }
}
