"""The fleet's certificate authority: TLS certificates for the broker, the central tools and each device.

The broker admits a client only with a certificate from this CA (`require_certificate`) and takes
the certificate's CN as the client's user name (`use_identity_as_username`), so a device's CN
"<site>/<device_id>" is what the broker's pattern ACL fences to `edge/<site>/<device_id>/`.
Certificates are ECDSA P-256 (small and quick on a Pi; OpenSSL and Mosquitto take them) and made
with the `cryptography` library, so a CN with a slash needs no escaping as `openssl -subj` would.
A server certificate carries its host names and addresses as SANs: Python's TLS check ignores the CN.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.central.fleet.folder import CENTRAL_CN, FleetDir, FleetDirError
from edge.link.signed import KeyFileError, load_private_key, write_private_key, write_public_key

CA_CN = "edge fleet CA"
CA_VALIDITY = dt.timedelta(days=20 * 365)
LEAF_VALIDITY = dt.timedelta(days=10 * 365)  # a device is reached over MQTT only: no renewal path yet
# Boards without a clock (a Pi before NTP) may run a little behind: certificates start a day early.
BACKDATE = dt.timedelta(days=1)

Usage = Literal["client", "server"]


@dataclass(frozen=True)
class Authority:
    """The fleet CA's key and certificate: what signs every other certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def load(cls, fleet: FleetDir) -> Authority:
        fleet.require()
        key = load_private_key(fleet.ca_key, ec.EllipticCurvePrivateKey, "fleet CA key")
        return cls(key, load_certificate(fleet.ca_cert, "fleet CA certificate"))

    def issue(
        self, cn: str, usage: Usage, dns: Sequence[str] = (), ips: Sequence[str] = ()
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key and its certificate for `cn`; a server's `dns` and `ips` become its SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(cn, self.cert.subject, key, LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(_ip(a)) for a in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


def new_authority() -> Authority:
    """A self-signed CA that may sign certificates (and no intermediate CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_CN)])
    cert = (
        _builder(CA_CN, name, key, CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def init_fleet(root: Path) -> FleetDir:
    """Create a fleet folder: CA, the central tools' certificate, the Ed25519 signing key.

    Refuses a folder that holds anything: overwriting a fleet's keys would cut off every device.
    """
    fleet = FleetDir(Path(root))
    if fleet.root.exists() and (not fleet.root.is_dir() or any(fleet.root.iterdir())):
        raise FleetDirError(f"{fleet.root} exists and is not empty: refusing to overwrite a fleet's keys")
    authority = new_authority()
    central_key, central_cert = authority.issue(CENTRAL_CN, "client")
    signing = Ed25519PrivateKey.generate()
    fleet.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    fleet.root.chmod(0o700)
    write_private_key(fleet.ca_key, authority.key)
    write_certificate(fleet.ca_cert, authority.cert)
    write_private_key(fleet.central_key, central_key)
    write_certificate(fleet.central_cert, central_cert)
    write_private_key(fleet.signing_key, signing)
    write_public_key(fleet.signing_pub, signing.public_key())
    (fleet.root / "devices").mkdir(mode=0o700)
    return fleet


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise KeyFileError(f"{what} {path} is not a PEM certificate: {e}") from None


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _builder(cn: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, validity: dt.timedelta):
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise FleetDirError(f"{text!r} is not an IP address") from None
