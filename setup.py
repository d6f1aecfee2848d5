"""The one build step pyproject.toml cannot declare: top-level folders ship inside the package.

`models/` and `firmware-config/` stay at the repository root (the build scripts, model cards and
evaluations live there too); a wheel carries the runtime models as `edge/models/` and the board
files as `edge/firmware-config/`, which `edge.resources.shipped` finds first, so an install
outside the checkout runs (and provisions) without the checkout.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# (folder, patterns), also listed in MANIFEST.in for the sdist
PACKAGED = {
    "models": ("*.tflite", "cohort_*.json", "manifest.json", "MODEL_CARD*.md"),
    "firmware-config": ("*.sh", "*.service", "*.conf", "acl", "boards/*.toml"),
}


class BuildWithShippedFolders(build_py):
    def run(self) -> None:
        super().run()
        for folder, patterns in PACKAGED.items():
            for pattern in patterns:
                for source in sorted(Path(folder).glob(pattern)):
                    target = Path(self.build_lib) / "edge" / source
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithShippedFolders})
