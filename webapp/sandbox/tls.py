"""The sandbox's local certificate authority and HTTPS server certificate.

MSAL Python accepts only `https` authorities, and a client trusts the sandbox by passing this CA as
`verify=` (graph-facts §1.4: the certificate needs a SAN for IP:127.0.0.1). Generated with the
`cryptography` package on first start and kept, so a client configured once keeps working.

Public API:
- `ensure_certificates(folder) -> TlsFiles` — creates `folder` (e.g. instance/sandbox-tls/) with
  `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem` unless valid ones are there (CA and server
  certificate unexpired for at least another day, the server certificate signed by that CA and naming
  IP:127.0.0.1 and DNS:localhost); otherwise makes a fresh CA and server certificate. Private keys are
  written with mode 0600.
- `TlsFiles(ca_path, cert_path, key_path)`; `ssl_context()` → a server-side `ssl.SSLContext`.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=825)  # the longest server lifetime Apple's TLS policy accepts
_SERVER_NAMES = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]


@dataclass(frozen=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key, lifetime: timedelta,
                 is_ca: bool) -> x509.Certificate:
    start = datetime.now(timezone.utc) - timedelta(minutes=5)  # tolerate small clock skew between processes
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + lifetime)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName(_SERVER_NAMES), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=True, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _still_valid(files: TlsFiles) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(files.ca_path.read_bytes())
        server = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
        serialization.load_pem_private_key(files.key_path.read_bytes(), password=None)
        horizon = datetime.now(timezone.utc) + timedelta(days=1)
        if ca.not_valid_after_utc < horizon or server.not_valid_after_utc < horizon:
            return False
        server.verify_directly_issued_by(ca)
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return all(name in names for name in _SERVER_NAMES)
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False


def ensure_certificates(folder: str | os.PathLike) -> TlsFiles:
    folder = Path(folder)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    if _still_valid(files):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roomsync sandbox"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "Roomsync sandbox local CA")])
    ca_cert = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, CA_LIFETIME, is_ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roomsync sandbox"),
                             x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    server_cert = _certificate(server_name, ca_name, server_key.public_key(), ca_key, SERVER_LIFETIME, is_ca=False)
    _write(folder / "ca-key.pem", _key_pem(ca_key), private=True)
    _write(files.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.key_path, _key_pem(server_key), private=True)
    _write(files.cert_path, server_cert.public_bytes(serialization.Encoding.PEM))
    return files
