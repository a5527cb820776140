//! A password in the database URL never shows in errors or `Debug` output.

use std::time::Instant;

use crmkit_store::{Error, Store};

#[tokio::test]
async fn a_password_in_the_url_never_shows() {
    let started = Instant::now();
    // Nothing listens on port 1: the connection is refused.
    let e = Store::open("postgres://crm:s3cr3t-pw@127.0.0.1:1/crm")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(text.contains("crm:[REDACTED]@127.0.0.1:1"), "{text}");
    }
    let e = Store::open("mysql://crm:s3cr3t-pw@127.0.0.1/crm")
        .await
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("s3cr3t-pw"), "{e:?}");
    assert!(started.elapsed().as_secs() < 60);
}

#[tokio::test]
async fn a_store_shows_its_url_without_the_password() {
    // A schema of its own, so this test never migrates the shared database's default one.
    let (base, cleanup) = crate::support::fresh(crate::support::Kind::Postgres).await;
    // The test PostgreSQL trusts local connections, so a password we add is ignored by it;
    // a URL that already has one keeps it.
    let (url, password) = match base.split_once("://") {
        Some((scheme, rest)) if crmkit_store::redact(&base) == base => {
            let (user, host) = rest.split_once('@').expect("the test URL names a user");
            (
                format!("{scheme}://{user}:s3cr3t-pw@{host}"),
                "s3cr3t-pw".to_owned(),
            )
        }
        _ => {
            let shown = crmkit_store::redact(&base);
            let at = shown.find("[REDACTED]").expect("a redacted password");
            let end = base.len() - (shown.len() - at - "[REDACTED]".len());
            (base.clone(), base[at..end].to_owned())
        }
    };
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable for this test: {e}"));
    let shown = format!("{store:?} {}", store.url());
    assert!(
        !shown.contains(&password) && shown.contains("[REDACTED]"),
        "{shown}"
    );
    store.close().await;
    cleanup.run().await;
}

#[tokio::test]
async fn odd_passwords_never_show_in_errors() {
    for (url, secret) in [
        ("postgres://crm:ab/cd+ef@127.0.0.1:1/crm", "ab/cd+ef"),
        ("postgres://crm:ab#cd@127.0.0.1:1/crm", "ab#cd"),
        ("postgres://crm:p?w@127.0.0.1:1/crm", "p?w"),
        (
            "postgres://127.0.0.1:1/crm?user=crm&Password=s3cret",
            "s3cret",
        ),
        ("postgres://crm:s3cret@127.0.0.1:notaport/crm", "s3cret"),
    ] {
        let e = Store::open(url).await.unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
