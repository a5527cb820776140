//! Runs each test of the suite against both backends: a fresh SQLite file, and a fresh
//! schema of the test PostgreSQL database.

use std::future::Future;
use std::path::PathBuf;

use crmkit_store::Store;
use sqlx::Connection;

/// The PostgreSQL the tests use unless `CRMKIT_TEST_DATABASE_URL` names another.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's private database.
pub struct TestDb {
    /// The URL to open it with (more handles can be opened on it).
    pub url: String,
    /// A store opened on it.
    pub store: Store,
    /// The backend.
    pub kind: Kind,
}

impl TestDb {
    /// A second, independent handle on the same database (as another process would have).
    pub async fn open_another(&self) -> Store {
        Store::open(&self.url).await.expect("second handle opens")
    }

    /// Runs `sql` on the database behind the store's back (to simulate other writers).
    pub async fn raw(&self, sql: &str) {
        let url = match self.kind {
            Kind::Sqlite => format!("sqlite://{}", self.url),
            Kind::Postgres => self.url.clone(),
        };
        let mut conn = sqlx::AnyConnection::connect(&url)
            .await
            .expect("raw connection");
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect("raw statement");
        conn.close().await.ok();
    }
}

/// Where the test PostgreSQL is.
pub fn pg_base_url() -> String {
    std::env::var("CRMKIT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

/// Runs `test` on a fresh database of `kind`, then removes the database (also when the test
/// panics, whose panic is then passed on).
pub async fn with_db<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (url, cleanup) = fresh(kind).await;
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening the {kind:?} test database: {e}"));
    let outcome = tokio::spawn(test(TestDb { url, store, kind })).await;
    cleanup.run().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A URL for a new, empty database of `kind` (nothing opened on it yet) and what removes it.
pub async fn fresh(kind: Kind) -> (String, Cleanup) {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    match kind {
        Kind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("crmkit-store-test-{unique}"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("crmkit.db");
            (path.display().to_string(), Cleanup::Dir(dir))
        }
        Kind::Postgres => {
            let base = pg_base_url();
            let schema = format!("crmkit_test_{unique}");
            let mut admin = connect_pg(&base).await;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .await
                .expect("create the test schema");
            admin.close().await.ok();
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            (url, Cleanup::Schema(base, schema))
        }
    }
}

/// Connects to the test PostgreSQL or fails with what to do.
async fn connect_pg(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {} ({e}). The store's tests need it: start it, or \
             point CRMKIT_TEST_DATABASE_URL at one (e.g. postgres://postgres@127.0.0.1:5432/test).",
            crmkit_store::redact(url)
        )
    })
}

/// Removes a test database.
pub enum Cleanup {
    Dir(PathBuf),
    Schema(String, String),
}

impl Cleanup {
    /// Removes it.
    pub async fn run(self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema(base, schema) => {
                let mut admin = connect_pg(&base).await;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut admin)
                    .await
                    .expect("drop the test schema");
                admin.close().await.ok();
            }
        }
    }
}

/// Instantiates each named `async fn(TestDb)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::support::with_db($crate::support::Kind::Sqlite, super::$name).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::support::with_db($crate::support::Kind::Postgres, super::$name).await
                }
            }
        )*
    };
}
pub(crate) use both_backends;
