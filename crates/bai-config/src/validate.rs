//! Checks that types alone cannot express: ranges, slugs, sections a driver needs, and (separately,
//! because they depend on the machine rather than the text) files that must exist.

use std::path::Path;

use crate::load::Sources;
use crate::problem::{KeyPath, Problem};
use crate::schema::{LogDriver, ManagerConfig};

/// Returns (errors, warnings) for a configuration that deserialized.
pub(crate) fn check(config: &ManagerConfig, sources: &Sources) -> (Vec<Problem>, Vec<Problem>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut require = |ok: bool, key: &[&str], message: String| {
        if !ok {
            errors.push(sources.problem(KeyPath::new(key.iter().copied()), message));
        }
    };

    require(
        !config.etcd.namespace.is_empty(),
        &["etcd", "namespace"],
        "must not be empty".to_owned(),
    );

    let db = &config.db;
    require(
        is_slug(&db.name),
        &["db", "name"],
        format!(
            "{:?} is not a valid database name (2 to 64 letters, digits, '.', '_' or '-', \
             starting and ending with a letter or digit)",
            db.name
        ),
    );
    require(
        !db.user.is_empty(),
        &["db", "user"],
        "must not be empty".to_owned(),
    );
    require(
        db.pool_size >= 1,
        &["db", "pool-size"],
        at_least(1, db.pool_size),
    );
    require(
        db.pool_recycle >= -1.0,
        &["db", "pool-recycle"],
        format!(
            "must be -1 (never) or a number of seconds, found {}",
            db.pool_recycle
        ),
    );
    require(
        db.max_overflow >= -1,
        &["db", "max-overflow"],
        format!(
            "must be -1 (unlimited) or at least 0, found {}",
            db.max_overflow
        ),
    );
    require(
        db.lock_conn_timeout >= 0.0,
        &["db", "lock-conn-timeout"],
        format!(
            "must be 0 (no limit) or a number of seconds, found {}",
            db.lock_conn_timeout
        ),
    );

    let manager = &config.manager;
    require(
        manager.num_proc >= 1,
        &["manager", "num-proc"],
        at_least(1, manager.num_proc),
    );
    require(
        !manager.id.is_empty(),
        &["manager", "id"],
        "must not be empty".to_owned(),
    );
    require(
        manager.heartbeat_timeout >= 1.0,
        &["manager", "heartbeat-timeout"],
        format!(
            "must be at least 1.0 seconds, found {}",
            manager.heartbeat_timeout
        ),
    );
    require(
        manager.max_wsmsg_size >= 1,
        &["manager", "max-wsmsg-size"],
        at_least(1, manager.max_wsmsg_size),
    );
    require(
        manager.client_max_size.bytes() >= 1,
        &["manager", "client-max-size"],
        "must be at least 1 byte".to_owned(),
    );
    for (key, seconds) in [
        ("keepalive-timeout", manager.keepalive_timeout),
        ("header-read-timeout", manager.header_read_timeout),
    ] {
        require(
            seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0,
            &["manager", key],
            format!("must be a number of seconds above 0 and at most 86400, found {seconds}"),
        );
    }
    require(
        manager.max_connections_per_worker >= 1,
        &["manager", "max-connections-per-worker"],
        at_least(1, manager.max_connections_per_worker),
    );
    for (key, port) in [
        ("aiomonitor-termui-port", manager.aiomonitor_termui_port),
        ("aiomonitor-webui-port", manager.aiomonitor_webui_port),
    ] {
        require(
            (1..=65535).contains(&port),
            &["manager", key],
            format!("port number must be between 1 and 65535, found {port}"),
        );
    }
    require(
        !manager.metrics_enabled || manager.metrics_addr != manager.service_addr,
        &["manager", "metrics-addr"],
        format!(
            "must differ from service-addr ({}): metrics have a listener of their own",
            manager.service_addr
        ),
    );
    if manager.ssl_enabled {
        for (key, value) in [
            ("ssl-cert", &manager.ssl_cert),
            ("ssl-privkey", &manager.ssl_privkey),
        ] {
            require(
                value.is_some(),
                &["manager", key],
                "is required when ssl-enabled is true".to_owned(),
            );
        }
    }

    let logging = &config.logging;
    for driver in &logging.drivers {
        let (name, present) = match driver {
            LogDriver::Console => ("console", true),
            LogDriver::File => ("file", logging.file.is_some()),
            LogDriver::Logstash => ("logstash", logging.logstash.is_some()),
            LogDriver::Graylog => ("graylog", logging.graylog.is_some()),
        };
        require(
            present,
            &["logging", "drivers"],
            format!("the {name} driver is enabled but there is no [logging.{name}] section"),
        );
    }
    if let Some(file) = &logging.file {
        require(
            (1..=100).contains(&file.backup_count),
            &["logging", "file", "backup-count"],
            format!("must be between 1 and 100, found {}", file.backup_count),
        );
        require(
            !file.filename.is_empty(),
            &["logging", "file", "filename"],
            "must not be empty".to_owned(),
        );
    }
    if let Some(graylog) = &logging.graylog {
        require(
            (1024..=65535).contains(&graylog.port),
            &["logging", "graylog", "port"],
            format!("must be between 1024 and 65535, found {}", graylog.port),
        );
    }

    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if usize::try_from(manager.num_proc).is_ok_and(|n| n > cpus) {
        warnings.push(sources.problem(
            KeyPath::new(["manager", "num-proc"]),
            format!(
                "{} worker processes on a machine with {cpus} CPUs; they will compete for the CPUs",
                manager.num_proc
            ),
        ));
    }
    (errors, warnings)
}

/// Files the configuration names that must exist on this machine, resolved against `cwd`.
pub(crate) fn check_files(config: &ManagerConfig, sources: &Sources, cwd: &Path) -> Vec<Problem> {
    let manager = &config.manager;
    let mut problems = Vec::new();
    let keypair = &manager.rpc_auth_manager_keypair;
    if !cwd.join(keypair).is_file() {
        problems.push(sources.problem(
            KeyPath::new(["manager", "rpc-auth-manager-keypair"]),
            format!(
                "{} is not a file (relative paths start at {}); create a keypair with \
                 `manager-cli generate-rpc-keypair DIR NAME` and point this key at DIR/NAME.key_secret",
                keypair.display(),
                cwd.display()
            ),
        ));
    }
    for (key, value) in [
        ("ssl-cert", &manager.ssl_cert),
        ("ssl-privkey", &manager.ssl_privkey),
    ] {
        if let Some(path) = value.as_ref().filter(|path| !cwd.join(path).is_file()) {
            problems.push(sources.problem(
                KeyPath::new(["manager", key]),
                format!("{} is not a file", path.display()),
            ));
        }
    }
    problems
}

fn at_least(minimum: i64, found: i64) -> String {
    format!("must be at least {minimum}, found {found}")
}

/// The reference's database-name rule: `^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`, 2 to 64 long.
fn is_slug(name: &str) -> bool {
    let inner_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(inner_ok)
}

#[cfg(test)]
mod tests {
    use super::is_slug;

    #[test]
    fn slugs_follow_the_reference_rule() {
        for good in ["backend", "b2", "my_db-1.test"] {
            assert!(is_slug(good), "{good}");
        }
        for bad in ["b", "-backend", "backend-", "bad name!", &"x".repeat(65)] {
            assert!(!is_slug(bad), "{bad}");
        }
    }
}
