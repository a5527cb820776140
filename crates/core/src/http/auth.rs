//! Authentication injected into every request.
//!
//! Keys and tokens are held as [`SecretString`]s and only exposed while building the
//! `Authorization` header. OAuth access tokens live in a [`TokenSource`] that refreshes ahead
//! of expiry and, when many tasks find the token expired at once, runs the refresh exactly
//! once for all of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::error::Result;

/// A fresh access token from a refresh.
pub struct IssuedToken {
    /// The access token.
    pub access_token: SecretString,
    /// Seconds until it expires, if the server said.
    pub expires_in: Option<Duration>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
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
    generation: u64,
}

/// An OAuth access token that refreshes itself ahead of expiry, once for many callers.
pub struct TokenSource {
    current: RwLock<Current>,
    refreshing: Mutex<()>,
    refresher: Arc<dyn TokenRefresher>,
    skew: Duration,
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
        let now = Instant::now();
        let (token, expires_at) = match initial {
            Some(t) => (Some(t.access_token), t.expires_in.map(|d| now + d)),
            None => (None, None),
        };
        Arc::new(TokenSource {
            current: RwLock::new(Current {
                token,
                expires_at,
                generation: 0,
            }),
            refreshing: Mutex::new(()),
            refresher,
            // Refresh a little early so a token does not expire in flight.
            skew: Duration::from_secs(60),
        })
    }

    /// The token to use now, and its generation (pass it to [`Self::invalidate`] on a 401).
    pub async fn token(&self) -> Result<(SecretString, u64)> {
        let seen = {
            let c = self.current.read().await;
            if let Some(t) = self.usable(&c) {
                return Ok((t, c.generation));
            }
            c.generation
        };
        self.refresh_after(seen).await
    }

    fn usable(&self, c: &Current) -> Option<SecretString> {
        let fresh = c
            .expires_at
            .is_none_or(|at| at > Instant::now() + self.skew);
        c.token.clone().filter(|_| fresh)
    }

    /// Marks the token of `generation` as rejected, so the next call refreshes it.
    pub async fn invalidate(&self, generation: u64) {
        let mut c = self.current.write().await;
        if c.generation == generation {
            c.token = None;
        }
    }

    async fn refresh_after(&self, seen: u64) -> Result<(SecretString, u64)> {
        let _single = self.refreshing.lock().await;
        {
            // Another caller may have refreshed while we queued for the lock.
            let c = self.current.read().await;
            if c.generation != seen
                && let Some(t) = self.usable(&c)
            {
                return Ok((t, c.generation));
            }
        }
        let issued = self.refresher.refresh().await?;
        let mut c = self.current.write().await;
        c.token = Some(issued.access_token.clone());
        c.expires_at = issued.expires_in.map(|d| Instant::now() + d);
        c.generation += 1;
        tracing::debug!(generation = c.generation, "Refreshed access token.");
        Ok((issued.access_token, c.generation))
    }
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

    /// Adds the credential to `req`; returns the token generation used, for OAuth.
    pub(crate) async fn apply(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, Option<u64>)> {
        Ok(match self {
            Auth::None => (req, None),
            Auth::Basic { user, password } => (
                req.basic_auth(
                    user.expose_secret(),
                    password.as_ref().map(|p| p.expose_secret()),
                ),
                None,
            ),
            Auth::Bearer(t) => (req.bearer_auth(t.expose_secret()), None),
            Auth::OAuth(src) => {
                let (t, generation) = src.token().await?;
                (req.bearer_auth(t.expose_secret()), Some(generation))
            }
        })
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
            Ok(IssuedToken {
                access_token: SecretString::from(format!("tok-{n}")),
                expires_in: Some(Duration::from_secs(3600)),
            })
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
        src.invalidate(generation).await;
        src.invalidate(generation).await;
        assert_eq!(src.token().await.unwrap().0.expose_secret(), "tok-2");
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
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
