//! Resource presets: `resource_preset(name)` and `resource_presets` (anyone);
//! `create_resource_preset`, `modify_resource_preset`, `delete_resource_preset` (superadmins).
//!
//! `shared_memory` is written as a binary size string (`"1g"`, `"1073741824"`; empty for none)
//! and shown as bytes.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_config::BinarySizeValue;
use bai_db_models::WriteError;
use bai_db_models::entities::resource_presets;
use bai_db_models::queries;
use bai_db_models::queries::resource_presets::{NewPreset, PresetChanges};

use super::common::{
    Allowed, BigInt, JsonString, Outcome, change, gql, internal, mutation_guard, resource_slots,
};
use super::users::invalid;

#[derive(Debug, Default)]
pub struct ResourcePresetQuery;

#[derive(Debug, Default)]
pub struct ResourcePresetMutation;

/// A preset as the reference's `ResourcePreset` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ResourcePreset {
    pub name: Option<String>,
    /// Slot name -> amount as a string, e.g. `{"cpu": "4"}`.
    pub resource_slots: Option<JsonString>,
    /// Bytes; null when none (or 0, as in the reference).
    pub shared_memory: Option<BigInt>,
}

impl ResourcePreset {
    fn from_row(row: resource_presets::Model) -> ResourcePreset {
        ResourcePreset {
            name: Some(row.name),
            resource_slots: Some(JsonString(row.resource_slots.to_json())),
            shared_memory: row.shared_memory.filter(|&bytes| bytes != 0).map(BigInt),
        }
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePresetQuery {
    /// The preset `name`. The schema lets `name` be absent, but the reference's resolver needs
    /// it.
    async fn resource_preset(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<ResourcePreset>> {
        let Some(name) = name else {
            return Err(invalid("resource_preset needs a name"));
        };
        let row = queries::resource_presets::by_name(gql(ctx).api.db(), &name)
            .await
            .map_err(|source| internal("reading a resource preset", &source))?;
        Ok(row.map(ResourcePreset::from_row))
    }

    /// Every preset, by name.
    async fn resource_presets(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ResourcePreset>> {
        let rows = queries::resource_presets::all(gql(ctx).api.db())
            .await
            .map_err(|source| internal("listing resource presets", &source))?;
        Ok(rows.into_iter().map(ResourcePreset::from_row).collect())
    }
}

/// `CreateResourcePresetInput`.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateResourcePresetInput {
    pub resource_slots: JsonString,
    /// A binary size (`"1g"`); absent or empty for none.
    pub shared_memory: Option<String>,
}

/// `ModifyResourcePresetInput`: only the fields given change; `shared_memory` null or empty
/// removes it.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyResourcePresetInput {
    pub resource_slots: Option<JsonString>,
    pub shared_memory: MaybeUndefined<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateResourcePreset {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub resource_preset: Option<ResourcePreset>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyResourcePreset {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteResourcePreset {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

/// A shared memory size as bytes; `None` for an empty string. The column is a `bigint`: an
/// infinite size, or one beyond it, is refused here (the reference fails on the insert).
fn shared_memory(text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let not_a_size = || format!("shared_memory: {text:?} is not a binary size");
    match bai_config::parse_binary_size(text).map_err(|_| not_a_size())? {
        BinarySizeValue::Bytes(bytes) => i64::try_from(bytes).map(Some).map_err(|_| not_a_size()),
        BinarySizeValue::Infinite => Err(not_a_size()),
    }
}

impl CreateResourcePresetInput {
    fn into_new_preset(self) -> Result<NewPreset, String> {
        Ok(NewPreset {
            resource_slots: resource_slots("resource_slots", &self.resource_slots)?,
            shared_memory: match self.shared_memory {
                Some(text) => shared_memory(&text)?,
                None => None,
            },
        })
    }
}

impl ModifyResourcePresetInput {
    fn into_changes(self) -> Result<PresetChanges, String> {
        Ok(PresetChanges {
            resource_slots: self
                .resource_slots
                .map(|slots| resource_slots("resource_slots", &slots))
                .transpose()?,
            shared_memory: match change(self.shared_memory) {
                Some(Some(text)) => Some(shared_memory(&text)?),
                Some(None) => Some(None),
                None => None,
            },
        })
    }
}

/// A modify's or delete's result: done when the preset `name` was there, refused naming it
/// otherwise.
fn found_or_refused(
    result: Result<bool, WriteError>,
    name: &str,
    context: &str,
) -> async_graphql::Result<Outcome<()>> {
    Ok(match Outcome::of(result, context)? {
        Outcome::Done(true) => Outcome::Done(()),
        Outcome::Done(false) => Outcome::Refused(format!("no such resource preset {name:?}")),
        Outcome::Refused(reason) => Outcome::Refused(reason),
    })
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePresetMutation {
    async fn create_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateResourcePresetInput,
    ) -> async_graphql::Result<CreateResourcePreset> {
        let outcome =
            match mutation_guard(ctx, Allowed::SuperAdmin, "create_resource_preset").await? {
                Some(refusal) => Outcome::Refused(refusal),
                None => match props.into_new_preset() {
                    Err(reason) => Outcome::Refused(reason),
                    Ok(preset) => Outcome::of(
                        queries::resource_presets::create(gql(ctx).api.db(), &name, preset).await,
                        "creating a resource preset",
                    )?,
                },
            };
        Ok(CreateResourcePreset {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            resource_preset: outcome.into_item().map(ResourcePreset::from_row),
        })
    }

    async fn modify_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyResourcePresetInput,
    ) -> async_graphql::Result<ModifyResourcePreset> {
        let outcome =
            match mutation_guard(ctx, Allowed::SuperAdmin, "modify_resource_preset").await? {
                Some(refusal) => Outcome::Refused(refusal),
                None => match props.into_changes() {
                    Err(reason) => Outcome::Refused(reason),
                    Ok(changes) => {
                        let modified =
                            queries::resource_presets::modify(gql(ctx).api.db(), &name, changes)
                                .await
                                .map_err(WriteError::from);
                        found_or_refused(modified, &name, "modifying a resource preset")?
                    }
                },
            };
        Ok(ModifyResourcePreset {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn delete_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<DeleteResourcePreset> {
        let outcome =
            match mutation_guard(ctx, Allowed::SuperAdmin, "delete_resource_preset").await? {
                Some(refusal) => Outcome::Refused(refusal),
                None => {
                    let deleted = queries::resource_presets::delete(gql(ctx).api.db(), &name)
                        .await
                        .map_err(WriteError::from);
                    found_or_refused(deleted, &name, "deleting a resource preset")?
                }
            };
        Ok(DeleteResourcePreset {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }
}
