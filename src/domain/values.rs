//! The value types of the domain. Each is built only through `parse`, which names the
//! offending field on failure, so the rest of the code never sees an invalid value
//! ("parse, don't validate"). Limits live here, in one place, and are documented in
//! the README.

use std::{borrow::Cow, collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;

/// Longest title of an initiative or decision, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest free-text field (summary, context, proposal, rationale, feedback body...).
pub const MAX_TEXT: usize = 20_000;
/// Longest short text: reasons, notes, comments, resolutions.
pub const MAX_REASON: usize = 4_000;
/// Most options a decision may list.
pub const MAX_OPTIONS: usize = 50;
/// Most functions an initiative or decision may require.
pub const MAX_FUNCTIONS: usize = 32;
/// Longest principal id (an e-mail address is at most 254 characters).
pub const MAX_PRINCIPAL: usize = 254;

/// How many characters of an input an error message quotes.
pub const QUOTED_CHARS: usize = 40;
/// Longest error message the service sends, in bytes (and so the longest `BadRequest`
/// description): the safety net behind `quote`, applied where refusals leave the
/// service (`grpc::status`, the board's HTTP API).
pub const MAX_ERROR_BYTES: usize = 512;

/// An input as an error message quotes it: in Rust string syntax (quoted, control
/// characters escaped) and, past `QUOTED_CHARS` characters, only that prefix followed
/// by "…" and the input's length, so that a refusal never echoes a large input:
/// `"CHECKOUT 42"`, or for 100,000 x's `"xxx…"… (100000 characters)` with 40 x's
/// between the quotes. Every error that quotes an input quotes it through this.
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

/// See `quote`.
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTED_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} characters)", &self.0[..cut], self.0.chars().count()),
        }
    }
}

/// `text` cut to at most `max_bytes` bytes at a character boundary, ending in "…" when
/// it had to be cut.
pub fn clip(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let ellipsis = "…";
    let mut end = max_bytes.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ellipsis}", &text[..end]))
}

/// A message of another parser (serde's), passed on in an error. Such parsers quote the
/// value they refuse whole (`invalid type: string "…"`, ``unknown field `…` ``), so a
/// message longer than any about a short value is cut to its first 120 bytes.
pub fn parser_message(message: &str) -> Cow<'_, str> {
    const LONGEST_WHOLE: usize = 320;
    const CUT_TO: usize = 120;
    if message.len() <= LONGEST_WHOLE { Cow::Borrowed(message) } else { clip(message, CUT_TO) }
}

fn invalid(field: &str, message: impl Into<String>) -> DomainError {
    DomainError::invalid(field, message)
}

/// Rejects the one character PostgreSQL cannot store in text or jsonb: NUL. Everything
/// else (control characters, bidi marks, emoji) is stored verbatim.
fn check_storable(field: &str, value: &str) -> Result<(), DomainError> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Free text with a character limit; `required` text must contain a non-space character.
pub fn parse_text(field: &str, value: &str, max: usize, required: bool) -> Result<String, DomainError> {
    check_storable(field, value)?;
    let chars = value.chars().count();
    if chars > max {
        return Err(invalid(field, format!("is {chars} characters long; at most {max} are allowed")));
    }
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(value.to_owned())
}

/// An id that comes from another system — a command's idempotency key, a correlation or
/// causation id: 1-128 printable ASCII characters.
pub fn parse_token(field: &str, value: &str) -> Result<String, DomainError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "must be 1-128 printable ASCII characters without spaces"));
    }
    Ok(value.to_owned())
}

/// Parses a UUID field; `what` names the kind of id for the message.
pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, DomainError> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| invalid(field, format!("{} is not a valid UUID", quote(value))))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
                parse_uuid(field, value).map(Self)
            }
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An initiative, and so the id of its event stream.
    InitiativeId
);
id_type!(DecisionId);
id_type!(FeedbackId);

/// The short human key of an initiative, unique across the service: `CHECKOUT-42`.
/// Upper-case letters, digits and single dashes, starting with a letter, 2-32
/// characters. Lower-case input is accepted and upper-cased, so keys never differ
/// only by case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InitiativeKey(String);

impl InitiativeKey {
    pub const MAX: usize = 32;

    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        let key = value.trim().to_ascii_uppercase();
        let rule = "must be 2-32 upper-case letters, digits and dashes, starting with a letter (e.g. CHECKOUT-42)";
        let well_formed = (2..=Self::MAX).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_uppercase())
            && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            && !key.ends_with('-')
            && !key.contains("--");
        if well_formed {
            Ok(Self(key))
        } else if value.is_empty() {
            Err(invalid(field, "is required"))
        } else {
            Err(invalid(field, format!("{} {rule}", quote(value))))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InitiativeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a command names its initiative: by id, or by its unique key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiativeRef {
    Id(InitiativeId),
    Key(InitiativeKey),
}

impl InitiativeRef {
    /// Accepts a UUID or a key, as every request's `initiative` field does.
    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        if value.is_empty() {
            return Err(DomainError::invalid(field, "is required (an initiative id or key)"));
        }
        match Uuid::try_parse(value) {
            Ok(id) => Ok(Self::Id(InitiativeId(id))),
            Err(_) => InitiativeKey::parse(field, value).map(Self::Key),
        }
    }
}

impl fmt::Display for InitiativeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitiativeRef::Id(id) => id.fmt(f),
            InitiativeRef::Key(key) => key.fmt(f),
        }
    }
}

/// A function whose agreement alignment can need: a lower-case slug such as
/// `engineering`, `design`, `business`, `legal`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Function(String);

impl Function {
    pub const MAX: usize = 32;

    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        let well_formed = (1..=Self::MAX).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if well_formed {
            Ok(Self(value.to_owned()))
        } else if value.is_empty() {
            Err(invalid(field, "is required"))
        } else {
            Err(invalid(
                field,
                format!(
                    "{} is not a function: use a lower-case slug of at most 32 characters (e.g. engineering, legal)",
                    quote(value)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// engineering, design, business: what alignment needs unless an initiative says otherwise.
    pub fn default_set() -> BTreeSet<Function> {
        ["engineering", "design", "business"].into_iter().map(|f| Function(f.to_owned())).collect()
    }

    /// Parses a list of functions into a set; an empty list gives `None` (use the default).
    pub fn parse_set(field: &str, values: &[String]) -> Result<Option<BTreeSet<Function>>, DomainError> {
        if values.is_empty() {
            return Ok(None);
        }
        if values.len() > MAX_FUNCTIONS {
            return Err(invalid(
                field,
                format!("names {} functions; at most {MAX_FUNCTIONS} are allowed", values.len()),
            ));
        }
        let mut set = BTreeSet::new();
        for value in values {
            let function = Function::parse(field, value)?;
            if !set.insert(function) {
                return Err(invalid(field, format!("names {} twice", quote(value))));
            }
        }
        Ok(Some(set))
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person or service known to the identity provider, e.g. an e-mail address.
/// 1-254 characters, no whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        if value.is_empty() {
            return Err(invalid(field, "is required"));
        }
        if value.chars().count() > MAX_PRINCIPAL {
            return Err(invalid(field, format!("is longer than {MAX_PRINCIPAL} characters")));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(field, format!("{} must not contain whitespace or control characters", quote(value))));
        }
        if value == TEAM_PREFIX {
            return Err(invalid(field, "names no team: give one after \"team:\""));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The team a group name stands for (`design-leads` → `team:design-leads`): the
    /// principal a stakeholder role is given to when any member may act on it.
    pub fn team(field: &str, name: &str) -> Result<Self, DomainError> {
        Self::parse(field, &format!("{TEAM_PREFIX}{name}"))
    }

    /// Whether this names a team rather than a person.
    pub fn is_team(&self) -> bool {
        self.0.starts_with(TEAM_PREFIX)
    }
}

/// The prefix of a principal that names a team (`team:design-leads`): a group claim from
/// the identity provider. Any member of the team holds the roles given to it.
pub const TEAM_PREFIX: &str = "team:";

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed enum that is stored by its lower-case name.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// The lifecycle stage of an initiative.
    Stage {
        Discovery => "discovery",
        Definition => "definition",
        Delivery => "delivery",
        Launched => "launched",
        Scaling => "scaling",
        Sunset => "sunset",
    }
);

named_enum!(
    /// Decision rights of a stakeholder (DACI).
    Role {
        Driver => "driver",
        Approver => "approver",
        Contributor => "contributor",
        Informed => "informed",
    }
);

named_enum!(RevisionKind { Material => "material", Editorial => "editorial" });

named_enum!(FeedbackKind {
    Comment => "comment",
    Question => "question",
    Concern => "concern",
    Objection => "objection",
});

named_enum!(FeedbackSource {
    Internal => "internal",
    UserResearch => "user_research",
    Customer => "customer",
});

named_enum!(Verdict { Approve => "approve", Reject => "reject" });
