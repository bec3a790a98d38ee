//! What the scanner's tests run against besides the registries and images of
//! `bai_registry_scanner::testing`: the halfstack's PostgreSQL, registries with htpasswd and token
//! authentication (with an in-test token server), and a tiny HTTP server for the Harbor API
//! (Harbor itself cannot run here).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bai_db_models::testing::TestDatabase;
use bai_etcd_store::shared_config::ContainerRegistry;
use bai_registry_scanner::testing::RegistryProcess;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use indexmap::IndexMap;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A database with the 24.03 schema, for one test.
pub async fn database(label: &str) -> TestDatabase {
    TestDatabase::with_schema(label).await
}

/// The registry map a scan takes, with one registry.
pub fn registries(name: &str, registry: ContainerRegistry) -> IndexMap<String, ContainerRegistry> {
    IndexMap::from([(name.to_owned(), registry)])
}

/// A registry accepting only `user` with `password` (`auth: htpasswd`, bcrypt), with the file it
/// reads.
pub struct HtpasswdRegistry {
    pub registry: RegistryProcess,
    _files: tempfile::TempDir,
}

impl HtpasswdRegistry {
    pub fn spawn(user: &str, password: &str) -> HtpasswdRegistry {
        let files = tempfile::tempdir().expect("htpasswd dir");
        let path = files.path().join("htpasswd");
        let line = format!("{user}:{}\n", bcrypt::hash(password, 4).expect("bcrypt"));
        std::fs::write(&path, line).expect("htpasswd file");
        let registry = RegistryProcess::spawn_with_auth(&format!(
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}",
            path.display()
        ));
        HtpasswdRegistry {
            registry,
            _files: files,
        }
    }
}

/// A registry in `auth: token` mode trusting `tokens`.
pub fn token_registry(tokens: &TokenServer) -> RegistryProcess {
    RegistryProcess::spawn_with_auth(&format!(
        "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}",
        tokens.realm(),
        tokens.certificate.display()
    ))
}

/// A `docker` registry entry for `url`, with credentials when given.
pub fn docker_registry(url: &str, credentials: Option<(&str, &str)>) -> ContainerRegistry {
    ContainerRegistry {
        url: url.to_owned(),
        kind: "docker".to_owned(),
        username: credentials.map(|(user, _)| user.to_owned()),
        password: credentials.map(|(_, password)| password.to_owned()),
        projects: Vec::new(),
        ssl_verify: true,
    }
}

/// A request the tiny server received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Path and query as sent.
    pub target: String,
    pub headers: BTreeMap<String, String>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    pub fn query(&self, key: &str) -> Vec<String> {
        let query = self.target.split_once('?').map_or("", |(_, query)| query);
        form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
            .collect()
    }
}

/// What the tiny server answers.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
        }
    }
}

/// A one-request-per-connection HTTP/1.1 server for GET requests, answering with `handler`; it
/// stops when dropped.
pub struct TinyServer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl TinyServer {
    pub async fn start(
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let handler = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut lines = text.split("\r\n");
                    // `GET <target> HTTP/1.1`: the target is the second word.
                    let target = lines.next().unwrap_or_default().split(' ').nth(1);
                    let request = Request {
                        target: target.unwrap_or_default().to_owned(),
                        headers: lines
                            .filter_map(|line| line.split_once(':'))
                            .map(|(name, value)| {
                                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
                            })
                            .collect(),
                    };
                    seen.lock().unwrap().push(request.clone());
                    let response = handler(&request);
                    let mut out = format!("HTTP/1.1 {} X\r\n", response.status);
                    for (name, value) in &response.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    out.push_str(&format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n",
                        response.body.len()
                    ));
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&response.body);
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TinyServer {
            url: format!("http://{addr}"),
            task,
            requests,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const TOKEN_SERVICE: &str = "test-registry";
pub const TOKEN_ISSUER: &str = "test-token-issuer";

/// A token server for a registry in `auth: token` mode: issues ES256 JWTs whose `x5c` header holds
/// its self-signed certificate (which the registry trusts through `rootcertbundle`), for the scopes
/// asked, to clients with the right Basic credentials (or to anyone when `credentials` is `None`).
pub struct TokenServer {
    pub server: TinyServer,
    pub certificate: PathBuf,
    pub issued: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    pub async fn start(credentials: Option<(&str, &str)>) -> TokenServer {
        let dir = tempfile::tempdir().expect("token dir");
        let certified = rcgen::generate_simple_self_signed(vec!["token-server".to_owned()])
            .expect("certificate");
        let certificate = dir.path().join("token.crt");
        std::fs::write(&certificate, certified.cert.pem()).expect("certificate file");
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.signing_key.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("signing key");
        let x5c = BASE64.encode(certified.cert.der());
        let expected = credentials.map(|(user, password)| {
            format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{password}").as_bytes())
            )
        });
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&issued);
        let server = TinyServer::start(move |request| {
            if let Some(expected) = &expected
                && request.headers.get("authorization") != Some(expected)
            {
                return Response::json(401, &json!({"details": "wrong credentials"}));
            }
            let access: Vec<Value> = request
                .query("scope")
                .iter()
                .filter_map(|scope| {
                    let mut parts = scope.splitn(3, ':');
                    let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                })
                .collect();
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
            let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [x5c]});
            let claims = json!({
                "iss": TOKEN_ISSUER, "sub": "scanner", "aud": TOKEN_SERVICE,
                "exp": now + 300, "nbf": now - 10, "iat": now,
                "jti": format!("{now}-{}", counter.load(Ordering::SeqCst)),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                BASE64URL_NOPAD.encode(&serde_json::to_vec(&header).unwrap()),
                BASE64URL_NOPAD.encode(&serde_json::to_vec(&claims).unwrap())
            );
            let signature = key
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("sign");
            counter.fetch_add(1, Ordering::SeqCst);
            let token = format!("{signing_input}.{}", BASE64URL_NOPAD.encode(signature.as_ref()));
            Response::json(200, &json!({"token": token, "expires_in": 300}))
        })
        .await;
        TokenServer {
            server,
            certificate,
            issued,
            _dir: dir,
        }
    }

    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url)
    }
}

/// An empty registry serving HTTPS with a self-signed certificate (which no trust store holds);
/// killed when dropped.
pub struct TlsRegistry {
    pub url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl TlsRegistry {
    pub async fn spawn() -> TlsRegistry {
        let dir = tempfile::tempdir().expect("registry dir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, certified.cert.pem()).expect("certificate file");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("storage").display(),
                cert.display(),
                key.display()
            ),
        )
        .expect("registry config");
        let child = std::process::Command::new(RegistryProcess::BINARY)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        // Owned at once, so that a registry that never answers is still killed (by drop).
        let registry = TlsRegistry {
            url: format!("https://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return registry;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("docker-registry with TLS did not listen on port {port} within 15 s");
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
