//! Pagination as a stream with bounded memory and a loop guard.
//!
//! [`paginate`] turns a "fetch one page" function into a stream of items: it holds one page
//! at a time, stops when a page has no next cursor, and fails loudly (instead of looping or
//! stopping in silence) when the server hands back the cursor it was just given.

use std::future::Future;

use futures::stream::{self, Stream, TryStreamExt};

use crate::error::{Error, Result};

/// One page of results and the cursor of the next, if there is one.
#[derive(Debug)]
pub struct Page<T, C> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<C>,
}

/// Streams every item of every page, starting at `first`.
pub fn paginate<T, C, F, Fut>(first: C, mut fetch: F) -> impl Stream<Item = Result<T>>
where
    C: Clone + PartialEq + std::fmt::Debug,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>>>,
{
    stream::try_unfold(Some(first), move |cursor| {
        let fut = cursor.clone().map(&mut fetch);
        async move {
            let (Some(cursor), Some(fut)) = (cursor, fut) else {
                return Ok(None);
            };
            let page = fut.await?;
            if page.next.as_ref() == Some(&cursor) {
                return Err(Error::bad_response(format!(
                    "pagination cursor {cursor:?} repeated; stopping instead of looping"
                )));
            }
            Ok(Some((page.items, page.next)))
        }
    })
    .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn walks_all_pages_then_stops() {
        let items: Vec<u32> = paginate(0u32, |skip| async move {
            let items: Vec<u32> = (skip..(skip + 3).min(7)).collect();
            let next = (skip + 3 < 7).then_some(skip + 3);
            Ok(Page { items, next })
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(items, (0..7).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn repeated_cursor_is_an_error_not_a_loop() {
        let result: Result<Vec<u32>> = paginate("a".to_string(), |c| async move {
            Ok(Page {
                items: vec![1],
                next: Some(c),
            })
        })
        .try_collect()
        .await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("repeated"), "{err}");
    }
}
