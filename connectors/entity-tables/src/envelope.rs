//! Cyoda entity envelopes, `{"type":"ENTITY","data":{…},"meta":{…}}`: the
//! record shape of local entity files and of a Cyoda entity service's answers.
//! One parser serves every connector; the payload (`data`) is located, not
//! copied, so the decoder reads it in place.

use crate::json::{Cursor, JsonError, Kind};
use crate::shape::ObjectShape;
use crate::temporal;

/// The top level of one record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `"type": "ENTITY"` was present.
    pub is_entity: bool,
    /// The payload was already observed into the shape while parsing.
    pub observed: bool,
    /// Byte range of the `data` object in the record's text.
    pub data: Option<(usize, usize)>,
    /// `meta.id`.
    pub id: Option<String>,
    /// `meta.state`.
    pub state: Option<String>,
    /// `meta.creationDate` (UTC µs).
    pub creation: Option<i64>,
    /// `meta.lastUpdateTime` (UTC µs).
    pub last_update: Option<i64>,
    /// `meta.deleted`.
    pub deleted: bool,
}

fn instant(c: &mut Cursor<'_>, field: &str) -> Result<Option<i64>, String> {
    match c.peek_kind().map_err(|e| e.to_string())? {
        Kind::Null => {
            c.read_null().map_err(|e| e.to_string())?;
            Ok(None)
        }
        Kind::Number => {
            let n = c.read_number().map_err(|e| e.to_string())?;
            n.parse::<i64>()
                .map(|ms| Some(ms * 1000))
                .map_err(|_| format!("meta.{field} {n} is not epoch milliseconds"))
        }
        Kind::String => {
            let s = c.read_str().map_err(|e| e.to_string())?;
            match temporal::parse_timestamp(&s) {
                Some((v, _)) => Ok(Some(v)),
                None => Err(format!(
                    "meta.{field} \"{s}\" is not an ISO instant like 2024-03-01T09:15:00Z"
                )),
            }
        }
        _ => Err(format!("meta.{field} must be an ISO instant string")),
    }
}

fn read_meta(c: &mut Cursor<'_>, env: &mut Envelope) -> Result<(), String> {
    let je = |e: JsonError| e.to_string();
    if c.peek_kind().map_err(je)? != Kind::Object {
        return Err("\"meta\" must be an object".into());
    }
    c.begin_object().map_err(je)?;
    let mut first = true;
    while let Some(key) = c.next_key(first).map_err(je)? {
        first = false;
        match (key.as_ref(), c.peek_kind().map_err(je)?) {
            ("id", Kind::String) => env.id = Some(c.read_str().map_err(je)?.into_owned()),
            ("id", Kind::Number) => env.id = Some(c.read_number().map_err(je)?.to_string()),
            ("state", Kind::String) => env.state = Some(c.read_str().map_err(je)?.into_owned()),
            ("creationDate", _) => env.creation = instant(c, "creationDate")?,
            ("lastUpdateTime", _) => env.last_update = instant(c, "lastUpdateTime")?,
            ("deleted", Kind::Bool) => env.deleted = c.read_bool().map_err(je)?,
            _ => {
                c.skip_value().map_err(je)?;
            }
        }
    }
    Ok(())
}

/// Reads the top level of a record. With a `shape`, when `"type": "ENTITY"`
/// comes before `"data"` (as Cyoda writes it) the payload is observed into
/// the shape on the way, so it is parsed once.
pub fn read_envelope(text: &[u8], mut shape: Option<&mut ObjectShape>) -> Result<Envelope, String> {
    let mut env = Envelope::default();
    let mut c = Cursor::new(text);
    let je = |e: JsonError| e.to_string();
    if c.peek_kind().map_err(je)? != Kind::Object {
        return Err("a record must be a JSON object".into());
    }
    c.begin_object().map_err(je)?;
    let mut first = true;
    let mut meta_error = None;
    while let Some(key) = c.next_key(first).map_err(je)? {
        first = false;
        match key.as_ref() {
            "type" if c.peek_kind().map_err(je)? == Kind::String => {
                env.is_entity = c.read_str().map_err(je)? == "ENTITY"
            }
            "data" => {
                c.skip_ws();
                let kind = c.peek_kind().map_err(je)?;
                match shape.as_deref_mut() {
                    Some(shape) if kind == Kind::Object && env.is_entity => {
                        let start = c.pos();
                        shape.observe(&mut c).map_err(je)?;
                        env.data = Some((start, c.pos()));
                        env.observed = true;
                    }
                    _ => {
                        let range = c.skip_value().map_err(je)?;
                        if kind == Kind::Object {
                            env.data = Some(range);
                        }
                    }
                }
            }
            "meta" => {
                c.skip_ws();
                let (s, e) = c.skip_value().map_err(je)?;
                if let Err(e) = read_meta(&mut Cursor::new(&text[s..e]), &mut env) {
                    meta_error = Some(e);
                }
            }
            _ => {
                c.skip_value().map_err(je)?;
            }
        }
    }
    if !c.at_end() {
        return Err(c.error("unexpected text after the record").to_string());
    }
    if env.is_entity {
        if let Some(e) = meta_error {
            return Err(e);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_the_payload_and_reads_the_meta() {
        let text = br#"{"type":"ENTITY","data":{"a":[1,2]},"meta":{"id":"e1","state":"NEW","creationDate":"1970-01-01T00:00:01Z","lastUpdateTime":2000,"x":{}}}"#;
        let env = read_envelope(text, None).unwrap();
        let (s, e) = env.data.unwrap();
        assert_eq!(&text[s..e], br#"{"a":[1,2]}"#);
        assert_eq!(env.id.as_deref(), Some("e1"));
        assert_eq!(
            (env.creation, env.last_update),
            (Some(1_000_000), Some(2_000_000))
        );
        assert!(env.is_entity && !env.observed);
        let mut shape = ObjectShape::default();
        assert!(read_envelope(text, Some(&mut shape)).unwrap().observed);
        assert_eq!(shape.fields().count(), 1);
    }

    #[test]
    fn bad_meta_is_an_error_for_entities_only() {
        let bad = br#"{"type":"ENTITY","data":{},"meta":{"creationDate":"yesterday"}}"#;
        assert!(
            read_envelope(bad, None)
                .unwrap_err()
                .contains("creationDate")
        );
        assert!(read_envelope(b"[1]", None).is_err());
    }
}
