//! Reading entities of one model at one instant, as one identity: the
//! [`LiveSource`] of a Cyoda service.
//!
//! - a whole model: `GET /entity/{name}/{version}` pages, all with the same
//!   `pointInTime`, striped over the partitions (partition k reads pages
//!   k, k+P, …), a few pages in flight per partition;
//! - a filtered read: `POST /search/direct/…` with the condition; when more
//!   entities match than it may return, the whole model is paged instead and
//!   the engine filters (no result is cut short). Async search jobs are not
//!   used: reading their results was ~100× slower than paging on the sqlite
//!   storage (see the README's read-path figures);
//! - `entity_id = '…'`: `GET /entity/{id}`, checked to be of the model.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use tsql_entity_tables::json::{Cursor, Kind};
use tsql_entity_tables::temporal::format_micros_utc;
use tsql_entity_tables::{
    EnvelopePages, LiveRead, LiveSource, Predicate, UpstreamError, UpstreamErrorKind,
};

use crate::condition::{accepts, condition, match_all};
use crate::http::Http;
use crate::identity::Identity;
use crate::models::encode;

/// The most entities one direct search returns (the service's cap).
pub const DIRECT_SEARCH_CAP: usize = 10_000;

/// How reads are paged.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Entities per page.
    pub page_size: usize,
    /// Pages requested ahead of the consumer, per partition.
    pub pages_in_flight: usize,
}

/// A Cyoda service as read by one identity.
#[derive(Debug)]
pub struct CyodaReader {
    pub(crate) http: Http,
    pub(crate) identity: Identity,
    pub(crate) options: ReadOptions,
}

fn upstream(e: UpstreamError) -> datafusion::error::DataFusionError {
    e.into()
}

/// How many envelopes a JSON array or NDJSON text of `model` holds (without decoding them).
fn count_envelopes(page: &[u8], model: &str) -> Result<usize, UpstreamError> {
    let bad = |e: tsql_entity_tables::json::JsonError| {
        UpstreamError::new(
            UpstreamErrorKind::BadAnswer,
            format!("model {model}: the Cyoda service sent malformed JSON: {e}"),
        )
    };
    let mut c = Cursor::new(page);
    if c.at_end() {
        return Ok(0);
    }
    let mut n = 0;
    if c.peek_kind().map_err(bad)? == Kind::Array {
        c.begin_array().map_err(bad)?;
        while c.next_element(n == 0).map_err(bad)? {
            c.skip_value().map_err(bad)?;
            n += 1;
        }
    } else {
        while !c.at_end() {
            c.skip_value().map_err(bad)?;
            n += 1;
        }
    }
    Ok(n)
}

impl CyodaReader {
    fn credentials(&self) -> crate::http::Credentials<'_> {
        crate::credentials(&self.identity)
    }

    fn model_path(read: &LiveRead) -> String {
        format!("{}/{}", encode(&read.model.name), read.model.version)
    }

    /// Entities wanted from the service: the row limit when rows are entities.
    fn entity_limit(read: &LiveRead) -> Option<usize> {
        read.limit.filter(|_| read.rows_are_entities)
    }

    /// One page of the whole model.
    async fn list_page(
        &self,
        read: &LiveRead,
        page: usize,
        size: usize,
    ) -> Result<Bytes, UpstreamError> {
        let path = format!("/entity/{}", Self::model_path(read));
        let query = [
            ("pageSize", size.to_string()),
            ("pageNumber", page.to_string()),
            ("pointInTime", format_micros_utc(read.at)),
        ];
        self.http
            .call(Method::GET, &path, &query, self.credentials(), None)
            .await
    }

    /// Every page of the model, pages `first`, `first + step`, … (`step`
    /// readers share the model), with pages in flight.
    fn model_pages(
        self: Arc<Self>,
        read: Arc<LiveRead>,
        first: usize,
        step: usize,
    ) -> EnvelopePages {
        let size = self.options.page_size.max(1);
        let in_flight = self.options.pages_in_flight;
        striped(
            read.model.to_string(),
            first,
            step,
            size,
            in_flight,
            move |p| {
                let (me, read) = (self.clone(), read.clone());
                async move { me.list_page(&read, p, size).await }
            },
        )
    }

    /// One entity by id, as an array of zero or one envelope of the model.
    async fn one_entity(&self, read: &LiveRead, id: &str) -> Result<Bytes, UpstreamError> {
        let path = format!("/entity/{}", encode(id));
        let query = [("pointInTime", format_micros_utc(read.at))];
        match self
            .http
            .call(Method::GET, &path, &query, self.credentials(), None)
            .await
        {
            Ok(body) => {
                let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                    UpstreamError::new(
                        UpstreamErrorKind::BadAnswer,
                        format!(
                            "model {}: entity {id}: the service's answer is not JSON: {e}",
                            read.model
                        ),
                    )
                })?;
                let key = &doc["meta"]["modelKey"];
                let same_model = key["name"] == read.model.name.as_str()
                    && (key["version"] == read.model.version
                        || key["version"] == read.model.version.to_string().as_str());
                if same_model {
                    let mut out = b"[".to_vec();
                    out.extend_from_slice(&body);
                    out.push(b']');
                    Ok(Bytes::from(out))
                } else {
                    Ok(Bytes::from_static(b"[]"))
                }
            }
            // No such entity (or not at that instant): no row.
            Err(e) if e.kind == UpstreamErrorKind::NotFound => Ok(Bytes::from_static(b"[]")),
            Err(e) => Err(e),
        }
    }

    fn condition_body(read: &LiveRead) -> Vec<u8> {
        let c = read
            .filter
            .as_ref()
            .map(condition)
            .unwrap_or_else(match_all);
        serde_json::to_vec(&c).expect("a JSON value serializes")
    }

    async fn direct_search(&self, read: &LiveRead, limit: usize) -> Result<Bytes, UpstreamError> {
        let path = format!("/search/direct/{}", Self::model_path(read));
        let query = [
            ("pointInTime", format_micros_utc(read.at)),
            ("limit", limit.to_string()),
        ];
        let body = Some(("application/json", Self::condition_body(read)));
        self.http
            .call(Method::POST, &path, &query, self.credentials(), body)
            .await
    }
}

/// Pages `first`, `first + step`, … read by `fetch`, `in_flight` at a time,
/// ending after the first page with fewer than `size` envelopes (of `model`).
fn striped<F, Fut>(
    model: String,
    first: usize,
    step: usize,
    size: usize,
    in_flight: usize,
    fetch: F,
) -> EnvelopePages
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Bytes, UpstreamError>> + Send + 'static,
{
    futures::stream::iter((0..).map(move |i| first + i * step))
        .map(fetch)
        .buffered(in_flight.max(1))
        .map(move |page| {
            let page = page?;
            let n = count_envelopes(&page, &model)?;
            Ok::<_, UpstreamError>((page, n < size))
        })
        .scan(false, |ended, page| {
            if *ended {
                return futures::future::ready(None);
            }
            let item = match page {
                Ok((page, last)) => {
                    *ended = last;
                    Ok(page)
                }
                Err(e) => {
                    *ended = true;
                    Err(upstream(e))
                }
            };
            futures::future::ready(Some(item))
        })
        .boxed()
}

impl LiveSource for CyodaReader {
    fn accepts(&self, predicate: &Predicate) -> bool {
        accepts(predicate)
    }

    fn partitions(&self, read: &LiveRead, target: usize) -> usize {
        if read.entity_ids.is_some() || read.filter.is_some() || Self::entity_limit(read).is_some()
        {
            1
        } else {
            target
        }
    }

    fn pages(
        self: Arc<Self>,
        read: Arc<LiveRead>,
        partition: usize,
        partitions: usize,
    ) -> EnvelopePages {
        let size = self.options.page_size.max(1);
        if let Some(ids) = read.entity_ids.clone() {
            if partition > 0 {
                return futures::stream::empty().boxed();
            }
            return futures::stream::iter(ids)
                .then(move |id| {
                    let (me, read) = (self.clone(), read.clone());
                    async move { me.one_entity(&read, &id).await.map_err(upstream) }
                })
                .boxed();
        }
        if read.filter.is_none() {
            if let Some(limit) = Self::entity_limit(&read) {
                // A few entities: the first pages only.
                let size = size.min(limit.max(1));
                let pages = limit.div_ceil(size);
                let me = self.clone();
                return futures::stream::iter(0..pages)
                    .then(move |p| {
                        let (me, read) = (me.clone(), read.clone());
                        async move { me.list_page(&read, p, size).await.map_err(upstream) }
                    })
                    .boxed();
            }
            return self.model_pages(read, partition, partitions);
        }
        // A filtered read: a direct search; when more entities match than it
        // returns, every page of the model (the engine applies the filter).
        let limit =
            Self::entity_limit(&read).map_or(DIRECT_SEARCH_CAP, |l| l.clamp(1, DIRECT_SEARCH_CAP));
        futures::stream::once(async move {
            match self.direct_search(&read, limit).await {
                Ok(found) => Ok::<EnvelopePages, UpstreamError>(
                    futures::stream::once(async move { Ok(found) }).boxed(),
                ),
                Err(e) if e.message.contains("SEARCH_RESULT_LIMIT") => {
                    Ok(self.model_pages(read, 0, 1))
                }
                Err(e) => Err(e),
            }
        })
        .map_err(upstream)
        .try_flatten()
        .boxed()
    }

    fn describe(&self, read: &LiveRead) -> String {
        let at = format_micros_utc(read.at);
        let model = Self::model_path(read);
        if let Some(ids) = &read.entity_ids {
            return format!(
                "GET /entity/{{id}} for {} id(s), pointInTime={at}",
                ids.len()
            );
        }
        match &read.filter {
            None => match Self::entity_limit(read) {
                Some(limit) => format!(
                    "GET /entity/{model}?pointInTime={at} (the first {limit} entities only)"
                ),
                None => format!(
                    "GET /entity/{model}?pointInTime={at} (pages of {})",
                    self.options.page_size
                ),
            },
            Some(p) => format!(
                "POST /search/direct/{model}?pointInTime={at} condition={} (over {DIRECT_SEARCH_CAP} matches: GET /entity pages, filtered by tsql)",
                condition(p)
            ),
        }
    }
}
