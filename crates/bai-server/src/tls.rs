//! HTTPS: the certificate chain and private key of `ssl-cert` / `ssl-privkey` (PEM) loaded into a
//! rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The two files `[manager] ssl-cert` and `ssl-privkey` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[manager] ssl-cert {path}: cannot read a PEM certificate chain: {source}")]
    Certificates {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "[manager] ssl-cert {path}: the file holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
    )]
    NoCertificate { path: PathBuf },
    #[error("[manager] ssl-privkey {path}: cannot read a PEM private key: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("[manager] ssl-cert {cert} and ssl-privkey {key}: {source}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Reads the certificate chain and key and builds the server configuration.
pub fn load_tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let unusable = |source| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(unusable)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |source| TlsError::Certificates {
        path: path.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).expect("write key");
        files
    }

    #[test]
    fn a_self_signed_pair_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path());
        let config = load_tls_config(&files).expect("loads");
        assert_eq!(config.alpn_protocols[1], b"http/1.1");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path());

        let missing = TlsFiles {
            cert: dir.path().join("missing.pem"),
            ..files.clone()
        };
        let error = load_tls_config(&missing).expect_err("missing cert");
        assert!(
            error
                .to_string()
                .starts_with(&format!("[manager] ssl-cert {}:", missing.cert.display())),
            "{error}"
        );

        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let error = load_tls_config(&TlsFiles {
            cert: not_pem.clone(),
            ..files.clone()
        })
        .expect_err("no certificate");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");

        let error = load_tls_config(&TlsFiles {
            key: not_pem.clone(),
            ..files.clone()
        })
        .expect_err("no key");
        assert!(
            error
                .to_string()
                .starts_with(&format!("[manager] ssl-privkey {}:", not_pem.display())),
            "{error}"
        );

        // A key that does not belong to the certificate.
        let other = tempfile::tempdir().expect("tempdir");
        let other_files = write_pair(other.path());
        let error = load_tls_config(&TlsFiles {
            key: other_files.key,
            ..files
        })
        .expect_err("mismatched key");
        assert!(matches!(error, TlsError::Unusable { .. }), "{error}");
    }
}
