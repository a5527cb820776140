//! Facts learned about CRM accounts.

use crmkit_core::Crm;

use crate::support::{TestDb, both_backends};

both_backends!(a_fact_is_kept_per_crm_and_name_and_replaced);

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
