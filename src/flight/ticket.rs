//! What a `DoGet` ticket carries: everything needed to run one execution of
//! a query, so a ticket is self-contained and can be cancelled by its id.

use prost::Message;
use tonic::Status;

/// One planned execution, handed to the client inside
/// `TicketStatementQuery.statement_handle`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryTicket {
    /// Unique per `GetFlightInfo`; what `CancelFlightInfo` names.
    #[prost(string, tag = "1")]
    pub execution: String,
    /// The user the ticket was issued to; nobody else may redeem it.
    #[prost(string, tag = "2")]
    pub user: String,
    /// The session's default catalog when the query was planned.
    #[prost(string, tag = "3")]
    pub catalog: String,
    /// The session's default schema when the query was planned.
    #[prost(string, tag = "4")]
    pub schema: String,
    /// The SQL of a statement query (empty for a prepared statement).
    #[prost(string, tag = "5")]
    pub sql: String,
    /// The handle of a prepared statement (empty for a statement query).
    #[prost(bytes = "vec", tag = "6")]
    pub prepared: Vec<u8>,
}

/// Marks tickets of this format, so foreign bytes are told apart.
const MAGIC: &[u8] = b"tsql1";

impl QueryTicket {
    /// A ticket for a new execution.
    pub fn new(user: &str, catalog: &str, schema: &str) -> QueryTicket {
        QueryTicket {
            execution: uuid::Uuid::new_v4().simple().to_string(),
            user: user.to_string(),
            catalog: catalog.to_string(),
            schema: schema.to_string(),
            sql: String::new(),
            prepared: Vec::new(),
        }
    }

    /// The ticket as statement-handle bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        self.encode(&mut out).expect("a Vec grows as needed");
        out
    }

    /// Reads a ticket made by [`QueryTicket::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<QueryTicket, Status> {
        let body = bytes.strip_prefix(MAGIC).ok_or_else(not_ours)?;
        QueryTicket::decode(body).map_err(|_| not_ours())
    }

    /// Refuses a ticket issued to someone else.
    pub fn check_user(&self, user: &str) -> Result<(), Status> {
        if self.user == user {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "this ticket was issued to another user; run the query yourself",
            ))
        }
    }
}

fn not_ours() -> Status {
    Status::invalid_argument(
        "the ticket was not issued by this tsql server (or by an incompatible version): run the query again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        let mut t = QueryTicket::new("ann", "cyoda", "entities");
        t.sql = "SELECT 1".into();
        let back = QueryTicket::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(back, t);
        assert!(QueryTicket::from_bytes(b"SELECT 1").is_err());
        assert!(back.check_user("bob").is_err());
        assert!(back.check_user("ann").is_ok());
    }
}
