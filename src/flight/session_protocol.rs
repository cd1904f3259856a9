//! The session messages of the Flight protocol (`SetSessionOptions`,
//! `GetSessionOptions`, `CloseSession`). arrow-flight does not generate them
//! yet; these follow `Flight.proto` field for field. (The requests of
//! `GetSessionOptions` and `CloseSession` are empty messages, so they have
//! no type here.)

use std::collections::HashMap;

/// Action type of `SetSessionOptions`.
pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
/// Action type of `GetSessionOptions`.
pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
/// Action type of `CloseSession`.
pub const CLOSE_SESSION: &str = "CloseSession";

/// A session option value (valueless means "reset to the default").
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    /// The value.
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

/// The kinds of session option values.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OptionValue {
    /// A string.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// A 64-bit integer.
    #[prost(sfixed64, tag = "3")]
    Int64Value(i64),
    /// A double.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    /// A list of strings.
    #[prost(message, tag = "5")]
    StringListValue(StringListValue),
}

/// A list of strings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringListValue {
    /// The strings.
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// Sets session options, creating the session when needed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    /// Option name → value.
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// The options that could not be set, with why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    /// Option name → error.
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetSessionOptionsError>,
}

/// Why an option could not be set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsError {
    /// A [`SetSessionOptionsErrorValue`].
    #[prost(enumeration = "SetSessionOptionsErrorValue", tag = "1")]
    pub value: i32,
}

/// Error kinds of `SetSessionOptions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SetSessionOptionsErrorValue {
    /// Unknown.
    Unspecified = 0,
    /// The option name is not known.
    InvalidName = 1,
    /// The value or its type is not valid for the option.
    InvalidValue = 2,
    /// The option cannot be set.
    Error = 3,
}

/// The current session options.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    /// Option name → value.
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// The outcome of closing a session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    /// A [`CloseSessionStatus`].
    #[prost(enumeration = "CloseSessionStatus", tag = "1")]
    pub status: i32,
}

/// Outcomes of `CloseSession`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CloseSessionStatus {
    /// Unknown.
    Unspecified = 0,
    /// Closed.
    Closed = 1,
    /// Closing in progress.
    Closing = 2,
    /// Cannot be closed.
    NotCloseable = 3,
}

impl SessionOptionValue {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        SessionOptionValue {
            option_value: Some(OptionValue::StringValue(s.into())),
        }
    }
}
