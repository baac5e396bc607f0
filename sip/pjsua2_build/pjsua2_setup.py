"""setuptools script for the pjsua2 SWIG module; build_pjsua2.sh copies it next to pjsua2_wrap.cpp.

The compiler and linker flags come from pjproject's own helper.mak, passed in the environment
(one flag per line) so that this file works for any pjproject tree.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup


def _lines(name: str) -> list[str]:
    return [line.strip() for line in os.environ.get(name, "").splitlines() if line.strip()]


setup(
    name="pjsua2",
    version=os.environ["PJSUA2_WHEEL_VERSION"],
    description="pjsua2 Python binding (pjproject SWIG module), built by standin's sip/build_pjsua2.sh",
    url="https://www.pjsip.org",
    license="GPL-2.0-or-later",
    py_modules=["pjsua2"],
    ext_modules=[
        Extension(
            "_pjsua2",
            ["pjsua2_wrap.cpp"],
            language="c++",
            libraries=_lines("PJ_LIBS"),
            extra_compile_args=[*_lines("PJ_CFLAGS"), "-g0", "-DNDEBUG"],
            extra_link_args=[*_lines("PJ_LDFLAGS"), "-Wl,--strip-debug"],
        )
    ],
)
