//! The client against the crmkit Salesforce sandbox over loopback HTTP: the JWT bearer flow
//! with a verified signature, sessions that expire, query pages and child pages, upsert,
//! collections and the SOQL builder's literals.

use crmkit_core::{ErrorKind, SecretString};
use crmkit_salesforce::Client;
use crmkit_salesforce::auth::JwtBearer;
use crmkit_salesforce::sobjects::Fields;
use crmkit_salesforce::soql::{Condition, Soql};
use crmkit_sandbox::salesforce::{Auth, Config, RunningSalesforce, SalesforceSandbox};
use futures::TryStreamExt;
use serde_json::json;

use crate::{fast_retry, fixture};

/// A sandbox that accepts only JWTs signed by the throwaway test key for one app and user.
pub async fn strict(companies: usize, page_size: usize) -> RunningSalesforce {
    SalesforceSandbox::builder()
        .config(Config {
            replication_whole_minutes: false,
            ..Config::default()
        })
        .auth(Auth {
            certificate: Some(fixture("throwaway-test-key.pub.pem")),
            client_id: Some("consumer-key".into()),
            usernames: vec!["ada@example.com".into()],
            ..Auth::default()
        })
        .seed(7)
        .companies(companies)
        .page_size(page_size)
        .subquery_page_size(2)
        .start()
        .await
        .expect("sandbox starts")
}

/// A JWT bearer client for `sandbox`, which stands for both login host and instance.
pub fn jwt_client(sandbox: &RunningSalesforce) -> Client {
    let base = sandbox.instance_url();
    let flow = JwtBearer::new(
        "consumer-key",
        "ada@example.com",
        &SecretString::from(fixture("throwaway-test-key.pem")),
        &base,
    )
    .expect("key");
    Client::builder()
        .login_url(&base)
        .jwt(flow)
        .retry(fast_retry())
        .build()
        .expect("builds")
}

fn fields(v: serde_json::Value) -> Fields {
    v.as_object().cloned().expect("object")
}

#[tokio::test]
async fn jwt_sign_in_and_a_new_session_after_the_old_one_expires() {
    let sandbox = strict(4, 2000).await;
    let c = jwt_client(&sandbox);
    let id = c
        .sobject("Account")
        .create(&fields(json!({"Name": "Signed In"})))
        .await
        .expect("created");
    sandbox.expire_sessions();
    let back = c
        .sobject("Account")
        .get(id.as_str(), &["Name"])
        .await
        .expect("re-auth");
    assert_eq!(back["Name"], "Signed In");
    assert_eq!(
        c.transport().current_base_url(),
        format!("{}/services/data/v59.0/", sandbox.instance_url())
    );

    // Another user is refused by the token endpoint.
    let flow = JwtBearer::new(
        "consumer-key",
        "mallory@example.com",
        &SecretString::from(fixture("throwaway-test-key.pem")),
        &sandbox.instance_url(),
    )
    .expect("key");
    let other = Client::builder()
        .login_url(sandbox.instance_url())
        .jwt(flow)
        .retry(fast_retry())
        .build()
        .expect("builds");
    let e = other.limits().await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
}

#[tokio::test]
async fn queries_page_by_next_records_url_and_children_are_complete() {
    let sandbox = strict(30, 5).await;
    let c = jwt_client(&sandbox);
    let accounts = sandbox.count("Account");
    assert!(accounts > 5, "more than one page: {accounts}");
    let q = Soql::select(["Id", "Name"])
        .subquery(Soql::select(["Id", "LastName"]).from("Contacts"))
        .from("Account");
    let rows: Vec<Fields> = c.query_soql(&q).try_collect().await.expect("rows");
    assert_eq!(rows.len(), accounts);
    let children: usize = rows
        .iter()
        .map(|r| {
            let kids = &r["Contacts"];
            if kids.is_null() {
                return 0;
            }
            assert_eq!(kids["done"], true);
            kids["records"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(children, sandbox.count("Contact"));
    let limits = c.limits().await.expect("limits");
    assert!(limits["DailyApiRequests"].max > 0);
}

#[tokio::test]
async fn literals_with_quotes_and_wildcards_match_only_themselves() {
    let sandbox = strict(0, 2000).await;
    let c = jwt_client(&sandbox);
    let tricky = "O'Brien \\ 100% _x_ \"q\"\nline";
    let acc = c.sobject("Account");
    acc.create(&fields(json!({"Name": tricky})))
        .await
        .expect("created");
    acc.create(&fields(json!({"Name": "O'Brien plain"})))
        .await
        .expect("created");
    let exact = Soql::select(["Id", "Name"])
        .from("Account")
        .filter(Condition::eq("Name", tricky));
    let rows: Vec<Fields> = c.query_soql(&exact).try_collect().await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Name"], tricky);
    let like = Soql::select(["Id"])
        .from("Account")
        .filter(Condition::like_contains("Name", "100% _x_"));
    let rows: Vec<Fields> = c.query_soql(&like).try_collect().await.expect("rows");
    assert_eq!(rows.len(), 1, "% and _ match only themselves");
    let injected = Soql::select(["Id"])
        .from("Account")
        .filter(Condition::eq("Name", "x' OR Name != '"));
    let rows: Vec<Fields> = c.query_soql(&injected).try_collect().await.expect("rows");
    assert!(rows.is_empty());
}

#[tokio::test]
async fn upsert_and_collections_against_the_sandbox() {
    let sandbox = strict(0, 2000).await;
    let c = jwt_client(&sandbox);
    let acc = c.sobject("Account");
    let first = acc
        .upsert(
            "External_Id__c",
            "ext/1 a",
            &fields(json!({"Name": "Ext One"})),
        )
        .await
        .expect("inserted");
    assert!(first.created);
    let again = acc
        .upsert(
            "External_Id__c",
            "ext/1 a",
            &fields(json!({"Name": "Ext One bis"})),
        )
        .await
        .expect("updated");
    assert!(!again.created);
    assert_eq!(sandbox.count("Account"), 1);
    let by_ext = acc
        .get_by_external_id("External_Id__c", "ext/1 a")
        .await
        .expect("found");
    assert_eq!(by_ext["Name"], "Ext One bis");

    let mut records: Vec<Fields> = (0..205)
        .map(|i| fields(json!({"Name": format!("Bulk {i}")})))
        .collect();
    records[3] = fields(json!({"Website": "no-name.example"}));
    let out = c.collections("Account").create(records).await;
    assert_eq!(out.len(), 205);
    let e = out[3].as_ref().expect_err("no name");
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert!(e.field_errors().iter().any(|f| f.field == "Name"), "{e}");
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 204);
    assert_eq!(sandbox.count("Account"), 205);
    let ids: Vec<String> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|i| i.as_str().to_string()))
        .take(3)
        .collect();
    let deleted = c.collections("Account").delete(ids).await;
    assert!(deleted.iter().all(Result::is_ok));
    assert_eq!(sandbox.count("Account"), 202);
}

#[tokio::test]
async fn composite_references_trees_and_replication_calls() {
    use crmkit_core::http::Method;
    use crmkit_salesforce::composite::{Subrequest, TreeRecord};

    let sandbox = strict(0, 2000).await;
    let c = jwt_client(&sandbox);
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let answers = c
        .composite(
            vec![
                Subrequest::new(Method::POST, "sobjects/Account", "newAccount")
                    .body(json!({"Name": "Composite Co"})),
                Subrequest::new(Method::POST, "sobjects/Contact", "newContact")
                    .body(json!({"LastName": "Ref", "AccountId": "@{newAccount.id}"})),
            ],
            true,
        )
        .await
        .expect("composite");
    assert_eq!(answers.len(), 2);
    let contact = answers[1].clone().into_result().expect("contact created");
    let account = answers[0].clone().into_result().expect("account created");
    let read = c
        .sobject("Contact")
        .get(contact["id"].as_str().expect("id"), &["AccountId"])
        .await
        .expect("read");
    assert_eq!(
        read["AccountId"], account["id"],
        "the Contact points at the Account the first subrequest made"
    );

    let tree = TreeRecord {
        sobject: "Account".into(),
        reference_id: "ref1".into(),
        fields: fields(json!({"Name": "Tree Co"})),
        children: vec![(
            "Contacts".into(),
            vec![TreeRecord {
                sobject: "Contact".into(),
                reference_id: "ref2".into(),
                fields: fields(json!({"LastName": "Leaf"})),
                children: vec![],
            }],
        )],
    };
    let ids = c
        .tree("Account", std::slice::from_ref(&tree))
        .await
        .expect("tree");
    let refs: Vec<&str> = ids.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs, vec!["ref1", "ref2"]);
    let mut bad = tree;
    bad.children[0].1[0].fields = fields(json!({"FirstName": "No last name"}));
    let e = c.tree("Account", &[bad]).await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert!(e.to_string().contains("ref2"), "{e}");

    let too_many: Vec<Subrequest> = (0..26)
        .map(|i| Subrequest::new(Method::GET, "limits/", format!("r{i}")))
        .collect();
    let e = c
        .composite(too_many, false)
        .await
        .expect_err("26 subrequests");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(c.tree("Account", &[]).await.is_err());

    let acc_id = account["id"].as_str().expect("id").to_string();
    c.sobject("Account").delete(&acc_id).await.expect("deleted");
    let end = chrono::Utc::now() + chrono::Duration::minutes(1);
    let updated = c
        .sobject("Contact")
        .updated(start, end)
        .await
        .expect("updated");
    assert!(
        updated
            .ids
            .iter()
            .any(|i| Some(i.as_str()) == contact["id"].as_str())
    );
    let deleted = c
        .sobject("Account")
        .deleted(start, end)
        .await
        .expect("deleted");
    assert!(deleted.deleted_records.iter().any(|d| d.id == acc_id));
}

#[tokio::test]
async fn from_env_signs_in_with_the_key_file_and_query_all_sees_deleted_rows() {
    let sandbox = strict(0, 2000).await;
    let key = format!(
        "{}/tests/fixtures/salesforce/throwaway-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let login = sandbox.instance_url();
    let c = Client::from_vars(|name| match name {
        "SF_CLIENT_ID" => Some("consumer-key".into()),
        "SF_USERNAME" => Some("ada@example.com".into()),
        "SF_PRIVATE_KEY_PATH" => Some(key.clone()),
        "SF_LOGIN_URL" => Some(login.clone()),
        _ => None,
    })
    .expect("builds");
    let acc = c.sobject("Account");
    let id = acc
        .create(&fields(json!({"Name": "Soon gone"})))
        .await
        .expect("created");
    acc.delete(id.as_str()).await.expect("deleted");
    let q = Soql::select(["Id", "IsDeleted"])
        .from("Account")
        .filter(Condition::eq("IsDeleted", true));
    let live: Vec<Fields> = c.query_soql(&q).try_collect().await.expect("live");
    assert!(live.is_empty());
    let all: Vec<Fields> = c
        .query_all(q.build().expect("query"))
        .try_collect()
        .await
        .expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["Id"], id.as_str());
}
