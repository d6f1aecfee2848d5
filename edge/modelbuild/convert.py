"""Convert the Keras embedder to the two TFLite files the device may run.

- int8: full-integer, uint8 input with scale 1.0 and zero point 0 (a raw RGB chip goes
  straight in), float32 output. The default on every runtime that has it.
- fp16: float16 weights, float32 input (0..255) and output. The fallback for old runtimes
  (tflite-runtime 2.14 runs it; it cannot load dynamic-range files).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf


def to_int8(model: keras.Model, calibration_chips: Iterable[np.ndarray]) -> bytes:
    """Full-integer quantization calibrated on (150, 150, 3) uint8 RGB chips."""
    chips = list(calibration_chips)

    def representative():
        for chip in chips:
            yield [chip[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    return _quietly(converter)


def to_fp16(model: keras.Model) -> bytes:
    """Float16 weights; the interpreter dequantizes them to float32 at load time."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return _quietly(converter)


def _quietly(converter: tf.lite.TFLiteConverter) -> bytes:
    """Convert without Keras' listing of every captured variable on stdout, and without the
    warning that uint8 input statistics were not given: the representative set gives them
    (check_io confirms scale 1.0, zero point 0)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()
