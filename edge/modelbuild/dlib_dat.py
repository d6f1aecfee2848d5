"""Read a serialized dlib DNN (`.dat`) into plain numpy layer records.

Pure numpy on purpose: the parser is tested without TensorFlow, and the Keras rebuild
(`keras_net.py`) only consumes these records. The format is dlib 20's `serialize.h`,
`float_details.h` and `dnn/{core,input,layers,loss}.h`; `notes/models.md` summarises it.

Layout of a network file: the loss layer's version and record, then one version integer per
layer from the output inwards (2 = a layer with parameters and trailer, 1 = a tag or skip
layer, which writes nothing else, 3 = the innermost layer, whose input layer comes next), then
the input layer, then each layer's record and trailer from the input outwards (the innermost
trailer ends with one more integer, the sample expansion factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# float_details.h: exponents that stand for special values.
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
# dlib's input layers compute (pixel - mean) / 256.
INPUT_DIVISOR = 256.0


class DatFormatError(ValueError):
    """The file does not follow dlib's serialization format (message names file and offset)."""


@dataclass(frozen=True)
class LossMetric:
    """`loss_metric_`: the margin it was trained with and dlib's same-person distance."""

    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class InputRGB:
    """`input_rgb_image_sized`: the model sees (pixel - mean) / 256, channels R, G, B."""

    mean: np.ndarray  # (3,) float32, R, G, B
    rows: int
    cols: int


@dataclass(frozen=True)
class Conv:
    """`con_`: cross-correlation with weights (out, in, kh, kw) and per-output bias."""

    weights: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), zeros on both sides


@dataclass(frozen=True)
class Affine:
    """`affine_` (batch norm folded by dlib): y = x * gamma + beta, per channel in conv mode."""

    gamma: np.ndarray
    beta: np.ndarray
    conv_mode: bool


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class AddPrev:
    """`add_prev_`: adds a tagged earlier output; dlib zero-fills the smaller input."""


@dataclass(frozen=True)
class Pool:
    """`max_pool_` / `avg_pool_`; a window of 0 rows and 0 columns means the whole input."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (rows, cols)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FullyConnected:
    """`fc_`: y = x @ weights (+ bias), weights (inputs, outputs)."""

    weights: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class Marker:
    """A tag or skip layer: the file records its position only, not which one or its id."""


Layer = InputRGB | Conv | Affine | Relu | AddPrev | Pool | FullyConnected | Marker


@dataclass(frozen=True)
class DlibNet:
    """A parsed network: the loss record and the layers from the input to the output."""

    loss: LossMetric
    layers: tuple[Layer, ...]
    num_floats: int  # every float32 stored in the file's tensors

    def of_type(self, kind: type) -> list:
        return [layer for layer in self.layers if isinstance(layer, kind)]


class DatReader:
    """Sequential reader of dlib's primitive encodings over an in-memory file."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.name = name
        self.pos = 0
        self.floats_read = 0

    def error(self, problem: str) -> DatFormatError:
        return DatFormatError(f"{self.name}: offset {self.pos}: {problem}")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.error(f"need {n} bytes, file ends at {len(self.data)}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    @property
    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def integer(self) -> int:
        """A control byte (low 4 bits: byte count, 0x80: negative), then little-endian bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            raise self.error(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """An int64 mantissa and an int16 exponent: mantissa * 2**exponent."""
        mantissa = self.integer()
        exponent = self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def bool(self) -> bool:
        char = bytes(self._take(1))
        if char not in (b"0", b"1"):
            self.pos -= 1
            raise self.error(f"bad bool {char!r}")
        return char == b"1"

    def string(self) -> str:
        length = self.integer()
        raw = bytes(self._take(length))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise self.error(f"non-ASCII string {raw[:40]!r}") from e

    def expect_string(self, expected: str) -> None:
        start = self.pos
        found = self.string()
        if found != expected:
            self.pos = start
            raise self.error(f"expected {expected!r}, found {found!r}")

    def tensor(self) -> np.ndarray:
        """A resizable tensor: version 2, dims (n, k, nr, nc), then little-endian float32."""
        self._version(2, "tensor")
        shape = self._dims()
        count = math.prod(shape)
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        self.floats_read += count
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias tensor: version 1 and dims only; it views part of its layer's params."""
        self._version(1, "alias tensor")
        return self._dims()

    def _dims(self) -> tuple[int, int, int, int]:
        dims = (self.integer(), self.integer(), self.integer(), self.integer())
        if min(dims) < 0:
            raise self.error(f"negative tensor dimension in {dims}")
        return dims

    def _version(self, expected: int, what: str) -> None:
        start = self.pos
        found = self.integer()
        if found != expected:
            self.pos = start
            raise self.error(f"{what} version {found}, expected {expected}")


def read_dat(path: str | Path) -> DlibNet:
    """Parse a dlib network file; raises DatFormatError naming the file and offset."""
    path = Path(path)
    return parse_dat(path.read_bytes(), str(path))


def parse_dat(data: bytes, name: str = "<bytes>") -> DlibNet:
    reader = DatReader(data, name)
    reader._version(1, "add_loss_layer")
    loss = _loss(reader)
    outer_versions = []
    while (version := reader.integer()) != 3:
        if version not in (1, 2):
            raise reader.error(f"layer version {version}, expected 1 (tag/skip) or 2 (layer)")
        outer_versions.append(version)
    layers: list[Layer] = [_input(reader), _layer(reader)]
    reader.integer()  # the innermost layer also stores its sample expansion factor
    for version in reversed(outer_versions):
        layers.append(Marker() if version == 1 else _layer(reader))
    if not reader.at_end:
        raise reader.error(f"{len(data) - reader.pos} bytes left after the last layer")
    return DlibNet(loss=loss, layers=tuple(layers), num_floats=reader.floats_read)


def _loss(r: DatReader) -> LossMetric:
    r.expect_string("loss_metric_2")
    return LossMetric(margin=r.float(), distance_threshold=r.float())


def _input(r: DatReader) -> InputRGB:
    r.expect_string("input_rgb_image_sized")
    mean = np.array([r.float(), r.float(), r.float()], dtype=np.float32)
    return InputRGB(mean=mean, rows=r.integer(), cols=r.integer())


def _layer(r: DatReader) -> Layer:
    """One add_layer: its details record, then three flags and three (unused) tensors."""
    start = r.pos
    name = r.string()
    read_details = _DETAILS.get(name)
    if read_details is None:
        r.pos = start
        raise r.error(f"unsupported layer {name!r} (known: {', '.join(sorted(_DETAILS))})")
    layer = read_details(r)
    for _ in range(3):  # setup called, gradient input stale, output and gradient disabled
        r.bool()
    for _ in range(3):  # x_grad, cached_output, params_grad (or grad_final)
        r.tensor()
    return layer


def _split(r: DatReader, params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a layer's flat params into its alias tensors, which lie back to back."""
    flat = params.reshape(-1)
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) != flat.size:
        raise r.error(f"aliases {shapes} hold {sum(sizes)} floats, params hold {flat.size}")
    offsets = np.cumsum([0, *sizes])
    return [flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes, strict=True)]


def _conv(r: DatReader) -> Conv:
    params = r.tensor()
    num_filters, rows, cols = r.integer(), r.integer(), r.integer()
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    if filters[0] != num_filters or filters[2:] != (rows, cols):
        raise r.error(f"conv filters {filters} disagree with {num_filters}x{rows}x{cols}")
    weights, bias = _split(r, params, filters, biases)
    return Conv(weights=weights, bias=bias.reshape(-1), stride=stride, padding=padding)


def _affine(r: DatReader) -> Affine:
    params = r.tensor()
    gamma, beta = _split(r, params, r.alias(), r.alias())
    mode = r.integer()
    return Affine(gamma=gamma.reshape(-1), beta=beta.reshape(-1), conv_mode=mode == 0)


def _relu(r: DatReader) -> Relu:
    return Relu()


def _add_prev(r: DatReader) -> AddPrev:
    return AddPrev()


def _pool(kind: str):
    def read(r: DatReader) -> Pool:
        window = (r.integer(), r.integer())
        stride = (r.integer(), r.integer())
        return Pool(kind=kind, window=window, stride=stride, padding=(r.integer(), r.integer()))

    return read


def _fc(r: DatReader) -> FullyConnected:
    num_outputs, num_inputs = r.integer(), r.integer()
    params = r.tensor()
    weights_shape, bias_shape = r.alias(), r.alias()  # the bias alias is empty without bias
    has_bias = r.integer() == 0  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for _ in range(4):
        r.float()
    weights, bias = _split(r, params, weights_shape, bias_shape)
    return FullyConnected(
        weights=weights.reshape(num_inputs, num_outputs),
        bias=bias.reshape(-1) if has_bias else None,
    )


_DETAILS = {
    "con_4": _conv,
    "affine_": _affine,
    "relu_": _relu,
    "add_prev_": _add_prev,
    "max_pool_2": _pool("max"),
    "avg_pool_2": _pool("avg"),
    "fc_2": _fc,
}
