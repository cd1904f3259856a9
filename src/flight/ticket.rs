//! What a `DoGet` ticket carries: everything needed to run one execution of
//! a query, so a ticket is self-contained and can be cancelled by its id.
//! Tickets are sealed ([`crate::seal`]): clients can neither read the SQL
//! inside nor change the owner, the id or anything else.

use prost::Message;
use tonic::Status;

use super::session::QueryDefaults;
use crate::caller::Owner;
use crate::seal::Sealer;

/// What a sealed ticket is for (a sealed value of another kind never opens as a ticket).
const PURPOSE: &str = "tsql flight ticket v2";

/// How long a ticket may be redeemed after it was issued.
const TICKET_LIFETIME_SECONDS: i64 = 12 * 3600;

/// One planned execution, handed to the client sealed inside
/// `TicketStatementQuery.statement_handle`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryTicket {
    /// Unique per `GetFlightInfo`, made by the server; what `CancelFlightInfo` names.
    #[prost(string, tag = "1")]
    pub execution: String,
    /// The subject (user name) of the owner the ticket was issued to.
    #[prost(string, tag = "2")]
    pub subject: String,
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
    /// The owner's Cyoda tenant, if any.
    #[prost(string, optional, tag = "7")]
    pub tenant: Option<String>,
    /// When the ticket was issued (Unix seconds).
    #[prost(int64, tag = "8")]
    pub issued: i64,
    /// The session's `distributed` setting when the query was planned.
    #[prost(string, optional, tag = "9")]
    pub distributed: Option<String>,
}

impl QueryTicket {
    /// A ticket of `owner` for a new execution planned under `defaults`.
    pub fn new(owner: &Owner, defaults: &QueryDefaults) -> QueryTicket {
        QueryTicket {
            execution: crate::queries::new_query_id(),
            subject: owner.subject.clone(),
            tenant: owner.tenant.clone(),
            catalog: defaults.catalog.clone(),
            schema: defaults.schema.clone(),
            distributed: defaults.distributed.clone(),
            sql: String::new(),
            prepared: Vec::new(),
            issued: chrono::Utc::now().timestamp(),
        }
    }

    /// What the query was planned under, to plan it again the same way.
    pub fn defaults(&self) -> QueryDefaults {
        QueryDefaults {
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
            distributed: self.distributed.clone(),
        }
    }

    /// Whose ticket it is.
    pub fn owner(&self) -> Owner {
        Owner {
            tenant: self.tenant.clone(),
            subject: self.subject.clone(),
        }
    }

    /// The ticket sealed as statement-handle bytes.
    pub fn seal(&self, sealer: &Sealer) -> Vec<u8> {
        sealer.seal(PURPOSE, &self.encode_to_vec())
    }

    /// The ticket `bytes` if `sealer` sealed it, it has not expired and it
    /// belongs to `owner`. Anything else — bytes tsql did not make, an
    /// altered or expired ticket, another owner's ticket — gets the same
    /// answer, so a ticket tells nothing about anyone else's queries.
    pub fn open(sealer: &Sealer, bytes: &[u8], owner: &Owner) -> Result<QueryTicket, Status> {
        let ticket = sealer
            .open(PURPOSE, bytes)
            .and_then(|plain| QueryTicket::decode(plain.as_slice()).ok())
            .ok_or_else(unknown_ticket)?;
        let age = chrono::Utc::now().timestamp() - ticket.issued;
        if !(0..=TICKET_LIFETIME_SECONDS).contains(&age) || ticket.owner() != *owner {
            return Err(unknown_ticket());
        }
        Ok(ticket)
    }
}

/// The one answer to a ticket that cannot be redeemed by this caller.
pub fn unknown_ticket() -> Status {
    Status::not_found(
        "unknown ticket: it was not issued to you by this tsql service, or it expired (tickets last 12 hours); run the query again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_only_for_their_owner_and_unaltered() {
        let sealer = Sealer::random();
        let ann = Owner::local("ann");
        let defaults = QueryDefaults {
            catalog: "cyoda".into(),
            schema: "entities".into(),
            distributed: Some("on".into()),
        };
        let mut t = QueryTicket::new(&ann, &defaults);
        assert_eq!(t.defaults(), defaults);
        t.sql = "SELECT secret FROM t".into();
        let bytes = t.seal(&sealer);
        assert!(!bytes.windows(6).any(|w| w == b"SELECT"));
        assert_eq!(QueryTicket::open(&sealer, &bytes, &ann).unwrap(), t);
        let others = [
            Owner::local("bob"),
            Owner::of_tenant("t", "ann"),
            Owner::local("ann@t"),
        ];
        for other in others {
            let e = QueryTicket::open(&sealer, &bytes, &other).unwrap_err();
            assert_eq!(e.message(), unknown_ticket().message());
        }
        // Unsealed protobuf (the old readable format) is refused.
        let mut plain = b"tsql1".to_vec();
        plain.extend(t.encode_to_vec());
        assert!(QueryTicket::open(&sealer, &plain, &ann).is_err());
        // Expired.
        let mut old = t.clone();
        old.issued -= TICKET_LIFETIME_SECONDS + 10;
        assert!(QueryTicket::open(&sealer, &old.seal(&sealer), &ann).is_err());
        assert!(QueryTicket::open(&sealer, b"SELECT 1", &ann).is_err());
    }
}
