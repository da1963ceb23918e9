"""Builds the C executor's host library into the wheel (``thinker/runtime/_libthinker*``), so
an installed ``thinker`` runs ``--backend c`` without a source checkout or a compiler at run
time. Everything else is in pyproject.toml.

The library is a plain C shared library loaded with ctypes (no Python API), compiled from
executor/src with the same flags as ``make -C executor``. Editable installs skip it: a source
checkout uses (and rebuilds) executor/build/host/libthinker.so. Without a C compiler the wheel
still builds, without the library (``optional``): ``backend='c'`` then says so.
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildCLibrary(build_ext):
    def run(self):
        if getattr(self, "editable_mode", False):
            return  # a source checkout builds executor/build/host/libthinker.so with make
        super().run()

    def get_export_symbols(self, ext):
        return []  # a plain C library: no PyInit_ symbol to export

    def build_extension(self, ext):
        if self.compiler.compiler_type == "unix":
            ext.extra_compile_args = ["-std=c99", "-O3", "-fPIC"]
        super().build_extension(ext)


def c_sources() -> list[str]:
    files = glob.glob("executor/src/*.c", root_dir=HERE) + \
        glob.glob("executor/src/ops/*.c", root_dir=HERE) + \
        glob.glob("executor/host/*.c", root_dir=HERE)
    return sorted(f.replace(os.sep, "/") for f in files)


sources = c_sources()
setup(
    ext_modules=[Extension("thinker.runtime._libthinker", sources=sources,
                           include_dirs=["executor/include", "executor/src", "executor/host"],
                           define_macros=[("THINKER_HOST_KERNELS", "1")],
                           optional=True)] if sources else [],
    cmdclass={"build_ext": BuildCLibrary},
)
