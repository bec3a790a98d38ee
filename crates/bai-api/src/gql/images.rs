//! Images: `images(is_installed, is_operation, load_filters, image_filters)`, `image(id,
//! reference, architecture)` and `customized_images` over `images`/`image_aliases`, with which
//! agents hold each image (Redis image database: canonical name -> set of agent ids).
//!
//! Superadmins see every image; domain admins and users only images of the registries their
//! domain allows (`allowed_docker_registries`); monitors are refused, as in the reference.
//! Operational images (label `ai.backend.features` containing `operation`) and customized images
//! (label `ai.backend.customized-image.owner`) are listed only when the load filters ask for them;
//! without filters the reference's rule holds: general and the caller's own customized images,
//! plus operational ones only when `is_operation` is given as `null`.

use std::collections::HashSet;

use async_graphql::{Context, ID, MaybeUndefined, Object, SimpleObject};
use bai_db_models::entities::enums::UserRole;
use bai_db_models::entities::images;
use bai_db_models::queries::image_listing::{self, ImageListing};
use bai_db_models::queries::images::{self as image_queries, ImageError};
use serde_json::Value as Json;
use uuid::Uuid;

use super::common::{BigInt, error, gql, internal};
use super::users::{invalid, unknown_role};
use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct ImageQuery;

/// A label of an image.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "KVPair", rename_fields = "snake_case")]
pub struct KvPair {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// The range of one resource slot an image accepts.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ResourceLimit {
    pub key: Option<String>,
    /// `0` when the image sets no minimum.
    pub min: Option<String>,
    /// `Infinity` when the image sets no maximum.
    pub max: Option<String>,
}

/// An image as the reference's `Image` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct Image {
    pub id: Option<Uuid>,
    /// The repository name without the registry (`stable/python`).
    pub name: Option<String>,
    pub humanized_name: Option<String>,
    pub tag: Option<String>,
    pub registry: Option<String>,
    pub architecture: Option<String>,
    pub is_local: Option<bool>,
    /// The config digest (`sha256:...`), without the column's blank padding.
    pub digest: Option<String>,
    pub labels: Option<Vec<Option<KvPair>>>,
    pub aliases: Option<Vec<Option<String>>>,
    pub size_bytes: Option<BigInt>,
    pub resource_limits: Option<Vec<Option<ResourceLimit>>>,
    pub supported_accelerators: Option<Vec<Option<String>>>,
    /// Whether any agent holds the image.
    pub installed: Option<bool>,
    /// The agents that hold the image; hidden (null) from non-superadmins when the manager hides
    /// agents (`[manager] hide-agents`).
    pub installed_agents: Option<Vec<Option<String>>>,
    /// Legacy name of `digest`.
    pub hash: Option<String>,
}

/// An image as the reference's relay `ImageNode` type shows it (`customized_images`, a kernel's
/// `image_object`).
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ImageNode {
    /// The relay global id: base64 of `ImageNode:{uuid}`.
    pub id: ID,
    pub row_id: Option<Uuid>,
    pub name: Option<String>,
    pub humanized_name: Option<String>,
    pub tag: Option<String>,
    pub registry: Option<String>,
    pub architecture: Option<String>,
    pub is_local: Option<bool>,
    pub digest: Option<String>,
    pub labels: Option<Vec<Option<KvPair>>>,
    pub size_bytes: Option<BigInt>,
    pub resource_limits: Option<Vec<Option<ResourceLimit>>>,
    pub supported_accelerators: Option<Vec<Option<String>>>,
    pub aliases: Option<Vec<Option<String>>>,
}

impl ImageNode {
    pub(super) fn from_listing(listing: ImageListing) -> ImageNode {
        let image = &listing.image;
        ImageNode {
            id: ID(relay_id("ImageNode", &image.id.to_string())),
            row_id: Some(image.id),
            name: Some(image.image.clone()),
            humanized_name: Some(image.image.clone()),
            tag: image.tag.clone(),
            registry: Some(image.registry.clone()),
            architecture: Some(image.architecture.clone()),
            is_local: Some(image.is_local),
            digest: Some(digest(image)),
            labels: Some(labels(image)),
            size_bytes: Some(BigInt(image.size_bytes)),
            resource_limits: Some(resource_limits(image)),
            supported_accelerators: Some(accelerators(image)),
            aliases: Some(listing.aliases.into_iter().map(Some).collect()),
        }
    }
}

/// A relay global id: base64 of `{type}:{id}`.
pub(super) fn relay_id(type_name: &str, id: &str) -> String {
    data_encoding::BASE64.encode(format!("{type_name}:{id}").as_bytes())
}

impl Image {
    /// `installed_agents` shows as null when `hide_agents`; `installed` shows either way.
    fn from_listing(
        listing: ImageListing,
        installed_agents: Vec<String>,
        hide_agents: bool,
    ) -> Image {
        let ImageListing { image, aliases } = listing;
        let digest = digest(&image);
        Image {
            id: Some(image.id),
            name: Some(image.image.clone()),
            humanized_name: Some(image.image.clone()),
            labels: Some(labels(&image)),
            resource_limits: Some(resource_limits(&image)),
            supported_accelerators: Some(accelerators(&image)),
            tag: image.tag,
            registry: Some(image.registry),
            architecture: Some(image.architecture),
            is_local: Some(image.is_local),
            digest: Some(digest.clone()),
            aliases: Some(aliases.into_iter().map(Some).collect()),
            size_bytes: Some(BigInt(image.size_bytes)),
            installed: Some(!installed_agents.is_empty()),
            installed_agents: (!hide_agents)
                .then(|| installed_agents.into_iter().map(Some).collect()),
            hash: Some(digest),
        }
    }
}

/// `config_digest` without the blank padding of its `char(72)` column.
fn digest(image: &images::Model) -> String {
    image.config_digest.trim().to_owned()
}

/// The labels as key/value pairs; a non-string value as its JSON text.
fn labels(image: &images::Model) -> Vec<Option<KvPair>> {
    match &image.labels {
        Json::Object(labels) => labels
            .iter()
            .map(|(key, value)| {
                Some(KvPair {
                    key: Some(key.clone()),
                    value: Some(json_text(value)),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn json_text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Each slot's range: a missing minimum is `0`, a missing maximum `Infinity`; a bound stored as
/// `null` stays null (as in the reference).
fn resource_limits(image: &images::Model) -> Vec<Option<ResourceLimit>> {
    let Json::Object(slots) = &image.resources else {
        return Vec::new();
    };
    slots
        .iter()
        .map(|(key, range)| {
            let bound = |name: &str, missing: &str| match range.get(name) {
                None => Some(missing.to_owned()),
                Some(Json::Null) => None,
                Some(value) => Some(json_text(value)),
            };
            Some(ResourceLimit {
                key: Some(key.clone()),
                min: bound("min", "0"),
                max: bound("max", "Infinity"),
            })
        })
        .collect()
}

/// The comma-separated `accelerators` split as the reference splits them (`[""]` when none).
fn accelerators(image: &images::Model) -> Vec<Option<String>> {
    image
        .accelerators
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|name| Some(name.to_owned()))
        .collect()
}

/// The kinds of images a listing includes (the reference's `ImageLoadFilter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LoadFilter {
    General,
    Operational,
    /// The caller's own customized images.
    Customized,
    /// Every customized image (superadmins asking for `customized`).
    CustomizedGlobal,
}

const OPERATION_FEATURES_LABEL: &str = "ai.backend.features";
const CUSTOMIZED_OWNER_LABEL: &str = "ai.backend.customized-image.owner";

/// The reference's `Image.matches_type`: a label can exclude the image outright; otherwise it is
/// included when it is general and general images are asked for, or a label includes it.
fn matches_type(
    image: &images::Model,
    filters: &HashSet<LoadFilter>,
    caller_uuid: Uuid,
    superadmin: bool,
) -> bool {
    let mut included = filters.contains(&LoadFilter::General);
    let Json::Object(labels) = &image.labels else {
        return included;
    };
    for (key, value) in labels {
        let value = json_text(value);
        match key.as_str() {
            OPERATION_FEATURES_LABEL if value.contains("operation") => {
                if !filters.contains(&LoadFilter::Operational) {
                    return false;
                }
                included = true;
            }
            CUSTOMIZED_OWNER_LABEL => {
                let own = filters.contains(&LoadFilter::Customized);
                let global = filters.contains(&LoadFilter::CustomizedGlobal);
                if !own && !global {
                    return false;
                }
                if own {
                    if value != format!("user:{caller_uuid}") {
                        return false;
                    }
                    included = true;
                }
                if global {
                    if !superadmin {
                        return false;
                    }
                    included = true;
                }
            }
            _ => {}
        }
    }
    included
}

/// The load filters `images` applies for its arguments.
fn load_filter_set(
    superadmin: bool,
    is_operation: &MaybeUndefined<bool>,
    load_filters: Option<Vec<Option<String>>>,
    image_filters: Option<Vec<Option<String>>>,
) -> async_graphql::Result<HashSet<LoadFilter>> {
    // Python's `load_filters or image_filters`: an empty list counts as absent.
    let given = load_filters
        .filter(|filters| !filters.is_empty())
        .or(image_filters);
    let mut filters = HashSet::new();
    match given {
        Some(names) => {
            for name in names {
                let filter = match name.as_deref() {
                    Some("general") => LoadFilter::General,
                    Some("operational") => LoadFilter::Operational,
                    Some("customized") if superadmin => LoadFilter::CustomizedGlobal,
                    Some("customized") => LoadFilter::Customized,
                    other => {
                        let shown = other.map_or("None".to_owned(), |name| format!("'{name}'"));
                        return Err(invalid(format!(
                            "{shown} is not a valid PublicImageLoadFilter. All elements of \
                             `load_filters` should be one of (general, operational, customized)"
                        )));
                    }
                };
                filters.insert(filter);
            }
        }
        None => {
            filters.insert(LoadFilter::Customized);
            filters.insert(LoadFilter::General);
            if is_operation.is_null() {
                filters.insert(LoadFilter::Operational);
            }
        }
    }
    Ok(filters)
}

/// `listings` without the images of registries the caller's domain does not allow (nothing is
/// removed for superadmins); monitors are refused.
async fn allowed(
    ctx: &Context<'_>,
    listings: Vec<ImageListing>,
) -> async_graphql::Result<Vec<ImageListing>> {
    let context = gql(ctx);
    match context.caller.role() {
        UserRole::Superadmin => Ok(listings),
        UserRole::Admin | UserRole::User => {
            let domain = context.caller.user.domain_name.clone().unwrap_or_default();
            let registries = image_listing::allowed_registries(context.api.db(), &domain)
                .await
                .map_err(|source| internal("reading the allowed registries", &source))?;
            Ok(listings
                .into_iter()
                .filter(|listing| registries.contains(&listing.image.registry))
                .collect())
        }
        UserRole::Monitor => Err(unknown_role()),
    }
}

/// The agents holding each image (sorted), in the order of `listings`.
async fn installed_agents(
    ctx: &Context<'_>,
    listings: &[ImageListing],
) -> async_graphql::Result<Vec<Vec<String>>> {
    let names: Vec<&str> = listings
        .iter()
        .map(|listing| listing.image.name.as_str())
        .collect();
    gql(ctx)
        .api
        .redis()
        .image
        .agents_holding(&names)
        .await
        .map_err(|source| internal("reading the agents holding images", &source))
}

async fn images_of(
    ctx: &Context<'_>,
    listings: Vec<ImageListing>,
) -> async_graphql::Result<Vec<Image>> {
    let context = gql(ctx);
    let hide_agents = !context.caller.is_superadmin() && context.api.config().manager.hide_agents;
    let agents = installed_agents(ctx, &listings).await?;
    Ok(listings
        .into_iter()
        .zip(agents)
        .map(|(listing, agents)| Image::from_listing(listing, agents, hide_agents))
        .collect())
}

fn not_found() -> async_graphql::Error {
    error(ApiError::not_found("environment image"))
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ImageQuery {
    /// The image `id`, or the one `reference` (a canonical name or an alias) names for
    /// `architecture`; among the caller's domain's allowed registries for non-superadmins.
    async fn image(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Added in 24.03.1")] id: Option<String>,
        reference: Option<String>,
        #[graphql(default_with = "Some(\"x86_64\".to_owned())")] architecture: Option<String>,
    ) -> async_graphql::Result<Option<Image>> {
        let db = gql(ctx).api.db();
        let listing = match id.filter(|id| !id.is_empty()) {
            Some(id) => {
                let id = Uuid::parse_str(&id)
                    .map_err(|_| invalid(format!("image id {id:?} is not a UUID")))?;
                image_listing::by_id(db, id)
                    .await
                    .map_err(|source| internal("reading an image", &source))?
                    .ok_or_else(not_found)?
            }
            None => {
                let (Some(reference), Some(architecture)) = (
                    reference.filter(|reference| !reference.is_empty()),
                    architecture.filter(|architecture| !architecture.is_empty()),
                ) else {
                    return Err(invalid(
                        "reference/architecture and id can't be omitted at the same time!",
                    ));
                };
                let candidates = image_queries::canonical_or_alias(&reference, &architecture);
                let row = match image_queries::resolve(db, &candidates).await {
                    Ok(row) => row,
                    Err(ImageError::Db(source)) => {
                        return Err(internal("resolving an image", &source));
                    }
                    Err(_) => return Err(not_found()),
                };
                image_listing::with_aliases(db, vec![row])
                    .await
                    .map_err(|source| internal("reading an image", &source))?
                    .pop()
                    .ok_or_else(not_found)?
            }
        };
        let listing = allowed(ctx, vec![listing])
            .await?
            .pop()
            .ok_or_else(not_found)?;
        Ok(images_of(ctx, vec![listing]).await?.pop())
    }

    /// The caller's own customized images (label `ai.backend.customized-image.owner` =
    /// `user:{uuid}`), among their domain's allowed registries for non-superadmins.
    async fn customized_images(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<Option<ImageNode>>>> {
        let context = gql(ctx);
        let own: HashSet<_> = [LoadFilter::Customized].into();
        let listings = image_listing::list_all(context.api.db())
            .await
            .map_err(|source| internal("listing images", &source))?
            .into_iter()
            .filter(|listing| {
                matches_type(
                    &listing.image,
                    &own,
                    context.caller.user.uuid,
                    context.caller.is_superadmin(),
                )
            })
            .collect();
        Ok(Some(
            allowed(ctx, listings)
                .await?
                .into_iter()
                .map(|listing| Some(ImageNode::from_listing(listing)))
                .collect(),
        ))
    }

    /// The images the caller may see, of the kinds the filters ask for; only those some agent
    /// holds (or holds not) when `is_installed` is given.
    async fn images(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Added in 19.09.0. If it is specified, fetch images installed on at least one agent."
        )]
        is_installed: Option<bool>,
        #[graphql(
            deprecation = "Deprecated since 24.03.4. This field is ignored if `load_filters` is specified and is not null."
        )]
        is_operation: MaybeUndefined<bool>,
        #[graphql(
            desc = "Added in 24.03.8. Allowed values are: [general, operational, customized]. When superuser queries with `customized` option set the resolver will return every customized images (including those not owned by callee). To resolve images owned by user only call `customized_images`."
        )]
        load_filters: Option<Vec<Option<String>>>,
        #[graphql(
            desc = "Added in 24.03.4. Allowed values are: [general, operational, customized]. When superuser queries with `customized` option set the resolver will return every customized images (including those not owned by caller). To list the owned images only call `customized_images`.",
            deprecation = "Deprecated since 24.03.8. Use `load_filters` instead."
        )]
        image_filters: Option<Vec<Option<String>>>,
    ) -> async_graphql::Result<Option<Vec<Option<Image>>>> {
        let context = gql(ctx);
        let superadmin = context.caller.is_superadmin();
        let filters = load_filter_set(superadmin, &is_operation, load_filters, image_filters)?;
        let listings = image_listing::list_all(context.api.db())
            .await
            .map_err(|source| internal("listing images", &source))?
            .into_iter()
            .filter(|listing| {
                matches_type(
                    &listing.image,
                    &filters,
                    context.caller.user.uuid,
                    superadmin,
                )
            })
            .collect();
        let listings = allowed(ctx, listings).await?;
        let images = images_of(ctx, listings).await?;
        Ok(Some(
            images
                .into_iter()
                .filter(|image| is_installed.is_none() || image.installed == is_installed)
                .map(Some)
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use async_graphql::MaybeUndefined;
    use serde_json::json;
    use uuid::Uuid;

    use super::{LoadFilter, load_filter_set, matches_type};

    fn image(labels: serde_json::Value) -> bai_db_models::entities::images::Model {
        bai_db_models::entities::images::Model {
            id: Uuid::nil(),
            name: "cr.backend.ai/stable/python:3.9".into(),
            image: "stable/python".into(),
            created_at: None,
            tag: Some("3.9".into()),
            registry: "cr.backend.ai".into(),
            architecture: "x86_64".into(),
            config_digest: "sha256:0".into(),
            size_bytes: 0,
            is_local: false,
            r#type: bai_db_models::entities::enums::ImageType::Compute,
            accelerators: None,
            labels,
            resources: json!({}),
        }
    }

    #[test]
    fn default_filters_follow_is_operation_as_the_reference_does() {
        let defaults = |is_operation| load_filter_set(false, &is_operation, None, None).unwrap();
        let general_and_own: HashSet<_> = [LoadFilter::General, LoadFilter::Customized].into();
        assert_eq!(defaults(MaybeUndefined::Value(false)), general_and_own);
        assert_eq!(defaults(MaybeUndefined::Value(true)), general_and_own);
        assert_eq!(defaults(MaybeUndefined::Undefined), general_and_own);
        assert!(defaults(MaybeUndefined::Null).contains(&LoadFilter::Operational));
        let superadmin_customized = load_filter_set(
            true,
            &MaybeUndefined::Undefined,
            Some(vec![]),
            Some(vec![Some("customized".into())]),
        )
        .unwrap();
        assert_eq!(superadmin_customized, [LoadFilter::CustomizedGlobal].into());
        assert!(
            load_filter_set(
                false,
                &MaybeUndefined::Undefined,
                Some(vec![Some("all".into())]),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn labels_include_or_exclude() {
        let owner = Uuid::new_v4();
        let general: HashSet<_> = [LoadFilter::General, LoadFilter::Customized].into();
        let operational: HashSet<_> = [LoadFilter::Operational].into();
        let plain = image(json!({"ai.backend.kernelspec": "1"}));
        let operation = image(json!({"ai.backend.features": "operation uid-match"}));
        let own = image(json!({"ai.backend.customized-image.owner": format!("user:{owner}")}));
        let others = image(json!({"ai.backend.customized-image.owner": "user:someone"}));
        assert!(matches_type(&plain, &general, owner, false));
        assert!(!matches_type(&operation, &general, owner, false));
        assert!(matches_type(&operation, &operational, owner, false));
        assert!(!matches_type(&plain, &operational, owner, false));
        assert!(matches_type(&own, &general, owner, false));
        assert!(!matches_type(&others, &general, owner, false));
        let global: HashSet<_> = [LoadFilter::CustomizedGlobal].into();
        assert!(matches_type(&others, &global, owner, true));
        assert!(!matches_type(&others, &global, owner, false));
    }
}
