"""Generates the local kube-apiserver's CA, serving certificate, service-account key and admin token."""

import datetime
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def ensure_kube_credentials(folder: Path) -> None:
    """Create ca.crt, serving.crt/key, sa.key/pub and tokens.csv in `folder`, once (envtest-style)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "tokens.csv").exists():
        return
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binderadmin-devstack-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = _key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, folder / "ca.key")
    (folder / "serving.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(serving_key, folder / "serving.key")
    sa_key = _key()
    _write_key(sa_key, folder / "sa.key")
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # Static token file: token,user,uid,"group" — the admin is in system:masters, as in envtest.
    token = secrets.token_urlsafe(32)
    (folder / "tokens.csv").write_text(f'{token},devstack-admin,devstack-admin,"system:masters"\n')
    (folder / "tokens.csv").chmod(0o600)


def ensure_kubelet_client(folder: Path) -> None:
    """Create kubelet-client.crt/key in `folder` once: kube-apiserver's client certificate for kubelets.

    Signed by the stack's CA (which the kubelet trusts for clients) and in system:masters, so the
    kubelet's webhook authorization lets `kubectl logs/exec` through.
    """
    if (folder / "kubelet-client.crt").exists():
        return
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    key = _key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key, folder / "kubelet-client.key")
    (folder / "kubelet-client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def admin_token(folder: Path) -> str:
    return (folder / "tokens.csv").read_text().split(",", 1)[0]
