//! `cargo xtask venv`: Python virtualenvs under `<workspace>/.venvs/`, made with pyenv's Python and
//! holding pinned packages (pyzmq for the keypair baseline, the official Backend.AI clients for the
//! compatibility tests, the real 24.03 agent run in dummy mode as the manager's peer).
//!
//! [`VENVS`] is the one list of what exists; a new venv or package is a line there. Each venv keeps
//! a marker file with what was installed, so a second run with an unchanged list skips pip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cmd, consts, sys, workspace_root};

/// One virtualenv: its folder name under `.venvs/`, the pyenv Python version it is made with, and
/// its pinned requirements.
#[derive(Debug)]
pub struct Venv {
    pub name: &'static str,
    pub python: &'static str,
    pub packages: &'static [&'static str],
}

/// Every venv `cargo xtask venv` makes, with every pinned requirement.
pub const VENVS: &[Venv] = &[
    Venv {
        name: "py312",
        python: "3.12.1",
        packages: &["pyzmq==26.2.0", "backend.ai-client==24.3.11"],
    },
    // The 23.09 client needs yarl < 1.18 (api-auth-client.md §7.1).
    Venv {
        name: "py311",
        python: "3.11.7",
        packages: &["backend.ai-client==23.9.10", "yarl==1.9.4"],
    },
    // The real agent, run with the dummy backend (no Docker) against the halfstack
    // (configs/agent/, scheduler-agent-rpc.md §5).
    Venv {
        name: "agent",
        python: "3.12.1",
        packages: &["backend.ai-agent==24.3.11"],
    },
    // The WebUI test: the real web server, whose wheel bundles the WebUI 24.03, in front of our
    // server, and Playwright driving Debian's Chromium through it.
    Venv {
        name: "webui",
        python: "3.12.1",
        packages: &["backend.ai-webserver==24.3.11", "playwright==1.65.3"],
    },
    // `cargo xtask fuzz`: schemathesis (with hypothesis-graphql) against the server's API.
    Venv {
        name: "fuzz",
        python: "3.12.1",
        packages: &["schemathesis==4.32.5"],
    },
];

/// The file in each venv recording what was installed.
const MARKER: &str = ".xtask-requirements";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Venvs to create or update (default: all of them).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(VENVS.iter().map(|v| v.name)))]
    names: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    for venv in VENVS {
        if args.names.is_empty() || args.names.iter().any(|name| name == venv.name) {
            ensure(venv)?;
        }
    }
    Ok(())
}

/// The venv called `name` from [`VENVS`].
pub fn by_name(name: &str) -> &'static Venv {
    VENVS
        .iter()
        .find(|venv| venv.name == name)
        .unwrap_or_else(|| panic!("no venv {name} in VENVS"))
}

impl Venv {
    pub fn dir(&self) -> PathBuf {
        workspace_root().join(consts::VENVS_DIR).join(self.name)
    }

    pub fn python_bin(&self) -> PathBuf {
        self.dir().join("bin").join("python")
    }

    /// What the marker file holds when this venv is up to date.
    fn marker_text(&self) -> String {
        let mut text = format!("python {}\n", self.python);
        for package in self.packages {
            text.push_str(package);
            text.push('\n');
        }
        text
    }
}

/// Creates `venv` if missing (or made with another Python) and installs its packages if the
/// requirement list changed since the last run.
pub fn ensure(venv: &Venv) -> Result<()> {
    let dir = venv.dir();
    let marker = dir.join(MARKER);
    let wanted = venv.marker_text();
    let installed = std::fs::read_to_string(&marker).unwrap_or_default();
    if installed == wanted && venv.python_bin().is_file() {
        println!("venv {} is up to date ({})", venv.name, dir.display());
        return Ok(());
    }
    let same_python = installed.lines().next() == wanted.lines().next();
    if !venv.python_bin().is_file() || !same_python {
        create(venv, &dir)?;
    }
    // Invalidate first: if pip fails halfway, the next run must try again.
    let _ = std::fs::remove_file(&marker);
    println!(
        "==> pip install into {}: {}",
        dir.display(),
        venv.packages.join(" ")
    );
    cmd::run(
        Command::new(venv.python_bin())
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(venv.packages),
    )?;
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    println!("venv {} ready ({})", venv.name, dir.display());
    Ok(())
}

/// `PYENV_VERSION=X.Y.Z pythonX.Y -m venv --clear DIR`.
fn create(venv: &Venv, dir: &Path) -> Result<()> {
    let minor = venv.python.rsplitn(2, '.').last().unwrap_or(venv.python);
    let program = format!("python{minor}");
    if sys::find_in_path(&program).is_none() {
        bail!(
            "`{program}` is not on PATH; venv {} needs pyenv's Python {} \
             (install pyenv, run `pyenv install {}`, and put pyenv's shims folder on PATH)",
            venv.name,
            venv.python,
            venv.python
        );
    }
    println!(
        "==> creating venv {} with Python {}",
        dir.display(),
        venv.python
    );
    cmd::run(
        Command::new(&program)
            .env("PYENV_VERSION", venv.python)
            .args(["-m", "venv", "--clear"])
            .arg(dir),
    )?;
    // pyenv picks the version from PYENV_VERSION; check the venv really got that one.
    let version = cmd::run(Command::new(venv.python_bin()).arg("--version"))?;
    let version = version.trim().trim_start_matches("Python ").to_owned();
    if version != venv.python {
        bail!(
            "venv {} was made with Python {version}, not {}: check `pyenv versions`",
            venv.name,
            venv.python
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_names_are_unique_and_packages_pinned() {
        for (i, venv) in VENVS.iter().enumerate() {
            assert!(VENVS[i + 1..].iter().all(|other| other.name != venv.name));
            assert!(venv.packages.iter().all(|p| p.contains("==")), "{venv:?}");
        }
    }
}
