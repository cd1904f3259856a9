//! Who runs a query: an [`Owner`] — a structured (tenant, subject) pair that
//! every handle, query, cache and log line is bound to — and the identity
//! live sources read with.

use std::fmt;

use tsql_cyoda::Identity;

/// Whose a query, ticket, prepared statement or session is. Two owners are
/// the same only when both the tenant and the subject are: a configured
/// user `eve` (no tenant), subject `eve` of tenant `x@org` and subject
/// `eve@x` of tenant `org` are three different owners.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The Cyoda tenant (`caas_org_id`) of a Cyoda identity; `None` for a
    /// user configured in tsql (or named on the command line).
    pub tenant: Option<String>,
    /// The user name, or the Cyoda subject (`sub`).
    pub subject: String,
}

impl Owner {
    /// A user configured in tsql (no tenant).
    pub fn local(name: &str) -> Owner {
        Owner {
            tenant: None,
            subject: name.to_string(),
        }
    }

    /// Subject `subject` of Cyoda tenant `tenant`.
    pub fn of_tenant(tenant: &str, subject: &str) -> Owner {
        Owner {
            tenant: Some(tenant.to_string()),
            subject: subject.to_string(),
        }
    }

    /// The name this owner has in a Cassandra source's `[source.tenants]`
    /// table: a configured user's name, or `cyoda:<tenant>` for every
    /// identity of a Cyoda tenant (a configured user's name cannot hold a
    /// `:`, so the two never meet).
    pub fn tenants_key(&self) -> String {
        match &self.tenant {
            None => self.subject.clone(),
            Some(t) => format!("cyoda:{t}"),
        }
    }
}

impl fmt::Display for Owner {
    /// `name` for a configured user, `subject [tenant]` for a Cyoda identity
    /// (for people to read; code compares the pair, never this text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            None => write!(f, "{}", self.subject),
            Some(t) => write!(f, "{} [tenant {t}]", self.subject),
        }
    }
}

/// Who runs a query: its owner, the identity live sources read with (when
/// the caller logged in with one), and whether they see everyone's queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose the query is.
    pub owner: Owner,
    /// The caller's Cyoda identity, for sources in passthrough mode.
    pub upstream: Option<Identity>,
    /// May see and stop everyone's queries (role `admin`).
    pub sees_all: bool,
}

impl Caller {
    /// A caller known only by name (a configured user, the command line).
    pub fn named(name: &str) -> Caller {
        Caller {
            owner: Owner::local(name),
            upstream: None,
            sees_all: false,
        }
    }

    /// A caller logged in with a Cyoda identity: owned by its (tenant,
    /// subject) pair, reading upstream with it.
    pub fn of_identity(identity: Identity) -> Caller {
        Caller {
            owner: Owner::of_tenant(&identity.tenant, &identity.subject),
            upstream: Some(identity),
            sees_all: false,
        }
    }

    /// The user name (the Cyoda subject for a Cyoda identity): what
    /// `current_user` answers.
    pub fn user(&self) -> &str {
        &self.owner.subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_pairs_not_joined_text() {
        let a = Owner::of_tenant("x@org", "eve");
        let b = Owner::of_tenant("org", "eve@x");
        let c = Owner::local("eve");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        assert_eq!(a.tenants_key(), "cyoda:x@org");
        assert_eq!(c.tenants_key(), "eve");
        assert_eq!(a.to_string(), "eve [tenant x@org]");
    }
}
