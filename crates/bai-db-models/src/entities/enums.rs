//! The reference's enums as the database stores them.
//!
//! PostgreSQL enum types hold either the Python member NAME (`EnumType`: upper case, e.g.
//! `PENDING`) or its VALUE (`EnumValueType`: e.g. `superadmin`); each enum's labels below are
//! exactly the DDL's, in the DDL's order (tests/it/schema.rs compares them with `pg_enum`). A few
//! enum-likes live in plain `varchar` columns; those whose stored spelling is consistent are string
//! enums at the end. The `cluster_mode` columns are not: sessions and kernels hold the value
//! (`single-node`) when the registry writes them but the name (`SINGLE_NODE`) from the server
//! default, so they stay `String`.

use sea_orm::entity::prelude::*;

/// An agent's liveness (`AgentStatus`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "agentstatus")]
pub enum AgentStatus {
    #[sea_orm(string_value = "ALIVE")]
    Alive,
    #[sea_orm(string_value = "LOST")]
    Lost,
    #[sea_orm(string_value = "RESTARTING")]
    Restarting,
    #[sea_orm(string_value = "TERMINATED")]
    Terminated,
}

/// What a keypair resource policy grants for slots it does not list: nothing (`LIMITED`) or
/// everything (`UNLIMITED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(
    rs_type = "String",
    db_type = "Enum",
    enum_name = "defaultforunspecified"
)]
pub enum DefaultForUnspecified {
    #[sea_orm(string_value = "LIMITED")]
    Limited,
    #[sea_orm(string_value = "UNLIMITED")]
    Unlimited,
}

/// Where a model-service endpoint is in its life (`EndpointLifecycle`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "endpointlifecycle")]
pub enum EndpointLifecycle {
    #[sea_orm(string_value = "created")]
    Created,
    #[sea_orm(string_value = "destroying")]
    Destroying,
    #[sea_orm(string_value = "destroyed")]
    Destroyed,
}

/// How bad a reported error is (a plain string enum in the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "errorlog_severity")]
pub enum ErrorLogSeverity {
    #[sea_orm(string_value = "critical")]
    Critical,
    #[sea_orm(string_value = "error")]
    Error,
    #[sea_orm(string_value = "warning")]
    Warning,
}

/// What an image is for (`ImageType`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "imagetype")]
pub enum ImageType {
    #[sea_orm(string_value = "COMPUTE")]
    Compute,
    #[sea_orm(string_value = "SYSTEM")]
    System,
    #[sea_orm(string_value = "SERVICE")]
    Service,
}

/// A kernel's (container's) state (`KernelStatus`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "kernelstatus")]
pub enum KernelStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SCHEDULED")]
    Scheduled,
    #[sea_orm(string_value = "PREPARING")]
    Preparing,
    #[sea_orm(string_value = "BUILDING")]
    Building,
    #[sea_orm(string_value = "PULLING")]
    Pulling,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "RESTARTING")]
    Restarting,
    #[sea_orm(string_value = "RESIZING")]
    Resizing,
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
    #[sea_orm(string_value = "TERMINATING")]
    Terminating,
    #[sea_orm(string_value = "TERMINATED")]
    Terminated,
    #[sea_orm(string_value = "ERROR")]
    Error,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// What a project (group) is for (`ProjectType`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "projecttype")]
pub enum ProjectType {
    #[sea_orm(string_value = "general")]
    General,
    #[sea_orm(string_value = "model-store")]
    ModelStore,
}

/// The health of a model-service route (`RouteStatus`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "routestatus")]
pub enum RouteStatus {
    #[sea_orm(string_value = "healthy")]
    Healthy,
    #[sea_orm(string_value = "unhealthy")]
    Unhealthy,
    #[sea_orm(string_value = "terminating")]
    Terminating,
    #[sea_orm(string_value = "provisioning")]
    Provisioning,
    #[sea_orm(string_value = "failed_to_start")]
    FailedToStart,
}

/// How a session or kernel ended (`SessionResult`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "sessionresult")]
pub enum SessionResult {
    #[sea_orm(string_value = "UNDEFINED")]
    Undefined,
    #[sea_orm(string_value = "SUCCESS")]
    Success,
    #[sea_orm(string_value = "FAILURE")]
    Failure,
}

/// A session's state (`SessionStatus`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "sessionstatus")]
pub enum SessionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SCHEDULED")]
    Scheduled,
    #[sea_orm(string_value = "PULLING")]
    Pulling,
    #[sea_orm(string_value = "PREPARING")]
    Preparing,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "RESTARTING")]
    Restarting,
    #[sea_orm(string_value = "RUNNING_DEGRADED")]
    RunningDegraded,
    #[sea_orm(string_value = "TERMINATING")]
    Terminating,
    #[sea_orm(string_value = "TERMINATED")]
    Terminated,
    #[sea_orm(string_value = "ERROR")]
    Error,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// The kind of a session template (`TemplateType`, stored by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "templatetype")]
pub enum TemplateType {
    #[sea_orm(string_value = "TASK")]
    Task,
    #[sea_orm(string_value = "CLUSTER")]
    Cluster,
}

/// A user's role (`UserRole`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "userrole")]
pub enum UserRole {
    #[sea_orm(string_value = "superadmin")]
    Superadmin,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "monitor")]
    Monitor,
}

/// A user account's state (`UserStatus`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "userstatus")]
pub enum UserStatus {
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "inactive")]
    Inactive,
    #[sea_orm(string_value = "deleted")]
    Deleted,
    #[sea_orm(string_value = "before-verification")]
    BeforeVerification,
}

/// Where a vfolder sharing invitation stands (`VFolderInvitationState`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(
    rs_type = "String",
    db_type = "Enum",
    enum_name = "vfolderinvitationstate"
)]
pub enum VFolderInvitationState {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "canceled")]
    Canceled,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

/// Whether a vfolder belongs to a user or a project (`VFolderOwnershipType`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(
    rs_type = "String",
    db_type = "Enum",
    enum_name = "vfolderownershiptype"
)]
pub enum VFolderOwnershipType {
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "group")]
    Group,
}

/// Access to a vfolder (`VFolderPermission`, stored by value). The reference's `OWNER_PERM` is
/// `wd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "vfolderpermission")]
pub enum VFolderPermission {
    #[sea_orm(string_value = "ro")]
    ReadOnly,
    #[sea_orm(string_value = "rw")]
    ReadWrite,
    #[sea_orm(string_value = "wd")]
    RwDelete,
}

/// What a vfolder holds (`VFolderUsageMode`, stored by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "vfolderusagemode")]
pub enum VFolderUsageMode {
    #[sea_orm(string_value = "general")]
    General,
    #[sea_orm(string_value = "model")]
    Model,
    #[sea_orm(string_value = "data")]
    Data,
}

/// The kind of a session (`SessionTypes`). Stored by NAME in `varchar(64)` columns
/// (`sessions.session_type`, `kernels.session_type`), although REST bodies spell it in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))")]
pub enum SessionType {
    #[sea_orm(string_value = "INTERACTIVE")]
    Interactive,
    #[sea_orm(string_value = "BATCH")]
    Batch,
    #[sea_orm(string_value = "INFERENCE")]
    Inference,
    #[sea_orm(string_value = "SYSTEM")]
    System,
}

/// What is happening to a vfolder (`VFolderOperationStatus`), stored by value in the
/// `varchar(64)` column `vfolders.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))")]
pub enum VFolderOperationStatus {
    #[sea_orm(string_value = "ready")]
    Ready,
    #[sea_orm(string_value = "performing")]
    Performing,
    #[sea_orm(string_value = "cloning")]
    Cloning,
    #[sea_orm(string_value = "mounted")]
    Mounted,
    #[sea_orm(string_value = "error")]
    Error,
    #[sea_orm(string_value = "delete-pending")]
    DeletePending,
    #[sea_orm(string_value = "delete-ongoing")]
    DeleteOngoing,
    #[sea_orm(string_value = "delete-complete")]
    DeleteComplete,
    #[sea_orm(string_value = "delete-error")]
    DeleteError,
}

/// How a model-service endpoint runs its model (`RuntimeVariant`), stored by value in the
/// `varchar(64)` column `endpoints.runtime_variant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))")]
pub enum RuntimeVariant {
    #[sea_orm(string_value = "vllm")]
    Vllm,
    #[sea_orm(string_value = "nim")]
    Nim,
    #[sea_orm(string_value = "cmd")]
    Cmd,
    #[sea_orm(string_value = "custom")]
    Custom,
}
