//! Authentication injected into every request.
//!
//! Keys and tokens are held as [`SecretString`]s and only exposed while building the
//! `Authorization` header. OAuth access tokens live in a [`TokenSource`] that refreshes ahead
//! of expiry and, when many tasks find the token expired at once, runs the refresh exactly
//! once for all of them.
//!
//! A refresh runs in its own task: if the caller that started it is cancelled (a timeout, a
//! dropped future), the refresh still finishes, the new token is stored, and a rotated
//! refresh token reaches the refresher's hook. Callers that arrive meanwhile join the same
//! refresh instead of starting another with a refresh token that may already be spent.
//!
//! A token is refreshed a little before it expires: a minute early, or half its lifetime
//! early for a token that lives two minutes or less. A refresh the token endpoint refuses
//! (an [`ErrorKind::Auth`] error such as `invalid_grant`) is final: every later call fails
//! with that error at once, without calling the endpoint again, until the application
//! authorizes again ([`TokenSource::reauthorize`], or a new client with the new tokens).

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// A fresh access token from a refresh.
pub struct IssuedToken {
    /// The access token.
    pub access_token: SecretString,
    /// Seconds until it expires, if the server said.
    pub expires_in: Option<Duration>,
    /// The API root this token must be used against, when the token endpoint names one
    /// (Salesforce's `instance_url`). The transport only follows it through the CRM's
    /// [`crate::http::TransportBuilder::instance_url_policy`].
    pub instance_url: Option<String>,
}

impl IssuedToken {
    /// A token that expires after `expires_in`, if known, with no instance URL.
    pub fn new(access_token: SecretString, expires_in: Option<Duration>) -> Self {
        Self {
            access_token,
            expires_in,
            instance_url: None,
        }
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("instance_url", &self.instance_url)
            .finish()
    }
}

/// Gets a new access token, for example with an OAuth refresh token or a JWT assertion.
#[async_trait]
pub trait TokenRefresher: Send + Sync {
    /// Obtains a new access token.
    async fn refresh(&self) -> Result<IssuedToken>;
}

struct Current {
    token: Option<SecretString>,
    expires_at: Option<Instant>,
    /// How long before `expires_at` the token counts as expired.
    skew: Duration,
    generation: u64,
    instance_url: Option<String>,
    /// The token endpoint's final refusal, returned until the app authorizes again.
    refused: Option<Error>,
}

/// The longest a token is refreshed ahead of its expiry.
const SKEW: Duration = Duration::from_secs(60);

/// How early a token that lives `expires_in` is refreshed: a minute, or half its life for a
/// short-lived one, so it is not refreshed on every call.
fn skew_for(expires_in: Option<Duration>) -> Duration {
    expires_in.map_or(SKEW, |d| SKEW.min(d / 2))
}

/// The token to use now, with what came along with it.
#[derive(Clone)]
pub struct AccessToken {
    /// The access token.
    pub token: SecretString,
    /// Its generation; pass it to [`TokenSource::invalidate`] on a 401.
    pub generation: u64,
    /// The API root the token endpoint named, if any.
    pub instance_url: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("instance_url", &self.instance_url)
            .finish()
    }
}

type Refresh = Shared<BoxFuture<'static, Result<AccessToken>>>;

struct SourceState {
    current: RwLock<Current>,
    inflight: Mutex<Option<Refresh>>,
    refresher: Arc<dyn TokenRefresher>,
}

/// An OAuth access token that refreshes itself ahead of expiry, once for many callers.
pub struct TokenSource {
    state: Arc<SourceState>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source that starts with `initial` (if any) and refreshes through `refresher`.
    pub fn new(
        initial: Option<IssuedToken>,
        refresher: Arc<dyn TokenRefresher>,
    ) -> Arc<TokenSource> {
        let mut current = Current {
            token: None,
            expires_at: None,
            skew: SKEW,
            generation: 0,
            instance_url: None,
            refused: None,
        };
        if let Some(t) = initial {
            current.store(t);
        }
        Arc::new(TokenSource {
            state: Arc::new(SourceState {
                current: RwLock::new(current),
                inflight: Mutex::new(None),
                refresher,
            }),
        })
    }

    /// Starts over after the application authorized again: forgets a final refusal and, if
    /// given, uses `token` from now on. (The refresher must hold the new refresh token.)
    pub fn reauthorize(&self, token: Option<IssuedToken>) {
        let mut c = write(&self.state.current);
        c.refused = None;
        if let Some(t) = token {
            c.store(t);
            c.generation += 1;
        }
    }

    /// The token to use now, and its generation (pass it to [`Self::invalidate`] on a 401).
    pub async fn token(&self) -> Result<(SecretString, u64)> {
        self.access().await.map(|a| (a.token, a.generation))
    }

    /// The token to use now, its generation and the instance URL that came with it.
    pub async fn access(&self) -> Result<AccessToken> {
        let refresh = {
            let mut inflight = lock(&self.state.inflight);
            if let Some(ready) = self.state.usable()? {
                return Ok(ready);
            }
            match &*inflight {
                Some(running) => running.clone(),
                None => {
                    let started = self.start_refresh();
                    *inflight = Some(started.clone());
                    started
                }
            }
        };
        refresh.await
    }

    /// The instance URL the latest token came with, if any.
    pub fn instance_url(&self) -> Option<String> {
        read(&self.state.current).instance_url.clone()
    }

    /// Runs the refresher in its own task, so it finishes (and stores what it got) even when
    /// every caller waiting for it is cancelled.
    fn start_refresh(&self) -> Refresh {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            // Cleared when the task ends in any way (even a panicking refresher), after the
            // result is stored, so a caller never sees neither.
            let _clear = ClearInflight(state.clone());
            let result = state.refresher.refresh().await;
            let mut c = write(&state.current);
            match result {
                Ok(issued) => {
                    let token = issued.access_token.clone();
                    c.store(issued);
                    c.generation += 1;
                    tracing::debug!(generation = c.generation, "Refreshed access token.");
                    Ok(AccessToken {
                        token,
                        generation: c.generation,
                        instance_url: c.instance_url.clone(),
                    })
                }
                Err(e) => {
                    if e.kind() == ErrorKind::Auth {
                        // Asking again with the same refresh token cannot help.
                        c.refused = Some(e.clone());
                    }
                    Err(e)
                }
            }
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(Error::new(
                    ErrorKind::Auth,
                    format!("the token refresh did not finish: {e}"),
                ))
            })
        }
        .boxed()
        .shared()
    }

    /// Marks the token of `generation` as rejected, so the next call refreshes it.
    pub fn invalidate(&self, generation: u64) {
        let mut c = write(&self.state.current);
        if c.generation == generation {
            c.token = None;
        }
    }
}

struct ClearInflight(Arc<SourceState>);

impl Drop for ClearInflight {
    fn drop(&mut self) {
        *lock(&self.0.inflight) = None;
    }
}

impl Current {
    fn store(&mut self, issued: IssuedToken) {
        self.token = Some(issued.access_token);
        self.expires_at = issued
            .expires_in
            .and_then(|d| Instant::now().checked_add(d));
        self.skew = skew_for(issued.expires_in);
        if issued.instance_url.is_some() {
            self.instance_url = issued.instance_url;
        }
    }
}

impl SourceState {
    /// The current token if it is fresh; the final refusal if the endpoint refused.
    fn usable(&self) -> Result<Option<AccessToken>> {
        let c = read(&self.current);
        let fresh = c.expires_at.is_none_or(|at| at > Instant::now() + c.skew);
        if let Some(token) = c.token.clone().filter(|_| fresh) {
            return Ok(Some(AccessToken {
                token,
                generation: c.generation,
                instance_url: c.instance_url.clone(),
            }));
        }
        match &c.refused {
            Some(e) => Err(Error::new(
                e.kind(),
                format!(
                    "{}; not asking the token endpoint again until the app is authorized again",
                    e.message()
                ),
            )),
            None => Ok(None),
        }
    }
}

// A panic while holding these locks cannot leave a half-written token, so keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    /// No credentials (token endpoints, public calls).
    None,
    /// HTTP Basic; Close API keys go here as the user with an empty password.
    Basic {
        /// The user name (or API key).
        user: SecretString,
        /// The password, if any.
        password: Option<SecretString>,
    },
    /// A static bearer token (HubSpot private app token).
    Bearer(SecretString),
    /// A refreshing OAuth token.
    OAuth(Arc<TokenSource>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Basic { .. } => "Auth::Basic([REDACTED])",
            Auth::Bearer(_) => "Auth::Bearer([REDACTED])",
            Auth::OAuth(_) => "Auth::OAuth([REDACTED])",
        })
    }
}

impl Auth {
    /// A stable fingerprint of the credential (a SHA-256, never the secret), used to share
    /// rate budgets between clients that use the same credential.
    pub fn fingerprint(&self, scope: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(scope.as_bytes());
        match self {
            Auth::None => h.update(b"none"),
            Auth::Basic { user, .. } => h.update(user.expose_secret().as_bytes()),
            Auth::Bearer(t) => h.update(t.expose_secret().as_bytes()),
            Auth::OAuth(src) => h.update(format!("oauth:{:p}", Arc::as_ptr(src)).as_bytes()),
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// Gets the credential ready (refreshing an OAuth token if needed) before a budget slot
    /// is taken, so no slot is spent waiting on the token endpoint.
    pub(crate) async fn ready(&self) -> Result<Ready> {
        Ok(match self {
            Auth::None => Ready::default(),
            Auth::Basic { user, password } => Ready {
                header: Header::Basic(user.clone(), password.clone()),
                ..Ready::default()
            },
            Auth::Bearer(t) => Ready {
                header: Header::Bearer(t.clone()),
                ..Ready::default()
            },
            Auth::OAuth(src) => {
                let a = src.access().await?;
                Ready {
                    header: Header::Bearer(a.token),
                    generation: Some(a.generation),
                    instance_url: a.instance_url,
                }
            }
        })
    }
}

#[derive(Default)]
enum Header {
    #[default]
    None,
    Basic(SecretString, Option<SecretString>),
    Bearer(SecretString),
}

/// A credential ready to go on a request.
#[derive(Default)]
pub(crate) struct Ready {
    header: Header,
    /// The OAuth token generation used, to invalidate on a 401.
    pub(crate) generation: Option<u64>,
    /// The instance URL that came with the OAuth token.
    pub(crate) instance_url: Option<String>,
}

impl Ready {
    /// Adds the credential to `req`.
    pub(crate) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.header {
            Header::None => req,
            Header::Basic(user, password) => req.basic_auth(
                user.expose_secret(),
                password.as_ref().map(|p| p.expose_secret()),
            ),
            Header::Bearer(t) => req.bearer_auth(t.expose_secret()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32);

    #[async_trait]
    impl TokenRefresher for Counting {
        async fn refresh(&self) -> Result<IssuedToken> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(IssuedToken::new(
                SecretString::from(format!("tok-{n}")),
                Some(Duration::from_secs(3600)),
            ))
        }
    }

    #[tokio::test]
    async fn many_callers_share_one_refresh() {
        let counter = Arc::new(Counting(AtomicU32::new(0)));
        let src = TokenSource::new(None, counter.clone());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = src.clone();
                tokio::spawn(async move { s.token().await.unwrap().0 })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().expose_secret(), "tok-1");
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        let (_, generation) = src.token().await.unwrap();
        src.invalidate(generation);
        src.invalidate(generation);
        assert_eq!(src.token().await.unwrap().0.expose_secret(), "tok-2");
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    /// A slow refresher that rotates: each refresh spends the previous refresh token.
    struct Rotating {
        calls: AtomicU32,
        kept: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TokenRefresher for Rotating {
        async fn refresh(&self) -> Result<IssuedToken> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            lock(&self.kept).push(format!("rt-{n}"));
            Ok(IssuedToken {
                access_token: SecretString::from(format!("tok-{n}")),
                expires_in: Some(Duration::from_secs(3600)),
                instance_url: Some(format!("https://na{n}.example.com/")),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_finishes_when_its_caller_is_cancelled() {
        let r = Arc::new(Rotating {
            calls: AtomicU32::new(0),
            kept: Mutex::new(Vec::new()),
        });
        let src = TokenSource::new(None, r.clone());
        let cut = tokio::time::timeout(Duration::from_millis(100), src.token()).await;
        assert!(cut.is_err(), "the caller gave up mid-refresh");
        // A caller arriving meanwhile joins the running refresh.
        let joined = src.access().await.expect("refresh completes");
        assert_eq!(joined.token.expose_secret(), "tok-1");
        assert_eq!(
            joined.instance_url.as_deref(),
            Some("https://na1.example.com/")
        );
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        assert_eq!(*lock(&r.kept), vec!["rt-1".to_string()]);

        // Even with nobody waiting at all, the refresh runs to the end and is stored.
        src.invalidate(joined.generation);
        let cut = tokio::time::timeout(Duration::from_millis(100), src.token()).await;
        assert!(cut.is_err());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(*lock(&r.kept), vec!["rt-1".to_string(), "rt-2".to_string()]);
        let (t, _) = src.token().await.expect("stored token");
        assert_eq!(t.expose_secret(), "tok-2");
        assert_eq!(
            src.instance_url().as_deref(),
            Some("https://na2.example.com/")
        );
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }

    /// Fails with `kind` on every call, counting them.
    struct Failing(ErrorKind, AtomicU32);

    #[async_trait]
    impl TokenRefresher for Failing {
        async fn refresh(&self) -> Result<IssuedToken> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Err(Error::new(self.0, "invalid_grant"))
        }
    }

    #[tokio::test]
    async fn a_refused_refresh_token_is_not_tried_again_until_reauthorized() {
        let failing = Arc::new(Failing(ErrorKind::Auth, AtomicU32::new(0)));
        let src = TokenSource::new(None, failing.clone());
        let (a, b) = tokio::join!(src.token(), src.token());
        assert_eq!(a.expect_err("fails").kind(), ErrorKind::Auth);
        assert_eq!(b.expect_err("fails").kind(), ErrorKind::Auth);
        for _ in 0..5 {
            let e = src.token().await.expect_err("still refused");
            assert_eq!(e.kind(), ErrorKind::Auth);
            assert!(e.to_string().contains("invalid_grant"), "{e}");
            assert!(e.to_string().contains("authorized again"), "{e}");
        }
        assert_eq!(
            failing.1.load(Ordering::SeqCst),
            1,
            "asked the endpoint once"
        );
        src.reauthorize(Some(IssuedToken::new(
            SecretString::from("fresh"),
            Some(Duration::from_secs(3600)),
        )));
        assert_eq!(src.token().await.expect("new").0.expose_secret(), "fresh");
    }

    #[tokio::test]
    async fn a_transient_refresh_failure_is_tried_again_on_the_next_call() {
        let failing = Arc::new(Failing(ErrorKind::Transient, AtomicU32::new(0)));
        let src = TokenSource::new(None, failing.clone());
        assert!(src.token().await.is_err());
        assert!(src.token().await.is_err());
        assert_eq!(failing.1.load(Ordering::SeqCst), 2);
    }

    /// Issues tokens that live `0` long.
    struct ShortLived(Duration, AtomicU32);

    #[async_trait]
    impl TokenRefresher for ShortLived {
        async fn refresh(&self) -> Result<IssuedToken> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(IssuedToken::new(SecretString::from("short"), Some(self.0)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lived_token_is_refreshed_at_half_its_life_not_on_every_call() {
        let r = Arc::new(ShortLived(Duration::from_secs(30), AtomicU32::new(0)));
        let src = TokenSource::new(None, r.clone());
        for _ in 0..5 {
            src.token().await.expect("token");
        }
        assert_eq!(r.1.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(14)).await;
        src.token().await.expect("token");
        assert_eq!(r.1.load(Ordering::SeqCst), 1, "still fresh after 14 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
        src.token().await.expect("token");
        assert_eq!(
            r.1.load(Ordering::SeqCst),
            2,
            "refreshed after half its life"
        );
    }

    struct Panicking(AtomicU32);

    #[async_trait]
    impl TokenRefresher for Panicking {
        async fn refresh(&self) -> Result<IssuedToken> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("refresher bug");
            }
            Ok(IssuedToken::new(SecretString::from("tok"), None))
        }
    }

    #[tokio::test]
    async fn a_panicking_refresh_is_an_error_and_the_next_call_tries_again() {
        let src = TokenSource::new(None, Arc::new(Panicking(AtomicU32::new(0))));
        assert_eq!(
            src.token().await.expect_err("panicked").kind(),
            ErrorKind::Auth
        );
        assert_eq!(
            src.token().await.expect("second try").0.expose_secret(),
            "tok"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = Auth::Basic {
            user: SecretString::from("super-secret-key"),
            password: None,
        };
        assert!(!format!("{a:?}").contains("super-secret"));
        assert!(!a.fingerprint("close").contains("super-secret"));
    }
}
