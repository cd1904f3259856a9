//! Shape inference: the union of every field seen in a model's documents,
//! with what kinds of value each path held. Layouts are derived from it.

use rustc_hash::FxHashMap;

use crate::json::{Cursor, JsonResult, Kind};
use crate::types::ScalarStats;

/// Everything seen at one path: scalars, objects and arrays may all occur
/// (a path that holds more than one of them is polymorphic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueShape {
    /// Scalars seen here.
    pub scalar: ScalarStats,
    /// Fields of objects seen here.
    pub object: Option<Box<ObjectShape>>,
    /// Arrays seen here.
    pub array: Option<Box<ArrayShape>>,
}

/// The fields of an object node, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectShape {
    fields: Vec<(String, ValueShape)>,
    positions: FxHashMap<String, usize>,
}

/// Arrays seen at a path: their elements' shape and the widest length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrayShape {
    /// All elements of all arrays at this path.
    pub elem: ValueShape,
    /// The largest number of elements seen.
    pub max_len: usize,
}

/// What kinds of value a path held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Only nulls, or nothing at all.
    Nothing,
    /// Only scalars (and nulls).
    Scalar,
    /// Only objects (and nulls).
    Object,
    /// Only arrays (and nulls).
    Array,
    /// More than one of the above: one VARCHAR holding JSON text.
    Mixed,
}

impl ValueShape {
    /// Which kinds of value were seen.
    pub fn category(&self) -> Category {
        let s = !self.scalar.is_empty();
        let o = self.object.is_some();
        let a = self.array.is_some();
        match (s, o, a) {
            (false, false, false) => Category::Nothing,
            (true, false, false) => Category::Scalar,
            (false, true, false) => Category::Object,
            (false, false, true) => Category::Array,
            _ => Category::Mixed,
        }
    }

    /// Reads one value at the cursor and records it.
    pub fn observe(&mut self, c: &mut Cursor<'_>) -> JsonResult<()> {
        match c.peek_kind()? {
            Kind::Null => c.read_null(),
            Kind::Bool => {
                c.read_bool()?;
                self.scalar.observe_bool();
                Ok(())
            }
            Kind::Number => {
                let n = c.read_number()?;
                self.scalar.observe_number(n);
                Ok(())
            }
            Kind::String => {
                let s = c.read_str()?;
                self.scalar.observe_string(&s);
                Ok(())
            }
            Kind::Object => self.object.get_or_insert_with(Default::default).observe(c),
            Kind::Array => {
                let arr = self.array.get_or_insert_with(Default::default);
                c.begin_array()?;
                let mut n = 0;
                while c.next_element(n == 0)? {
                    arr.elem.observe(c)?;
                    n += 1;
                }
                arr.max_len = arr.max_len.max(n);
                Ok(())
            }
        }
    }

    /// Adds everything `other` saw.
    pub fn merge(&mut self, other: &ValueShape) {
        self.scalar.merge(&other.scalar);
        if let Some(o) = &other.object {
            self.object.get_or_insert_with(Default::default).merge(o);
        }
        if let Some(a) = &other.array {
            let mine = self.array.get_or_insert_with(Default::default);
            mine.elem.merge(&a.elem);
            mine.max_len = mine.max_len.max(a.max_len);
        }
    }
}

impl ObjectShape {
    /// Reads one object at the cursor and records its fields.
    pub fn observe(&mut self, c: &mut Cursor<'_>) -> JsonResult<()> {
        c.begin_object()?;
        let mut first = true;
        // Documents of one model mostly repeat their key order: try the field
        // after the previous one before hashing the key.
        let mut hint = 0;
        while let Some(key) = c.next_key(first)? {
            first = false;
            let i = match self.fields.get(hint) {
                Some((k, _)) if k.as_str() == key.as_ref() => hint,
                _ => match self.positions.get(key.as_ref()) {
                    Some(&i) => i,
                    None => {
                        self.fields.push((key.to_string(), ValueShape::default()));
                        self.positions
                            .insert(key.into_owned(), self.fields.len() - 1);
                        self.fields.len() - 1
                    }
                },
            };
            hint = i + 1;
            self.fields[i].1.observe(c)?;
        }
        Ok(())
    }

    /// Adds every field of `other`; new ones go last, in `other`'s order.
    pub fn merge(&mut self, other: &ObjectShape) {
        for (key, shape) in &other.fields {
            match self.positions.get(key) {
                Some(&i) => self.fields[i].1.merge(shape),
                None => {
                    self.fields.push((key.clone(), shape.clone()));
                    self.positions.insert(key.clone(), self.fields.len() - 1);
                }
            }
        }
    }

    /// Fields in first-seen order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &ValueShape)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when no field was seen.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;

    fn shape_of(docs: &[&str]) -> ObjectShape {
        let mut s = ObjectShape::default();
        for d in docs {
            s.observe(&mut Cursor::new(d.as_bytes())).unwrap();
        }
        s
    }

    #[test]
    fn union_keeps_first_seen_order_and_widens() {
        let s = shape_of(&[r#"{"b": 1, "a": {"x": 1}}"#, r#"{"c": true, "b": 2.5}"#]);
        let names: Vec<_> = s.fields().map(|(k, _)| k).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let b = s.fields().next().unwrap().1;
        assert_eq!(b.category(), Category::Scalar);
        assert_eq!(b.scalar.sql_type(), SqlType::Double);
    }

    #[test]
    fn arrays_record_elements_and_width() {
        let s = shape_of(&[r#"{"t": ["a"]}"#, r#"{"t": ["b", "c", "d"], "n": null}"#]);
        let (_, t) = s.fields().next().unwrap();
        let arr = t.array.as_ref().unwrap();
        assert_eq!(arr.max_len, 3);
        assert_eq!(arr.elem.category(), Category::Scalar);
        assert_eq!(s.fields().nth(1).unwrap().1.category(), Category::Nothing);
    }

    #[test]
    fn scalar_and_object_at_one_path_is_mixed() {
        let s = shape_of(&[r#"{"x": 1}"#, r#"{"x": {"a": 1}}"#]);
        assert_eq!(s.fields().next().unwrap().1.category(), Category::Mixed);
    }
}
