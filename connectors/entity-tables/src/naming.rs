//! Cyoda/Trino naming: lower-case identifiers, `_` for other characters,
//! `_2`, `_3`, … for collisions and a `_` prefix for reserved column names.

use std::collections::HashSet;

/// Column names every entity table reserves for itself.
pub const RESERVED: [&str; 7] = [
    "entity_id",
    "point_time",
    "creation_date",
    "last_update_date",
    "state",
    "index",
    "entity",
];

/// Lower-cases `raw` and turns every character other than a letter, digit or `_` into `_`.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.extend(c.to_lowercase());
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// True for `entity_id`, `state`, `index`, `index_7`, … which data columns may not take.
pub fn is_reserved(name: &str) -> bool {
    if RESERVED.contains(&name) {
        return true;
    }
    name.strip_prefix("index_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The name a data column gets before collision handling: reserved names get a `_` prefix.
pub fn data_column_name(joined: &str) -> String {
    if is_reserved(joined) {
        format!("_{joined}")
    } else {
        joined.to_string()
    }
}

/// Hands out unique names in first-come order: a name already taken gets `_2`, `_3`, ….
#[derive(Debug, Default, Clone)]
pub struct NameAllocator {
    used: HashSet<String>,
}

impl NameAllocator {
    /// An allocator that already holds `taken`.
    pub fn with_taken<I: IntoIterator<Item = String>>(taken: I) -> Self {
        NameAllocator {
            used: taken.into_iter().collect(),
        }
    }

    /// Returns `base`, or the first free `base_N` for N ≥ 2, and marks it taken.
    pub fn allocate(&mut self, base: &str) -> String {
        if self.used.insert(base.to_string()) {
            return base.to_string();
        }
        (2..)
            .map(|n| format!("{base}_{n}"))
            .find(|candidate| !self.used.contains(candidate))
            .inspect(|name| {
                self.used.insert(name.clone());
            })
            .expect("an unbounded range always yields a free name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_replaces_other_characters() {
        assert_eq!(normalize("orderId"), "orderid");
        assert_eq!(normalize("unit price($)"), "unit_price___");
        assert_eq!(normalize(""), "_");
    }

    #[test]
    fn reserved_names_get_a_prefix() {
        assert_eq!(data_column_name("state"), "_state");
        assert_eq!(data_column_name("index_12"), "_index_12");
        assert_eq!(data_column_name("index_x"), "index_x");
        assert_eq!(data_column_name("entity"), "_entity");
    }

    #[test]
    fn collisions_get_numbered_suffixes() {
        let mut names = NameAllocator::default();
        assert_eq!(names.allocate("a"), "a");
        assert_eq!(names.allocate("a"), "a_2");
        assert_eq!(names.allocate("a_2"), "a_2_2");
        assert_eq!(names.allocate("a"), "a_3");
    }
}
