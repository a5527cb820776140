//! Facts learned about CRM accounts.

use crmkit_core::Crm;

use crate::support::{TestDb, both_backends};

both_backends!(a_fact_is_kept_per_crm_and_name_and_replaced);
both_backends!(facts_are_read_many_at_once_in_the_order_asked);

async fn facts_are_read_many_at_once_in_the_order_asked(db: TestDb) {
    let s = &db.store;
    // More names than one query takes, most of them never learned.
    let names: Vec<String> = (0..crmkit_store::LOOKUP_CHUNK + 20)
        .map(|i| format!("merged company lead_{i}"))
        .collect();
    for i in [3, crmkit_store::LOOKUP_CHUNK + 7] {
        s.set_account_fact(Crm::Close, &names[i], &format!("lead_w{i}"))
            .await
            .unwrap();
    }
    s.set_account_fact(Crm::HubSpot, &names[4], "other CRM")
        .await
        .unwrap();
    let got = s.account_facts(Crm::Close, &names).await.unwrap();
    assert_eq!(got.len(), names.len());
    for (i, v) in got.iter().enumerate() {
        let want = [3, crmkit_store::LOOKUP_CHUNK + 7]
            .contains(&i)
            .then(|| format!("lead_w{i}"));
        assert_eq!(v, &want, "{}", names[i]);
    }
    assert_eq!(
        s.account_facts(Crm::Close, &[]).await.unwrap(),
        Vec::<Option<String>>::new()
    );
}

async fn a_fact_is_kept_per_crm_and_name_and_replaced(db: TestDb) {
    let s = &db.store;
    assert_eq!(
        s.account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap(),
        None
    );
    s.set_account_fact(Crm::Close, "phone_country_code", "1")
        .await
        .unwrap();
    s.set_account_fact(Crm::HubSpot, "phone_country_code", "44")
        .await
        .unwrap();
    s.set_account_fact(Crm::Close, "phone_country_code", "49")
        .await
        .unwrap();
    assert_eq!(
        s.account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap()
            .as_deref(),
        Some("49")
    );
    assert_eq!(
        s.account_fact(Crm::HubSpot, "phone_country_code")
            .await
            .unwrap()
            .as_deref(),
        Some("44")
    );
    assert_eq!(s.account_fact(Crm::Close, "other").await.unwrap(), None);
    // Inside the caller's transaction too: rolled back, nothing changed.
    let mut tx = s.begin().await.unwrap();
    tx.set_account_fact(Crm::Close, "phone_country_code", "33")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        s.account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap()
            .as_deref(),
        Some("49")
    );
    // Forgotten: gone for that CRM only, and forgetting it again finds nothing.
    assert!(
        s.forget_account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap()
    );
    assert_eq!(
        s.account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap(),
        None
    );
    assert!(
        !s.forget_account_fact(Crm::Close, "phone_country_code")
            .await
            .unwrap()
    );
    assert!(
        s.account_fact(Crm::HubSpot, "phone_country_code")
            .await
            .unwrap()
            .is_some()
    );
}
