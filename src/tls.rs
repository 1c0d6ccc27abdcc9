//! TLS settings, loaded from PEM files: the S3 listener's and the node servers' certificates,
//! and what node clients trust.
//!
//! - [`server_config`]: a `gateway node` server's certificate chain and private key. The chain
//!   is every `CERTIFICATE` block of the cert file, leaf first; the key is the first private key
//!   block (PKCS#8, SEC1 or PKCS#1) of the key file, and must belong to the leaf. ALPN offers
//!   `h2` then `http/1.1`; no client certificates are asked for (clients authenticate with the
//!   protocol's HMAC token).
//! - [`client_config`]: the certificates a client trusts. With a CA file, exactly the
//!   certificates in it and nothing else (a self-signed node certificate is its own root);
//!   without one, the system's root store. The server name is checked by the caller's connector
//!   against the address (a DNS name or an IP address in the certificate's SAN). The config
//!   sets no ALPN: the connector that uses it does.
//!
//! - [`ReloadableCert`] and [`reloadable_server_config`]: the S3 listener's certificate, read
//!   like the node server's and replaceable while serving (SIGHUP): a reload that fails keeps
//!   the certificate in use, and new handshakes get the new one at once.
//!
//! All use the aws-lc-rs provider with rustls's safe defaults (TLS 1.3 and 1.2). Loading is
//! synchronous file I/O, meant for startup. Every error names the file it concerns.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A server's certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: malformed PEM: {source}", .path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key in it (expected a PEM PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block)", .path.display())]
    NoKey { path: PathBuf },
    /// The file parsed as PEM but rustls refused its contents (an unsupported key type, a
    /// certificate that is not valid DER...).
    #[error("{}: {source}", .path.display())]
    Rejected {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{} and {} do not form a usable pair: {source}", .cert.display(), .key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "no usable system root certificates (give the node's certificate as a CA file): {source}"
    )]
    SystemRoots {
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
}

/// The node server's TLS configuration (see the module doc), over a fixed certificate.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    reloadable_server_config(ReloadableCert::load(files)?, NODE_ALPN)
}

/// What a node server offers: HTTP/2 first.
pub const NODE_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A certificate and key that can be re-read from their files while a server uses them.
#[derive(Debug)]
pub struct ReloadableCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads the pair (errors as for [`server_config`]).
    pub fn load(files: &TlsFiles) -> Result<Arc<ReloadableCert>, TlsError> {
        Ok(Arc::new(ReloadableCert {
            files: files.clone(),
            current: RwLock::new(certified_key(files)?),
        }))
    }

    /// Re-reads the files; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The leaf certificate in use (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.cert.first().cloned()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn certified_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(&files.cert)?;
    let key = read_private_key(&files.key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Rejected {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key type that cannot say its public key is taken, as rustls itself does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(source) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        }),
    }
}

/// A server configuration presenting `cert`'s current certificate, offering `alpn` in order.
pub fn reloadable_server_config(
    cert: Arc<ReloadableCert>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration trusting only the certificates of `ca_file`, or the system roots
/// when `None` (see the module doc).
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    let builder = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|source| TlsError::Rejected {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use hyper_rustls::ConfigBuilderExt;
            builder
                .with_native_roots()
                .map_err(|source| TlsError::SystemRoots { source })?
        }
    };
    Ok(builder.with_no_client_auth())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file, in file order; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file of `tests/fixtures/tls/`.
    pub(crate) fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    pub(crate) fn node_files() -> TlsFiles {
        TlsFiles {
            cert: fixture("node-cert.pem"),
            key: fixture("node-key.pem"),
        }
    }

    #[test]
    fn fixtures_load() {
        let config = server_config(&node_files()).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let client = client_config(Some(&fixture("node-cert.pem"))).unwrap();
        assert!(client.alpn_protocols.is_empty());
    }

    #[test]
    fn bad_files_are_typed_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "this is not PEM\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let names = |e: &TlsError, p: &Path| {
            let text = e.to_string();
            assert!(text.contains(&p.display().to_string()), "{text}");
        };
        let node = node_files();

        let e = server_config(&TlsFiles {
            cert: missing.clone(),
            key: node.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::Read { path, .. } if *path == missing));
        names(&e, &missing);

        let e = server_config(&TlsFiles {
            cert: garbage.clone(),
            key: node.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::NoCertificate { path } if *path == garbage));
        names(&e, &garbage);

        let e = server_config(&TlsFiles {
            cert: broken.clone(),
            key: node.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::Pem { path, .. } if *path == broken));
        names(&e, &broken);

        // A certificate where the key should be.
        let e = server_config(&TlsFiles {
            cert: node.cert.clone(),
            key: node.cert.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::NoKey { path } if *path == node.cert));

        let e = server_config(&TlsFiles {
            cert: node.cert.clone(),
            key: missing.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::Read { path, .. } if *path == missing));

        // Another certificate's key.
        let other_key = fixture("other-key.pem");
        let e = server_config(&TlsFiles {
            cert: node.cert.clone(),
            key: other_key.clone(),
        })
        .unwrap_err();
        assert!(matches!(&e, TlsError::Mismatch { .. }), "{e:?}");
        names(&e, &node.cert);
        names(&e, &other_key);

        for (path, check) in [
            (&missing, "cannot read"),
            (&empty, "no certificate"),
            (&garbage, "no certificate"),
            (&broken, "malformed PEM"),
        ] {
            let e = client_config(Some(path)).unwrap_err();
            names(&e, path);
            assert!(e.to_string().contains(check), "{e}");
        }
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let install = |cert: &str, key: &str| {
            std::fs::copy(fixture(cert), &files.cert).unwrap();
            std::fs::copy(fixture(key), &files.key).unwrap();
        };
        let der = |name: &str| {
            CertificateDer::pem_file_iter(fixture(name))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
        };
        install("node-cert.pem", "node-key.pem");
        let cert = ReloadableCert::load(&files).unwrap();
        assert_eq!(cert.leaf().unwrap(), der("node-cert.pem"));
        reloadable_server_config(cert.clone(), &[b"http/1.1"]).unwrap();

        install("other-cert.pem", "other-key.pem");
        cert.reload().unwrap();
        assert_eq!(cert.leaf().unwrap(), der("other-cert.pem"));

        // Half-replaced (new certificate, old key) and then missing: refused, the last good
        // pair stays in use.
        std::fs::copy(fixture("node-cert.pem"), &files.cert).unwrap();
        assert!(matches!(cert.reload(), Err(TlsError::Mismatch { .. })));
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(cert.reload(), Err(TlsError::Read { .. })));
        assert_eq!(cert.leaf().unwrap(), der("other-cert.pem"));
    }
}
