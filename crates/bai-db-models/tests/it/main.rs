//! The integration tests of bai-db-models, in one binary: the schema `oneshot` creates and the
//! fixture loader, on the halfstack's PostgreSQL.

mod fixtures;
mod schema;
