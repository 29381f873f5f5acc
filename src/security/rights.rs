//! Service roles and the right each RPC needs. A role is what kind of client a token
//! stands for; the table below is the whole of the API's access policy, so it can be
//! read (and tested) in one place.

use std::fmt;

/// A service role, granted by a token's roles claim or a service token's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Creates and archives initiatives, assigns stakeholders, imports; and everything else.
    Admin,
    /// Acts under the decision rights of the initiatives the principal is a stakeholder of.
    Member,
    /// Reads the history: events, as-of, explain, verify, checkpoints, export.
    Auditor,
    /// Reads alignment: queries and live views.
    Reader,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Member, Role::Auditor, Role::Reader];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
            Role::Reader => "reader",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The rights a role grants.
    pub fn grants(self, right: Right) -> bool {
        matches!(
            (self, right),
            (_, Right::Public | Right::Authenticated)
                | (Role::Admin, _)
                | (Role::Member, Right::Act | Right::Read)
                | (Role::Auditor, Right::Audit | Right::Read)
                | (Role::Reader, Right::Read)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    pub fn none() -> Roles {
        Roles(0)
    }

    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |bits, role| bits | role.bit()))
    }

    /// The known roles among `names`; unknown names (roles for other services) are ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Roles {
        Roles::of(&names.into_iter().filter_map(Role::parse).collect::<Vec<_>>())
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |role| self.contains(*role))
    }

    pub fn grants(self, right: Right) -> bool {
        self.iter().any(|role| role.grants(right))
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no Accord role");
        }
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// What an RPC needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Health checks and reflection: no credentials needed.
    Public,
    /// Any authenticated caller (paths the API does not know end as UNIMPLEMENTED).
    Authenticated,
    /// Commands under decision rights.
    Act,
    /// Initiative administration and import.
    Administer,
    /// History, as-of, explain, verify, checkpoints.
    Audit,
    /// Alignment queries and live views.
    Read,
}

impl Right {
    /// The role that names this right in messages: the least role granting it.
    pub fn least_role(self) -> Option<Role> {
        match self {
            Right::Public | Right::Authenticated => None,
            Right::Administer => Some(Role::Admin),
            Right::Act => Some(Role::Member),
            Right::Audit => Some(Role::Auditor),
            Right::Read => Some(Role::Reader),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Right::Public => "nothing",
            Right::Authenticated => "an authenticated caller",
            Right::Administer => "the admin role",
            Right::Act => "the member or admin role",
            Right::Audit => "the auditor or admin role",
            Right::Read => "the reader, member, auditor or admin role",
        }
    }
}

const COMMANDS: &str = "/accord.v1.CommandService/";
const ALIGNMENT: &str = "/accord.v1.AlignmentService/";
const AUDIT: &str = "/accord.v1.AuditService/";
const WEBHOOKS: &str = "/accord.v1.WebhookService/";

/// The right the RPC at `path` (`/package.Service/Method`) needs.
pub fn right_for(path: &str) -> Right {
    if path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
    {
        return Right::Public;
    }
    if let Some(method) = path.strip_prefix(COMMANDS) {
        return match method {
            "CreateInitiative" | "ArchiveInitiative" | "AssignStakeholder" | "RemoveStakeholder" => Right::Administer,
            _ => Right::Act,
        };
    }
    if path.starts_with(ALIGNMENT) {
        return Right::Read;
    }
    if let Some(method) = path.strip_prefix(AUDIT) {
        return match method {
            "ImportEvents" => Right::Administer,
            _ => Right::Audit,
        };
    }
    // Subscriptions hold secrets and reach out of the network: administrators only.
    if path.starts_with(WEBHOOKS) {
        return Right::Administer;
    }
    Right::Authenticated
}

/// The method name of a path, for messages and logs.
pub fn method_of(path: &str) -> &str {
    path.rsplit('/').next().filter(|m| !m.is_empty()).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_grants_exactly_its_rights() {
        use Right::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Member, [false, true, false, true]),
            (Role::Auditor, [false, false, true, true]),
            (Role::Reader, [false, false, false, true]),
        ];
        for (role, expected) in table {
            let actual = [Administer, Act, Audit, Read].map(|right| role.grants(right));
            assert_eq!(actual, expected, "{role}");
            assert!(role.grants(Public) && role.grants(Authenticated));
        }
    }

    #[test]
    fn paths_map_to_rights() {
        assert_eq!(right_for("/accord.v1.CommandService/CreateInitiative"), Right::Administer);
        assert_eq!(right_for("/accord.v1.CommandService/AssignStakeholder"), Right::Administer);
        assert_eq!(right_for("/accord.v1.CommandService/RecordSignOff"), Right::Act);
        assert_eq!(right_for("/accord.v1.CommandService/UpdateInitiative"), Right::Act);
        assert_eq!(right_for("/accord.v1.AlignmentService/ListAlignments"), Right::Read);
        assert_eq!(right_for("/accord.v1.AuditService/Verify"), Right::Audit);
        assert_eq!(right_for("/accord.v1.AuditService/ImportEvents"), Right::Administer);
        assert_eq!(right_for("/accord.v1.WebhookService/ListDeliveries"), Right::Administer);
        assert_eq!(right_for("/accord.v1.WebhookService/CreateSubscription"), Right::Administer);
        assert_eq!(right_for("/grpc.health.v1.Health/Check"), Right::Public);
        assert_eq!(right_for("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Right::Public);
        assert_eq!(right_for("/accord.v1.Nope/Nothing"), Right::Authenticated);
        assert_eq!(right_for("/accord.v1.CommandServiceX/CreateInitiative"), Right::Authenticated);
    }

    #[test]
    fn unknown_role_names_are_ignored_and_roles_print_in_order() {
        let roles = Roles::from_names(["reader", "superuser", "admin"]);
        assert_eq!(roles, Roles::of(&[Role::Admin, Role::Reader]));
        assert_eq!(roles.to_string(), "admin, reader");
        assert_eq!(Roles::from_names(["root"]).to_string(), "no Accord role");
        assert!(!Roles::none().grants(Right::Read));
    }
}
