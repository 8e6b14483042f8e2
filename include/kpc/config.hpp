// SPDX-License-Identifier: MIT
// kpc: version, namespace and host/device macros shared by every kpc header.
#ifndef KPC_CONFIG_HPP
#define KPC_CONFIG_HPP

// The single source of the library version; CMake's project(VERSION) reads these lines.
#define KPC_VERSION_MAJOR 0
#define KPC_VERSION_MINOR 1
#define KPC_VERSION_PATCH 0
#define KPC_VERSION (KPC_VERSION_MAJOR * 10000 + KPC_VERSION_MINOR * 100 + KPC_VERSION_PATCH)
#define KPC_DETAIL_STRINGIFY2(x) #x
#define KPC_DETAIL_STRINGIFY(x) KPC_DETAIL_STRINGIFY2(x)
/// "major.minor.patch"
#define KPC_VERSION_STRING \
  KPC_DETAIL_STRINGIFY(KPC_VERSION_MAJOR) "." KPC_DETAIL_STRINGIFY(KPC_VERSION_MINOR) "." KPC_DETAIL_STRINGIFY(KPC_VERSION_PATCH)

// Version of the stored byte formats (docs/FORMAT.md). Bumped only when bytes change.
#define KPC_FORMAT_VERSION 1

#define KPC_DETAIL_PASTE4(a, b, c, d) a##b##c##d
#define KPC_DETAIL_PASTE5(a, b, c, d, e) a##b##c##d##e
#define KPC_DETAIL_ABI(major, minor, suffix) KPC_DETAIL_PASTE5(v, major, _, minor, suffix)
#define KPC_DETAIL_KERNELS_ABI(major, minor) KPC_DETAIL_PASTE4(kpc_kernels_v, major, _, minor)
// Everything lives in an inline namespace named after major.minor, so two engines that bundle
// different kpc versions can be linked into one program without ODR clashes. A run-time dispatch
// unit (simd/dispatch_unit.hpp) sets KPC_ABI_SUFFIX (e.g. _avx2) and so compiles all of kpc for
// one instruction set in a namespace of its own: no inline function built with AVX2 flags can
// stand in for the baseline one at link time.
#ifndef KPC_ABI_SUFFIX
#define KPC_ABI_SUFFIX
#endif
#define KPC_ABI_NAMESPACE KPC_DETAIL_ABI(KPC_VERSION_MAJOR, KPC_VERSION_MINOR, KPC_ABI_SUFFIX)
// The kernel tables that cross between those namespaces use this fixed, versioned namespace.
#define KPC_KERNELS_ABI KPC_DETAIL_KERNELS_ABI(KPC_VERSION_MAJOR, KPC_VERSION_MINOR)
#define KPC_BEGIN_NAMESPACE \
  namespace kpc {           \
  inline namespace KPC_ABI_NAMESPACE {
#define KPC_END_NAMESPACE \
  }                       \
  }

KPC_BEGIN_NAMESPACE
/// The version of the kpc headers this code was compiled with, "major.minor.patch" (a program
/// that links two kpc versions gets each caller's own: see tests/versions/).
inline const char* version() noexcept { return KPC_VERSION_STRING; }
KPC_END_NAMESPACE

// Functions that both host code and CUDA device code call.
#if defined(__CUDACC__)
#define KPC_HOST_DEVICE __host__ __device__
#else
#define KPC_HOST_DEVICE
#endif

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define KPC_HAS_EXCEPTIONS 1
#else
#define KPC_HAS_EXCEPTIONS 0
#endif

// -ffast-math lets the compiler replace divisions by reciprocals and reassociate sums; the
// formats define codes by exact IEEE steps, so such a build would write different bytes.
#if defined(__FAST_MATH__) && !defined(KPC_ALLOW_FAST_MATH)
#error "kpc: compile kpc translation units without -ffast-math (it changes the encoded bytes); define KPC_ALLOW_FAST_MATH to override"
#endif

#endif  // KPC_CONFIG_HPP
