"""Build hook: ship the repository's recipes (configs/*.yaml, sweeps/*.yaml) in the package.

Everything else about the build lives in pyproject.toml. The recipes stay where they are in
the repository, the only source; building a wheel copies them into
``alignuniform/_recipes/{configs,sweeps}/`` of the build tree (never into src/), where
``alignuniform.shipped`` finds them once installed. The sdist carries the folders
themselves (MANIFEST.in), so a wheel built from the sdist gets them too. A missing folder
(no sweeps yet) ships nothing.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
KINDS = ("configs", "sweeps")


class BuildPyWithRecipes(build_py):
    def _recipe_files(self):
        for kind in KINDS:
            for src in sorted((ROOT / kind).glob("*.yaml")):
                yield src, Path(self.build_lib, "alignuniform", "_recipes", kind, src.name)

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the recipes from the checkout itself
        for src, dest in self._recipe_files():
            self.mkpath(str(dest.parent))
            self.copy_file(str(src), str(dest), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        extra = [str(dest) for _, dest in self._recipe_files()]
        return super().get_outputs(include_bytecode) + extra


if __name__ == "__main__":  # setuptools runs this file as __main__; a test imports it
    setup(cmdclass={"build_py": BuildPyWithRecipes})
