//! Talents by id: a hash table of their positions in the talent table,
//! hashing the ids where the talents keep them, so a million ids cost no
//! copies.

use std::{hash::BuildHasher, sync::Arc};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::model::Talent;

/// Positions (ords) of the live talents of a table, by id.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    ords: HashTable<u32>,
}

fn hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

fn id(table: &[Option<Arc<Talent>>], ord: u32) -> &str {
    table[ord as usize].as_ref().map_or("", |t| t.id.as_str())
}

impl IdIndex {
    /// Indexes every live talent of `table`; ids are unique in a roster, and
    /// where one repeats the first position is kept.
    pub(crate) fn build(table: &[Option<Arc<Talent>>]) -> IdIndex {
        let mut ords = HashTable::with_capacity(table.len());
        for (ord, talent) in table.iter().enumerate() {
            let Some(t) = talent else { continue };
            let h = hash(&t.id);
            if ords.find(h, |&o| id(table, o) == t.id).is_none() {
                ords.insert_unique(h, ord as u32, |&o| hash(id(table, o)));
            }
        }
        IdIndex { ords }
    }

    /// The position of `wanted` in the `table` this index was built from.
    pub(crate) fn get(&self, table: &[Option<Arc<Talent>>], wanted: &str) -> Option<u32> {
        self.ords
            .find(hash(wanted), |&o| id(table, o) == wanted)
            .copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.ords.len()
    }
}
