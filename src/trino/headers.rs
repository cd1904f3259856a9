//! The Trino client headers that carry client state on every request:
//! `X-Trino-Session` (the session properties the client holds, as
//! `name=value` pairs with form-encoded values — what `SET SESSION` echoed
//! back in `X-Trino-Set-Session`) and `X-Trino-Client-Capabilities` (what
//! the client understands, as comma-separated names).
//! `X-Trino-Prepared-Statement` is read by [`super::statements::prepared_header`].

use super::statements::decode;

/// The session properties in an `X-Trino-Session` value
/// (`name1=value1,name2=value2`), in order; parts without `=` or with an
/// empty name are skipped, as a Trino client never sends them.
pub fn session_properties(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// What a client says it understands (`X-Trino-Client-Capabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCapabilities {
    /// `PARAMETRIC_DATETIME`: the client reads timestamp types with their
    /// precision (`timestamp(6)`).
    pub parametric_datetime: bool,
    /// `PATH`: the client follows `SET PATH`.
    pub path: bool,
    /// `SESSION_AUTHORIZATION`: the client follows `SET SESSION AUTHORIZATION`.
    pub session_authorization: bool,
    /// Names tsql does not know (newer clients send more), kept as sent.
    pub unknown: Vec<String>,
}

impl ClientCapabilities {
    /// The capabilities in an `X-Trino-Client-Capabilities` value
    /// (comma-separated names, any case, blanks ignored).
    pub fn parse(value: &str) -> ClientCapabilities {
        let mut out = ClientCapabilities::default();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("PARAMETRIC_DATETIME") {
                out.parametric_datetime = true;
            } else if name.eq_ignore_ascii_case("PATH") {
                out.path = true;
            } else if name.eq_ignore_ascii_case("SESSION_AUTHORIZATION") {
                out.session_authorization = true;
            } else {
                out.unknown.push(name.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_properties_are_name_and_decoded_value_pairs() {
        assert_eq!(
            session_properties("query_max_run_time=1h, join_distribution_type=BROADCAST"),
            vec![
                ("query_max_run_time".to_string(), "1h".to_string()),
                (
                    "join_distribution_type".to_string(),
                    "BROADCAST".to_string()
                ),
            ]
        );
        assert_eq!(
            session_properties("a=x%2Cy+z%3D1"),
            vec![("a".to_string(), "x,y z=1".to_string())]
        );
        // What SET SESSION hands the client comes back readable.
        let set = super::super::statements::interpret(
            "SET SESSION my.prop = 'it''s, 100%'",
            &Default::default(),
        )
        .unwrap();
        let super::super::statements::Statement::Session { headers, .. } = set else {
            panic!("SET SESSION is a session change")
        };
        assert_eq!(
            session_properties(&headers[0].1),
            vec![("my.prop".to_string(), "it's, 100%".to_string())]
        );
        assert!(session_properties("").is_empty());
        assert!(session_properties("novalue,=x, ,").is_empty());
    }

    #[test]
    fn capabilities_are_named_in_any_case() {
        let c = ClientCapabilities::parse("PATH, parametric_datetime,SESSION_AUTHORIZATION,NEW");
        assert!(c.path && c.parametric_datetime && c.session_authorization);
        assert_eq!(c.unknown, vec!["NEW".to_string()]);
        assert_eq!(ClientCapabilities::parse(""), ClientCapabilities::default());
        assert_eq!(
            ClientCapabilities::parse(" , ,"),
            ClientCapabilities::default()
        );
    }
}
