# SPDX-License-Identifier: MIT
# A local "xsimd" recipe that packages the system's xsimd headers (Debian: libxsimd-dev), standing
# in for conancenter's xsimd recipe where no remote is reachable. It mirrors that recipe's CMake
# names (file "xsimd", target "xsimd") so kpc's requirement resolves the same way.
#   conan create packaging/conan/xsimd-system
# xsimd 8 includes xtl only with XSIMD_ENABLE_XTL_COMPLEX (off here, as in conancenter's default),
# so xtl is not packaged. XSIMD_SYSTEM_INCLUDEDIR overrides /usr/include.
import os
import re

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.files import copy, load


def _includedir():
    return os.environ.get("XSIMD_SYSTEM_INCLUDEDIR", "/usr/include")


def _system_version(conanfile):
    config = os.path.join(_includedir(), "xsimd", "config", "xsimd_config.hpp")
    if not os.path.isfile(config):
        raise ConanException(f"xsimd-system: {config} not found (Debian: apt-get install libxsimd-dev)")
    text = load(conanfile, config)
    parts = [re.search(r"^#define XSIMD_VERSION_%s (\d+)" % p, text, re.M) for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise ConanException(f"xsimd-system: no XSIMD_VERSION_* macros in {config}")
    return ".".join(m.group(1) for m in parts)


class XsimdSystemConan(ConanFile):
    name = "xsimd"
    description = "The system's xsimd headers (stand-in for conancenter's xsimd)"
    license = "BSD-3-Clause"
    url = "https://github.com/xtensor-stack/xsimd"
    topics = ("simd", "header-only", "system")
    package_type = "header-library"
    no_copy_source = True

    def set_version(self):
        self.version = _system_version(self)

    def package_id(self):
        self.info.clear()

    def package(self):
        found = _system_version(self)
        if found != str(self.version):
            raise ConanException(f"xsimd-system: the system has xsimd {found}, this recipe was exported as {self.version}")
        src = os.path.join(_includedir(), "xsimd")
        copy(self, "*.hpp", src=src, dst=os.path.join(self.package_folder, "include", "xsimd"))
        copy(self, "copyright", src="/usr/share/doc/libxsimd-dev", dst=os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "xsimd")
        self.cpp_info.set_property("cmake_target_name", "xsimd")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
