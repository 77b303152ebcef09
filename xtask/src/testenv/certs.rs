//! The environment's PKI: a CA, the apiserver's serving certificate, the
//! service-account signing key pair and an admin client certificate, plus a
//! kubeconfig that embeds the CA (clients never skip TLS verification).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The Service IP of `kubernetes.default`: the first address of the
/// apiserver's `--service-cluster-ip-range` (see `kube::SERVICE_RANGE`).
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Paths of the generated files inside `<testenv>/certs`.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl Pki {
    pub fn at(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        }
    }

    fn files(&self) -> [&Path; 8] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.serving_cert,
            &self.serving_key,
            &self.admin_cert,
            &self.admin_key,
            &self.sa_key,
            &self.sa_pub,
        ]
    }
}

/// Generates the PKI unless every file already exists (then it is reused, so
/// running processes and issued tokens stay valid).
pub fn ensure(dir: &Path) -> Result<Pki> {
    let pki = Pki::at(dir);
    if pki.files().iter().all(|file| file.is_file()) {
        return Ok(pki);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    generate(&pki).context("generating the test environment's certificates")?;
    Ok(pki)
}

fn generate(pki: &Pki) -> Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "dialtone-testenv-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(
        [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            KUBERNETES_SERVICE_IP,
        ]
        .map(String::from)
        .to_vec(),
    )?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "dialtone-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    // ECDSA P-256: kube-apiserver signs service-account tokens with ES256.
    let sa_key = KeyPair::generate()?;

    write(&pki.ca_cert, &ca_cert.pem())?;
    write(&pki.ca_key, &ca_key.serialize_pem())?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(&pki.admin_cert, &admin_cert.pem())?;
    write(&pki.admin_key, &admin_key.serialize_pem())?;
    write(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_pub, &sa_key.public_key_pem())?;
    Ok(())
}

fn write(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// A kubeconfig for the admin user with the CA and client pair embedded.
pub fn kubeconfig(pki: &Pki, server: &str) -> Result<String> {
    let data = |path: &Path| -> Result<String> {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(STANDARD.encode(bytes))
    };
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: dialtone-testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: dialtone-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: dialtone-testenv
  context:
    cluster: dialtone-testenv
    user: dialtone-admin
current-context: dialtone-testenv
",
        ca = data(&pki.ca_cert)?,
        cert = data(&pki.admin_cert)?,
        key = data(&pki.admin_key)?,
    ))
}
