//! Reading records by id in batches: completing linked groups and reading written records
//! back.

use super::apply::per_input;
use super::*;

impl Engine {
    /// Reads every record of `wanted`, each tagged with what the caller needs back, through
    /// one [`Connector::get_many`] per CRM and kind, so a connector with a batch read needs a
    /// call per batch rather than per record. Each result stays with its own reference: a
    /// connector that answers fewer results than ids leaves the unanswered ones with an
    /// error, never another record's result.
    pub(super) async fn read_many<T>(
        &self,
        wanted: Vec<(T, RecordRef)>,
    ) -> Vec<(T, RecordRef, Result<Record>)> {
        let mut by_source: BTreeMap<(Crm, ObjectKind), Vec<(T, RecordRef)>> = BTreeMap::new();
        for (tag, r) in wanted {
            by_source
                .entry((r.crm, r.object))
                .or_default()
                .push((tag, r));
        }
        let mut out = Vec::new();
        for ((crm, kind), refs) in by_source {
            let ids: Vec<String> = refs.iter().map(|(_, r)| r.id.clone()).collect();
            let got = self.conn(crm).get_many(kind, &ids).await;
            for ((tag, r), got) in refs.into_iter().zip(per_input(got)) {
                let got = got.unwrap_or_else(|| {
                    Err(Error::bad_response(format!(
                        "{crm} answered no result for {r} in a batch read"
                    )))
                });
                out.push((tag, r, got));
            }
        }
        out
    }
}
