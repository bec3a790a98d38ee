//! `manager-cli man-pages DIR`: the man pages of manager-cli, one per command (`manager-cli.1`,
//! `manager-cli-etcd.1`, `manager-cli-etcd-get.1`, ...), rendered by clap_mangen from the clap
//! definition the binary parses with. `cargo xtask man` runs it.

use std::path::Path;

use anyhow::Context;

/// Renders `command` and each of its subcommands, depth first; returns how many pages were written.
pub fn write_pages(command: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = command.clone();
    // Building propagates the global options (`-f`, `--log-level`) into every subcommand and names
    // each after its path (`manager-cli-etcd-get`), which is the page's title and file name.
    command.build();
    render(&command, dir)
}

fn render(command: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
    let page = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    let path = dir.join(format!("{page}.1"));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut bytes)
        .with_context(|| format!("rendering {page}"))?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    // clap's generated `help` subcommands only repeat the pages of their siblings.
    let pages = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help");
    for sub in pages {
        written += render(sub, dir)?;
    }
    Ok(written)
}
