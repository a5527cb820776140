//! Batch fan-out with per-record outcomes: a batch never fails as a whole, each record
//! succeeds or fails on its own, results come back in input order, and every error names the
//! record it belongs to.
//!
//! [`each`] runs one write per record with bounded concurrency (Close has no batch
//! endpoints); [`chunked`] runs one request per chunk for CRMs that have them (HubSpot's
//! `batch/create`, Salesforce composite), spreading a whole-chunk failure over its records.
//! [`each_unique`] is [`each`] that writes once per key, for idempotent creates where two
//! records of one batch carry the same marker and must not race each other into two creates.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use futures::stream::{self, StreamExt};

use crate::error::{Error, Result};

/// Names the record an error belongs to, unless the error already names one.
fn name(e: Error, label: &str) -> Error {
    if e.record().is_some() {
        e
    } else {
        e.with_record(label)
    }
}

/// A copy of `e` for one record of a chunk that failed as a whole (errors are not `Clone`:
/// they may hold a source).
fn copy_for(e: &Error, label: &str) -> Error {
    let mut c = Error::new(e.kind(), e.message()).with_record(label);
    if let Some(crm) = e.crm() {
        c = c.with_crm(crm);
    }
    if let Some(s) = e.status() {
        c = c.with_status(s);
    }
    if let Some(w) = e.retry_after() {
        c = c.with_retry_after(w);
    }
    c.with_field_errors(e.field_errors().to_vec())
}

/// Runs `write` on every item, at most `concurrency` at once; one result per item, in input
/// order. `label` describes an item for its error (`company "Acme"`).
pub async fn each<I, T, L, F, Fut>(
    items: Vec<I>,
    concurrency: usize,
    label: L,
    write: F,
) -> Vec<Result<T>>
where
    L: Fn(&I) -> String,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    stream::iter(items.into_iter().map(|item| {
        let l = label(&item);
        let fut = write(item);
        async move { fut.await.map_err(|e| name(e, &l)) }
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await
}

/// [`each`], but items with the same `key` are written once: the first of them is written
/// and every item sharing its key gets that result (an error is copied and names each
/// item). One result per item, in input order.
pub async fn each_unique<I, K, T, KF, L, F, Fut>(
    items: Vec<I>,
    concurrency: usize,
    key: KF,
    label: L,
    write: F,
) -> Vec<Result<T>>
where
    K: Eq + Hash,
    T: Clone,
    KF: Fn(&I) -> K,
    L: Fn(&I) -> String,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut first_of: HashMap<K, usize> = HashMap::new();
    // For each item: its label and the index of the unique write it shares; for each unique
    // write: the item that owns it (the first with its key), which gets the original result.
    let mut slots: Vec<(String, usize)> = Vec::with_capacity(items.len());
    let mut owners: Vec<usize> = Vec::new();
    let mut unique: Vec<I> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let next = unique.len();
        let at = *first_of.entry(key(&item)).or_insert(next);
        slots.push((label(&item), at));
        if at == next {
            owners.push(i);
            unique.push(item);
        }
    }
    let results = each(unique, concurrency, &label, write).await;
    let mut out: Vec<Option<Result<T>>> = slots
        .iter()
        .enumerate()
        .map(|(i, (l, at))| {
            (owners[*at] != i).then(|| match &results[*at] {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(copy_for(e, l)),
            })
        })
        .collect();
    for (r, owner) in results.into_iter().zip(owners) {
        out[owner] = Some(r);
    }
    out.into_iter().flatten().collect()
}

/// Splits `items` into chunks of `chunk_size`, runs `write` on each chunk (at most
/// `concurrency` at once), and flattens the per-record results in input order. A chunk that
/// fails as a whole, or answers with the wrong number of results, fails each of its records.
pub async fn chunked<I, T, L, F, Fut>(
    items: Vec<I>,
    chunk_size: usize,
    concurrency: usize,
    label: L,
    write: F,
) -> Vec<Result<T>>
where
    L: Fn(&I) -> String,
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<T>>>>,
{
    let size = chunk_size.max(1);
    let mut chunks: Vec<(Vec<String>, Vec<I>)> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some((labels, chunk)) if chunk.len() < size => {
                labels.push(label(&item));
                chunk.push(item);
            }
            _ => chunks.push((vec![label(&item)], vec![item])),
        }
    }
    let per_chunk: Vec<Vec<Result<T>>> = stream::iter(chunks.into_iter().map(|(labels, chunk)| {
        let fut = write(chunk);
        async move {
            match fut.await {
                Ok(results) if results.len() == labels.len() => results
                    .into_iter()
                    .zip(&labels)
                    .map(|(r, l)| r.map_err(|e| name(e, l)))
                    .collect(),
                Ok(results) => {
                    let e = Error::bad_response(format!(
                        "the batch answered {} results for {} records",
                        results.len(),
                        labels.len()
                    ));
                    labels.iter().map(|l| Err(copy_for(&e, l))).collect()
                }
                Err(e) => labels.iter().map(|l| Err(copy_for(&e, l))).collect(),
            }
        }
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await;
    per_chunk.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn each_keeps_input_order_bounds_concurrency_and_names_failures() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let results = each(
            (0..20u64).collect(),
            3,
            |i| format!("record {i}"),
            |i| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first, so order must come from the fan-out.
                    tokio::time::sleep(Duration::from_millis(20 - i)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    if i % 7 == 3 {
                        Err(Error::new(ErrorKind::Validation, "rejected"))
                    } else {
                        Ok(i * 10)
                    }
                }
            },
        )
        .await;
        assert_eq!(results.len(), 20);
        assert!(peak.load(Ordering::SeqCst) <= 3);
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u64 * 10),
                Err(e) => {
                    assert_eq!(i % 7, 3);
                    assert_eq!(e.record(), Some(format!("record {i}").as_str()));
                }
            }
        }
    }

    #[tokio::test]
    async fn each_unique_writes_a_shared_key_once_and_answers_every_item() {
        let calls = Arc::new(AtomicUsize::new(0));
        let results = each_unique(
            vec![("a", 1), ("b", 2), ("a", 3), ("bad", 4), ("bad", 5)],
            4,
            |(k, _)| *k,
            |(k, n)| format!("{k}{n}"),
            |(k, n)| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if k == "bad" {
                        Err(Error::new(ErrorKind::Validation, "rejected"))
                    } else {
                        Ok(format!("{k}{n}"))
                    }
                }
            },
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one write per key");
        assert_eq!(results[0].as_ref().ok().map(String::as_str), Some("a1"));
        assert_eq!(results[1].as_ref().ok().map(String::as_str), Some("b2"));
        assert_eq!(results[2].as_ref().ok().map(String::as_str), Some("a1"));
        assert_eq!(results[3].as_ref().unwrap_err().record(), Some("bad4"));
        let copy = results[4].as_ref().unwrap_err();
        assert_eq!(
            (copy.kind(), copy.record()),
            (ErrorKind::Validation, Some("bad5"))
        );
    }

    #[tokio::test]
    async fn chunked_spreads_a_chunk_failure_over_its_records_only() {
        let results: Vec<Result<usize>> = chunked(
            (0..7usize).collect(),
            3,
            2,
            |i| format!("r{i}"),
            |chunk: Vec<usize>| async move {
                if chunk.contains(&4) {
                    Err(Error::new(ErrorKind::Transient, "batch endpoint down").with_status(503))
                } else if chunk.contains(&6) {
                    Ok(vec![])
                } else {
                    Ok(chunk.into_iter().map(Ok).collect())
                }
            },
        )
        .await;
        assert_eq!(results.len(), 7);
        assert_eq!(results[0].as_ref().ok(), Some(&0));
        assert_eq!(results[2].as_ref().ok(), Some(&2));
        for (i, r) in results.iter().enumerate().take(6).skip(3) {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient);
            assert_eq!(e.status(), Some(503));
            assert_eq!(e.record(), Some(format!("r{i}").as_str()));
        }
        assert_eq!(
            results[6].as_ref().unwrap_err().kind(),
            ErrorKind::BadResponse
        );
    }
}
