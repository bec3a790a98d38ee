//! `manager-cli image rescan` against a real `docker-registry` process, the halfstack's etcd (the
//! registry configured under `config/docker/registry/`) and PostgreSQL: the summary it prints and
//! its exit codes.

use std::path::Path;
use std::process::Output;

use crate::support::{manager_cli, manager_cli_command, manager_toml_dir, text};
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{Scope, quote};
use bai_registry_scanner::testing::{
    Breakage, Pusher, RegistryProcess, Shape, TestImage, TestPlatform, kernel_labels,
};

const REGISTRY: &str = "local:5000";

/// A database with the schema, an etcd namespace naming `registry_url` as registry `local:5000`,
/// and a manager.toml in a temporary directory pointing at both.
struct Setup {
    db: TestDatabase,
    _namespace: TestNamespace,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(label: &str, registry_url: &str) -> Setup {
        let db = TestDatabase::with_schema(label).await;
        let namespace = TestNamespace::new(label);
        let store = namespace.store().await;
        let key = format!("config/docker/registry/{}", quote(REGISTRY));
        store
            .put(&key, registry_url, Scope::Global)
            .await
            .expect("registry url");
        store
            .put(&format!("{key}/type"), "docker", Scope::Global)
            .await
            .expect("registry type");
        let dir = manager_toml_dir(&db, &namespace);
        Setup {
            db,
            _namespace: namespace,
            dir,
        }
    }

    fn rescan(&self, args: &[&str]) -> Output {
        manager_cli(self.dir.path(), &[&["image", "rescan"], args].concat())
    }
}

fn image(repository: &str, tag: &str) -> TestImage {
    TestImage::new(
        repository,
        tag,
        Shape::MultiArch,
        vec![
            TestPlatform::linux("amd64", kernel_labels()),
            TestPlatform::linux("arm64", kernel_labels()),
        ],
    )
}

#[tokio::test]
async fn rescan_prints_what_changed_and_exits_1_when_an_image_failed() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    for (repository, tag) in [("stable/python", "3.9"), ("stable/r", "4.3")] {
        pusher.push(&image(repository, tag)).await.expect("push");
    }
    let broken = pusher
        .push(&image("stable/broken", "1.0").broken(Breakage::ConfigNotJson))
        .await
        .expect("push");
    let setup = Setup::new("cli_rescan", &registry.url()).await;

    let first = setup.rescan(&[REGISTRY]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let url = registry.url();
    let broken_config = |index: usize| {
        format!(
            "config blob: GET {url}/v2/stable/broken/blobs/{}: the response is not the JSON expected: expected ident at line 1 column 2",
            broken.platforms[index].config_digest
        )
    };
    assert_eq!(
        text(&first.stdout),
        format!(
            "failed    {REGISTRY}/stable/broken:1.0 (aarch64): {}\n\
             failed    {REGISTRY}/stable/broken:1.0 (x86_64): {}\n\
             added     {REGISTRY}/stable/python:3.9 (aarch64)\n\
             added     {REGISTRY}/stable/python:3.9 (x86_64)\n\
             added     {REGISTRY}/stable/r:4.3 (aarch64)\n\
             added     {REGISTRY}/stable/r:4.3 (x86_64)\n\
             4 added, 0 updated, 0 unchanged, 0 skipped, 2 failed\n",
            broken_config(1),
            broken_config(0)
        )
    );
    // Without a terminal no progress bar, only the scanner's log lines.
    let stderr = text(&first.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert_eq!(
        stderr
            .lines()
            .map(|line| line.split_once(" INFO ").map_or(line, |(_, event)| event))
            .collect::<Vec<_>>(),
        [format!(
            "Scanning kernel images from the registry registry=\"{REGISTRY}\""
        )],
        "{stderr}"
    );

    // One image by reference: nothing failed, exit 0.
    let one = setup.rescan(&[&format!("{REGISTRY}/stable/python:3.9")]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert_eq!(
        text(&one.stdout),
        "0 added, 0 updated, 2 unchanged, 0 skipped, 0 failed\n"
    );

    // Every registry (no argument): the second full scan changes nothing.
    let second = setup.rescan(&[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stdout).ends_with("0 added, 0 updated, 4 unchanged, 0 skipped, 2 failed\n"),
        "{}",
        text(&second.stdout)
    );
    let listed = manager_cli(setup.dir.path(), &["image", "list", "--short"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout).matches(REGISTRY).count(), 4);
    drop(setup.db);
}

#[tokio::test]
async fn unknown_registries_and_unreachable_ones_exit_1() {
    let registry = RegistryProcess::spawn();
    let url = registry.url();
    let setup = Setup::new("cli_rescan_unknown", &url).await;

    let unknown = setup.rescan(&["cr.backend.ai"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        format!(
            "error: unknown registry \"cr.backend.ai\"; the registries in etcd config/docker/registry are: {REGISTRY}\n"
        )
    );

    let empty = setup.rescan(&[REGISTRY]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    assert_eq!(
        text(&empty.stdout),
        "0 added, 0 updated, 0 unchanged, 0 skipped, 0 failed\n"
    );

    drop(registry);
    let down = setup.rescan(&[REGISTRY]);
    assert_eq!(down.status.code(), Some(1));
    let stdout = text(&down.stdout);
    assert!(
        stdout.starts_with(&format!(
            "failed    {REGISTRY}: cannot list the repositories: GET {url}/v2/_catalog?n=100: "
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 added, 0 updated, 0 unchanged, 0 skipped, 1 failed\n"),
        "{stdout}"
    );
}

/// A registry whose certificate a private CA signed, as behind a company CA: with `ssl_verify` on,
/// trusted once the CA is in the system store (`SSL_CERT_FILE` stands in for it, as for OpenSSL),
/// refused while it is not.
#[tokio::test]
async fn a_registry_signed_by_a_ca_of_the_system_store_is_trusted() {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("registry key");
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("registry params")
        .signed_by(&key, &ca)
        .expect("registry certificate");
    // The registry's configuration puts this right after `http: addr:`, so it is `http: tls:`.
    let tls = "  tls:\n    certificate: tls.crt\n    key: tls.key";
    let registry = RegistryProcess::spawn_prepared(tls, |dir| {
        std::fs::write(dir.join("tls.crt"), certificate.pem()).expect("tls.crt");
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("tls.key");
    });
    let url = format!("https://127.0.0.1:{}", registry.port());
    let setup = Setup::new("cli_rescan_private_ca", &url).await;
    let ca_file = setup.dir.path().join("company-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("CA file");
    let rescan = |ca_file: Option<&Path>| {
        let mut command = manager_cli_command(setup.dir.path(), &["image", "rescan", REGISTRY]);
        command
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        if let Some(ca_file) = ca_file {
            command.env("SSL_CERT_FILE", ca_file);
        }
        command.output().expect("manager-cli runs")
    };

    let trusted = rescan(Some(&ca_file));
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted.stdout));
    assert_eq!(
        text(&trusted.stdout),
        "0 added, 0 updated, 0 unchanged, 0 skipped, 0 failed\n"
    );

    let refused = rescan(None);
    assert_eq!(refused.status.code(), Some(1));
    let stdout = text(&refused.stdout);
    assert!(
        stdout.starts_with(&format!(
            "failed    {REGISTRY}: cannot list the repositories: GET {url}/v2/_catalog?n=100: "
        )) && stdout.contains("invalid peer certificate: UnknownIssuer"),
        "{stdout}"
    );
}
