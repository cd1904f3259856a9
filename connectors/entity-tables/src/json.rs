//! A small pull parser over JSON bytes.
//!
//! Decoding walks the document once and hands values straight to Arrow builders;
//! no `serde_json::Value` tree is built per record. Numbers are returned as their
//! raw text so that exact digits survive (BIGINT, DECIMAL(38,·) and VARCHAR columns).

use std::borrow::Cow;
use std::fmt;

/// A syntax error at a byte offset inside the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset (from the start of the buffer given to [`Cursor::new`]).
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed JSON at byte {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for JsonError {}

/// Result of a parse step.
pub type JsonResult<T> = Result<T, JsonError>;

/// The kind of the next value, found by peeking at its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// a number
    Number,
    /// a string
    String,
    /// `{`
    Object,
    /// `[`
    Array,
}

/// A forward-only cursor over one JSON text.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes being parsed.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// An error at the current position.
    pub fn error(&self, message: impl Into<String>) -> JsonError {
        JsonError {
            offset: self.pos,
            message: message.into(),
        }
    }

    /// Skips white space.
    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// True when only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.buf.len()
    }

    /// The kind of the next value.
    #[inline]
    pub fn peek_kind(&mut self) -> JsonResult<Kind> {
        self.skip_ws();
        match self.buf.get(self.pos) {
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b't') | Some(b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(b'-') | Some(b'0'..=b'9') => Ok(Kind::Number),
            Some(&b) => Err(self.error(format!("unexpected character '{}'", b as char))),
            None => Err(self.error("unexpected end of input")),
        }
    }

    /// Consumes `byte` (after white space) or fails.
    #[inline]
    pub fn expect(&mut self, byte: u8) -> JsonResult<()> {
        self.skip_ws();
        if self.buf.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{}'", byte as char)))
        }
    }

    fn literal(&mut self, word: &[u8]) -> JsonResult<()> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// Reads `null`.
    pub fn read_null(&mut self) -> JsonResult<()> {
        self.skip_ws();
        self.literal(b"null")
    }

    /// Reads `true` or `false`.
    pub fn read_bool(&mut self) -> JsonResult<bool> {
        self.skip_ws();
        if self.buf.get(self.pos) == Some(&b't') {
            self.literal(b"true").map(|_| true)
        } else {
            self.literal(b"false").map(|_| false)
        }
    }

    /// Reads a number and returns its text, validated against the JSON grammar.
    #[inline]
    pub fn read_number(&mut self) -> JsonResult<&'a str> {
        self.skip_ws();
        let start = self.pos;
        let b = self.buf;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == int_start || (b[int_start] == b'0' && i - int_start > 1) {
            self.pos = start;
            return Err(self.error("invalid number"));
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let f = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == f {
                return Err(JsonError {
                    offset: i,
                    message: "invalid number: digits expected after '.'".into(),
                });
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            let e = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == e {
                return Err(JsonError {
                    offset: i,
                    message: "invalid number: exponent digits expected".into(),
                });
            }
        }
        self.pos = i;
        // SAFETY-free: the bytes are ASCII digits and signs by construction.
        Ok(std::str::from_utf8(&b[start..i]).expect("ascii"))
    }

    /// Reads a string, unescaping it (borrowed when it has no escapes).
    #[inline]
    pub fn read_str(&mut self) -> JsonResult<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        let b = self.buf;
        // Most strings are short keys and ASCII: one pass finds the end and
        // tells whether UTF-8 validation is needed at all.
        let mut i = start;
        let mut ascii = true;
        // Eight bytes at a time while none of them is special.
        while let Some(chunk) = b.get(i..i + 8) {
            if special_in(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
                break;
            }
            i += 8;
        }
        loop {
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => {
                    return Err(JsonError {
                        offset: i,
                        message: "control character in string".into(),
                    });
                }
                Some(&c) => {
                    ascii &= c < 0x80;
                    i += 1;
                }
                None => {
                    return Err(JsonError {
                        offset: i,
                        message: "unterminated string".into(),
                    });
                }
            }
        }
        if b[i] == b'"' {
            let bytes = &b[start..i];
            let s = if ascii {
                // SAFETY: every byte is below 0x80, so the slice is valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            } else {
                std::str::from_utf8(bytes).map_err(|_| JsonError {
                    offset: start,
                    message: "string is not valid UTF-8".into(),
                })?
            };
            self.pos = i + 1;
            return Ok(Cow::Borrowed(s));
        }
        let mut i = i;
        // Slow path with escapes.
        let mut out: Vec<u8> = b[start..i].to_vec();
        loop {
            match b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    let s = String::from_utf8(out).map_err(|_| JsonError {
                        offset: start,
                        message: "string is not valid UTF-8".into(),
                    })?;
                    return Ok(Cow::Owned(s));
                }
                Some(b'\\') => {
                    let esc = *b.get(i + 1).ok_or(JsonError {
                        offset: i,
                        message: "unterminated string".into(),
                    })?;
                    i += 2;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let cp = self.hex4(i)?;
                            i += 4;
                            let ch = if (0xD800..0xDC00).contains(&cp) {
                                if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                                    let lo = self.hex4(i + 2)?;
                                    i += 6;
                                    let c = 0x10000
                                        + ((cp - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3FF);
                                    char::from_u32(c).unwrap_or('\u{FFFD}')
                                } else {
                                    '\u{FFFD}'
                                }
                            } else {
                                char::from_u32(cp).unwrap_or('\u{FFFD}')
                            };
                            let mut tmp = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                        }
                        _ => {
                            return Err(JsonError {
                                offset: i - 1,
                                message: "invalid escape".into(),
                            });
                        }
                    }
                }
                Some(&c) if c < 0x20 => {
                    return Err(JsonError {
                        offset: i,
                        message: "control character in string".into(),
                    });
                }
                Some(&c) => {
                    out.push(c);
                    i += 1;
                }
                None => {
                    return Err(JsonError {
                        offset: i,
                        message: "unterminated string".into(),
                    });
                }
            }
        }
    }

    fn hex4(&self, at: usize) -> JsonResult<u32> {
        let s = self
            .buf
            .get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        s.ok_or(JsonError {
            offset: at,
            message: "invalid \\u escape".into(),
        })
    }

    /// Starts an object: consumes `{`.
    pub fn begin_object(&mut self) -> JsonResult<()> {
        self.expect(b'{')
    }

    /// Next key of an object, or `None` at its closing `}`. `first` is true for
    /// the first call after [`Cursor::begin_object`].
    #[inline]
    pub fn next_key(&mut self, first: bool) -> JsonResult<Option<Cow<'a, str>>> {
        self.skip_ws();
        match self.buf.get(self.pos) {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !first => self.pos += 1,
            _ if first => {}
            _ => return Err(self.error("expected ',' or '}' in object")),
        }
        self.skip_ws();
        if self.buf.get(self.pos) != Some(&b'"') {
            return Err(self.error("expected a quoted key"));
        }
        let key = self.read_str()?;
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Starts an array: consumes `[`.
    pub fn begin_array(&mut self) -> JsonResult<()> {
        self.expect(b'[')
    }

    /// True when another element follows, false at the closing `]`.
    #[inline]
    pub fn next_element(&mut self, first: bool) -> JsonResult<bool> {
        self.skip_ws();
        match self.buf.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ => Err(self.error("expected ',' or ']' in array")),
        }
    }

    /// Skips one whole value, validating it, and returns its byte range.
    pub fn skip_value(&mut self) -> JsonResult<(usize, usize)> {
        self.skip_ws();
        let start = self.pos;
        match self.peek_kind()? {
            Kind::Null => self.read_null()?,
            Kind::Bool => {
                self.read_bool()?;
            }
            Kind::Number => {
                self.read_number()?;
            }
            Kind::String => self.skip_string()?,
            Kind::Object => {
                self.begin_object()?;
                let mut first = true;
                loop {
                    self.skip_ws();
                    match self.buf.get(self.pos) {
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b',') if !first => self.pos += 1,
                        _ if first => {}
                        _ => return Err(self.error("expected ',' or '}' in object")),
                    }
                    first = false;
                    self.skip_ws();
                    self.skip_string()?;
                    self.expect(b':')?;
                    self.skip_value()?;
                }
            }
            Kind::Array => {
                self.begin_array()?;
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.skip_value()?;
                }
            }
        }
        Ok((start, self.pos))
    }

    /// Skips a string without unescaping it.
    fn skip_string(&mut self) -> JsonResult<()> {
        self.expect(b'"')?;
        let b = self.buf;
        let mut i = self.pos;
        loop {
            match memchr::memchr2(b'"', b'\\', &b[i..]) {
                Some(p) => {
                    if let Some(c) = b[i..i + p].iter().position(|&c| c < 0x20) {
                        return Err(JsonError {
                            offset: i + c,
                            message: "control character in string".into(),
                        });
                    }
                    i += p;
                    if b[i] == b'"' {
                        self.pos = i + 1;
                        return Ok(());
                    }
                    i += 2;
                    if i > b.len() {
                        return Err(JsonError {
                            offset: b.len(),
                            message: "unterminated string".into(),
                        });
                    }
                }
                None => {
                    return Err(JsonError {
                        offset: b.len(),
                        message: "unterminated string".into(),
                    });
                }
            }
        }
    }
}

/// True when one of the eight bytes of `w` is `"`, `\\`, a control character or non-ASCII.
#[inline]
fn special_in(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(w ^ (ONES * b'"' as u64));
    let backslash = has_zero(w ^ (ONES * b'\\' as u64));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (quote | backslash | control | (w & HIGH)) != 0
}

/// Appends `s` to `out` as a quoted JSON string.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_values() {
        let mut c =
            Cursor::new(br#" {"a": [1, -2.5e3, "x\u00e9\n"], "b": {"c": null, "d": true}} "#);
        c.begin_object().unwrap();
        assert_eq!(c.next_key(true).unwrap().unwrap(), "a");
        c.begin_array().unwrap();
        assert!(c.next_element(true).unwrap());
        assert_eq!(c.read_number().unwrap(), "1");
        assert!(c.next_element(false).unwrap());
        assert_eq!(c.read_number().unwrap(), "-2.5e3");
        assert!(c.next_element(false).unwrap());
        assert_eq!(c.read_str().unwrap(), "xé\n");
        assert!(!c.next_element(false).unwrap());
        assert_eq!(c.next_key(false).unwrap().unwrap(), "b");
        let (s, e) = c.skip_value().unwrap();
        assert_eq!(&c.buf()[s..e], br#"{"c": null, "d": true}"#);
        assert!(c.next_key(false).unwrap().is_none());
        assert!(c.at_end());
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            &b"{\"a\" 1}"[..],
            b"[1,]",
            b"{\"a\":01}",
            b"\"abc",
            b"{\"a\":tru}",
            b"[1 2]",
        ] {
            let mut c = Cursor::new(bad);
            assert!(c.skip_value().is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn long_strings_with_special_bytes() {
        let text = "\"abcdefghijklmnopqrstuvwxyz0123456789é\\n\"";
        let mut c = Cursor::new(text.as_bytes());
        assert_eq!(
            c.read_str().unwrap(),
            "abcdefghijklmnopqrstuvwxyz0123456789é\n"
        );
        assert!(Cursor::new(b"\"abcdefghij\x01klm\"").read_str().is_err());
        assert!(special_in(u64::from_le_bytes(*b"abcdefg\"")));
        assert!(!special_in(u64::from_le_bytes(*b"abcdefgh")));
    }

    #[test]
    fn decodes_surrogate_pairs() {
        let mut c = Cursor::new(br#""\ud83d\ude00""#);
        assert_eq!(c.read_str().unwrap(), "😀");
    }
}
