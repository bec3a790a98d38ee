//! manager.toml as operators write it: the reference's own sample files load, and each kind of mistake
//! gets one exact message naming the file or variable, the key and what was expected.

use std::path::{Path, PathBuf};

use bai_config::{
    BinarySize, ConfigError, DistributedLock, Environment, HostPort, LoadOptions, LoadedConfig,
    LogDriver, LogLevel, load_from_str,
};

const REFERENCE_SAMPLE: &str = include_str!("reference/sample.toml");
const REFERENCE_HALFSTACK: &str = include_str!("reference/halfstack.toml");
const OUR_HALFSTACK: &str = include_str!("../../../configs/manager/halfstack.toml");
const OUR_SAMPLE: &str = include_str!("../../../configs/manager/sample.toml");

/// The smallest configuration the schema accepts; cases below add or break one thing.
const MINIMAL: &str = r#"
[etcd]
namespace = "local"

[db]
addr = "localhost:8100"
name = "backend"
user = "postgres"
password = "develove"
"#;

fn environment() -> Environment {
    Environment::in_dir("/nonexistent-cwd")
}

fn load_with(text: &str, env: &Environment) -> Result<LoadedConfig, ConfigError> {
    load_from_str(
        text,
        Path::new("manager.toml"),
        &LoadOptions::default(),
        env,
    )
}

fn load(text: &str) -> LoadedConfig {
    load_with(text, &environment()).unwrap_or_else(|error| panic!("should load, got:\n{error}"))
}

/// Loading `text` fails with exactly `expected` (one line per problem).
#[track_caller]
fn check_error(text: &str, expected: &str) {
    check_error_in(text, &environment(), expected);
}

#[track_caller]
fn check_error_in(text: &str, env: &Environment, expected: &str) {
    match load_with(text, env) {
        Ok(loaded) => panic!(
            "should fail with {expected:?}, but loaded {:?}",
            loaded.config
        ),
        Err(error) => assert_eq!(error.to_string(), expected),
    }
}

fn warnings(loaded: &LoadedConfig) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn reference_sample_toml_loads_with_its_values() {
    let loaded = load(REFERENCE_SAMPLE);
    let config = &loaded.config;
    assert_eq!(config.etcd.addr, HostPort::new("127.0.0.1", 2379));
    assert_eq!(config.etcd.user, "manager");
    assert_eq!(config.db.pool_size, 8);
    assert_eq!(config.manager.num_proc, 4);
    assert_eq!(config.manager.secret.as_deref(), Some("XXXXXXXXXXXXXX"));
    assert_eq!(config.manager.service_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(config.manager.distributed_lock, DistributedLock::PgAdvisory);
    assert!(!config.docker_registry.ssl_verify);
    assert_eq!(
        config.logging.drivers,
        [LogDriver::Console, LogDriver::File]
    );
    let file = config
        .logging
        .file
        .as_ref()
        .expect("the sample has [logging.file]");
    assert_eq!(file.rotation_size, BinarySize(10 * 1024 * 1024));
    assert_eq!(file.backup_count, 5);
    assert_eq!(config.logging.pkg_ns.get(""), Some(&LogLevel::Warning));
    assert_eq!(config.logging.graylog.as_ref().map(|g| g.port), Some(12201));
}

#[test]
fn reference_halfstack_toml_loads_with_the_halfstack_ports() {
    let config = load(REFERENCE_HALFSTACK).config;
    assert_eq!(config.etcd.addr, HostPort::new("127.0.0.1", 8120));
    assert_eq!(config.db.addr, HostPort::new("localhost", 8100));
    assert_eq!(config.db.pool_recycle, 50.0);
    assert_eq!(config.manager.pid_file, PathBuf::from("./manager.pid"));
    assert!(config.manager.hide_agents);
}

#[test]
fn our_halfstack_toml_matches_the_reference_one_where_it_matters() {
    let ours = load(OUR_HALFSTACK);
    let reference = load(REFERENCE_HALFSTACK).config;
    assert!(warnings(&ours).is_empty(), "{:?}", warnings(&ours));
    let ours = ours.config;
    assert_eq!(ours.etcd, reference.etcd);
    assert_eq!(ours.db, reference.db);
    assert_eq!(ours.manager.service_addr, reference.manager.service_addr);
}

#[test]
fn our_sample_toml_loads_and_so_does_every_key_it_comments_out() {
    // A machine with fewer CPUs than the sample's num-proc warns about it; nothing else may.
    let unexpected = |loaded: &LoadedConfig| -> Vec<String> {
        warnings(loaded)
            .into_iter()
            .filter(|warning| !warning.contains("[manager] num-proc"))
            .collect()
    };
    let loaded = load(OUR_SAMPLE);
    assert!(unexpected(&loaded).is_empty(), "{:?}", unexpected(&loaded));
    assert_eq!(
        loaded.config.logging.drivers,
        [LogDriver::Console, LogDriver::File]
    );
    assert_eq!(
        loaded.config.manager.pid_file,
        PathBuf::from("./manager.pid")
    );

    // `# key = value` lines are the optional keys with their defaults or an example value.
    let uncommented: String = OUR_SAMPLE
        .lines()
        .map(|line| {
            let key = line.strip_prefix("# ").unwrap_or("");
            let is_setting = key.split_once(" = ").is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            });
            if is_setting { key } else { line }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(uncommented, OUR_SAMPLE);
    let loaded = load(&uncommented);
    assert!(unexpected(&loaded).is_empty(), "{:?}", unexpected(&loaded));
    assert_eq!(loaded.config.etcd.addrs.len(), 3);
    assert_eq!(loaded.config.db.lock_conn_timeout, 0.0);
    assert_eq!(
        loaded.config.manager.aiomonitor_webui_port,
        load(MINIMAL).config.manager.aiomonitor_webui_port
    );
}

#[test]
fn defaults_fill_everything_left_out() {
    let config = load(MINIMAL).config;
    assert_eq!(config.etcd.addr.to_string(), "127.0.0.1:2379");
    assert_eq!(config.db.pool_size, 8);
    assert_eq!(config.db.max_overflow, 64);
    assert_eq!(config.db.pool_recycle, -1.0);
    assert_eq!(config.manager.service_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(
        config.manager.rpc_auth_manager_keypair,
        PathBuf::from("fixtures/manager/manager.key_secret")
    );
    assert_eq!(config.manager.pid_file, PathBuf::from("/dev/null"));
    assert_eq!(config.manager.heartbeat_timeout, 40.0);
    assert!(config.manager.id.starts_with("i-"));
    assert_eq!(config.manager.aiomonitor_termui_port, 48100);
    assert!(config.docker_registry.ssl_verify);
    assert_eq!(config.logging.level, LogLevel::Info);
    assert_eq!(config.logging.drivers, [LogDriver::Console]);
}

#[test]
fn addresses_take_all_three_forms() {
    for form in [
        r#""db.example:5433""#,
        r#"["db.example", 5433]"#,
        r#"{ host = "db.example", port = 5433 }"#,
        r#"{ host = "db.example", port = "5433" }"#,
    ] {
        let text = MINIMAL.replace(r#"addr = "localhost:8100""#, &format!("addr = {form}"));
        assert_eq!(
            load(&text).config.db.addr,
            HostPort::new("db.example", 5433),
            "{form}"
        );
    }
}

#[test]
fn snake_case_spellings_are_accepted_as_aliases() {
    let config = load(&format!(
        "{MINIMAL}pool_size = 3\n[manager]\nnum_proc = 1\naiomonitor-port = 4000\n"
    ))
    .config;
    assert_eq!(config.db.pool_size, 3);
    assert_eq!(config.manager.num_proc, 1);
    assert_eq!(config.manager.aiomonitor_termui_port, 4000);
}

#[test]
fn lenient_numbers_and_booleans_accept_strings() {
    let config = load(&format!(
        "{MINIMAL}pool-size = \"12\"\npool-pre-ping = \"yes\"\n[manager]\nheartbeat-timeout = \"5.5\"\nssl-enabled = \"off\"\n"
    ))
    .config;
    assert_eq!(config.db.pool_size, 12);
    assert!(config.db.pool_pre_ping);
    assert_eq!(config.manager.heartbeat_timeout, 5.5);
    assert!(!config.manager.ssl_enabled);
}

#[test]
fn a_password_that_is_not_a_string() {
    check_error(
        &MINIMAL.replace(r#"password = "develove""#, "password = 5"),
        "manager.toml: [db] password: expected a string, found integer 5",
    );
}

#[test]
fn an_unknown_key_in_db_is_an_error() {
    check_error(
        &format!("{MINIMAL}foo = 1\n"),
        "manager.toml: [db] foo: unknown key (this section allows only: type, addr, name, user, password, \
         pool-size, pool-recycle, pool-pre-ping, max-overflow, lock-conn-timeout)",
    );
}

#[test]
fn unknown_keys_elsewhere_are_warnings() {
    let loaded = load(&format!(
        "{MINIMAL}[manager]\nnum-procs = 2\n[tracing]\nenabled = true\n"
    ));
    assert_eq!(
        warnings(&loaded),
        [
            "manager.toml: [manager] num-procs: unknown key, ignored",
            "manager.toml: tracing: unknown key, ignored",
        ]
    );
}

#[test]
fn zero_worker_processes() {
    check_error(
        &format!("{MINIMAL}[manager]\nnum-proc = 0\n"),
        "manager.toml: [manager] num-proc: must be at least 1, found 0",
    );
}

#[test]
fn a_port_out_of_range() {
    check_error(
        &MINIMAL.replace("localhost:8100", "localhost:99999"),
        "manager.toml: [db] addr: port number must be between 1 and 65535, found 99999",
    );
}

#[test]
fn an_address_that_is_a_bare_number() {
    check_error(
        &format!("{MINIMAL}[manager]\nservice-addr = 8080\n"),
        "manager.toml: [manager] service-addr: expected \"host:port\", [host, port] or { host = ..., port = ... }, \
         found integer 8080",
    );
}

#[test]
fn a_database_name_that_is_not_a_slug() {
    check_error(
        &MINIMAL.replace(r#"name = "backend""#, r#"name = "bad name!""#),
        "manager.toml: [db] name: \"bad name!\" is not a valid database name (2 to 64 letters, digits, '.', '_' \
         or '-', starting and ending with a letter or digit)",
    );
}

#[test]
fn an_unknown_log_level() {
    check_error(
        &format!("{MINIMAL}[logging]\nlevel = \"LOUD\"\n"),
        "manager.toml: [logging] level: unknown log level \"LOUD\", expected one of: DEBUG, INFO, WARNING, ERROR, \
         CRITICAL, NOTSET",
    );
}

#[test]
fn a_required_key_left_out() {
    check_error(
        &MINIMAL.replace(r#"namespace = "local""#, ""),
        "manager.toml: [etcd] namespace: is required",
    );
}

#[test]
fn a_toml_syntax_error_names_line_and_column() {
    check_error(
        &format!("{MINIMAL}[manager]\nnum-proc = = 2\n"),
        "manager.toml: line 11, column 12: invalid TOML: extra `=`, expected nothing",
    );
}

#[test]
fn a_bad_binary_size() {
    check_error(
        &format!(
            "{MINIMAL}[logging.file]\npath = \"./logs\"\nfilename = \"m.log\"\nrotation-size = \"10Q\"\n"
        ),
        "manager.toml: [logging.file] rotation-size: \"10Q\" is not a size (examples: 1048576, \"512K\", \"10M\", \
         \"1.5G\")",
    );
}

#[test]
fn a_log_driver_without_its_section() {
    check_error(
        &format!("{MINIMAL}[logging]\ndrivers = [\"console\", \"graylog\"]\n"),
        "manager.toml: [logging] drivers: the graylog driver is enabled but there is no [logging.graylog] section",
    );
}

#[test]
fn metrics_default_to_loopback_and_need_their_own_address() {
    let config = load(MINIMAL).config;
    assert!(config.manager.metrics_enabled);
    assert_eq!(config.manager.metrics_addr.to_string(), "127.0.0.1:9464");
    let opened = load(&format!(
        "{MINIMAL}[manager]\nmetrics-enabled = false\nmetrics-addr = \"0.0.0.0:9100\"\n"
    ))
    .config;
    assert!(!opened.manager.metrics_enabled);
    assert_eq!(opened.manager.metrics_addr.to_string(), "0.0.0.0:9100");
    check_error(
        &format!("{MINIMAL}[manager]\nservice-addr = \"127.0.0.1:9464\"\n"),
        "manager.toml: [manager] metrics-addr: must differ from service-addr (127.0.0.1:9464): \
         metrics have a listener of their own",
    );
}

#[test]
fn connection_limits_have_defaults_and_are_checked() {
    let manager = load(MINIMAL).config.manager;
    assert_eq!(manager.client_max_size.bytes(), 1024 * 1024);
    assert!((manager.keepalive_timeout - 30.0).abs() < f64::EPSILON);
    assert!((manager.header_read_timeout - 10.0).abs() < f64::EPSILON);
    assert_eq!(manager.max_connections_per_worker, 16_384);
    let set = load(&format!(
        "{MINIMAL}[manager]\nclient-max-size = \"4m\"\nkeepalive-timeout = 5\n\
         header-read-timeout = 2.5\nmax-connections-per-worker = 100\n"
    ))
    .config
    .manager;
    assert_eq!(set.client_max_size.bytes(), 4 * 1024 * 1024);
    assert!((set.keepalive_timeout - 5.0).abs() < f64::EPSILON);
    assert!((set.header_read_timeout - 2.5).abs() < f64::EPSILON);
    assert_eq!(set.max_connections_per_worker, 100);
    check_error(
        &format!("{MINIMAL}[manager]\nkeepalive-timeout = 0\n"),
        "manager.toml: [manager] keepalive-timeout: must be a number of seconds above 0 and at \
         most 86400, found 0",
    );
    check_error(
        &format!("{MINIMAL}[manager]\nmax-connections-per-worker = 0\n"),
        "manager.toml: [manager] max-connections-per-worker: must be at least 1, found 0",
    );
}

#[test]
fn an_unknown_distributed_lock() {
    check_error(
        &format!("{MINIMAL}[manager]\ndistributed-lock = \"zookeeper\"\n"),
        "manager.toml: [manager] distributed-lock: unknown value \"zookeeper\", expected one of: filelock, \
         pg_advisory, redlock, etcd, etcetra",
    );
}

#[test]
fn a_key_given_in_both_spellings() {
    check_error(
        &format!("{MINIMAL}pool-size = 3\npool_size = 4\n"),
        "manager.toml: [db] pool-size: given twice (as the dash-case and the snake_case spelling)",
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    check_error(
        &format!(
            "{MINIMAL}pool-size = 0\n[manager]\nnum-proc = -1\nheartbeat-timeout = 0.5\nssl-enabled = true\n"
        ),
        "manager.toml: [db] pool-size: must be at least 1, found 0\n\
         manager.toml: [manager] num-proc: must be at least 1, found -1\n\
         manager.toml: [manager] heartbeat-timeout: must be at least 1.0 seconds, found 0.5\n\
         manager.toml: [manager] ssl-cert: is required when ssl-enabled is true\n\
         manager.toml: [manager] ssl-privkey: is required when ssl-enabled is true",
    );
}

#[test]
fn environment_variables_override_the_file() {
    let env = environment()
        .with_var("BACKEND_DB_ADDR", "db.internal:6432")
        .with_var("BACKEND_DB_PASSWORD", "12345")
        .with_var("BACKEND_MANAGER_NPROC", "2")
        .with_var("BACKEND_NAMESPACE", "prod")
        .with_var("BACKEND_SKIP_SSLCERT_VALIDATION", "true");
    let config = load_with(MINIMAL, &env).expect("loads").config;
    assert_eq!(config.db.addr, HostPort::new("db.internal", 6432));
    assert_eq!(config.db.password, "12345");
    assert_eq!(config.manager.num_proc, 2);
    assert_eq!(config.etcd.namespace, "prod");
    assert!(
        !config.docker_registry.ssl_verify,
        "skipping validation means not verifying"
    );
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    check_error_in(
        MINIMAL,
        &environment().with_var("BACKEND_DB_ADDR", "db.internal"),
        "environment variable BACKEND_DB_ADDR: [db] addr: expected \"host:port\", found \"db.internal\"",
    );
    check_error_in(
        MINIMAL,
        &environment().with_var("BACKEND_MANAGER_NPROC", "many"),
        "environment variable BACKEND_MANAGER_NPROC: [manager] num-proc: expected an integer, found string \"many\"",
    );
}

#[test]
fn the_log_level_option_overrides_the_file_only_when_given() {
    let text = format!(
        "{MINIMAL}[logging]\nlevel = \"WARNING\"\n[logging.pkg-ns]\n\"\" = \"ERROR\"\n\"ai.backend\" = \"WARNING\"\n"
    );
    let plain = load_from_str(
        &text,
        Path::new("m.toml"),
        &LoadOptions::default(),
        &environment(),
    )
    .expect("loads");
    assert_eq!(plain.config.logging.level, LogLevel::Warning);
    assert!(!plain.config.debug.enabled);
    let options = LoadOptions {
        log_level: Some(LogLevel::Debug),
        ..LoadOptions::default()
    };
    let debug = load_from_str(&text, Path::new("m.toml"), &options, &environment()).expect("loads");
    assert_eq!(debug.config.logging.level, LogLevel::Debug);
    assert!(debug.config.debug.enabled);
    // Like the reference, the option also sets the levels of `ai.backend` and `aiohttp`, and
    // leaves the other packages as the file says.
    let pkg_ns: Vec<(&str, LogLevel)> = debug
        .config
        .logging
        .pkg_ns
        .iter()
        .map(|(key, level)| (key.as_str(), *level))
        .collect();
    assert_eq!(
        pkg_ns,
        [
            ("", LogLevel::Error),
            ("ai.backend", LogLevel::Debug),
            ("aiohttp", LogLevel::Debug)
        ]
    );
    assert_eq!(plain.config.logging.pkg_ns.len(), 2);
}

#[test]
fn files_the_config_names_are_checked_against_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Environment::in_dir(dir.path());
    let loaded = load_with(MINIMAL, &env).expect("loads");
    let error = loaded.check_files(&env).expect_err("no keypair yet");
    assert_eq!(
        error.to_string(),
        format!(
            "manager.toml: [manager] rpc-auth-manager-keypair: fixtures/manager/manager.key_secret is not a file \
             (relative paths start at {}); create a keypair with `manager-cli generate-rpc-keypair DIR NAME` and \
             point this key at DIR/NAME.key_secret",
            dir.path().display()
        )
    );
    std::fs::create_dir_all(dir.path().join("fixtures/manager")).expect("mkdir");
    std::fs::write(dir.path().join("fixtures/manager/manager.key_secret"), "").expect("write");
    loaded
        .check_files(&env)
        .expect("the keypair file exists now");
}

#[test]
fn discovery_follows_the_reference_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(home.join(".config/backend.ai")).expect("mkdir");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let env = Environment::in_dir(&cwd).with_home(&home);

    let user_file = home.join(".config/backend.ai/manager.toml");
    std::fs::write(&user_file, MINIMAL).expect("write");
    assert_eq!(bai_config::discover(None, &env).expect("found"), user_file);

    let local_file = cwd.join("manager.toml");
    std::fs::write(&local_file, MINIMAL).expect("write");
    assert_eq!(bai_config::discover(None, &env).expect("found"), local_file);

    let env = env.with_var("BACKEND_CONFIG_FILE", "/srv/other.toml");
    assert_eq!(
        bai_config::discover(None, &env).expect("found"),
        PathBuf::from("/srv/other.toml")
    );
    assert_eq!(
        bai_config::discover(Some(Path::new("x.toml")), &env).expect("explicit"),
        PathBuf::from("x.toml")
    );
}

#[test]
fn no_config_file_anywhere_lists_the_places_searched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Environment::in_dir(dir.path()).with_home("/nonexistent-home");
    let error = bai_config::load(&LoadOptions::default(), &env).expect_err("nothing to find");
    assert_eq!(
        error.to_string(),
        format!(
            "no manager.toml found; looked at: {}/manager.toml, /nonexistent-home/.config/backend.ai/manager.toml, \
             /etc/backend.ai/manager.toml",
            dir.path().display()
        )
    );
}

#[test]
fn config_show_masks_secrets() {
    let loaded = load(&format!("{MINIMAL}[manager]\nsecret = \"s3cr3t\"\n"));
    let shown = loaded.to_masked_toml();
    assert!(!shown.contains("develove"), "{shown}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("password = \"********\""), "{shown}");
    assert!(shown.contains("addr = \"localhost:8100\""), "{shown}");
    let reloaded = load(&shown.replace("\"********\"", "\"x\""));
    assert_eq!(reloaded.config.db.addr, loaded.config.db.addr);
}

#[test]
fn etcd_takes_several_endpoints() {
    let single = load(MINIMAL).config;
    assert_eq!(single.etcd.endpoints(), [HostPort::new("127.0.0.1", 2379)]);
    let text = MINIMAL.replace(
        "namespace = \"local\"",
        "namespace = \"local\"\naddrs = [\"etcd1:2379\", { host = \"etcd2\", port = 2379 }]",
    );
    let several = load(&text).config;
    assert_eq!(
        several.etcd.endpoints(),
        [HostPort::new("etcd1", 2379), HostPort::new("etcd2", 2379)]
    );
}
