"""Build-time only: fetch, convert, quantize and verify the models in `models/`.

Needs the `build` extra (TensorFlow, dlib); nothing in the rest of `edge` imports this package,
and a device never needs it. Entry point: `scripts/build_models.py`.
"""
