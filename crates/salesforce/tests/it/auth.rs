//! The JWT bearer flow, the instance URL policy and re-authentication after a 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use crmkit_core::{ErrorKind, SecretString};
use crmkit_salesforce::Client;
use crmkit_salesforce::auth::{JWT_BEARER_GRANT, JwtBearer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::{fast_retry, fixture, serve};

#[derive(Clone)]
struct Org {
    /// The instance URL the token endpoint names.
    instance: Arc<std::sync::Mutex<String>>,
    grants: Arc<AtomicU32>,
    data_calls: Arc<AtomicU32>,
}

/// A token endpoint that checks the assertion as Salesforce documents it: RS256 signed by
/// the app's key, `iss` the consumer key, `sub` the user, `aud` the login URL, `exp` at most
/// three minutes ahead.
async fn token(
    State(org): State<Org>,
    Form(form): Form<Vec<(String, String)>>,
) -> impl IntoResponse {
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if get("grant_type") != JWT_BEARER_GRANT {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error":"unsupported_grant_type","error_description":"grant type not supported"}),
            ),
        );
    }
    let key = DecodingKey::from_rsa_pem(fixture("throwaway-test-key.pub.pem").as_bytes())
        .expect("public key");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["https://login.example.test"]);
    v.set_issuer(&["consumer-key"]);
    let claims = match jsonwebtoken::decode::<Value>(&get("assertion"), &key, &v) {
        Ok(d) => d.claims,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error":"invalid_grant","error_description":"invalid assertion"}),
                ),
            );
        }
    };
    let exp = claims["exp"].as_i64().unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    assert!(exp > now && exp <= now + 180, "exp within three minutes");
    assert_eq!(claims["sub"], "ada@example.com");
    let n = org.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let instance = org.instance.lock().expect("lock").clone();
    (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": format!("00Dx!tok-{n}"),
            "scope": "api",
            "instance_url": instance,
            "id": "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
            "token_type": "Bearer"
        })),
    )
}

/// Answers with the account for the newest token and `INVALID_SESSION_ID` for older ones.
async fn account(State(org): State<Org>, headers: HeaderMap) -> impl IntoResponse {
    org.data_calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let newest = format!("Bearer 00Dx!tok-{}", org.grants.load(Ordering::SeqCst));
    // The first token is revoked as soon as it is used, as an admin or expiry would.
    if auth != newest || auth.ends_with("tok-1") {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            fixture("expired_session_response.json"),
        );
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"attributes":{"type":"Account"},"Id":"001D000000IqhSLIAZ","Name":"Acme"})
            .to_string(),
    )
}

async fn org() -> (String, Org) {
    let org = Org {
        instance: Arc::default(),
        grants: Arc::default(),
        data_calls: Arc::default(),
    };
    let app = Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/v59.0/sobjects/Account/{id}", get(account))
        .with_state(org.clone());
    let base = serve(app).await;
    *org.instance.lock().expect("lock") = base.clone();
    (base, org)
}

fn jwt_client(login: &str) -> Client {
    let flow = JwtBearer::new(
        "consumer-key",
        "ada@example.com",
        &SecretString::from(fixture("throwaway-test-key.pem")),
        login,
    )
    .expect("key")
    .audience("https://login.example.test");
    Client::builder()
        .login_url(login)
        .jwt(flow)
        .retry(fast_retry())
        .build()
        .expect("builds")
}

#[tokio::test]
async fn a_401_reauthenticates_once_for_all_concurrent_callers() {
    let (base, org) = org().await;
    let c = jwt_client(&base);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.sobject("Account").get("001D000000IqhSLIAZ", &[]).await })
        })
        .collect();
    for call in calls {
        let rec = call.await.expect("joins").expect("read after re-auth");
        assert_eq!(rec["Name"], "Acme");
    }
    assert_eq!(
        org.grants.load(Ordering::SeqCst),
        2,
        "one grant, then one re-authentication shared by every caller"
    );
    assert!(org.data_calls.load(Ordering::SeqCst) <= 16);
}

/// A reachable host nobody configured: a listener on another loopback address that counts
/// the connections it gets and whether any request carried an `Authorization` header.
struct Foreign {
    port: u16,
    connections: Arc<AtomicU32>,
    authorizations: Arc<AtomicU32>,
}

async fn foreign() -> Foreign {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("binds a second loopback address");
    let port = listener.local_addr().expect("address").port();
    let connections = Arc::new(AtomicU32::new(0));
    let authorizations = Arc::new(AtomicU32::new(0));
    let (c, a) = (connections.clone(), authorizations.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let a = a.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = tokio::time::timeout(
                    std::time::Duration::from_millis(500),
                    socket.read(&mut buf),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                if text.contains("authorization") || text.contains("00dx!tok-") {
                    a.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Foreign {
        port,
        connections,
        authorizations,
    }
}

#[tokio::test]
async fn a_token_naming_a_foreign_instance_is_refused_before_anything_is_sent_there() {
    let (base, org) = org().await;
    let host = foreign().await;
    for instance in [
        format!("https://127.0.0.2:{}", host.port),
        format!("http://127.0.0.2:{}", host.port),
    ] {
        *org.instance.lock().expect("lock") = instance.clone();
        let c = jwt_client(&base);
        let e = c
            .sobject("Account")
            .get("001D000000IqhSLIAZ", &[])
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(e.to_string().contains("127.0.0.2"), "{e}");
        assert!(!e.to_string().contains("tok-"), "no token in errors: {e}");
    }
    assert_eq!(org.data_calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        host.connections.load(Ordering::SeqCst),
        0,
        "nothing may even connect to the foreign instance"
    );
    assert_eq!(host.authorizations.load(Ordering::SeqCst), 0);
    // The listener was there to be reached: a connection of our own is counted.
    let probe = tokio::net::TcpStream::connect(("127.0.0.2", host.port))
        .await
        .expect("the foreign host is reachable");
    drop(probe);
    for _ in 0..100 {
        if host.connections.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(host.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_token_endpoint_as_an_auth_error() {
    let (base, _org) = org().await;
    // A committed second throwaway key, for the right audience: only the signature is wrong.
    let flow = JwtBearer::new(
        "consumer-key",
        "ada@example.com",
        &SecretString::from(fixture("throwaway-other-key.pem")),
        &base,
    )
    .expect("key");
    let c = Client::builder()
        .login_url(&base)
        .jwt(flow)
        .retry(fast_retry())
        .build()
        .expect("builds");
    let e = c
        .sobject("Account")
        .get("001D000000IqhSLIAZ", &[])
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}
