//! The secrets canary: a unique key must appear in no log line and no error text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crmkit_close::{Client, LeadFields};
use crmkit_core::SecretString;
use crmkit_sandbox::close::CloseSandbox;
use futures::TryStreamExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_leaks() {
    let canary = format!(
        "canary-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let logs = Capture::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    // Global, not scoped: a scoped subscriber misses callsites other test threads cached.
    tracing::subscriber::set_global_default(subscriber)
        .expect("only this test installs a subscriber");

    let sb = CloseSandbox::builder()
        .api_key(canary.clone())
        .leads(5)
        .start()
        .await
        .unwrap();
    let good = Client::builder()
        .api_key(SecretString::from(canary.clone()))
        .base_url(sb.api_url())
        .build()
        .unwrap();
    let mut errors = vec![format!("{good:?}")];
    good.me().await.unwrap();
    let _: Vec<crmkit_close::Lead> = good.leads().list().stream().try_collect().await.unwrap();
    good.leads()
        .create(&LeadFields {
            name: Some("x".into()),
            ..LeadFields::default()
        })
        .await
        .unwrap();
    for e in [
        good.leads().get("lead_doesnotexist0000").await.unwrap_err(),
        good.leads()
            .create(&serde_json::json!({"status_id": "nope"}))
            .await
            .unwrap_err(),
        good.search_text("company:").await.unwrap_err(),
    ] {
        errors.push(format!("{e} {e:?}"));
    }
    // A wrong key whose text contains the canary must not echo it either.
    let wrong = Client::builder()
        .api_key(SecretString::from(format!("{canary}-wrong")))
        .base_url(sb.api_url())
        .build()
        .unwrap();
    let e = wrong.me().await.unwrap_err();
    errors.push(format!("{e} {e:?} {wrong:?}"));

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("Received response"),
        "trace logging was captured"
    );
    // The key travels as HTTP Basic `base64("key:")`: that form must not leak either, nor
    // the base64 of the key alone (its prefix, whatever the padding).
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        canary.clone(),
        b64.encode(format!("{canary}:")),
        b64.encode(&canary).trim_end_matches('=').to_string(),
    ];
    for form in &forms {
        assert!(
            !text.contains(form),
            "the key appeared in the logs as {form}"
        );
        for e in &errors {
            assert!(!e.contains(form), "the key appeared as {form} in: {e}");
        }
    }
}
