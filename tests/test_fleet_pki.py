"""Fleet keys and the broker's side: `edge fleet init`, `broker-config`, and a real Mosquitto with
the TLS listener and ACL they make, fencing each device certificate to its own topics."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID
from support_fleet import TlsClient, fleet_broker

from edge.central.fleet.broker import ACL, listener_conf
from edge.central.fleet.bundle import issue_device
from edge.central.fleet.folder import FleetDir, FleetDirError
from edge.central.fleet.pki import common_name, load_certificate
from edge.cli import main
from edge.link.signed import load_private_key, load_public_key
from local_broker import free_port

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware-config"


@pytest.fixture
def fleet(tmp_path) -> FleetDir:
    assert main(["fleet", "init", str(tmp_path / "fleet")]) == 0
    return FleetDir(tmp_path / "fleet")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_the_central_certificate_and_a_signing_key_private(fleet):
    fleet.require()
    assert _mode(fleet.root) == 0o700
    for key in (fleet.ca_key, fleet.central_key, fleet.signing_key):
        assert _mode(key) == 0o600, key
    ca = load_certificate(fleet.ca_cert, "CA")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign
    central = load_certificate(fleet.central_cert, "central")
    central.verify_directly_issued_by(ca)
    assert common_name(central) == "central"
    assert not central.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_init_refuses_to_overwrite_a_fleet(fleet, capsys):
    before = fleet.ca_key.read_bytes()
    assert main(["fleet", "init", str(fleet.root)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert fleet.ca_key.read_bytes() == before


def test_device_certificate_names_the_device_and_its_box_key_pairs_with_the_fleet_copy(fleet, tmp_path):
    issue_device(fleet, "north", "pi-01", tmp_path / "certs")
    cert = load_certificate(tmp_path / "certs" / "device.crt", "device")
    assert common_name(cert) == "north/pi-01"  # a slash in the CN, no escaping needed
    cert.verify_directly_issued_by(load_certificate(fleet.ca_cert, "CA"))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    for private in ("device.key", "box.key"):
        assert _mode(tmp_path / "certs" / private) == 0o600
    box: X25519PrivateKey = load_private_key(tmp_path / "certs" / "box.key", X25519PrivateKey, "box key")
    public: X25519PublicKey = load_public_key(fleet.device_dir("north", "pi-01") / "box.pub", X25519PublicKey, "pub")
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert box.public_key().public_bytes(*raw) == public.public_bytes(*raw)
    assert (fleet.device_dir("north", "pi-01") / "device.crt").read_bytes() == cert.public_bytes(
        serialization.Encoding.PEM
    )
    fleet.require_device("north", "pi-01")
    with pytest.raises(FleetDirError, match="already provisioned"):
        issue_device(fleet, "north", "pi-01", tmp_path / "again")
    for site, device in (("north", "pi+01"), ("#", "pi-01"), ("north", "")):
        with pytest.raises(FleetDirError):
            issue_device(fleet, site, device, tmp_path / "bad")


def test_broker_certificate_carries_its_names_as_sans(fleet, tmp_path):
    out = tmp_path / "broker"
    args = ["fleet", "broker-config", "--fleet", str(fleet.root), "--host", "mqtt.example.org", "--host", "localhost"]
    assert main([*args, "--ip", "10.0.0.5", "--out", str(out)]) == 0
    cert = load_certificate(out / "broker.crt", "broker")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mqtt.example.org", "localhost"]
    # and the central tools' listener's address (127.0.0.1 by default)
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(a) for a in ("10.0.0.5", "127.0.0.1")]
    assert _mode(out / "broker.key") == 0o600
    assert (out / "acl").read_text() == ACL
    assert "acl_file /etc/mosquitto/edge/acl" in (out / "edge.conf").read_text()


def test_broker_config_needs_a_name(fleet, tmp_path, capsys):
    assert main(["fleet", "broker-config", "--fleet", str(fleet.root), "--out", str(tmp_path / "b")]) == 1
    assert "--host" in capsys.readouterr().err


def test_firmware_config_examples_are_what_broker_config_writes():
    assert (FIRMWARE / "acl").read_text() == ACL
    assert (FIRMWARE / "mosquitto.conf").read_text() == listener_conf()


def test_broker_admits_fleet_certificates_and_fences_each_device(fleet, tmp_path, broker_factory):
    port = free_port()
    issue_device(fleet, "north", "pi-01", tmp_path / "pi-01")
    issue_device(fleet, "north", "pi-02", tmp_path / "pi-02")
    fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port)  # the ACL names them for discovery

    def device(name: str, **kw) -> TlsClient:
        certs = tmp_path / name
        return TlsClient(port, certs / "ca.crt", certs / "device.crt", certs / "device.key", **kw)

    central = TlsClient(port, fleet.ca_cert, fleet.central_cert, fleet.central_key, host="127.0.0.1")
    pi01, pi02 = device("pi-01", client_id="edge-north-pi-01"), device("pi-02")
    try:
        assert central.subscribe("edge/#") == "Granted QoS 1"
        for suffix in ("status", "match", "stats", "config/reported"):
            assert pi01.publish(f"edge/north/pi-01/{suffix}") in ("Success", "No matching subscribers"), suffix
        assert pi01.publish("homeassistant/sensor/edge-north-pi-01/scans/config") == "No matching subscribers"
        # Another device's root, a command topic, outside edge/: refused with PUBACK 0x87 (MQTT 5).
        for topic in ("edge/north/pi-02/status", "edge/south/pi-01/match", "edge/north/pi-01/config/set", "x/y"):
            assert pi01.publish(topic) == "Not authorized", topic
        # Mosquitto 2.0 grants a subscription it will never deliver to; later versions may refuse it.
        assert pi01.subscribe("edge/north/pi-02/config/set") in ("Granted QoS 1", "Not authorized")
        assert pi01.subscribe("edge/north/pi-02/gallery/set") in ("Granted QoS 1", "Not authorized")
        assert pi01.subscribe("edge/north/pi-01/config/set") == "Granted QoS 1"
        assert pi02.subscribe("edge/north/pi-02/config/set") == "Granted QoS 1"
        assert central.publish("edge/north/pi-02/config/set", "for pi-02") == "Success"
        assert central.publish("edge/north/pi-02/gallery/set", "for pi-02") == "Success"
        assert central.publish("edge/north/pi-01/config/set", "for pi-01") == "Success"
        assert central.publish("edge/north/pi-01/match") == "Not authorized"  # the centre only commands
        assert pi01.wait_for(lambda t: "edge/north/pi-01/config/set" in t)
        assert pi02.wait_for(lambda t: "edge/north/pi-02/config/set" in t)
        # Messages are delivered in order on one connection: pi-02's came first and never reached pi-01.
        assert pi01.topics() == ["edge/north/pi-01/config/set"]
        # The centre hears every device's messages (and its own commands), none of the refused ones.
        heard = [f"edge/north/pi-01/{s}" for s in ("status", "match", "stats", "config/reported", "config/set")]
        heard += ["edge/north/pi-02/config/set", "edge/north/pi-02/gallery/set"]
        assert central.wait_for(lambda t: len(t) >= len(heard))
        assert sorted(central.topics()) == sorted(heard)
    finally:
        for client in (central, pi01, pi02):
            client.stop()


def test_broker_refuses_clients_without_a_fleet_certificate(fleet, tmp_path, broker_factory):
    port = free_port()
    fleet_broker(broker_factory, fleet.root, tmp_path / "broker", port)
    assert main(["fleet", "init", str(tmp_path / "other")]) == 0
    other = FleetDir(tmp_path / "other")
    with pytest.raises(OSError):  # a certificate from another fleet's CA
        TlsClient(port, fleet.ca_cert, other.central_cert, other.central_key, timeout=3)
    with pytest.raises(OSError):  # a broker certificate from another CA: the client refuses the broker
        TlsClient(port, other.ca_cert, other.central_cert, other.central_key, timeout=3)


@pytest.mark.parametrize(
    "change, why",
    [
        ({"--broker": "mqtt://broker.example.org"}, "mqtts://"),
        ({"--site": "north/east"}, "site: String should match pattern"),
        ({"--device-id": "pi+01"}, "device_id: String should match pattern"),
        ({"--fleet": "nowhere"}, "not a fleet folder"),
    ],
)
def test_provision_refuses_a_bad_request_before_writing_anything(fleet, tmp_path, capsys, change, why):
    options = {"--fleet": str(fleet.root), "--site": "north", "--device-id": "pi-01"}
    options |= {"--broker": "mqtts://broker.example.org", "--board": "pi", "--out": str(tmp_path / "bundle")}
    options |= change
    assert main(["fleet", "provision", *[x for pair in options.items() for x in pair]]) == 1
    assert why in capsys.readouterr().err
    assert not (tmp_path / "bundle").exists() and not (fleet.root / "devices" / "north").exists()
