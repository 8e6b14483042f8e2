# SPDX-License-Identifier: MIT
# Conan 2 recipe for kpc (header-only). From the repository root:
#   conan create packaging/conan --build=missing
# (scripts/packaging/conan.sh does that against a local xsimd recipe, with no remote.)
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

# The repository root, relative to this file: the sources and the version live there.
_ROOT = os.path.join("..", "..")


class KpcConan(ConanFile):
    name = "kpc"
    description = "KV-cache compression for LLM inference engines (header-only C++17)"
    license = "MIT"
    url = "https://github.com/kpc-project/kpc"
    homepage = "https://github.com/kpc-project/kpc"
    topics = ("llm", "kv-cache", "quantization", "compression", "simd", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"  # for the CMake install step only
    no_copy_source = True

    def set_version(self):
        # One version source: the macros in include/kpc/config.hpp (as CMakeLists.txt reads them).
        text = load(self, os.path.join(self.recipe_folder, _ROOT, "include", "kpc", "config.hpp"))
        parts = [re.search(r"^#define KPC_VERSION_%s (\d+)" % p, text, re.M) for p in ("MAJOR", "MINOR", "PATCH")]
        if not all(parts):
            raise ValueError("kpc: no KPC_VERSION_MAJOR/MINOR/PATCH in include/kpc/config.hpp")
        self.version = ".".join(m.group(1) for m in parts)

    def export_sources(self):
        # What CMakeLists.txt needs to configure and install with tests, examples and benchmarks
        # off: the headers, cmake/ (kpcXsimd, kpcDispatch, kpcConfig.cmake.in, kpc.pc.in) and cuda/, which is
        # always add_subdirectory'd (it defines kpc::cuda and returns early without KPC_BUILD_CUDA).
        root = os.path.join(self.recipe_folder, _ROOT)
        dst = self.export_sources_folder
        for pattern in ("CMakeLists.txt", "LICENSE", "include/*", "cmake/*", "cuda/CMakeLists.txt", "cuda/include/*"):
            copy(self, pattern, src=root, dst=dst, excludes=("cmake/toolchains/*",))

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # kpc's SIMD backends; tests/ also runs against xsimd 14.
        self.requires("xsimd/[>=8.1 <15]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 17)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.user_presets_path = False  # no_copy_source: never write into the (shared) source folder
        tc.cache_variables["KPC_BUILD_TESTS"] = False
        tc.cache_variables["KPC_BUILD_EXAMPLES"] = False
        tc.cache_variables["KPC_BUILD_BENCHMARKS"] = False
        tc.cache_variables["KPC_BUILD_CUDA"] = False
        tc.cache_variables["KPC_INSTALL"] = True
        tc.cache_variables["KPC_USE_XSIMD"] = True
        tc.cache_variables["KPC_REQUIRE_XSIMD"] = True  # the package requires xsimd: use it
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()

    def package(self):
        # kpc's own install rules: headers, share/kpc (kpcConfig.cmake & co.), share/doc/kpc/LICENSE.
        cmake = CMake(self)
        cmake.install()
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        # Consumers get CMakeDeps' kpc-config.cmake (target kpc::kpc, requiring xsimd's target
        # "xsimd"); kpc's own share/kpc/kpcConfig.cmake is in the package for non-Conan use.
        self.cpp_info.set_property("cmake_file_name", "kpc")
        self.cpp_info.set_property("cmake_target_name", "kpc::kpc")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # kpc_add_runtime_dispatch() (a CMake function, no targets) for consumers of the generated config.
        self.cpp_info.set_property("cmake_build_modules", [os.path.join("share", "kpc", "kpcDispatch.cmake")])
