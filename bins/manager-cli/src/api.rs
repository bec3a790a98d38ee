//! `manager-cli api dump-openapi`, `api dump-gql-schema` and `gql show`: the documents of the API
//! bai-api serves, built offline from its route table and its GraphQL schema (no server, no
//! configuration, no store).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::args::api::{ApiCommand, GqlCommand};
use anyhow::Context;

pub fn run_api(command: ApiCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApiCommand::DumpOpenapi { output } => {
            let document = bai_api::openapi_document();
            let text = serde_json::to_string_pretty(&document)? + "\n";
            write_output(&output, &text)
        }
        ApiCommand::DumpGqlSchema { output } => {
            tracing::info!("======== GraphQL API Schema ========");
            write_output(&output, &gql_sdl())
        }
    }
}

pub fn run_gql(command: GqlCommand) -> anyhow::Result<ExitCode> {
    match command {
        GqlCommand::Show => write_output(Path::new("-"), &gql_sdl()),
    }
}

/// The SDL of the schema the server builds (introspection makes no difference to the SDL).
fn gql_sdl() -> String {
    bai_api::gql::schema().sdl()
}

fn write_output(output: &Path, text: &str) -> anyhow::Result<ExitCode> {
    if output == Path::new("-") {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    } else {
        std::fs::write(output, text).with_context(|| format!("writing {}", output.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
