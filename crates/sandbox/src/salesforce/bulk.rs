//! Bulk API 2.0 (`jobs/ingest`, `jobs/query`).

use super::State;
use super::api_error::ApiError;
use super::data::Data;
use super::dispatch::{Answer, Req};

type Result<T> = std::result::Result<T, ApiError>;

/// Reads of `jobs/…`.
pub(crate) fn read(
    _state: &State,
    _data: &Data,
    _v: &str,
    _segs: &[&str],
    _req: &Req,
) -> Result<Answer> {
    Err(ApiError::no_row())
}

/// Writes of `jobs/…`.
pub(crate) fn write(
    _state: &State,
    _data: &mut Data,
    _v: &str,
    _segs: &[&str],
    _req: &Req,
) -> Result<Answer> {
    Err(ApiError::no_row())
}
