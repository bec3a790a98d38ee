//! Integration tests of `bai-scheduler` against the halfstack's PostgreSQL and etcd, each with its
//! own database and etcd namespace.

mod headroom;
