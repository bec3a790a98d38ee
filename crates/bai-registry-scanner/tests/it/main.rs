//! The integration tests of bai-registry-scanner, in one binary: scans of throwaway registries
//! (Docker Registry v2, a Harbor API double) into the halfstack's PostgreSQL, and the test image
//! pusher itself.

mod docker_registry;
mod harbor;
mod support;
mod test_image_pusher;
