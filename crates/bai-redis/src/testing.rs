//! For tests: raw reads and writes of keys, to play the part of agents and other writers (product
//! code never uses these: it goes through the typed methods), and a private Redis server per test
//! ([`PrivateRedis`]) for tests of the event stream, whose key and database are fixed by the
//! protocol and so would be shared by every test on one server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bai_config::HostPort;
use bai_etcd_store::shared_config::{RedisConfig, RedisHelperConfig};
use fred::prelude::{Client, HashesInterface, KeysInterface, SetsInterface};

use crate::{ImageDb, LiveDb, RateLimitDb, RedisDb, RedisError, StatDb, StreamDb};

/// A `redis-server` of one test's own on a free port of 127.0.0.1, without persistence or
/// password; stopped when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Starts one and waits until it accepts connections; panics (naming the package to install)
    /// when it cannot.
    pub fn start() -> PrivateRedis {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(std::env::temp_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian package redis-server) must be installed");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                // Another test's server may have taken the port between the probe above and this
                // one's bind (this one then exits): only ours will do.
                if serves_as(port, child.id()) {
                    return PrivateRedis { child, port };
                }
                if matches!(child.try_wait(), Ok(Some(_))) {
                    // Another process took the port meanwhile: try another.
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    /// What etcd `config/redis` would say about it.
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            addr: Some(HostPort::new("127.0.0.1", self.port)),
            sentinel: None,
            service_name: None,
            password: None,
            helper: RedisHelperConfig {
                socket_timeout: 5.0,
                socket_connect_timeout: 2.0,
                reconnect_poll_timeout: 0.3,
            },
        }
    }

    /// `host:port`, as etcd `config/redis/addr` holds it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Whether the server listening on `port` of 127.0.0.1 is process `pid` (`INFO server`).
fn serves_as(port: u16, pid: u32) -> bool {
    let Ok(mut connection) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = connection.set_read_timeout(Some(Duration::from_secs(2)));
    if connection.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let mut reader = BufReader::new(connection);
    let mut header = String::new();
    if reader.read_line(&mut header).is_err() {
        return false;
    }
    let Some(len) = header
        .strip_prefix('$')
        .and_then(|len| len.trim_end().parse::<usize>().ok())
    else {
        return false;
    };
    let mut info = vec![0; len];
    if reader.read_exact(&mut info).is_err() {
        return false;
    }
    let expect = format!("process_id:{pid}");
    String::from_utf8_lossy(&info)
        .lines()
        .any(|line| line.trim_end() == expect)
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw access to one database.
#[derive(Debug)]
pub struct RawDb {
    client: Client,
    db: RedisDb,
}

impl RawDb {
    /// `SET key value`.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), RedisError> {
        let value: Vec<u8> = value.into();
        self.client
            .set(key, value.as_slice(), None, None, false)
            .await
            .map_err(RedisError::in_db(self.db))
    }

    /// `GET key` as text.
    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisError> {
        self.client
            .get(key)
            .await
            .map_err(RedisError::in_db(self.db))
    }

    /// `HSET key field value ...`.
    pub async fn hset(&self, key: &str, fields: &[(&str, &str)]) -> Result<(), RedisError> {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(field, value)| ((*field).to_owned(), (*value).to_owned()))
            .collect();
        let _: i64 = self
            .client
            .hset(key, fields)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `HGET key field`.
    pub async fn hget(&self, key: &str, field: &str) -> Result<Option<String>, RedisError> {
        self.client
            .hget(key, field)
            .await
            .map_err(RedisError::in_db(self.db))
    }

    /// `SMEMBERS key`, sorted.
    pub async fn smembers(&self, key: &str) -> Result<Vec<String>, RedisError> {
        let mut members: Vec<String> = self
            .client
            .smembers(key)
            .await
            .map_err(RedisError::in_db(self.db))?;
        members.sort();
        Ok(members)
    }

    /// `HDEL key field ...`.
    pub async fn hdel(&self, key: &str, fields: &[&str]) -> Result<(), RedisError> {
        let fields: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
        let _: i64 = self
            .client
            .hdel(key, fields)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `SADD key member ...`.
    pub async fn sadd(&self, key: &str, members: &[&str]) -> Result<(), RedisError> {
        let members: Vec<String> = members.iter().map(|member| (*member).to_owned()).collect();
        let _: i64 = self
            .client
            .sadd(key, members)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `DEL key ...`.
    pub async fn del(&self, keys: &[&str]) -> Result<(), RedisError> {
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let _: i64 = self
            .client
            .del(keys)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }
}

macro_rules! raw_access {
    ($($handle:ty => $db:expr),* $(,)?) => {$(
        impl $handle {
            /// Raw access to this database, for tests.
            pub fn raw(&self) -> RawDb {
                RawDb { client: self.client(), db: $db }
            }
        }
    )*};
}

raw_access! {
    StatDb => RedisDb::Stat,
    RateLimitDb => RedisDb::RateLimit,
    LiveDb => RedisDb::Live,
    ImageDb => RedisDb::Image,
    StreamDb => RedisDb::Stream,
}
