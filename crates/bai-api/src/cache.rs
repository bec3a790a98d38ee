//! What the API keeps in memory between requests, shared by every worker of a process
//! ([`ApiCaches`]): the signers of requests (keypair, its policy, its user and the user's policy),
//! finished answers of read-mostly routes (resource presets, GraphQL queries over identity and
//! administrative data), and the call statistics waiting to be written to Redis.
//!
//! Bounds: a signer is served for at most [`SIGNER_MAX_AGE`] after it was read, an answer for at
//! most [`ANSWER_MAX_AGE`]; a write of ours to cached data (any GraphQL mutation, the REST routes
//! that change a user or a keypair, `manager-cli`'s writes) invalidates everything at once in this
//! process and, through PostgreSQL `NOTIFY`, in every other one (`bai-cache`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bai_cache::{Caches, KeyedCache};
use bai_redis::CallStats;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use sea_orm::DatabaseConnection;

use crate::auth::Signer;
use crate::error::ApiError;
use crate::json::{JSON_CONTENT_TYPE, to_python_json};

/// How long a signer read from the database authenticates requests without being read again: a
/// keypair or user deactivated behind the manager's back (psql) is refused after this long.
pub const SIGNER_MAX_AGE: Duration = Duration::from_secs(5);
/// How long a finished answer is served again to the same caller for the same request: what it
/// shows of Redis counters (`last_used`, `concurrency_used`, `num_queries`) lags by this much.
pub const ANSWER_MAX_AGE: Duration = Duration::from_secs(1);
/// Signers kept at most (each a few kilobytes).
const SIGNER_CAPACITY: u64 = 10_000;
/// Bytes of answers (keys included) kept at most.
const ANSWER_CAPACITY_BYTES: u64 = 4 << 20;

/// A finished response body, served again as it is.
#[derive(Debug)]
pub(crate) struct CachedAnswer {
    pub(crate) body: Bytes,
    pub(crate) content_type: HeaderValue,
}

/// The caches of one process. Cheap to clone; give one to every worker's
/// [`ApiContext`](crate::ApiContext) with `with_caches`.
#[derive(Clone, Debug)]
pub struct ApiCaches {
    caches: Caches,
    pub(crate) signers: KeyedCache<Arc<Signer>>,
    pub(crate) answers: KeyedCache<Arc<CachedAnswer>>,
    call_stats: CallStats,
}

impl Default for ApiCaches {
    fn default() -> Self {
        ApiCaches::new()
    }
}

impl ApiCaches {
    pub fn new() -> ApiCaches {
        let caches = Caches::new();
        let signers = caches.keyed("signers", SIGNER_MAX_AGE, SIGNER_CAPACITY, |_, _| 1);
        let answers = caches.keyed(
            "answers",
            ANSWER_MAX_AGE,
            ANSWER_CAPACITY_BYTES,
            |key, answer: &Arc<CachedAnswer>| {
                u32::try_from(key.len() + answer.body.len()).unwrap_or(u32::MAX)
            },
        );
        ApiCaches {
            caches,
            signers,
            answers,
            call_stats: CallStats::new(),
        }
    }

    /// What `bai_cache::follow_changes` invalidates when another process announces a change.
    pub fn invalidation(&self) -> Caches {
        self.caches.clone()
    }

    /// The successful authentications waiting to be written; run [`CallStats::run`] on it.
    pub fn call_stats(&self) -> &CallStats {
        &self.call_stats
    }

    /// A write of ours changed cached data (`what`, for logs).
    pub(crate) async fn changed(&self, db: &DatabaseConnection, what: &str) {
        self.caches.changed(db, what).await;
    }
}

impl CachedAnswer {
    /// `value` as the JSON body of a 200 answer.
    pub(crate) fn json<T: serde::Serialize>(value: &T) -> CachedAnswer {
        CachedAnswer {
            body: Bytes::from(to_python_json(value)),
            content_type: HeaderValue::from_static(JSON_CONTENT_TYPE),
        }
    }

    pub(crate) fn response(&self) -> Response {
        let mut response = (StatusCode::OK, self.body.clone()).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, self.content_type.clone());
        response
    }
}

impl ApiCaches {
    /// The answer under `key` if one is current, else what `produce` makes of the request (stored
    /// for the next ones).
    pub(crate) async fn json_answer<T: serde::Serialize>(
        &self,
        key: &str,
        produce: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Response, ApiError> {
        if let Some(answer) = self.answers.get(key) {
            return Ok(answer.response());
        }
        // Requests that missed together: one produces, the others take its answer.
        let _turn = self.answers.load_turn(key).await;
        if let Some(answer) = self.answers.get(key) {
            return Ok(answer.response());
        }
        let ticket = self.answers.ticket();
        let answer = Arc::new(CachedAnswer::json(&produce.await?));
        self.answers
            .insert(key.to_owned(), Arc::clone(&answer), ticket);
        Ok(answer.response())
    }
}
