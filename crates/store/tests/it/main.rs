//! The store's one test suite, run against SQLite (a temporary file) and PostgreSQL (a fresh
//! schema per test of the database named by `CRMKIT_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL tests fail, never skip, when the
//! database is unreachable.

mod support;

mod conflicts;
mod cursors;
mod facts;
mod inbox;
mod intents;
mod leases;
mod links;
mod memory;
mod migrations;
mod retries;
mod runs;
mod secrets;
