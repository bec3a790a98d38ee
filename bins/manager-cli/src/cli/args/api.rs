//! `manager-cli api ...` and `manager-cli gql ...`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /spec/openapi/spec.json` serves).
    DumpOpenapi {
        /// Write it to PATH instead of stdout (`-`).
        #[arg(short, long, value_name = "PATH", default_value = "-")]
        output: PathBuf,
    },
    /// Print the GraphQL schema of `/admin/gql` in SDL.
    DumpGqlSchema {
        /// Write it to PATH instead of stdout (`-`).
        #[arg(short, long, value_name = "PATH", default_value = "-")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GqlCommand {
    /// Print the GraphQL schema of `/admin/gql` in SDL (the same as `api dump-gql-schema`).
    Show,
}
