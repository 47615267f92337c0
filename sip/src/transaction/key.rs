//! Transaction keys: matching of requests and responses to transactions (RFC 3261 §17.1.3 and
//! §17.2.3).

use crate::message::{top_via_value, via_sent_by, MessageExt};
use rsip::{message::HasHeaders, Method};
use std::hash::{Hash, Hasher};

/// Which side of a transaction this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies one transaction: topmost Via branch, method (ACK counted as INVITE), the Via
/// sent-by for server transactions, and the role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionKey {
    branch: String,
    method: Method,
    sent_by: Option<String>,
    role: Role,
}

/// The canonical upper-case token of a method.
pub(crate) fn method_str(m: &Method) -> &'static str {
    match m {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Info => "INFO",
        Method::Invite => "INVITE",
        Method::Message => "MESSAGE",
        Method::Notify => "NOTIFY",
        Method::Options => "OPTIONS",
        Method::PRack => "PRACK",
        Method::Publish => "PUBLISH",
        Method::Refer => "REFER",
        Method::Register => "REGISTER",
        Method::Subscribe => "SUBSCRIBE",
        Method::Update => "UPDATE",
    }
}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        method_str(&self.method).hash(state);
        self.sent_by.hash(state);
        self.role.hash(state);
    }
}

impl std::fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        write!(f, "{role}/{}/{}", method_str(&self.method), self.branch)?;
        if let Some(s) = &self.sent_by {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

impl TransactionKey {
    pub(crate) fn new(branch: String, method: Method, sent_by: Option<String>, role: Role) -> Self {
        let method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        Self {
            branch,
            method,
            sent_by,
            role,
        }
    }

    /// The same key with another method (for example the INVITE a CANCEL refers to).
    pub(crate) fn with_method(&self, method: Method) -> Self {
        Self::new(self.branch.clone(), method, self.sent_by.clone(), self.role)
    }

    /// The topmost Via branch.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The transaction's method (INVITE for ACKs).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True for client transactions.
    pub fn is_client(&self) -> bool {
        self.role == Role::Client
    }

    /// The server transaction key of a received request (ACK and CANCEL included, keyed by
    /// their own method as RFC 3261 §17.2.3 matches them).
    pub fn server_of(req: &rsip::Request) -> Self {
        Self::of(req, req.method, Role::Server)
    }

    /// The key of a message, as `role` sees it: the branch of the topmost Via and the request
    /// (or CSeq) method; the Via sent-by for server keys. Messages without a branch (RFC 2543
    /// peers) get a synthetic branch from Call-ID, CSeq number and From tag.
    pub(crate) fn of<T: HasHeaders + MessageExt>(msg: &T, method: Method, role: Role) -> Self {
        let branch = msg
            .top_via_branch()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "rfc2543:{}:{}:{}",
                    msg.call_id().unwrap_or_default(),
                    msg.cseq().map(|c| c.0).unwrap_or(0),
                    msg.from_tag().unwrap_or_default()
                )
            });
        let sent_by = match role {
            Role::Server => top_via_value(msg).and_then(|v| via_sent_by(&v)),
            Role::Client => None,
        };
        Self::new(branch, method, sent_by, role)
    }
}
