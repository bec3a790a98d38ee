//! The official clients' file commands against our server: `session upload`, `session download`
//! and `session ls` of the 24.3.11 and the 23.9.10 client on a session of agent-sim with the
//! local runner (real files in the kernel's scratch folder), the size limit, paths leaving the
//! kernel's home, and what the real Backend.AI 24.3.11 dummy agent answers, passed through.

use std::fs;
use std::path::Path;

use bai_db_models::entities::kernels;
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::session_support::{
    local_runner_agent, registered_real_agent, running_session, session_row, stack_with_server,
};
use crate::support::{
    ACCESS_KEY, CLIENT_23_09, CLIENT_24_03, Client, SECRET_KEY, Stack, http_client, printed,
};
use bai_api::auth::signature::{SignatureHash, SignedParts};

/// File `path` holds exactly `content`.
#[track_caller]
fn assert_holds(path: &Path, content: &[u8]) {
    let held = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert!(
        held == content,
        "{} holds {:?}, not {:?}",
        path.display(),
        String::from_utf8_lossy(&held),
        String::from_utf8_lossy(content)
    );
}

/// `backend.ai ARGS` that must fail: what it printed.
#[track_caller]
fn cli_failure(client: &Client, stack: &Stack, port: u16, args: &[&str]) -> String {
    let output = client.run(stack, port, "backend.ai", args);
    let said = printed(&output);
    assert!(
        !output.status.success(),
        "backend.ai {} ({}) should fail: {said}",
        args.join(" "),
        client.venv
    );
    said
}

/// A signed `POST path` of the superadmin with `body` of `content_type`, as the clients sign it:
/// the status, the answer's content type and its bytes.
async fn signed_post(
    port: u16,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, Vec<u8>) {
    let raw_date = chrono::Utc::now().to_rfc3339();
    let host = format!("127.0.0.1:{port}");
    let version = "v8.20240315";
    let signature = SignedParts {
        method: "POST",
        raw_path: path,
        raw_date: &raw_date,
        date: chrono::DateTime::parse_from_rfc3339(&raw_date).expect("date"),
        host: &host,
        content_type: Some(content_type),
        version_header_name: "x-backendai-version",
        version,
    }
    .signature(SECRET_KEY, SignatureHash::Sha256);
    let response = http_client()
        .post(format!("http://{host}{path}"))
        .header("Date", &raw_date)
        .header("X-BackendAI-Version", version)
        .header("Content-Type", content_type)
        .header(
            "Authorization",
            format!("BackendAI signMethod=HMAC-SHA256, credential={ACCESS_KEY}:{signature}"),
        )
        .body(body)
        .send()
        .await
        .expect("the request");
    let status = response.status().as_u16();
    let answer_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("the answer").to_vec();
    (status, answer_type, bytes)
}

/// `POST /session/{session}/upload` with one part whose Content-Disposition ends with `filename`
/// as given: the status and the JSON answer.
async fn raw_upload(port: u16, session: &str, filename: &str) -> (u16, serde_json::Value) {
    let boundary = "bai-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"src\"; {filename}\r\n\
         Content-Type: application/octet-stream\r\n\r\nescaped\r\n--{boundary}--\r\n"
    );
    let (status, _, bytes) = signed_post(
        port,
        &format!("/session/{session}/upload"),
        &format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
    .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// The main kernel's id of session `session_id`.
async fn kernel_id(stack: &Stack, session_id: &str) -> Uuid {
    let session = session_row(stack, session_id).await;
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session.id))
        .one(&stack.db.connection)
        .await
        .expect("kernels")
        .expect("the kernel")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_move_files_of_a_session_on_agent_sim_with_the_local_runner() {
    let (stack, mut server, port) = stack_with_server("session_files_sim").await;
    let (agent, runner) = local_runner_agent(&stack, "i-files", None).await;

    let session_id = running_session(&CLIENT_24_03, &stack, port, "filesim");
    let home =
        bai_agent_sim::scratch_folder(&runner, "i-files", kernel_id(&stack, &session_id).await);

    // The clients upload from their working directory (the stack's folder).
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    fs::write(stack.path("hello.txt"), "hello from the client\n").expect("hello.txt");
    fs::write(stack.path("data.bin"), &data).expect("data.bin");
    let said = CLIENT_24_03.cli(
        &stack,
        port,
        &["session", "upload", "filesim", "hello.txt", "data.bin"],
    );
    assert!(said.contains("Uploaded."), "{said}");
    assert_holds(&home.join("hello.txt"), b"hello from the client\n");
    assert_holds(&home.join("data.bin"), &data);
    fs::write(stack.path("old.txt"), "from 23.09\n").expect("old.txt");
    let said = CLIENT_23_09.cli(&stack, port, &["session", "upload", "filesim", "old.txt"]);
    assert!(said.contains("Uploaded."), "{said}");
    assert_holds(&home.join("old.txt"), b"from 23.09\n");

    // ls: the home folder by default (`/home/work`), and a subfolder.
    fs::create_dir_all(home.join("sub")).expect("sub");
    fs::write(home.join("sub/inner.txt"), "inner").expect("inner.txt");
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let listed = client.cli(&stack, port, &["session", "ls", "filesim"]);
        for name in ["hello.txt", "data.bin", "old.txt", "sub"] {
            assert!(listed.contains(name), "{}: {listed}", client.venv);
        }
        assert!(listed.contains("97.7 KiB"), "{}: {listed}", client.venv);
        let inner = client.cli(&stack, port, &["session", "ls", "filesim", "sub"]);
        assert!(inner.contains("inner.txt"), "{}: {inner}", client.venv);
        assert!(!inner.contains("hello.txt"), "{}: {inner}", client.venv);
    }

    // download (24.3.11: POST): the files come back, unpacked from their archives.
    let dest = stack.path("downloaded");
    fs::create_dir_all(&dest).expect("dest");
    let dest_arg = dest.to_string_lossy().into_owned();
    let said = CLIENT_24_03.cli(
        &stack,
        port,
        &[
            "session",
            "download",
            "filesim",
            "hello.txt",
            "data.bin",
            "sub",
            "--dest",
            &dest_arg,
        ],
    );
    assert!(said.contains("Downloaded to"), "{said}");
    assert_holds(&dest.join("hello.txt"), b"hello from the client\n");
    assert_holds(&dest.join("data.bin"), &data);
    assert_holds(&dest.join("sub/inner.txt"), b"inner");
    // The 23.9.10 client downloads with GET, which 24.03 answers 400 `deprecated` (spec §7.4).
    let said = cli_failure(
        &CLIENT_23_09,
        &stack,
        port,
        &[
            "session",
            "download",
            "filesim",
            "hello.txt",
            "--dest",
            &dest_arg,
        ],
    );
    assert!(said.contains("400"), "{said}");
    assert!(said.contains("This API is deprecated."), "{said}");
    assert!(
        said.contains("Use the HTTP POST method to invoke this API"),
        "{said}"
    );

    // The size limit: a file of 1 MiB is refused, and nothing of it is stored.
    fs::write(stack.path("big.bin"), vec![7u8; 1 << 20]).expect("big.bin");
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let said = cli_failure(
            client,
            &stack,
            port,
            &["session", "upload", "filesim", "big.bin"],
        );
        assert!(said.contains("Too large file"), "{}: {said}", client.venv);
        assert!(
            said.contains("each file must be smaller than 1 MiB"),
            "{}: {said}",
            client.venv
        );
    }
    assert!(!home.join("big.bin").exists());

    // A filename that leaves the kernel's home (the official clients percent-encode `/` in
    // filenames, so only a hand-made request sends one): the agent refuses it.
    let (status, answer) = raw_upload(port, "filesim", "filename=\"../escape.txt\"").await;
    assert_eq!(status, 500, "{answer}");
    assert_eq!(
        answer["type"],
        "https://api.backend.ai/probs/kernel-execution-failed"
    );
    let exception = answer["agent-details"]["exception"]
        .as_str()
        .unwrap_or_default();
    assert!(
        exception.starts_with("PermissionError") && exception.contains("outside /home/work"),
        "{answer}"
    );
    assert!(!home.join("../escape.txt").exists());
    // download_single (no client command uses it): the file's bytes; a path out is refused.
    let single = |file: &str| {
        signed_post(
            port,
            "/session/filesim/download_single",
            "application/json",
            serde_json::json!({ "file": file }).to_string().into_bytes(),
        )
    };
    let (status, content_type, bytes) = single("hello.txt").await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(bytes, b"hello from the client\n");
    let (status, _, bytes) = single("/etc/hostname").await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&bytes));
    assert!(
        String::from_utf8_lossy(&bytes).contains("PermissionError"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    // The clients' own spelling of a path stays one file name, as in the reference.
    let (status, answer) = raw_upload(port, "filesim", "filename=\"sub%2Fname.txt\"").await;
    assert_eq!(status, 204, "{answer}");
    assert!(home.join("sub%2Fname.txt").exists());

    // Paths leaving the kernel's home: the agent refuses them, answered as the reference answers
    // an agent's exception (500 `kernel-execution-failed`).
    let said = cli_failure(
        &CLIENT_24_03,
        &stack,
        port,
        &[
            "session",
            "download",
            "filesim",
            "../../etc/passwd",
            "--dest",
            &dest_arg,
        ],
    );
    assert!(said.contains("500"), "{said}");
    assert!(
        said.contains("Executing user code in the kernel has failed."),
        "{said}"
    );
    assert!(!dest.join("passwd").exists());
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let said = cli_failure(client, &stack, port, &["session", "ls", "filesim", "/etc"]);
        assert!(said.contains("500"), "{}: {said}", client.venv);
    }

    agent.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dummy_agents_file_answers_are_passed_through() {
    let (stack, mut server, port) = stack_with_server("session_files_real").await;
    let agent = registered_real_agent(&stack, "i-real-files").await;
    running_session(&CLIENT_24_03, &stack, port, "filesreal");

    // The dummy kernel accepts uploads without storing them.
    fs::write(stack.path("hello.txt"), "hello\n").expect("hello.txt");
    let said = CLIENT_24_03.cli(
        &stack,
        port,
        &["session", "upload", "filesreal", "hello.txt"],
    );
    assert!(said.contains("Uploaded."), "{said}");

    // It lists `{"files": "", ...}` and archives nothing (`b""`): the server answers 200 with
    // that, and the client is the one that cannot read it, at once.
    let said = cli_failure(&CLIENT_24_03, &stack, port, &["session", "ls", "filesreal"]);
    assert!(!said.contains("BackendAPIError"), "{said}");
    let dest = stack.path("downloaded");
    fs::create_dir_all(&dest).expect("dest");
    let said = cli_failure(
        &CLIENT_24_03,
        &stack,
        port,
        &[
            "session",
            "download",
            "filesreal",
            "hello.txt",
            "--dest",
            &dest.to_string_lossy(),
        ],
    );
    assert!(!said.contains("BackendAPIError"), "{said}");
    assert!(
        fs::read_dir(Path::new(&dest))
            .expect("dest")
            .next()
            .is_none()
    );

    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
