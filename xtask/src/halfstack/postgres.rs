//! PostgreSQL 15 of Debian's `postgresql-15`, run with `initdb` and `pg_ctl` on a data folder of
//! our own (Debian's cluster on 5432, if any, is never touched).
//!
//! PostgreSQL refuses to run as root, so when we are root its programs run as the OS user
//! `postgres` through `runuser`, and the folders it writes to are handed to that user. That user
//! must be able to reach the data folder, which a folder below `/root` does not allow (without
//! `--dir`, the halfstack then lives in `/var/tmp`, see `default_root`).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{Layout, Ports, Service};
use crate::consts::{self, PG_OS_USER};
use crate::{cmd, sys};

/// Our settings, included from `postgresql.conf`; rewritten at every start so that a moved
/// halfstack folder still gets the right socket folder.
const SETTINGS_FILE: &str = "halfstack.conf";

/// A real query over TCP with password authentication succeeds.
pub fn answers(ports: Ports) -> bool {
    let mut select = psql(&ports.pg_url("postgres"), "select 1");
    cmd::probe(&mut select, Duration::from_secs(10)).is_some_and(|out| out.trim() == "1")
}

/// Starts the server with `pg_ctl`, after `initdb` on the first start.
pub fn start(layout: &Layout) -> Result<()> {
    let (data, log) = (
        layout.data(Service::Postgres),
        layout.log(Service::Postgres),
    );
    if sys::is_root() {
        hand_over_to_os_user(layout, &data, &log)?;
    }
    if !data.join("PG_VERSION").exists() {
        initdb(layout, &data)?;
    }
    write_settings(layout, &data)?;
    remove_stale_lock_files(layout);
    cmd::run_with_log(
        as_os_user(layout, bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", &consts::READY_TIMEOUT_SECS.to_string(), "start"]),
        Some(&log),
    )?;
    Ok(())
}

/// Creates the `backend` database if it is missing, then checks it with a real query.
pub fn ensure_database(ports: Ports) -> Result<()> {
    let database = consts::PG_DATABASE;
    let exists = cmd::run(&mut psql(
        &ports.pg_url("postgres"),
        &format!("select 1 from pg_database where datname = '{database}'"),
    ))?;
    if exists.trim() != "1" {
        cmd::run(&mut psql(
            &ports.pg_url("postgres"),
            &format!("create database {database}"),
        ))?;
        println!("postgres: created database {database}");
    }
    let answer = cmd::run(&mut psql(&ports.pg_url(database), "select 1"))?;
    if answer.trim() != "1" {
        bail!("`select 1` on database {database} answered {answer:?}");
    }
    Ok(())
}

pub fn stop(layout: &Layout) -> Result<()> {
    cmd::run_with_log(
        as_os_user(layout, bin("pg_ctl"))
            .arg("-D")
            .arg(layout.data(Service::Postgres))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]),
        Some(&layout.log(Service::Postgres)),
    )?;
    Ok(())
}

/// Removes lock files left by a killed server. PostgreSQL removes them itself when their pid is
/// gone, but a killed server whose parent has not reaped it yet still has a pid (a zombie), and
/// that blocks the start. Only called when no live server of ours was found.
fn remove_stale_lock_files(layout: &Layout) {
    let socket_lock = layout
        .run()
        .join(format!(".s.PGSQL.{}.lock", layout.ports.postgres));
    for lock in [Service::Postgres.pid_file(layout), socket_lock] {
        if sys::read_pid_file(&lock).is_some_and(|pid| !sys::pid_alive(pid)) {
            let _ = std::fs::remove_file(&lock);
        }
    }
}

fn bin(program: &str) -> PathBuf {
    Path::new(consts::PG_BIN_DIR).join(program)
}

/// A program run as the OS user `postgres` when we are root, else as ourselves.
fn as_os_user(layout: &Layout, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = if sys::is_root() {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", PG_OS_USER, "--"]).arg(program);
        runuser
    } else {
        Command::new(program)
    };
    // A working directory the server's user can enter (ours may be /root).
    command.current_dir(layout.run());
    command
}

fn psql(url: &str, sql: &str) -> Command {
    let mut command = Command::new(bin("psql"));
    command
        .env("PGCONNECT_TIMEOUT", "5")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql, url]);
    command
}

/// Gives `paths` to the OS user `postgres` when we are root.
fn give_to_os_user(paths: &[&Path]) -> Result<()> {
    if sys::is_root() {
        cmd::run(
            Command::new("chown")
                .arg(format!("{PG_OS_USER}:{PG_OS_USER}"))
                .args(paths),
        )?;
    }
    Ok(())
}

/// Gives the folders PostgreSQL writes to to the OS user `postgres` and checks it can use them.
fn hand_over_to_os_user(layout: &Layout, data: &Path, log: &Path) -> Result<()> {
    if !log.exists() {
        std::fs::write(log, "").with_context(|| format!("cannot create {}", log.display()))?;
    }
    let run = layout.run();
    give_to_os_user(&[data, &run, log])?;
    let can_write = |dir: &Path| {
        let mut test = as_os_user(layout, "test");
        cmd::probe(test.arg("-w").arg(dir), Duration::from_secs(10)).is_some()
    };
    if can_write(data) && can_write(&run) {
        return Ok(());
    }
    // The folder closest to `/` that others cannot pass.
    let blocked = data
        .ancestors()
        .filter(|dir| !sys::others_can_enter(dir))
        .last()
        .unwrap_or(data);
    bail!(
        "PostgreSQL runs as OS user `{PG_OS_USER}` (it refuses to run as root), and `{PG_OS_USER}` cannot enter {blocked}, \
         so it cannot reach its data folder {data}. Put the halfstack elsewhere, e.g. \
         `cargo xtask halfstack up --dir /var/tmp/bai-halfstack`, or let others enter it with `chmod o+x {blocked}`.",
        blocked = blocked.display(),
        data = data.display(),
    )
}

/// First start only: a cluster with superuser `postgres` / `develove`, password authentication
/// over TCP and trust on the Unix socket.
fn initdb(layout: &Layout, data: &Path) -> Result<()> {
    println!("postgres: initdb {}", data.display());
    let pwfile = layout.run().join("initdb.pwfile");
    let _ = std::fs::remove_file(&pwfile);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pwfile)
        .and_then(|mut file| writeln!(file, "{}", consts::PG_PASSWORD))
        .with_context(|| format!("cannot write {}", pwfile.display()))?;
    let initdb = give_to_os_user(&[&pwfile]).and_then(|()| {
        cmd::run(
            as_os_user(layout, bin("initdb"))
                .arg("-D")
                .arg(data)
                .args(["-U", consts::PG_USER])
                .arg(format!("--pwfile={}", pwfile.display()))
                .args([
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]),
        )
    });
    let _ = std::fs::remove_file(&pwfile);
    initdb?;
    let conf = data.join("postgresql.conf");
    OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut file| {
            writeln!(
                file,
                "\n# Added by `cargo xtask halfstack up`.\ninclude_if_exists = '{SETTINGS_FILE}'"
            )
        })
        .with_context(|| format!("cannot write {}", conf.display()))
}

fn write_settings(layout: &Layout, data: &Path) -> Result<()> {
    let path = data.join(SETTINGS_FILE);
    let socket_dir = layout.run().to_string_lossy().replace('\'', "''");
    let settings = format!(
        "# Written by `cargo xtask halfstack up` at every start (xtask/src/halfstack/postgres.rs).\n\
         port = {port}\n\
         listen_addresses = 'localhost'\n\
         unix_socket_directories = '{socket_dir}'\n\
         max_connections = {max_connections}\n\
         # Throwaway development data: speed over durability.\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n",
        port = layout.ports.postgres,
        max_connections = consts::PG_MAX_CONNECTIONS,
    );
    std::fs::write(&path, settings).with_context(|| format!("cannot write {}", path.display()))?;
    give_to_os_user(&[&path])
}
