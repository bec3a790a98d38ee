//! manager-cli as an operator runs it: the real binary, real files, exit codes and output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const HALFSTACK_TOML: &str = include_str!("../../../../configs/manager/halfstack.toml");

fn manager_cli(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manager-cli"))
        .args(args)
        .current_dir(cwd)
        .env_remove("BACKEND_CONFIG_FILE")
        .env("HOME", cwd)
        .output()
        .expect("manager-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn generate_rpc_keypair_prints_the_install_guide_lines_and_writes_private_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("fixtures")).expect("mkdir");
    let output = manager_cli(dir.path(), &["generate-rpc-keypair", "fixtures", "manager"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let public = lines[0].strip_prefix("Public Key: ").expect("public line");
    let secret = lines[1].strip_prefix("Secret Key: ").expect("secret line");
    assert!(
        public.ends_with(" (stored at fixtures/manager.key)"),
        "{public}"
    );
    assert!(
        secret.ends_with(" (stored at fixtures/manager.key_secret)"),
        "{secret}"
    );
    assert_eq!(public.split(' ').next().map(str::len), Some(40));
    assert_eq!(mode(&dir.path().join("fixtures/manager.key")), 0o644);
    assert_eq!(mode(&dir.path().join("fixtures/manager.key_secret")), 0o600);

    let certificate =
        bai_rpc_keys::load_certificate(&dir.path().join("fixtures/manager.key_secret"))
            .expect("loads back");
    assert_eq!(
        Some(certificate.public.to_z85().as_str()),
        public.split(' ').next()
    );
}

#[test]
fn generate_rpc_keypair_never_overwrites_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = manager_cli(dir.path(), &["generate-rpc-keypair", ".", "manager"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let secret_path = dir.path().join("manager.key_secret");
    let before = std::fs::read(&secret_path).expect("read");

    let again = manager_cli(dir.path(), &["generate-rpc-keypair", ".", "manager"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("./manager.key already exists; pass --force to replace it"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&secret_path).expect("read"), before);

    let forced = manager_cli(
        dir.path(),
        &["generate-rpc-keypair", ".", "manager", "--force"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(&secret_path).expect("read"), before);
    assert_eq!(mode(&secret_path), 0o600);
}

#[test]
fn generate_rpc_keypair_into_a_missing_directory_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = manager_cli(dir.path(), &["generate-rpc-keypair", "nowhere", "manager"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).lines().last(),
        Some("error: nowhere: not an existing directory (create it first)")
    );
}

#[test]
fn config_check_accepts_the_halfstack_config_once_the_keypair_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("manager.toml"), HALFSTACK_TOML).expect("write");

    let missing = manager_cli(dir.path(), &["config", "check"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains(
            "manager.toml: [manager] rpc-auth-manager-keypair: fixtures/manager/manager.key_secret is not a file"
        ),
        "{}",
        stderr(&missing)
    );

    std::fs::create_dir_all(dir.path().join("fixtures/manager")).expect("mkdir");
    let keys = manager_cli(
        dir.path(),
        &["generate-rpc-keypair", "fixtures/manager", "manager"],
    );
    assert!(keys.status.success(), "{}", stderr(&keys));
    let checked = manager_cli(dir.path(), &["config", "check"]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert_eq!(
        stdout(&checked),
        format!("{}: OK\n", dir.path().join("manager.toml").display())
    );
}

#[test]
fn config_check_prints_the_problem_on_stderr_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = HALFSTACK_TOML
        .replace("num-proc = 2", "num-proc = 0")
        .replace("port = 8100", "port = 99999");
    std::fs::write(dir.path().join("broken.toml"), broken).expect("write");
    let output = manager_cli(dir.path(), &["-f", "broken.toml", "config", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "broken.toml: [db] addr: port number must be between 1 and 65535, found 99999\n"
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn config_check_without_any_config_file_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = manager_cli(dir.path(), &["config", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!(
            "no manager.toml found; looked at: {}/manager.toml",
            std::fs::canonicalize(dir.path())
                .expect("canonical")
                .display()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_show_prints_the_resolved_config_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("manager.toml"), HALFSTACK_TOML).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_manager-cli"))
        .args(["config", "show"])
        .current_dir(dir.path())
        .env("BACKEND_DB_ADDR", "db.internal:6432")
        .env_remove("BACKEND_CONFIG_FILE")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = stdout(&output);
    assert!(shown.starts_with("# "), "{shown}");
    assert!(shown.contains("addr = \"db.internal:6432\""), "{shown}");
    assert!(shown.contains("password = \"********\""), "{shown}");
    assert!(!shown.contains("develove"), "{shown}");
    assert!(shown.contains("pool-recycle = 50.0"), "{shown}");
}

#[test]
fn config_check_rejects_a_keypair_file_that_is_not_a_secret_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("manager.toml"), HALFSTACK_TOML).expect("write");
    std::fs::create_dir_all(dir.path().join("fixtures/manager")).expect("mkdir");
    let keys = manager_cli(
        dir.path(),
        &["generate-rpc-keypair", "fixtures/manager", "manager"],
    );
    assert!(keys.status.success(), "{}", stderr(&keys));
    std::fs::copy(
        dir.path().join("fixtures/manager/manager.key"),
        dir.path().join("fixtures/manager/manager.key_secret"),
    )
    .expect("copy the public certificate over the secret one");
    let output = manager_cli(dir.path(), &["config", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("manager.toml: [manager] rpc-auth-manager-keypair: ")
            && stderr(&output).contains("secret-key"),
        "{}",
        stderr(&output)
    );
}
