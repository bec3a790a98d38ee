//! Image mutations (api-auth-client.md §6.2): `rescan_images` (admins and superadmins; the scan
//! runs as a background task whose id the answer carries, followed through
//! `/events/background-task`), `alias_image`, `dealias_image`, `modify_image`, `clear_images`,
//! `preload_image` and `unload_image` (superadmins; the last two are not implemented in the
//! reference either and answer so), and `forget_image`, `forget_image_by_id`,
//! `untag_image_from_registry` (every role; anyone but a superadmin only for their own customized
//! images, `Forbidden` otherwise).
//!
//! Payloads are `{ok, msg[, task_id | image]}` with an empty `msg` on success, as the reference's.
//! Where the reference fails with a server error on a caller's mistake (an alias that exists, an
//! image a model service uses), the answer is `ok: false` with a message naming what is wrong.

use std::time::Duration;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_db_models::entities::enums::ImageType;
use bai_db_models::image_ref::{ImageRef, KnownRegistries};
use bai_db_models::queries::image_admin::{self, ForgetOutcome, Forgetter, ImageChanges};
use bai_db_models::queries::image_listing::{self, ImageListing};
use bai_db_models::queries::images::{self as image_queries, ImageCandidate, ImageError};
use bai_etcd_store::shared_config::ContainerRegistry;
use bai_events::{BgtaskResult, ProgressReporter};
use bai_registry_scanner::{Outcome, Reporter, ScanOptions, ScanSummary, ScanTarget};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::common::{Allowed, error, gql, internal, mutation_guard};
use super::images::ImageNode;
use crate::error::{ApiError, ErrorKind};

/// The architecture a reference means when none is given (the reference's `DEFAULT_IMAGE_ARCH`).
const DEFAULT_ARCHITECTURE: &str = "x86_64";
/// How long untagging may wait for the registry.
const UNTAG_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct ImageMutation;

/// `KVPairInput`: one label.
#[derive(Debug, InputObject)]
#[graphql(name = "KVPairInput", rename_fields = "snake_case")]
pub struct KvPairInput {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// `ResourceLimitInput`: the range of one slot; an empty or missing bound is left out.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ResourceLimitInput {
    pub key: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// `ModifyImageInput`: only the fields given change.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyImageInput {
    pub name: Option<String>,
    pub registry: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: Option<String>,
    pub is_local: Option<bool>,
    pub size_bytes: Option<i64>,
    /// `COMPUTE`, `SYSTEM` or `SERVICE`.
    pub r#type: Option<String>,
    /// The config digest.
    pub digest: Option<String>,
    /// Replace every label.
    pub labels: Option<Vec<Option<KvPairInput>>>,
    pub supported_accelerators: Option<Vec<Option<String>>>,
    /// Replace every resource limit.
    pub resource_limits: Option<Vec<Option<ResourceLimitInput>>>,
}

/// Payload types of `{ok, msg}` alone.
macro_rules! ok_msg_payloads {
    ($($name:ident),*) => {$(
        #[derive(Debug, SimpleObject)]
        #[graphql(rename_fields = "snake_case")]
        pub struct $name {
            pub ok: Option<bool>,
            pub msg: Option<String>,
        }

        impl $name {
            /// `ok: true` with an empty message, or `ok: false` with the reason.
            fn answer(result: Result<(), String>) -> Option<$name> {
                Some($name {
                    ok: Some(result.is_ok()),
                    msg: Some(result.err().unwrap_or_default()),
                })
            }
        }
    )*};
}

ok_msg_payloads!(AliasImage, DealiasImage, ModifyImage, ClearImages);

/// Payload types of `{ok, msg, image}`: the image as it was before the mutation.
macro_rules! image_payloads {
    ($($name:ident),*) => {$(
        #[derive(Debug, SimpleObject)]
        #[graphql(rename_fields = "snake_case")]
        pub struct $name {
            pub ok: Option<bool>,
            pub msg: Option<String>,
            /// Added in 24.03.1.
            pub image: Option<ImageNode>,
        }

        impl $name {
            fn answer(result: Result<ImageListing, String>) -> Option<$name> {
                Some(match result {
                    Ok(listing) => $name {
                        ok: Some(true),
                        msg: Some(String::new()),
                        image: Some(ImageNode::from_listing(listing)),
                    },
                    Err(msg) => $name {
                        ok: Some(false),
                        msg: Some(msg),
                        image: None,
                    },
                })
            }
        }
    )*};
}

image_payloads!(ForgetImage, ForgetImageById, UntagImageFromRegistry);

/// Payload types of agent image tasks, which the reference does not implement.
macro_rules! agent_task_payloads {
    ($($name:ident),*) => {$(
        #[derive(Debug, SimpleObject)]
        #[graphql(rename_fields = "snake_case")]
        pub struct $name {
            pub ok: Option<bool>,
            pub msg: Option<String>,
            pub task_id: Option<String>,
        }

        impl $name {
            /// `ok: false` with the guard's refusal, or with "Not implemented." to a superadmin.
            async fn refuse(
                ctx: &Context<'_>,
                mutation: &str,
            ) -> async_graphql::Result<Option<$name>> {
                let refusal = mutation_guard(ctx, Allowed::SuperAdmin, mutation).await?;
                Ok(Some($name {
                    ok: Some(false),
                    msg: Some(refusal.unwrap_or_else(|| NOT_IMPLEMENTED.to_owned())),
                    task_id: None,
                }))
            }
        }
    )*};
}

agent_task_payloads!(PreloadImage, UnloadImage);

/// `RescanImages`.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct RescanImages {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub task_id: Option<Uuid>,
}

/// What the reference answers a caller who may not touch an image.
const FORBIDDEN: &str = "Forbidden";
/// What the reference answers for agent image tasks.
const NOT_IMPLEMENTED: &str = "Not implemented.";

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ImageMutation {
    /// Scans `registry` (every configured registry when null) in a background task; `task_id`
    /// follows it through `/events/background-task`.
    async fn rescan_images(
        &self,
        ctx: &Context<'_>,
        registry: Option<String>,
    ) -> async_graphql::Result<Option<RescanImages>> {
        let refused = |msg: String| {
            Some(RescanImages {
                ok: Some(false),
                msg: Some(msg),
                task_id: None,
            })
        };
        if let Some(refusal) =
            mutation_guard(ctx, Allowed::AdminAndSuperAdmin, "rescan_images").await?
        {
            return Ok(refused(refusal));
        }
        let api = &gql(ctx).api;
        tracing::info!(
            target: "bai_api",
            "rescanning docker registry {} by API request",
            registry
                .as_deref()
                .map_or_else(|| "(all)".to_owned(), |name| format!("({name})"))
        );
        let registries = api.shared_config().docker.registries.clone();
        // An unknown registry is refused here; the reference starts a task that fails.
        let target = match ScanTarget::parse(registry.as_deref(), &registries) {
            Ok(target) => target,
            Err(refusal) => return Ok(refused(refusal.to_string())),
        };
        let db = api.db().clone();
        let task_id = api
            .background_tasks()
            .start("rescan_images", move |reporter| {
                rescan(reporter, db, registries, target)
            })
            .await
            .map_err(|failure| internal("starting the rescan", &failure))?;
        Ok(Some(RescanImages {
            ok: Some(true),
            msg: Some(String::new()),
            task_id: Some(task_id),
        }))
    }

    /// Not implemented, as in the reference.
    async fn preload_image(
        &self,
        ctx: &Context<'_>,
        references: Vec<Option<String>>,
        target_agents: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<PreloadImage>> {
        let _ = (references, target_agents);
        PreloadImage::refuse(ctx, "preload_image").await
    }

    /// Not implemented, as in the reference.
    async fn unload_image(
        &self,
        ctx: &Context<'_>,
        references: Vec<Option<String>>,
        target_agents: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<UnloadImage>> {
        let _ = (references, target_agents);
        UnloadImage::refuse(ctx, "unload_image").await
    }

    /// Makes `alias` point to the image `target` (a canonical reference) names for
    /// `architecture`.
    async fn alias_image(
        &self,
        ctx: &Context<'_>,
        alias: String,
        target: String,
        #[graphql(default_with = "Some(DEFAULT_ARCHITECTURE.to_owned())")] architecture: Option<
            String,
        >,
    ) -> async_graphql::Result<Option<AliasImage>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, "alias_image").await? {
            return Ok(AliasImage::answer(Err(refusal)));
        }
        let architecture = architecture.unwrap_or_else(|| DEFAULT_ARCHITECTURE.to_owned());
        tracing::info!(
            target: "bai_api",
            "alias image {alias} -> {target} ({architecture}) by API request"
        );
        let db = gql(ctx).api.db();
        match image_queries::create_alias(db, &alias, &target, &architecture).await {
            Ok(_) => Ok(AliasImage::answer(Ok(()))),
            Err(refusal) => Ok(AliasImage::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Removes `alias`.
    async fn dealias_image(
        &self,
        ctx: &Context<'_>,
        alias: String,
    ) -> async_graphql::Result<Option<DealiasImage>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, "dealias_image").await? {
            return Ok(DealiasImage::answer(Err(refusal)));
        }
        tracing::info!(target: "bai_api", "dealias image {alias} by API request");
        match image_queries::delete_alias(gql(ctx).api.db(), &alias).await {
            Ok(_) => Ok(DealiasImage::answer(Ok(()))),
            Err(ImageError::AliasNotFound { .. }) => {
                Ok(DealiasImage::answer(Err("No such alias".to_owned())))
            }
            Err(refusal) => Ok(DealiasImage::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Changes the columns `props` gives of the image `target` (a canonical reference) names
    /// for `architecture`.
    async fn modify_image(
        &self,
        ctx: &Context<'_>,
        target: String,
        #[graphql(default_with = "Some(DEFAULT_ARCHITECTURE.to_owned())")] architecture: Option<
            String,
        >,
        props: ModifyImageInput,
    ) -> async_graphql::Result<Option<ModifyImage>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, "modify_image").await? {
            return Ok(ModifyImage::answer(Err(refusal)));
        }
        let architecture = architecture.unwrap_or_else(|| DEFAULT_ARCHITECTURE.to_owned());
        let reference = match ImageRef::parse(&target, KnownRegistries::Any, &architecture) {
            Ok(reference) => ImageCandidate::Reference(reference),
            Err(refusal) => return Ok(ModifyImage::answer(Err(refusal.to_string()))),
        };
        let changes = match image_changes(props) {
            Ok(changes) => changes,
            Err(refusal) => return Ok(ModifyImage::answer(Err(refusal))),
        };
        match image_admin::modify(gql(ctx).api.db(), &reference, changes).await {
            Ok(_) => Ok(ModifyImage::answer(Ok(()))),
            Err(ImageError::NotFound { .. }) => {
                Ok(ModifyImage::answer(Err("Image not found".to_owned())))
            }
            Err(refusal) => Ok(ModifyImage::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Forgets every image of `registry` and their aliases.
    async fn clear_images(
        &self,
        ctx: &Context<'_>,
        registry: Option<String>,
    ) -> async_graphql::Result<Option<ClearImages>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, "clear_images").await? {
            return Ok(ClearImages::answer(Err(refusal)));
        }
        // No image has a null registry: nothing to clear.
        let Some(registry) = registry else {
            return Ok(ClearImages::answer(Ok(())));
        };
        tracing::info!(target: "bai_api", "clear images of registry {registry} by API request");
        match image_admin::clear_registry(gql(ctx).api.db(), &registry).await {
            Ok(_) => Ok(ClearImages::answer(Ok(()))),
            Err(refusal) => Ok(ClearImages::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Forgets the image `reference` (a canonical reference or an alias) names for
    /// `architecture`; the caller's own customized image unless a superadmin.
    async fn forget_image(
        &self,
        ctx: &Context<'_>,
        reference: String,
        #[graphql(default_with = "Some(DEFAULT_ARCHITECTURE.to_owned())")] architecture: Option<
            String,
        >,
    ) -> async_graphql::Result<Option<ForgetImage>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::Everyone, "forget_image").await? {
            return Ok(ForgetImage::answer(Err(refusal)));
        }
        tracing::info!(target: "bai_api", "forget image {reference} by API request");
        let architecture = architecture.unwrap_or_else(|| DEFAULT_ARCHITECTURE.to_owned());
        let candidates = image_queries::canonical_or_alias(&reference, &architecture);
        let forgotten = image_admin::forget(gql(ctx).api.db(), &candidates, forgetter(ctx)).await;
        match forgotten {
            Ok(outcome) => Ok(ForgetImage::answer(forget_result(outcome))),
            Err(refusal) => Ok(ForgetImage::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Forgets the image `image_id` (its row id or relay id); the caller's own customized image
    /// unless a superadmin. Added in 24.03.0.
    async fn forget_image_by_id(
        &self,
        ctx: &Context<'_>,
        image_id: String,
    ) -> async_graphql::Result<Option<ForgetImageById>> {
        if let Some(refusal) = mutation_guard(ctx, Allowed::Everyone, "forget_image_by_id").await? {
            return Ok(ForgetImageById::answer(Err(refusal)));
        }
        let id = image_row_id(&image_id).ok_or_else(no_such_image)?;
        tracing::info!(target: "bai_api", "forget image {id} by API request");
        match image_admin::forget_by_id(gql(ctx).api.db(), id, forgetter(ctx)).await {
            Ok(Some(outcome)) => Ok(ForgetImageById::answer(forget_result(outcome))),
            Ok(None) => Err(no_such_image()),
            Err(refusal) => Ok(ForgetImageById::answer(Err(refusal_message(refusal)?))),
        }
    }

    /// Removes the tag of the image `image_id` (its row id or relay id) from its registry, a
    /// Harbor 2 registry; the row stays. The caller's own customized image unless a superadmin.
    /// Added in 24.03.1.
    async fn untag_image_from_registry(
        &self,
        ctx: &Context<'_>,
        image_id: String,
    ) -> async_graphql::Result<Option<UntagImageFromRegistry>> {
        if let Some(refusal) =
            mutation_guard(ctx, Allowed::Everyone, "untag_image_from_registry").await?
        {
            return Ok(UntagImageFromRegistry::answer(Err(refusal)));
        }
        let id = image_row_id(&image_id).ok_or_else(no_such_image)?;
        tracing::info!(target: "bai_api", "remove image from registry {id} by API request");
        let context = gql(ctx);
        let listing = image_listing::by_id(context.api.db(), id)
            .await
            .map_err(|source| internal("reading an image", &source))?
            .ok_or_else(image_not_found)?;
        if let Forgetter::Owner(user) = forgetter(ctx)
            && !image_admin::is_owned_by(&listing.image, user)
        {
            return Ok(UntagImageFromRegistry::answer(Err(FORBIDDEN.to_owned())));
        }
        let shared = context.api.shared_config();
        let registry = shared
            .docker
            .registries
            .get(&listing.image.registry)
            .ok_or_else(|| {
                async_graphql::Error::new(format!("unknown registry {:?}", listing.image.registry))
            })?;
        let tag = listing.image.tag.clone().unwrap_or_default();
        bai_registry_scanner::untag(registry, &listing.image.image, &tag, UNTAG_TIMEOUT)
            .await
            .map_err(|failure| async_graphql::Error::new(failure.to_string()))?;
        Ok(UntagImageFromRegistry::answer(Ok(listing)))
    }
}

/// Who the caller is to the image rules: superadmins may forget any image.
fn forgetter(ctx: &Context<'_>) -> Forgetter {
    let caller = &gql(ctx).caller;
    if caller.is_superadmin() {
        Forgetter::Superadmin
    } else {
        Forgetter::Owner(caller.user.uuid)
    }
}

fn forget_result(outcome: ForgetOutcome) -> Result<ImageListing, String> {
    match outcome {
        ForgetOutcome::Forgotten(listing) => Ok(*listing),
        ForgetOutcome::NotOwner => Err(FORBIDDEN.to_owned()),
    }
}

/// A refusal's message; an image that is not there is answered as the reference's
/// `ImageNotFound`, and a database failure is logged and answered as a GraphQL error.
fn refusal_message(refusal: ImageError) -> async_graphql::Result<String> {
    match refusal {
        ImageError::NotFound { .. } => Err(image_not_found()),
        ImageError::Db(source) => Err(internal("writing the image catalogue", &source)),
        other => Ok(other.to_string()),
    }
}

/// The reference's `ImageNotFound`.
fn image_not_found() -> async_graphql::Error {
    error(ApiError::not_found("environment image"))
}

/// The reference's `ObjectNotFound("image")` for an id that names no image.
fn no_such_image() -> async_graphql::Error {
    error(ApiError::new(ErrorKind::ObjectNotFound("image")))
}

/// The row id an image id names: a UUID, or a relay global id (base64 of `ImageNode:{uuid}`).
fn image_row_id(image_id: &str) -> Option<Uuid> {
    let relay = data_encoding::BASE64
        .decode(image_id.as_bytes())
        .ok()
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|decoded| {
            decoded
                .split_once(':')
                .map(|(_, raw)| raw.to_owned())
                .filter(|raw| !raw.is_empty())
        });
    Uuid::parse_str(relay.as_deref().unwrap_or(image_id)).ok()
}

/// `ModifyImageInput` as column values; the message says which input is not valid.
fn image_changes(props: ModifyImageInput) -> Result<ImageChanges, String> {
    let r#type = props
        .r#type
        .map(|name| match name.as_str() {
            "COMPUTE" => Ok(ImageType::Compute),
            "SYSTEM" => Ok(ImageType::System),
            "SERVICE" => Ok(ImageType::Service),
            _ => Err(format!(
                "{name:?} is not an image type (COMPUTE, SYSTEM or SERVICE)"
            )),
        })
        .transpose()?;
    let labels = props.labels.map(|pairs| {
        pairs
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                let value = pair.value.map_or(Value::Null, Value::String);
                pair.key.map(|key| (key, value))
            })
            .collect::<Map<String, Value>>()
    });
    let resources = props.resource_limits.map(|limits| {
        limits
            .into_iter()
            .flatten()
            .filter_map(|limit| {
                let mut bounds = Map::new();
                for (side, value) in [("min", limit.min), ("max", limit.max)] {
                    if let Some(value) = value.filter(|value| !value.is_empty()) {
                        bounds.insert(side.to_owned(), Value::String(value));
                    }
                }
                limit.key.map(|key| (key, Value::Object(bounds)))
            })
            .collect::<Map<String, Value>>()
    });
    Ok(ImageChanges {
        name: props.name,
        registry: props.registry,
        image: props.image,
        tag: props.tag,
        architecture: props.architecture,
        is_local: props.is_local,
        size_bytes: props.size_bytes,
        r#type,
        config_digest: props.digest,
        accelerators: props
            .supported_accelerators
            .map(|accelerators| accelerators.into_iter().flatten().collect()),
        labels,
        resources,
    })
}

/// What the scan tells its reporter, passed from the scan's (synchronous) callbacks to the
/// task's reporter.
#[derive(Debug)]
enum ScanStep {
    Found(usize),
    Scanned(String),
}

struct ScanSteps(mpsc::UnboundedSender<ScanStep>);

impl Reporter for ScanSteps {
    fn found(&self, count: usize) {
        // The receiver lives until the scan ends.
        let _ = self.0.send(ScanStep::Found(count));
    }

    fn scanned(&self, registry: &str, image: &str, tag: &str) {
        let _ = self.0.send(ScanStep::Scanned(format!(
            "Scanned {registry}/{image}:{tag}"
        )));
    }
}

/// The background task of `rescan_images`: the scan, each tag read reported as one step of the
/// tags found; the summary's counts as the task's message.
async fn rescan(
    reporter: ProgressReporter,
    db: sea_orm::DatabaseConnection,
    registries: IndexMap<String, ContainerRegistry>,
    target: ScanTarget,
) -> BgtaskResult {
    let (sender, mut steps) = mpsc::unbounded_channel();
    let scanning = async move {
        let sink = ScanSteps(sender);
        bai_registry_scanner::scan(&db, &registries, &target, &ScanOptions::default(), &sink).await
    };
    let reporting = async {
        while let Some(step) = steps.recv().await {
            match step {
                ScanStep::Found(count) => reporter.add_total(count as u64),
                ScanStep::Scanned(what) => {
                    if let Err(failure) = reporter.update(1, Some(&what)).await {
                        tracing::warn!("cannot report the rescan's progress: {failure}");
                    }
                }
            }
        }
    };
    let (summary, ()) = tokio::join!(scanning, reporting);
    Ok(summary_text(&summary?))
}

/// The counts of a scan, with each image that could not be read logged.
fn summary_text(summary: &ScanSummary) -> String {
    for item in &summary.items {
        if let Outcome::Failed(reason) = &item.outcome {
            tracing::warn!("rescan: {item}: {reason}");
        }
    }
    summary.to_string()
}
