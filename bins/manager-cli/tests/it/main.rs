//! The integration tests of manager-cli, in one binary: the built `manager-cli` run as an operator
//! runs it, against the halfstack.

mod agent_commands;
mod cli;
mod db;
mod etcd;
mod image_commands;
mod image_rescan;
mod operator;
mod support;
