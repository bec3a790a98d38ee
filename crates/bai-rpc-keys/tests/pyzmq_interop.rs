//! Certificate files against the real pyzmq 26.2 from PyPI, in the venv of `cargo xtask venv`.

use std::fs;
use std::path::Path;
use std::process::Command;

use bai_rpc_keys::{CurveKeypair, Overwrite, load_certificate, write_certificates};
use tempfile::TempDir;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venvs/py312/bin/python");

/// Prints the two keys `zmq.auth.load_certificate` finds in a file, one per line.
const LOAD: &str = "
import sys, zmq.auth
public, secret = zmq.auth.load_certificate(sys.argv[1])
print(public.decode())
print(secret.decode() if secret is not None else None)
";

/// Runs `script` with pyzmq's Python and returns what it printed.
fn python(script: &str, args: &[&Path]) -> String {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run `cargo xtask venv` to create .venvs/py312 with pyzmq"
    );
    let output = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The file's text with the time in the `Generated on` line replaced by `<ts>`.
fn mask_timestamp(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let start = first.find("Generated on ").unwrap() + "Generated on ".len();
    let end = first.find(" by pyzmq").unwrap();
    let timestamp = &first[start..end];
    assert!(
        timestamp.len() == 19 || timestamp.len() == 26,
        "unexpected timestamp {timestamp:?}"
    );
    format!("{}<ts>{}\n{rest}", &first[..start], &first[end..])
}

#[test]
fn pyzmq_loads_our_certificates() {
    let dir = TempDir::new().unwrap();
    let keypair = CurveKeypair::generate().unwrap();
    let paths = write_certificates(dir.path(), "manager", &keypair, Overwrite::Refuse).unwrap();
    let public = keypair.public_key().to_z85();
    let secret = keypair.secret_key().to_z85();

    assert_eq!(python(LOAD, &[&paths.public]), format!("{public}\nNone\n"));
    assert_eq!(
        python(LOAD, &[&paths.secret]),
        format!("{public}\n{secret}\n")
    );
}

#[test]
fn we_load_pyzmqs_certificates() {
    let dir = TempDir::new().unwrap();
    let script = "
import sys, zmq.auth
public_file, secret_file = zmq.auth.create_certificates(sys.argv[1], 'agent')
public, secret = zmq.auth.load_certificate(secret_file)
print(public.decode())
print(secret.decode())
";
    let printed = python(script, &[dir.path()]);
    let (public, secret) = printed.trim_end().split_once('\n').unwrap();

    let public_certificate = load_certificate(&dir.path().join("agent.key")).unwrap();
    assert_eq!(public_certificate.public.to_z85(), public);
    assert!(public_certificate.secret.is_none());

    // load_certificate checks that the public key derives from the secret key.
    let secret_certificate = load_certificate(&dir.path().join("agent.key_secret")).unwrap();
    assert_eq!(secret_certificate.public.to_z85(), public);
    let secret_key = secret_certificate.secret.unwrap();
    assert_eq!(secret_key.to_z85(), secret);
    assert_eq!(secret_key.public_key().to_z85(), public);
}

#[test]
fn our_files_equal_pyzmqs_except_for_the_time() {
    let theirs = TempDir::new().unwrap();
    python(
        "import sys, zmq.auth; zmq.auth.create_certificates(sys.argv[1], 'node')",
        &[theirs.path()],
    );
    let secret = load_certificate(&theirs.path().join("node.key_secret"))
        .unwrap()
        .secret
        .unwrap();

    let ours = TempDir::new().unwrap();
    let keypair = CurveKeypair::from_secret(*secret.as_bytes());
    write_certificates(ours.path(), "node", &keypair, Overwrite::Refuse).unwrap();

    for file in ["node.key", "node.key_secret"] {
        assert_eq!(
            mask_timestamp(&ours.path().join(file)),
            mask_timestamp(&theirs.path().join(file)),
            "{file}"
        );
    }
}
