//! Splitting a table's token ring into ranges read in parallel: the ring's
//! own ranges, cut finer or merged to about `split_bytes` each by what
//! `system.size_estimates` says the table holds, each with the replicas that
//! own it.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::cluster::Node;
use scylla::routing::Token;
use scylla::value::CqlValue;

use tsql_entity_tables::{UpstreamError, UpstreamErrorKind};

use crate::cluster::{Cluster, classify};

/// A token range `(start, end]`; `None` is the ring's open end on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRange {
    /// Exclusive lower bound, or none (from the lowest token).
    pub start: Option<i64>,
    /// Inclusive upper bound, or none (to the highest token).
    pub end: Option<i64>,
}

impl TokenRange {
    /// The whole ring.
    pub const ALL: TokenRange = TokenRange {
        start: None,
        end: None,
    };

    fn bounds(&self) -> (i128, i128) {
        (
            self.start.map_or(i64::MIN as i128, |s| s as i128),
            self.end.map_or(i64::MAX as i128, |e| e as i128),
        )
    }

    /// The range as CQL conditions on `token` (`token(…) > ?`, `token(…) <= ?`,
    /// each only where the range has that bound) and their values.
    pub fn conditions(&self, token: &str) -> (Vec<String>, Vec<CqlValue>) {
        let mut text = Vec::new();
        let mut values = Vec::new();
        if let Some(s) = self.start {
            text.push(format!("{token} > ?"));
            values.push(CqlValue::BigInt(s));
        }
        if let Some(e) = self.end {
            text.push(format!("{token} <= ?"));
            values.push(CqlValue::BigInt(e));
        }
        (text, values)
    }

    /// How many tokens the range holds.
    pub fn width(&self) -> u128 {
        let (s, e) = self.bounds();
        (e - s).max(0) as u128
    }

    /// The range cut into `n` about equal pieces, in order.
    pub fn cut(&self, n: usize) -> Vec<TokenRange> {
        let n = n.max(1) as i128;
        let (s, e) = self.bounds();
        let step = ((e - s) / n).max(1);
        let mut out = Vec::new();
        let mut lo = self.start;
        for k in 1..n {
            let hi = s + step * k;
            if hi >= e {
                break;
            }
            out.push(TokenRange {
                start: lo,
                end: Some(hi as i64),
            });
            lo = Some(hi as i64);
        }
        out.push(TokenRange {
            start: lo,
            end: self.end,
        });
        out
    }
}

/// Ranges read one after another by one query stream, preferably on `replicas`.
#[derive(Debug, Clone)]
pub struct Split {
    /// The ranges.
    pub ranges: Vec<TokenRange>,
    /// Nodes that own them, primary first.
    pub replicas: Vec<Arc<Node>>,
}

/// The table's estimated size in bytes from `system.size_estimates` (the
/// estimates the coordinator holds for its ranges, scaled to the whole
/// ring), or `None` when Cassandra has none yet or cannot say. A node that
/// does not answer in time is an error: the read after it would wait too.
pub async fn estimated_bytes(
    cluster: &Cluster,
    keyspace: &str,
    table: &str,
) -> Result<Option<u64>, UpstreamError> {
    let estimates = match size_estimates(cluster, keyspace, table).await {
        Ok(rows) => rows,
        Err(e) if e.kind == UpstreamErrorKind::Timeout => return Err(e),
        Err(_) => return Ok(None),
    };
    Ok(scaled(estimates))
}

async fn size_estimates(
    cluster: &Cluster,
    keyspace: &str,
    table: &str,
) -> Result<Vec<(String, String, i64, i64)>, UpstreamError> {
    let what = &format!("reading the size estimates of {keyspace}.{table}");
    let mut pages = cluster
        .pages(
            "SELECT range_start, range_end, partitions_count, mean_partition_size FROM system.size_estimates WHERE keyspace_name = ? AND table_name = ?",
            vec![CqlValue::Text(keyspace.into()), CqlValue::Text(table.into())],
            what,
        )
        .await?;
    let mut estimates = Vec::new();
    while let Some(page) = pages.next_page().await? {
        for row in page
            .rows::<(String, String, i64, i64)>()
            .map_err(|e| classify(&e, what))?
        {
            estimates.push(row.map_err(|e| classify(&e, what))?);
        }
    }
    Ok(estimates)
}

/// Bytes over the whole ring from (range start, range end, partitions, mean
/// partition size) rows covering part of it.
fn scaled(estimates: Vec<(String, String, i64, i64)>) -> Option<u64> {
    let mut bytes = 0f64;
    let mut covered = 0f64;
    for (start, end, count, mean) in estimates {
        let (s, e): (i128, i128) = (start.parse().ok()?, end.parse().ok()?);
        let width = if e > s {
            e - s
        } else {
            (i64::MAX as i128 - s) + (e - i64::MIN as i128)
        };
        covered += width as f64;
        bytes += count.max(0) as f64 * mean.max(0) as f64;
    }
    if covered <= 0.0 || bytes <= 0.0 {
        return None;
    }
    Some((bytes * (u64::MAX as f64 / covered)) as u64)
}

/// The splits of `keyspace.table`: about `wanted` of them (at least one per
/// `min` when the ring has that many ranges), each on the replicas owning it.
pub fn splits(session: &Session, keyspace: &str, table: &str, wanted: usize) -> Vec<Split> {
    let state = session.get_cluster_state();
    let ring: Vec<(i64, Arc<Node>)> = state
        .replica_locator()
        .ring()
        .iter()
        .map(|(t, n)| (t.value(), n.clone()))
        .collect();
    let replicas_of = |token: i64| -> Vec<Arc<Node>> {
        state
            .get_token_endpoints(keyspace, table, Token::new(token))
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    if ring.is_empty() {
        return vec![Split {
            ranges: vec![TokenRange::ALL],
            replicas: Vec::new(),
        }];
    }
    // The ring's ranges: (previous token, token], owned from `token`; the
    // first one wraps around the ring's end and is read as two pieces.
    let mut base: Vec<(TokenRange, i64)> = Vec::with_capacity(ring.len() + 1);
    let (first, last) = (ring[0].0, ring[ring.len() - 1].0);
    base.push((
        TokenRange {
            start: Some(last),
            end: None,
        },
        first,
    ));
    base.push((
        TokenRange {
            start: None,
            end: Some(first),
        },
        first,
    ));
    for w in ring.windows(2) {
        base.push((
            TokenRange {
                start: Some(w[0].0),
                end: Some(w[1].0),
            },
            w[1].0,
        ));
    }
    base.retain(|(r, _)| r.width() > 0);
    let wanted = wanted.max(1);
    let mut out = Vec::new();
    if wanted >= base.len() {
        // Cut each range in proportion to its width.
        let total: u128 = base.iter().map(|(r, _)| r.width()).sum::<u128>().max(1);
        for (range, owner) in &base {
            let pieces = ((range.width() * wanted as u128).div_ceil(total)).max(1) as usize;
            let replicas = replicas_of(*owner);
            for piece in range.cut(pieces) {
                out.push(Split {
                    ranges: vec![piece],
                    replicas: replicas.clone(),
                });
            }
        }
    } else {
        // Merge: ranges with the same primary replica share splits.
        let mut by_owner: Vec<(Vec<Arc<Node>>, Vec<TokenRange>)> = Vec::new();
        for (range, owner) in &base {
            let replicas = replicas_of(*owner);
            let key = replicas.first().map(|n| n.host_id);
            match by_owner
                .iter_mut()
                .find(|(r, _)| r.first().map(|n| n.host_id) == key)
            {
                Some((_, ranges)) => ranges.push(*range),
                None => by_owner.push((replicas, vec![*range])),
            }
        }
        let per_owner = wanted.div_ceil(by_owner.len()).max(1);
        for (replicas, ranges) in by_owner {
            let chunk = ranges.len().div_ceil(per_owner).max(1);
            for group in ranges.chunks(chunk) {
                out.push(Split {
                    ranges: group.to_vec(),
                    replicas: replicas.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_covers_the_range_without_gaps() {
        let r = TokenRange {
            start: Some(-100),
            end: Some(100),
        };
        let pieces = r.cut(4);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].start, Some(-100));
        assert_eq!(pieces[3].end, Some(100));
        for w in pieces.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let open = TokenRange::ALL.cut(3);
        assert_eq!(open[0].start, None);
        assert_eq!(open[2].end, None);
        assert_eq!(
            open.iter().map(|p| p.width()).sum::<u128>(),
            TokenRange::ALL.width()
        );
        let tiny = TokenRange {
            start: Some(0),
            end: Some(2),
        };
        assert!(tiny.cut(10).len() <= 2);
    }
}
