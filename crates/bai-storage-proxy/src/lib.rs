//! The manager's client of the storage proxies (the reference's `StorageSessionManager`): one
//! HTTP client per proxy of etcd `volumes/proxies/{name}`, requests to the proxy's manager API
//! (`manager_api`) signed with its `secret` in the `X-BackendAI-Storage-Auth-Token` header, and
//! the proxy's refusals read as the reference reads them (a JSON `{"msg", ...}` body, or the
//! status line).
//!
//! Only what the manager uses so far: fetching a file of a folder as a stream of chunks
//! (`folder/file/fetch`, for the task logs), listing every proxy's volumes (`volumes`) and a
//! volume's file system usage (`folder/fs-usage`), for the vfolder host listings; a quota scope's
//! usage and limit (`GET`/`PATCH quota-scope`, `DELETE quota-scope/quota`), for GraphQL.
//!
//! It must not know HTTP serving, SQL or which folder a user may read (callers resolve the
//! folder); it never logs or shows a proxy's secret.

use std::time::Duration;

use bai_etcd_store::shared_config::StorageProxy;
use bytes::Bytes;
use futures_util::Stream;
use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The header a storage proxy authenticates the manager by.
pub const AUTH_TOKEN_HEADER: &str = "X-BackendAI-Storage-Auth-Token";
/// aiohttp's default total timeout of a request, the reference's for every proxy call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a storage proxy call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The folder's host names a proxy etcd does not list.
    #[error("There is no such storage proxy: {0}")]
    UnknownProxy(String),
    #[error("storage proxy {proxy}: its manager_api {url:?} is not a URL: {detail}")]
    BadUrl {
        proxy: String,
        url: String,
        detail: String,
    },
    #[error("storage proxy {proxy}: cannot make its HTTP client: {source}")]
    Client {
        proxy: String,
        source: reqwest::Error,
    },
    #[error("storage proxy {proxy}: {source}")]
    Unreachable {
        proxy: String,
        source: reqwest::Error,
    },
    /// The proxy answered a non-2xx status with a JSON object: its `msg`, and the rest as data.
    #[error("storage proxy {proxy} answered {status}: {}", msg.as_deref().unwrap_or("(no message)"))]
    Rejected {
        proxy: String,
        status: u16,
        msg: Option<String>,
        data: Value,
    },
    /// The proxy answered a non-2xx status without a JSON body.
    #[error("storage proxy {proxy}: Storage proxy responded with {status} {reason}")]
    RejectedPlain {
        proxy: String,
        status: u16,
        reason: String,
    },
    #[error("storage proxy {proxy}: the answer broke off: {source}")]
    Interrupted {
        proxy: String,
        source: reqwest::Error,
    },
    /// A 2xx answer whose body is not what the call expects.
    #[error("storage proxy {proxy}: unexpected answer to {call}: {detail}")]
    Malformed {
        proxy: String,
        /// `{method} {path}`.
        call: String,
        detail: String,
    },
}

/// One volume of a proxy, as its `GET volumes` lists it (other keys are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    pub backend: String,
    pub path: String,
    pub fsprefix: String,
    pub capabilities: Vec<String>,
}

/// A volume's file system usage (`folder/fs-usage`), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct FsUsage {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
}

#[derive(Deserialize)]
struct VolumeList {
    volumes: Vec<VolumeInfo>,
}

/// `proxy:volume` split as the reference's `split_host` does (everything after the first `:`
/// is the volume, which may be empty).
pub fn split_host(host: &str) -> (&str, &str) {
    host.split_once(':').unwrap_or((host, ""))
}

struct Proxy {
    client: reqwest::Client,
    manager_api: String,
    secret: String,
}

/// The proxies of etcd `volumes/proxies`, each with its HTTP client.
pub struct StorageProxies {
    proxies: IndexMap<String, Proxy>,
}

impl std::fmt::Debug for StorageProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageProxies")
            .field("proxies", &self.proxies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StorageProxies {
    /// Clients for `proxies`; a proxy whose `ssl_verify` is false accepts any certificate.
    pub fn new(proxies: &IndexMap<String, StorageProxy>) -> Result<StorageProxies, StorageError> {
        let mut clients = IndexMap::new();
        for (name, proxy) in proxies {
            reqwest::Url::parse(&proxy.manager_api).map_err(|error| StorageError::BadUrl {
                proxy: name.clone(),
                url: proxy.manager_api.clone(),
                detail: error.to_string(),
            })?;
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(!proxy.ssl_verify)
                .timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(|source| StorageError::Client {
                    proxy: name.clone(),
                    source,
                })?;
            clients.insert(
                name.clone(),
                Proxy {
                    client,
                    manager_api: proxy.manager_api.trim_end_matches('/').to_owned(),
                    secret: proxy.secret.clone(),
                },
            );
        }
        Ok(StorageProxies { proxies: clients })
    }

    /// `POST folder/file/fetch` on the proxy of `host` (`proxy:volume`): the file `relpath` of
    /// folder `vfid` (the reference's `VFolderID` string), as a stream of chunks once the proxy
    /// answered 2xx.
    pub async fn fetch_file(
        &self,
        host: &str,
        vfid: &str,
        relpath: &str,
    ) -> Result<FileStream, StorageError> {
        let (proxy_name, volume) = split_host(host);
        let body = json!({"volume": volume, "vfid": vfid, "relpath": relpath});
        let response = self
            .request(
                reqwest::Method::POST,
                proxy_name,
                "folder/file/fetch",
                &body,
            )
            .await?;
        Ok(FileStream {
            proxy: proxy_name.to_owned(),
            response,
        })
    }

    /// `GET volumes` on every proxy at once (the reference's `get_all_volumes`): each volume with
    /// the name of its proxy, proxy by proxy in etcd's order. One proxy that cannot be reached or
    /// answers non-2xx fails the whole listing, as in the reference.
    pub async fn all_volumes(&self) -> Result<Vec<(String, VolumeInfo)>, StorageError> {
        let listings = self.proxies.keys().map(|name| async move {
            let listing: VolumeList = self
                .request_json(reqwest::Method::GET, name, "volumes", &Value::Null)
                .await?;
            Ok::<_, StorageError>(
                listing
                    .volumes
                    .into_iter()
                    .map(|volume| (name.clone(), volume))
                    .collect::<Vec<_>>(),
            )
        });
        let listings = futures_util::future::try_join_all(listings).await?;
        Ok(listings.into_iter().flatten().collect())
    }

    /// `GET folder/fs-usage` of `volume` on the proxy `proxy_name`.
    pub async fn fs_usage(&self, proxy_name: &str, volume: &str) -> Result<FsUsage, StorageError> {
        let body = json!({ "volume": volume });
        self.request_json(reqwest::Method::GET, proxy_name, "folder/fs-usage", &body)
            .await
    }

    /// `{method} {manager_api}/{path}`, with `body` as JSON unless it is `null`; a non-2xx answer
    /// is an error.
    async fn request(
        &self,
        method: reqwest::Method,
        proxy_name: &str,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, StorageError> {
        let proxy = self
            .proxies
            .get(proxy_name)
            .ok_or_else(|| StorageError::UnknownProxy(proxy_name.to_owned()))?;
        let mut request = proxy
            .client
            .request(method, format!("{}/{path}", proxy.manager_api));
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request
            .header(AUTH_TOKEN_HEADER, &proxy.secret)
            .send()
            .await
            .map_err(|source| StorageError::Unreachable {
                proxy: proxy_name.to_owned(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(refusal(proxy_name, response).await)
    }

    /// [`request`](Self::request) with the answer read as JSON.
    async fn request_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        proxy_name: &str,
        path: &str,
        body: &Value,
    ) -> Result<T, StorageError> {
        let call = format!("{method} {path}");
        let response = self.request(method, proxy_name, path, body).await?;
        response
            .json()
            .await
            .map_err(|source| StorageError::Malformed {
                proxy: proxy_name.to_owned(),
                call,
                detail: source.to_string(),
            })
    }

    /// `GET quota-scope` of the quota scope `qsid` (`user:<uuid>` or `project:<uuid>`, passed as
    /// given) on `volume` of the proxy `proxy_name`: its usage and limit as the proxy reports
    /// them (a proxy answers a scope it does not know with a 4xx).
    pub async fn quota_scope(
        &self,
        proxy_name: &str,
        volume: &str,
        qsid: &str,
    ) -> Result<QuotaUsage, StorageError> {
        let body = json!({"volume": volume, "qsid": qsid});
        self.request_json(reqwest::Method::GET, proxy_name, "quota-scope", &body)
            .await
    }

    /// `PATCH quota-scope`: sets the limit of the quota scope `qsid` on `volume` of the proxy
    /// `proxy_name` to `limit_bytes` (`null` when `None`), creating the scope if the proxy has
    /// none.
    pub async fn set_quota_scope(
        &self,
        proxy_name: &str,
        volume: &str,
        qsid: &str,
        limit_bytes: Option<i64>,
    ) -> Result<(), StorageError> {
        let body = json!({"volume": volume, "qsid": qsid, "options": {"limit_bytes": limit_bytes}});
        self.request(reqwest::Method::PATCH, proxy_name, "quota-scope", &body)
            .await?;
        Ok(())
    }

    /// `DELETE quota-scope/quota`: removes the limit of the quota scope `qsid` on `volume` of the
    /// proxy `proxy_name` (the scope and its folders stay).
    pub async fn unset_quota(
        &self,
        proxy_name: &str,
        volume: &str,
        qsid: &str,
    ) -> Result<(), StorageError> {
        let body = json!({"volume": volume, "qsid": qsid});
        self.request(
            reqwest::Method::DELETE,
            proxy_name,
            "quota-scope/quota",
            &body,
        )
        .await?;
        Ok(())
    }
}

/// A quota scope's usage and limit as `GET quota-scope` reports them, in bytes; the proxy sends
/// `null` for what its backend cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct QuotaUsage {
    pub used_bytes: Option<i64>,
    pub limit_bytes: Option<i64>,
}

/// A non-2xx answer as the reference reads it: a JSON object (by its content type) gives its
/// `msg` and the rest as data; anything else the status line.
async fn refusal(proxy: &str, response: reqwest::Response) -> StorageError {
    let status = response.status();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"));
    let plain = || StorageError::RejectedPlain {
        proxy: proxy.to_owned(),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_owned(),
    };
    if !is_json {
        return plain();
    }
    match response.json::<Value>().await {
        Ok(Value::Object(mut object)) => {
            let msg = object.remove("msg").and_then(|msg| match msg {
                Value::String(text) => Some(text),
                Value::Null => None,
                other => Some(other.to_string()),
            });
            StorageError::Rejected {
                proxy: proxy.to_owned(),
                status: status.as_u16(),
                msg,
                data: Value::Object(std::mem::take(&mut object)),
            }
        }
        Ok(_) | Err(_) => plain(),
    }
}

/// The body of a 2xx answer, chunk by chunk.
#[derive(Debug)]
pub struct FileStream {
    proxy: String,
    response: reqwest::Response,
}

impl FileStream {
    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, StorageError> {
        self.response
            .chunk()
            .await
            .map_err(|source| StorageError::Interrupted {
                proxy: self.proxy.clone(),
                source,
            })
    }

    /// The remaining chunks as a stream.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, StorageError>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut file = state?;
            match file.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(file))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}
