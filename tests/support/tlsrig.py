"""A throwaway PKI for the TLS tests (the `cryptography` package), and Mosquitto started with
the operator's configuration from deploy/mosquitto, adapted only to temporary paths and a
free port."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.carriers import RUN_AS, Broker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A certificate authority of its own, writing PEM files into `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(minutes=5))
                     .not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=True, key_cert_sign=True, crl_sign=True,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.file = directory / f"{name}.crt"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool = False, expired: bool = False) -> Issued:
        """A certificate valid for a day from five minutes ago (`expired`: ended yesterday)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(days=2 if expired else 0)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        out = Issued(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        out.key.chmod(0o600)
        return out


def hash_passwords(path: Path) -> None:
    """`mosquitto_passwd -U`: the PAN:password file, hashed in place (docs: README.md)."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)


class SecureBroker(Broker):
    """Mosquitto with deploy/mosquitto/mosquitto.conf and its acl, in `directory`: the CA,
    the server's certificate and the password file (`accounts`: user -> password) are made
    here as README.md tells an operator to."""

    def __init__(self, directory: Path, ca: Authority, accounts: dict[str, str]) -> None:
        super().__init__(directory)
        server = ca.issue("broker", server=True)
        shutil.copy(ca.file, directory / "ca.crt")
        shutil.copy(server.cert, directory / "server.crt")
        shutil.copy(server.key, directory / "server.key")
        shutil.copy(DEPLOY / "acl", directory / "acl")
        passwords = directory / "passwords"
        passwords.write_text("".join(f"{u}:{p}\n" for u, p in accounts.items()))
        passwords.chmod(0o600)
        hash_passwords(passwords)
        text = (DEPLOY / "mosquitto.conf").read_text()
        for old, new in (("/etc/mosquitto/sts/", f"{directory}/"),
                         ("/var/lib/mosquitto/", f"{directory}/"),
                         ("/var/log/mosquitto/", f"{directory}/"),
                         ("\nlistener 8883\n", f"\nlistener {self.port} 127.0.0.1\n")):
            assert old in text, f"deploy/mosquitto/mosquitto.conf no longer has {old!r}"
            text = text.replace(old, new)
        self.conf.write_text(text + RUN_AS)
        self.url = f"mqtts://127.0.0.1:{self.port}"
