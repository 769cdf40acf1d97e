//! Certificates and keys read from PEM files, for the HTTPS listener (`tls`) and for `https`
//! checks (`probe::https`) alike, each refusal saying why in words.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in the PEM file at `path`, in order (a chain: leaf first); at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(reason)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(reason)?;
    if chain.is_empty() {
        return Err("no PEM CERTIFICATE block in the file".into());
    }
    Ok(chain)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(reason)
}

/// The PEM error in words; a file that cannot be opened says why (missing, permission).
fn reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key block (PKCS#8, PKCS#1 or SEC1) in the file".into()
        }
        other => format!("not valid PEM: {other:?}"),
    }
}
