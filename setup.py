"""The one build step pyproject.toml cannot declare: the models ship inside the package.

`models/` stays at the repository root (the build scripts, model cards and evaluations live
there); a wheel carries its runtime files as `edge/models/`, which `edge.vision.runtime` finds
first, so an install outside the checkout runs without `$EDGE_MODELS_DIR`.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path("models")
PACKAGED = ("*.tflite", "manifest.json", "MODEL_CARD*.md")  # also listed in MANIFEST.in, for the sdist


class BuildWithModels(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "edge" / "models"
        self.mkpath(str(target))
        for pattern in PACKAGED:
            for source in sorted(MODELS.glob(pattern)):
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithModels})
