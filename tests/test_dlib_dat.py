"""The dlib `.dat` parser: primitive encodings and a small network written here in dlib's
format, then the real dlib_face_recognition_resnet_model_v1.dat when it is available."""

from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from edge.modelbuild.dlib_dat import (
    AddPrev,
    Affine,
    Conv,
    DatFormatError,
    DatReader,
    FullyConnected,
    InputRGB,
    Marker,
    Pool,
    Relu,
    parse_dat,
    read_dat,
)
from edge.modelbuild.sources import DEFAULT_CACHE, DLIB_MODELS, DLIB_RESNET_MEMBER

REPO = Path(__file__).resolve().parents[1]


# --- a minimal writer of dlib's encodings (serialize.h), independent of the parser ----------


def enc_int(value: int) -> bytes:
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_float(mantissa: int, exponent: int) -> bytes:
    return enc_int(mantissa) + enc_int(exponent)


def enc_str(text: str) -> bytes:
    return enc_int(len(text)) + text.encode("ascii")


def enc_tensor(values: np.ndarray) -> bytes:
    dims = list(values.shape) + [1] * (4 - values.ndim)
    head = enc_int(2) + b"".join(enc_int(d) for d in dims)
    return head + struct.pack(f"<{values.size}f", *values.ravel())


def enc_alias(*dims: int) -> bytes:
    return enc_int(1) + b"".join(enc_int(d) for d in dims)


ONE = enc_float(1, 0)
TRAILER = b"100" + enc_tensor(np.zeros(0, np.float32).reshape(0, 0, 0, 0)) * 3


# --- primitives -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 127, 255, 256, -1, -300, 2**40, -(2**62), 2**63 - 1])
def test_integers_round_trip(value: int) -> None:
    assert DatReader(enc_int(value)).integer() == value


def test_negative_integer_layout() -> None:
    """dlib writes -300 as control byte 0x82 (negative, two bytes) then 300 little-endian."""
    assert enc_int(-300) == bytes([0x82, 0x2C, 0x01])
    assert DatReader(bytes([0x82, 0x2C, 0x01])).integer() == -300


@pytest.mark.parametrize(
    ("mantissa", "exponent", "expected"),
    [
        (3, -1, 1.5),
        (-5, 2, -20.0),
        (0, 0, 0.0),
        (10737418, -28, 0.04),
        (1, 32000, math.inf),
        (1, 32001, -math.inf),
    ],
)
def test_floats(mantissa: int, exponent: int, expected: float) -> None:
    assert DatReader(enc_float(mantissa, exponent)).float() == pytest.approx(expected, rel=1e-7)


def test_float_nan() -> None:
    assert math.isnan(DatReader(enc_float(0, 32002)).float())


def test_strings_bools_tensors_aliases() -> None:
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 7.5
    data = enc_str("con_4") + b"10" + enc_tensor(values) + enc_alias(4, 3, 1, 1)
    reader = DatReader(data)
    assert reader.string() == "con_4"
    assert (reader.bool(), reader.bool()) == (True, False)
    np.testing.assert_array_equal(reader.tensor(), values)
    assert reader.alias() == (4, 3, 1, 1)
    assert reader.at_end and reader.floats_read == 24


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([0x09]) + bytes(9), "control byte"),
        (enc_int(5) + b"ab", "need 5 bytes"),
        (b"x", "bad bool"),
        (enc_int(3) + enc_int(0) * 4, "tensor version 3"),
    ],
)
def test_malformed_primitives_name_file_and_offset(data: bytes, message: str) -> None:
    reader = DatReader(data, "bad.dat")
    read = {
        "control byte": reader.integer,
        "need 5 bytes": reader.string,
        "bad bool": reader.bool,
        "tensor version 3": reader.tensor,
    }[message]
    with pytest.raises(DatFormatError, match=rf"bad\.dat: offset \d+: .*{message}"):
        read()


# --- a whole (tiny) network -----------------------------------------------------------------

CONV_W = (np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20) / 8
CONV_B = np.array([0.5, -0.25], np.float32)
FC_W = np.arange(6, dtype=np.float32).reshape(2, 3) / 4  # (inputs, outputs)


def tiny_network() -> bytes:
    """fc_no_bias<3, relu<tag1<con<2,3,3,1,1, input_rgb_image_sized<8>>>>> under loss_metric."""
    multipliers = ONE * 3 + enc_float(0, 0)  # learning-rate and weight-decay multipliers
    conv = b"".join(
        [
            enc_str("con_4"),
            enc_tensor(np.concatenate([CONV_W.ravel(), CONV_B]).reshape(-1, 1, 1, 1)),
            *map(enc_int, [2, 3, 3, 1, 1, 1, 1]),  # filters, rows, cols, strides, paddings
            enc_alias(2, 3, 3, 3),
            enc_alias(1, 2, 1, 1),
            multipliers,
        ]
    )
    fc = b"".join(
        [
            enc_str("fc_2"),
            *map(enc_int, [3, 2]),  # outputs, inputs
            enc_tensor(FC_W.reshape(-1, 1, 1, 1)),
            enc_alias(2, 3, 1, 1),
            enc_alias(0, 0, 0, 0),
            enc_int(1),  # FC_NO_BIAS
            multipliers,
        ]
    )
    source = b"".join(
        [
            enc_str("input_rgb_image_sized"),
            *(enc_float(m, e) for m, e in [(491, -2), (-117, 0), (13, 3)]),
            *map(enc_int, [8, 8]),
        ]
    )
    loss = enc_str("loss_metric_2") + enc_float(10737418, -28) + enc_float(10066330, -24)
    versions = b"".join(map(enc_int, [2, 2, 1, 3]))  # fc, relu, tag, con over the input
    # The innermost layer's trailer ends with its sample expansion factor.
    layers = conv + TRAILER + enc_int(1) + enc_str("relu_") + TRAILER + fc + TRAILER
    return enc_int(1) + loss + versions + source + layers


def test_tiny_network_parses_input_to_output() -> None:
    net = parse_dat(tiny_network(), "tiny.dat")
    assert net.loss.margin == pytest.approx(0.04) and net.loss.distance_threshold == pytest.approx(0.6)
    assert [type(layer) for layer in net.layers] == [InputRGB, Conv, Marker, Relu, FullyConnected]
    source, conv, _, _, fc = net.layers
    np.testing.assert_array_equal(source.mean, [122.75, -117.0, 104.0])
    assert (source.rows, source.cols) == (8, 8)
    np.testing.assert_array_equal(conv.weights, CONV_W)
    np.testing.assert_array_equal(conv.bias, CONV_B)
    assert conv.stride == (1, 1) and conv.padding == (1, 1)
    np.testing.assert_array_equal(fc.weights, FC_W)
    assert fc.bias is None
    assert net.num_floats == CONV_W.size + CONV_B.size + FC_W.size


def test_unknown_layer_is_named() -> None:
    data = tiny_network().replace(enc_str("relu_"), enc_str("elu__"))
    with pytest.raises(DatFormatError, match=r"tiny\.dat: offset \d+: unsupported layer 'elu__'"):
        parse_dat(data, "tiny.dat")


def test_truncated_and_padded_files_fail() -> None:
    data = tiny_network()
    with pytest.raises(DatFormatError, match="need"):
        parse_dat(data[:-5], "tiny.dat")
    with pytest.raises(DatFormatError, match="1 bytes left"):
        parse_dat(data + b"\0", "tiny.dat")


# --- the real model -------------------------------------------------------------------------


def real_dat() -> Path:
    """The ResNet from the build cache, else from an installed face_recognition_models."""
    candidates = [DLIB_MODELS.extracted(REPO / DEFAULT_CACHE, DLIB_RESNET_MEMBER)]
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        candidates.append(package.parent / DLIB_RESNET_MEMBER)
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(
        "dlib_face_recognition_resnet_model_v1.dat not found (run scripts/build_models.py or "
        f"pip install face-recognition-models==0.3.0); looked in {[str(p) for p in candidates]}"
    )


def test_real_resnet_file() -> None:
    net = read_dat(real_dat())
    assert net.num_floats == 5_614_592
    assert net.loss.distance_threshold == pytest.approx(0.6)
    assert net.loss.margin == pytest.approx(0.04)
    source = net.layers[0]
    assert isinstance(source, InputRGB) and (source.rows, source.cols) == (150, 150)
    np.testing.assert_allclose(source.mean, [122.782, 117.001, 104.298], atol=1e-3)
    convs = net.of_type(Conv)
    assert len(convs) == 29 and len(net.of_type(Affine)) == 29 and len(net.of_type(Relu)) == 29
    assert len(net.of_type(AddPrev)) == 14
    assert convs[0].weights.shape == (32, 3, 7, 7) and convs[-1].weights.shape == (256, 256, 3, 3)
    assert all(c.padding == ((0, 0) if c.stride == (2, 2) else (1, 1)) for c in convs)
    pools = [(p.kind, p.window, p.stride) for p in net.of_type(Pool)]
    assert pools == [("max", (3, 3), (2, 2))] + [("avg", (2, 2), (2, 2))] * 4 + [("avg", (0, 0), (1, 1))]
    (fc,) = net.of_type(FullyConnected)
    assert fc.weights.shape == (256, 128) and fc.bias is None
    assert all(np.isfinite(c.weights).all() for c in convs)
