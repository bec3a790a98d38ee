//! The parts of the real agent's `agent.toml` a simulated agent uses; every other key is ignored,
//! so that one file drives either the real agent or the simulator.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::SimError;

/// `{ host = "…", port = … }`, or `"host:port"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum HostPortSpec {
    Table { host: String, port: u16 },
    Text(String),
}

impl HostPortSpec {
    pub fn split(&self) -> Result<(String, u16), String> {
        match self {
            HostPortSpec::Table { host, port } => Ok((host.clone(), *port)),
            HostPortSpec::Text(text) => {
                let (host, port) = text
                    .rsplit_once(':')
                    .ok_or_else(|| format!("{text:?} is not host:port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = port
                    .parse()
                    .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
                Ok((host.to_owned(), port))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EtcdSection {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub addr: HostPortSpec,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
}

fn default_namespace() -> String {
    "local".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentSection {
    pub id: Option<String>,
    #[serde(default = "default_rpc_listen_addr")]
    pub rpc_listen_addr: HostPortSpec,
    pub advertised_rpc_addr: Option<HostPortSpec>,
    #[serde(default = "default_scaling_group")]
    pub scaling_group: String,
    pub region: Option<String>,
    pub public_host: Option<String>,
    pub rpc_auth_agent_keypair: Option<PathBuf>,
    /// The manager's public certificate; required with `rpc-auth-agent-keypair` (only that
    /// manager key passes the agent's ZAP handler).
    pub rpc_auth_manager_public_key: Option<PathBuf>,
    #[serde(default)]
    pub skip_manager_detection: bool,
    #[serde(default)]
    pub force_terminate_abusing_containers: bool,
}

fn default_rpc_listen_addr() -> HostPortSpec {
    HostPortSpec::Table {
        host: String::new(),
        port: 6001,
    }
}

fn default_scaling_group() -> String {
    "default".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ContainerSection {
    pub bind_host: Option<String>,
    pub advertised_host: Option<String>,
}

/// `[resource]`: what the agent keeps for itself.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResourceSection {
    #[serde(default = "default_reserved_cpu")]
    pub reserved_cpu: u64,
    #[serde(default = "default_reserved_mem")]
    pub reserved_mem: toml::Value,
}

impl Default for ResourceSection {
    fn default() -> ResourceSection {
        ResourceSection {
            reserved_cpu: default_reserved_cpu(),
            reserved_mem: default_reserved_mem(),
        }
    }
}

fn default_reserved_cpu() -> u64 {
    1
}

fn default_reserved_mem() -> toml::Value {
    toml::Value::String("1G".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DebugSection {
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: f64,
}

impl Default for DebugSection {
    fn default() -> DebugSection {
        DebugSection {
            heartbeat_interval: default_heartbeat_interval(),
        }
    }
}

fn default_heartbeat_interval() -> f64 {
    20.0
}

/// The file.
#[derive(Debug, Deserialize)]
pub struct AgentToml {
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub path: String,
    pub etcd: EtcdSection,
    pub agent: AgentSection,
    #[serde(default)]
    pub container: ContainerSection,
    #[serde(default)]
    pub resource: ResourceSection,
    #[serde(default)]
    pub debug: DebugSection,
}

impl AgentToml {
    pub fn load(path: &Path) -> Result<AgentToml, SimError> {
        let error = |message: String| SimError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| error(source.to_string()))?;
        let mut config: AgentToml =
            toml::from_str(&text).map_err(|source| error(source.to_string()))?;
        config.path = path.display().to_string();
        let interval = config.debug.heartbeat_interval;
        if !interval.is_finite() || interval <= 0.0 {
            return Err(error(
                "debug.heartbeat-interval must be a positive number of seconds".to_owned(),
            ));
        }
        config.reserved_mem_bytes().map_err(error)?;
        Ok(config)
    }

    /// `resource.reserved-mem` in bytes.
    pub fn reserved_mem_bytes(&self) -> Result<u64, String> {
        let text = match &self.resource.reserved_mem {
            toml::Value::Integer(bytes) => bytes.to_string(),
            toml::Value::String(text) => text.clone(),
            other => return Err(format!("resource.reserved-mem: {other} is not a size")),
        };
        match bai_config::parse_binary_size(&text)
            .map_err(|error| format!("resource.reserved-mem: {error}"))?
        {
            bai_config::BinarySizeValue::Bytes(bytes) => u64::try_from(bytes)
                .map_err(|_| format!("resource.reserved-mem = {text:?} is out of range")),
            bai_config::BinarySizeValue::Infinite => {
                Err("resource.reserved-mem cannot be infinite".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_agent_config_of_the_repository_loads() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/agent/dummy-agent.toml");
        let config = AgentToml::load(&path).unwrap();
        assert_eq!(config.etcd.namespace, "local");
        assert_eq!(config.agent.id.as_deref(), Some("i-dummy-1"));
        assert_eq!(
            config.agent.rpc_listen_addr.split().unwrap(),
            ("127.0.0.1".to_owned(), 6001)
        );
        assert_eq!(config.debug.heartbeat_interval, 3.0);
        assert_eq!(config.reserved_mem_bytes().unwrap(), 1 << 30);
        assert_eq!(config.resource.reserved_cpu, 1);
    }

    #[test]
    fn addresses_may_be_text() {
        assert_eq!(
            HostPortSpec::Text("[::1]:6001".into()).split().unwrap(),
            ("::1".to_owned(), 6001)
        );
        assert!(HostPortSpec::Text("nope".into()).split().is_err());
    }
}
