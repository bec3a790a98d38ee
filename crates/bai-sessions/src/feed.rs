//! The event feed to clients: what `GET /events/session` and `GET /events/background-task`
//! stream. Each worker subscribes to the bus (`bai_events::run_subscriber`: every worker sees
//! every event), turns the session, kernel and background-task events the reference forwards into
//! typed [`Notice`]s and publishes them into one per-worker broadcast ring of [`FEED_CAPACITY`]
//! notices; each client's stream reads the ring and keeps what it may and wants to see.
//!
//! The reference reads the session's (or kernel's) row for every event; here a session's labels
//! (name, owner, domain, project, its kernels' cluster roles) are read once, when the feed first
//! sees it (one lookup for all the new sessions of a batch), kept in a bounded cache of
//! [`CACHED_SESSIONS`] sessions and dropped when the session ends (`session_terminated`,
//! `session_cancelled`). Events of sessions that do not exist are dropped, as the reference does.
//!
//! Memory stays bounded whatever the clients do: the ring has a fixed size (a client that falls
//! behind it learns so from its receiver and is disconnected by the API), the intake between the
//! bus handlers and the resolver holds at most [`INTAKE_CAPACITY`] events (the subscriber waits
//! when it is full), the cache at most [`CACHED_SESSIONS`] sessions.
//!
//! It must not know HTTP or the wire form of what clients receive (that is `bai-api`'s); SQL goes
//! through `bai-db-models`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bai_db_models::queries::event_feed::{FeedKernel, FeedSession, feed_sessions};
use bai_events::{BgtaskEnd, BgtaskProgress, Event, Handlers, Received};
use bai_redis::{EntryId, StreamDb};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Notices one worker's ring holds: a client further behind than this is disconnected.
pub const FEED_CAPACITY: usize = 4096;
/// Sessions whose labels a worker keeps at most (the oldest go first).
pub const CACHED_SESSIONS: usize = 65_536;
/// Events waiting between the bus handlers and the resolver at most.
pub const INTAKE_CAPACITY: usize = 8192;
/// Events the resolver takes at once (one lookup for their new sessions).
const CHUNK: usize = 512;

/// The events the reference forwards to `GET /events/session`, by name.
pub const SESSION_EVENT_NAMES: [&str; 15] = [
    "session_enqueued",
    "session_scheduled",
    "kernel_preparing",
    "kernel_pulling",
    "kernel_creating",
    "kernel_started",
    "session_started",
    "kernel_terminating",
    "kernel_terminated",
    "kernel_cancelled",
    "session_terminating",
    "session_terminated",
    "session_cancelled",
    "session_success",
    "session_failure",
];

/// The events of background tasks, by name.
pub const BGTASK_EVENT_NAMES: [&str; 4] = [
    "bgtask_updated",
    "bgtask_done",
    "bgtask_cancelled",
    "bgtask_failed",
];

/// One event as clients may be told about it.
#[derive(Clone, Debug)]
pub enum Notice {
    Session(Arc<SessionNotice>),
    Bgtask(Arc<BgtaskNotice>),
}

/// A session or kernel event with the labels of its session.
#[derive(Clone, Debug)]
pub struct SessionNotice {
    /// The event's name (`session_started`, `kernel_terminated`, ...).
    pub event_name: &'static str,
    pub session: Arc<FeedSession>,
    /// The kernel of a `kernel_*` event.
    pub kernel: Option<FeedKernel>,
    pub reason: String,
    /// `kernel_terminating`, `kernel_terminated`, `session_success`, `session_failure` only.
    pub exit_code: Option<i64>,
}

/// A background task's event.
#[derive(Clone, Debug, PartialEq)]
pub enum BgtaskNotice {
    Updated(BgtaskProgress),
    Done(BgtaskEnd),
    Cancelled(BgtaskEnd),
    Failed(BgtaskEnd),
}

impl BgtaskNotice {
    pub fn task_id(&self) -> Uuid {
        match self {
            BgtaskNotice::Updated(progress) => progress.task_id,
            BgtaskNotice::Done(end) | BgtaskNotice::Cancelled(end) | BgtaskNotice::Failed(end) => {
                end.task_id
            }
        }
    }
}

/// The reading side of a worker's feed: cheap to clone, one receiver per client.
#[derive(Clone, Debug)]
pub struct EventFeed {
    ring: broadcast::Sender<Notice>,
    stopped: CancellationToken,
}

impl EventFeed {
    /// A receiver of every notice published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.ring.subscribe()
    }

    /// Clients reading now.
    pub fn clients(&self) -> usize {
        self.ring.receiver_count()
    }

    /// Returns when the feed stopped (the worker is shutting down): streams end then.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }
}

/// The writing side of a worker's feed: run it with [`Feeder::run`].
#[derive(Debug)]
pub struct Feeder {
    db: DatabaseConnection,
    ring: broadcast::Sender<Notice>,
    /// Ends the clients' streams when the feeder is gone, run or not.
    _stopped: DropGuard,
}

/// A worker's feed: what its clients read, and what fills it.
pub fn event_feed(db: DatabaseConnection) -> (EventFeed, Feeder) {
    event_feed_with_capacity(db, FEED_CAPACITY)
}

/// [`event_feed`] with a ring of `capacity` notices (tests use small ones to make clients lag).
pub fn event_feed_with_capacity(db: DatabaseConnection, capacity: usize) -> (EventFeed, Feeder) {
    let (ring, _) = broadcast::channel(capacity.max(1));
    let stopped = CancellationToken::new();
    (
        EventFeed {
            ring: ring.clone(),
            stopped: stopped.clone(),
        },
        Feeder {
            db,
            ring,
            _stopped: stopped.drop_guard(),
        },
    )
}

impl Feeder {
    /// Subscribes to the bus on `stream` (a connection of its own: its reads block) and feeds the
    /// ring until `shutdown`.
    pub async fn run(self, stream: StreamDb, shutdown: CancellationToken) {
        let (intake, mut taken) = mpsc::channel::<Arc<Received>>(INTAKE_CAPACITY);
        let mut handlers = Handlers::default();
        for name in SESSION_EVENT_NAMES.into_iter().chain(BGTASK_EVENT_NAMES) {
            let intake = intake.clone();
            handlers.on(name, "event_feed", move |received| {
                let intake = intake.clone();
                async move {
                    // Closed only when the resolver stopped, at shutdown.
                    let _ = intake.send(received).await;
                    Ok(())
                }
            });
        }
        drop(intake);
        let resolve = async {
            let mut resolver = Resolver {
                db: self.db,
                ring: self.ring,
                cache: SessionCache::default(),
            };
            let mut chunk = Vec::with_capacity(CHUNK);
            loop {
                chunk.clear();
                if taken.recv_many(&mut chunk, CHUNK).await == 0 {
                    return;
                }
                resolver.publish(&mut chunk).await;
                // Let the clients read before the next chunk: a worker's runtime is one thread,
                // and a chunk must never outrun a reader that is keeping up.
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            () = bai_events::run_subscriber(stream, handlers, shutdown.clone()) => {}
            () = resolve => {}
        }
    }
}

struct Resolver {
    db: DatabaseConnection,
    ring: broadcast::Sender<Notice>,
    cache: SessionCache,
}

impl Resolver {
    /// Publishes `chunk` in stream order. The subscriber runs the handlers of different sources
    /// (agents, managers) concurrently, so one read may reach the intake out of order; sorting by
    /// entry id puts it back.
    async fn publish(&mut self, chunk: &mut [Arc<Received>]) {
        chunk.sort_by_key(|received| received.id);
        let unknown = self.unknown_sessions(chunk);
        if !unknown.is_empty() {
            match feed_sessions(&self.db, &unknown).await {
                Ok(found) => {
                    for session in found {
                        self.cache.insert(session);
                    }
                }
                Err(error) => tracing::warn!(
                    "event feed: {error}; the events of {} sessions are not forwarded",
                    unknown.len()
                ),
            }
        }
        for received in chunk.iter() {
            if let Some(notice) = self.notice(received.id, &received.event) {
                // No receiver at the moment is not an error: nobody is listening.
                let _ = self.ring.send(notice);
            }
        }
    }

    /// The sessions of `chunk` the cache does not know, or whose kernel it does not know.
    fn unknown_sessions(&self, chunk: &[Arc<Received>]) -> Vec<Uuid> {
        let mut unknown: Vec<Uuid> = Vec::new();
        for received in chunk {
            let Some((session_id, kernel_id)) = session_of(&received.event) else {
                continue;
            };
            let known = self.cache.get(session_id).is_some_and(|session| {
                kernel_id.is_none_or(|kernel_id| {
                    session.kernels.iter().any(|kernel| kernel.id == kernel_id)
                })
            });
            if !known && !unknown.contains(&session_id) {
                unknown.push(session_id);
            }
        }
        unknown
    }

    fn notice(&mut self, id: EntryId, event: &Event) -> Option<Notice> {
        let bgtask = match event {
            Event::BgtaskUpdated(progress) => Some(BgtaskNotice::Updated(progress.clone())),
            Event::BgtaskDone(end) => Some(BgtaskNotice::Done(end.clone())),
            Event::BgtaskCancelled(end) => Some(BgtaskNotice::Cancelled(end.clone())),
            Event::BgtaskFailed(end) => Some(BgtaskNotice::Failed(end.clone())),
            _ => None,
        };
        if let Some(bgtask) = bgtask {
            return Some(Notice::Bgtask(Arc::new(bgtask)));
        }
        let (session_id, kernel_id) = session_of(event)?;
        let (reason, exit_code) = reason_and_exit_code(event)?;
        let Some(session) = self.cache.get(session_id).cloned() else {
            tracing::debug!(
                "event feed: {} {id} of an unknown session {session_id}",
                event.name()
            );
            return None;
        };
        let kernel = match kernel_id {
            Some(kernel_id) => Some(
                session
                    .kernels
                    .iter()
                    .find(|kernel| kernel.id == kernel_id)?
                    .clone(),
            ),
            None => None,
        };
        if matches!(
            event,
            Event::SessionTerminated(_) | Event::SessionCancelled(_)
        ) {
            self.cache.remove(session_id);
        }
        Some(Notice::Session(Arc::new(SessionNotice {
            event_name: event.name(),
            session,
            kernel,
            reason: reason.to_owned(),
            exit_code,
        })))
    }
}

/// The session (and kernel) a forwarded session or kernel event is about.
fn session_of(event: &Event) -> Option<(Uuid, Option<Uuid>)> {
    match event {
        Event::SessionEnqueued(creation)
        | Event::SessionScheduled(creation)
        | Event::SessionStarted(creation)
        | Event::SessionCancelled(creation) => Some((creation.session_id, None)),
        Event::SessionTerminating(termination) | Event::SessionTerminated(termination) => {
            Some((termination.session_id, None))
        }
        Event::SessionSuccess(result) | Event::SessionFailure(result) => {
            Some((result.session_id, None))
        }
        Event::KernelPreparing(creation)
        | Event::KernelPulling(creation)
        | Event::KernelCreating(creation)
        | Event::KernelStarted(creation)
        | Event::KernelCancelled(creation) => Some((creation.session_id, Some(creation.kernel_id))),
        Event::KernelTerminating(termination) | Event::KernelTerminated(termination) => {
            Some((termination.session_id, Some(termination.kernel_id)))
        }
        _ => None,
    }
}

/// The reason and, for the events that carry one to clients, the exit code.
fn reason_and_exit_code(event: &Event) -> Option<(&str, Option<i64>)> {
    match event {
        Event::SessionEnqueued(creation)
        | Event::SessionScheduled(creation)
        | Event::SessionStarted(creation)
        | Event::SessionCancelled(creation) => Some((&creation.reason, None)),
        Event::SessionTerminating(termination) | Event::SessionTerminated(termination) => {
            Some((&termination.reason, None))
        }
        Event::SessionSuccess(result) | Event::SessionFailure(result) => {
            Some((&result.reason, Some(result.exit_code)))
        }
        Event::KernelPreparing(creation)
        | Event::KernelPulling(creation)
        | Event::KernelCreating(creation)
        | Event::KernelStarted(creation)
        | Event::KernelCancelled(creation) => Some((&creation.reason, None)),
        Event::KernelTerminating(termination) | Event::KernelTerminated(termination) => {
            Some((&termination.reason, Some(termination.exit_code)))
        }
        _ => None,
    }
}

/// Sessions' labels, at most [`CACHED_SESSIONS`], the oldest evicted first.
#[derive(Default)]
struct SessionCache {
    by_id: HashMap<Uuid, Arc<FeedSession>>,
    /// Insertion order; may name sessions already removed (skipped when evicting, compacted
    /// when it grows past twice the cap).
    order: VecDeque<Uuid>,
}

impl SessionCache {
    fn get(&self, id: Uuid) -> Option<&Arc<FeedSession>> {
        self.by_id.get(&id)
    }

    fn insert(&mut self, session: FeedSession) {
        let id = session.id;
        if self.by_id.insert(id, Arc::new(session)).is_some() {
            return;
        }
        self.order.push_back(id);
        while self.by_id.len() > CACHED_SESSIONS {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.by_id.remove(&oldest);
                }
                None => break,
            }
        }
        if self.order.len() > 2 * CACHED_SESSIONS {
            let by_id = &self.by_id;
            self.order.retain(|id| by_id.contains_key(id));
        }
    }

    fn remove(&mut self, id: Uuid) {
        self.by_id.remove(&id);
    }
}
