"""Rebuild dlib's face recognition ResNet in Keras from the parsed `.dat` records.

The model takes a raw RGB chip (float32, 0..255, shape (1, 150, 150, 3)) and returns dlib's
128-d descriptor, so the TFLite files need no preprocessing outside them: dlib's
(pixel - mean) / 256 is folded into the first convolution (exact, because it has no padding)
and every affine (batch norm) layer into the convolution before it.

The record sequence must be dlib's face recognition example network (residual blocks over
tag/skip markers); anything else is refused, naming the record that did not fit.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
from keras import layers, ops

from edge.modelbuild.dlib_dat import (
    INPUT_DIVISOR,
    AddPrev,
    Affine,
    Conv,
    DlibNet,
    FullyConnected,
    InputRGB,
    Marker,
    Pool,
    Relu,
)


class PadBottomRight(layers.Layer):
    """Zero-pad rows, columns and channels at the end, as dlib's add_prev does."""

    def __init__(self, pads: tuple[int, int, int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.pads = tuple(pads)

    def call(self, x):
        rows, cols, channels = self.pads
        return ops.pad(x, [[0, 0], [0, rows], [0, cols], [0, channels]])

    def get_config(self) -> dict:
        return {**super().get_config(), "pads": self.pads}


class _Records:
    """Cursor over the layer records that names the record that breaks the expected pattern."""

    def __init__(self, net: DlibNet) -> None:
        self.layers = net.layers
        self.index = 0

    def peek(self) -> object:
        return self.layers[self.index] if self.index < len(self.layers) else None

    def take(self, kind: type):
        record = self.peek()
        if not isinstance(record, kind):
            raise ValueError(
                f"dlib network record {self.index}: expected {kind.__name__}, "
                f"found {type(record).__name__}: not dlib's face recognition ResNet"
            )
        self.index += 1
        return record


def fold_affine(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out, in, kh, kw) and bias of conv followed by a per-channel affine, in float64."""
    if not affine.conv_mode:
        raise ValueError("affine layer after a convolution is not in conv mode")
    gamma = affine.gamma.astype(np.float64)
    weights = conv.weights.astype(np.float64) * gamma[:, None, None, None]
    bias = conv.bias.astype(np.float64) * gamma + affine.beta.astype(np.float64)
    return weights, bias


def fold_input(weights: np.ndarray, bias: np.ndarray, mean: np.ndarray) -> tuple:
    """Fold (x - mean) / 256 into an unpadded convolution so it takes raw 0..255 pixels."""
    mean_term = np.einsum("oikl,i->o", weights, mean.astype(np.float64))
    return weights / INPUT_DIVISOR, bias - mean_term / INPUT_DIVISOR


def _conv_layer(conv: Conv, weights: np.ndarray, bias: np.ndarray, name: str) -> layers.Conv2D:
    out_channels, in_channels, kh, kw = weights.shape
    if conv.padding == (0, 0):
        padding = "valid"
    elif conv.stride == (1, 1) and conv.padding == (kh // 2, kw // 2):
        padding = "same"
    else:
        raise ValueError(f"{name}: padding {conv.padding} with stride {conv.stride} unsupported")
    layer = layers.Conv2D(out_channels, (kh, kw), strides=conv.stride, padding=padding, name=name)
    layer.build((None, None, None, in_channels))
    layer.set_weights([weights.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)])
    return layer


def _pool_layer(pool: Pool, name: str) -> layers.Layer:
    if pool.window == (0, 0):
        if pool.kind != "avg":
            raise ValueError(f"{name}: global {pool.kind} pooling unsupported")
        return layers.GlobalAveragePooling2D(name=name)
    if pool.padding != (0, 0):
        raise ValueError(f"{name}: pooling padding {pool.padding} unsupported")
    kind = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[pool.kind]
    return kind(pool.window, strides=pool.stride, padding="valid", name=name)


def _add_prev(a, b, name: str):
    """dlib's add_prev: the sum takes the larger of each dimension, zero-filling the other."""
    target = [max(da, db) for da, db in zip(a.shape[1:], b.shape[1:], strict=True)]
    padded = []
    for i, t in enumerate((a, b)):
        pads = tuple(full - have for full, have in zip(target, t.shape[1:], strict=True))
        padded.append(PadBottomRight(pads, name=f"{name}_pad{i}")(t) if any(pads) else t)
    return layers.Add(name=name)(padded)


def build_model(net: DlibNet) -> keras.Model:
    """The Keras model for a parsed dlib face recognition network (input raw RGB 0..255)."""
    records = _Records(net)
    source = records.take(InputRGB)
    chip = keras.Input((source.rows, source.cols, 3), batch_size=1, name="chip")
    counter = itertools.count()

    def conv_affine(x, fold_mean: np.ndarray | None = None):
        conv = records.take(Conv)
        weights, bias = fold_affine(conv, records.take(Affine))
        if fold_mean is not None:
            if conv.padding != (0, 0):
                raise ValueError("first convolution is padded: cannot fold the input mean")
            weights, bias = fold_input(weights, bias, fold_mean)
        return _conv_layer(conv, weights, bias, f"conv{next(counter)}")(x)

    def relu(x):
        records.take(Relu)
        return layers.ReLU()(x)

    x = relu(conv_affine(chip, fold_mean=source.mean))
    x = _pool_layer(records.take(Pool), "max_pool")(x)
    block = 0
    while isinstance(records.peek(), Marker):
        records.take(Marker)  # tag1: the block input
        shortcut = x
        y = conv_affine(relu(conv_affine(x)))
        if isinstance(records.peek(), Marker):  # tag2, skip1: down-sampling shortcut
            records.take(Marker)
            records.take(Marker)
            shortcut = _pool_layer(records.take(Pool), f"shortcut_pool{block}")(shortcut)
        records.take(AddPrev)
        x = relu(_add_prev(y, shortcut, f"add{block}"))
        block += 1
    x = _pool_layer(records.take(Pool), "global_pool")(x)
    fc = records.take(FullyConnected)
    dense = layers.Dense(fc.weights.shape[1], use_bias=fc.bias is not None, name="fc")
    dense.build((None, fc.weights.shape[0]))
    dense.set_weights([fc.weights] + ([] if fc.bias is None else [fc.bias]))
    descriptor = dense(x)
    if records.peek() is not None:
        raise ValueError(f"dlib network record {records.index}: unexpected trailing record")
    return keras.Model(chip, descriptor, name="dlib_face_recognition_resnet_v1")
