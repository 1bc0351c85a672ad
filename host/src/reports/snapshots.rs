//! Reports computed as a whole (aggregates, plugin reports) kept for a few minutes once their first JSON page is
//! answered, so that the later pages are slices of that same computation: paging through a report costs one
//! computation, and every page belongs to one moment even while the academy changes.
//!
//! A snapshot is found by the token in a page's cursor (`o:<offset>.<token>`) and only for the same academy,
//! person, report, checked filters and reach. It is never the only copy of anything: a cursor whose snapshot
//! is gone (expired, evicted, or made on another replica) computes the report again, as a cursor without one
//! does.

use super::Row;
use crate::scope::Reach;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a snapshot is kept after its first page.
const KEEP_FOR: Duration = Duration::from_secs(300);
/// Most memory all snapshots together may take (estimated); the oldest go first.
const BUDGET: usize = 64 * 1024 * 1024;
/// A report larger than this is not kept: its pages are computed one by one.
const LARGEST: usize = 16 * 1024 * 1024;
/// Most snapshots kept at once, however small, so that looking one up stays cheap.
const MOST: usize = 256;

/// Whose run a snapshot is: it answers only the same run again.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    /// The academy.
    pub tenant_id: String,
    /// The person it was run for.
    pub user_id: String,
    /// The report's key.
    pub report: String,
    /// The filters as checked (ids, not names).
    pub params: BTreeMap<String, String>,
    /// What the person reached with `reports.read` at the time.
    pub reach: Reach,
}

/// A kept computation.
pub struct Snapshot {
    /// Whose it is.
    pub owner: Owner,
    /// When it was computed (unix milliseconds).
    pub now: i64,
    /// Every row.
    pub rows: Arc<[Row]>,
}

struct Kept {
    token: String,
    until: Instant,
    weight: usize,
    snapshot: Arc<Snapshot>,
}

/// The snapshots of one process, oldest first, and their total weight.
#[derive(Default)]
pub struct Snapshots {
    kept: Mutex<(VecDeque<Kept>, usize)>,
}

impl Snapshots {
    /// Keep a snapshot; its token, or `None` when it is too large to keep.
    pub fn keep(&self, snapshot: Snapshot) -> Option<String> {
        let weight = weight(&snapshot.rows);
        if weight > LARGEST {
            return None;
        }
        let token = crate::auth::random_secret();
        let mut guard = self.kept.lock().ok()?;
        let (kept, total) = &mut *guard;
        let now = Instant::now();
        // Every snapshot lives equally long, so the expired ones are the oldest.
        while let Some(oldest) = kept.front()
            && (oldest.until <= now || *total + weight > BUDGET || kept.len() >= MOST)
        {
            *total -= oldest.weight;
            kept.pop_front();
        }
        *total += weight;
        kept.push_back(Kept {
            token: token.clone(),
            until: now + KEEP_FOR,
            weight,
            snapshot: Arc::new(snapshot),
        });
        Some(token)
    }

    /// The live snapshot with this token, if it is `owner`'s.
    pub fn find(&self, token: &str, owner: &Owner) -> Option<Arc<Snapshot>> {
        let guard = self.kept.lock().ok()?;
        let now = Instant::now();
        guard
            .0
            .iter()
            .find(|k| k.token == token && k.until > now)
            .filter(|k| k.snapshot.owner == *owner)
            .map(|k| k.snapshot.clone())
    }
}

/// About how many bytes the rows take.
fn weight(rows: &[Row]) -> usize {
    use super::Cell;
    rows.iter()
        .map(|row| {
            size_of::<Row>()
                + row
                    .iter()
                    .map(|cell| {
                        size_of::<Cell>()
                            + match cell {
                                Cell::Text(s) | Cell::Date(s) => s.capacity(),
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Cell;

    fn owner(user: &str) -> Owner {
        Owner {
            tenant_id: "t1".into(),
            user_id: user.into(),
            report: "completion-by-org".into(),
            params: BTreeMap::new(),
            reach: Reach {
                all: true,
                ..Reach::default()
            },
        }
    }

    fn snapshot(user: &str, rows: usize, text: usize) -> Snapshot {
        Snapshot {
            owner: owner(user),
            now: 1,
            rows: (0..rows).map(|_| vec![Cell::Text("x".repeat(text))]).collect(),
        }
    }

    #[test]
    fn found_only_by_its_owner() {
        let kept = Snapshots::default();
        let token = kept.keep(snapshot("u1", 3, 4)).expect("kept");
        assert_eq!(kept.find(&token, &owner("u1")).map(|s| s.rows.len()), Some(3));
        assert!(kept.find(&token, &owner("u2")).is_none(), "another person");
        let mut narrower = owner("u1");
        narrower.reach = Reach::default();
        assert!(kept.find(&token, &narrower).is_none(), "another reach");
        let mut filtered = owner("u1");
        filtered.params.insert("org".into(), "o1".into());
        assert!(kept.find(&token, &filtered).is_none(), "other filters");
        assert!(kept.find("nope", &owner("u1")).is_none());
    }

    #[test]
    fn bounded_by_memory() {
        let kept = Snapshots::default();
        assert!(kept.keep(snapshot("u1", 1, LARGEST + 1)).is_none(), "too large to keep");
        // Five snapshots of about 15 MiB: only the newest four fit in 64 MiB.
        let tokens: Vec<String> = (0..5)
            .map(|_| kept.keep(snapshot("u1", 1, 15 * 1024 * 1024)).expect("kept"))
            .collect();
        assert!(kept.find(&tokens[0], &owner("u1")).is_none(), "the oldest went first");
        for token in &tokens[1..] {
            assert!(kept.find(token, &owner("u1")).is_some());
        }
    }

    #[test]
    fn bounded_in_number() {
        let kept = Snapshots::default();
        let tokens: Vec<String> = (0..MOST + 1)
            .map(|_| kept.keep(snapshot("u1", 2, 1)).expect("kept"))
            .collect();
        assert!(kept.find(&tokens[0], &owner("u1")).is_none(), "the oldest went first");
        assert!(kept.find(&tokens[MOST], &owner("u1")).is_some());
        assert_eq!(kept.kept.lock().unwrap().0.len(), MOST);
    }
}
