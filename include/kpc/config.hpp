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

#define KPC_DETAIL_PASTE2_(a, b) a##b
#define KPC_DETAIL_PASTE2(a, b) KPC_DETAIL_PASTE2_(a, b)
#define KPC_DETAIL_PASTE4(a, b, c, d) a##b##c##d
#define KPC_DETAIL_VERSIONED(prefix, major, minor) KPC_DETAIL_PASTE4(prefix, major, _, minor)
#define KPC_DETAIL_VERSIONED_REVISION(prefix, major, minor, revision) \
  KPC_DETAIL_PASTE2(KPC_DETAIL_VERSIONED(prefix, major, minor), revision)

// The code generation flags of this translation unit, as a name: the highest x86 extension its
// flags enable (plus FMA, F16C and VNNI, which come separately), NEON (with dotprod) on ARM, or
// generic. Two
// translation units built with different -m flags get different names.
#if defined(__CUDACC__)
// nvcc's host and device passes must agree on every name; .cu files share one namespace.
#define KPC_DETAIL_ARCH_BASE nvcc  // (not `cuda`: kpc::cuda is the CUDA code's public namespace)
#elif defined(__AVX512BW__)
#define KPC_DETAIL_ARCH_BASE avx512bw
#elif defined(__AVX512F__)
#define KPC_DETAIL_ARCH_BASE avx512f
#elif defined(__AVX2__)
#define KPC_DETAIL_ARCH_BASE avx2
#elif defined(__AVX__)
#define KPC_DETAIL_ARCH_BASE avx
#elif defined(__SSE4_2__)
#define KPC_DETAIL_ARCH_BASE sse4_2
#elif defined(__SSE4_1__)
#define KPC_DETAIL_ARCH_BASE sse4_1
#elif defined(__SSSE3__)
#define KPC_DETAIL_ARCH_BASE ssse3
#elif defined(__SSE3__)
#define KPC_DETAIL_ARCH_BASE sse3
#elif defined(__SSE2__) || defined(_M_X64)
#define KPC_DETAIL_ARCH_BASE sse2
#elif defined(__ARM_FEATURE_DOTPROD) && (defined(__ARM_NEON) || defined(__aarch64__))
#define KPC_DETAIL_ARCH_BASE neon_dotprod
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define KPC_DETAIL_ARCH_BASE neon
#else
#define KPC_DETAIL_ARCH_BASE generic
#endif
#if defined(__FMA__) && !defined(__CUDACC__)
#define KPC_DETAIL_ARCH_FMA KPC_DETAIL_PASTE2(KPC_DETAIL_ARCH_BASE, _fma)
#else
#define KPC_DETAIL_ARCH_FMA KPC_DETAIL_ARCH_BASE
#endif
#if defined(__F16C__) && !defined(__CUDACC__)
#define KPC_DETAIL_ARCH_F16C KPC_DETAIL_PASTE2(KPC_DETAIL_ARCH_FMA, _f16c)
#else
#define KPC_DETAIL_ARCH_F16C KPC_DETAIL_ARCH_FMA
#endif
#if (defined(__AVX512VNNI__) || defined(__AVXVNNI__)) && !defined(__CUDACC__)
#define KPC_ARCH_NAMESPACE KPC_DETAIL_PASTE2(KPC_DETAIL_ARCH_F16C, _vnni)
#else
#define KPC_ARCH_NAMESPACE KPC_DETAIL_ARCH_F16C
#endif

// Namespaces. Everything lives in kpc::v<major>_<minor> (inline), so two engines that bundle
// different kpc versions link into one program. Within it, all code (every inline function,
// every class template's members) lives in an inline namespace named after this translation
// unit's flags (KPC_ARCH_NAMESPACE, e.g. kpc::v0_1::avx2_fma_f16c): the linker, which keeps one
// copy of each inline function, can never hand a baseline translation unit a copy compiled with
// -mavx2. Only the few types that must cross between such units are shared (KPC_BEGIN_SHARED_
// NAMESPACE: kpc::errc, kpc::error, kpc::isa), and they hold no code that depends on the flags.
// Other kpc types (Quantizer, KVCache, half, ...) are distinct types in units built with
// different flags: pass them only between units with the same flags (or use the dispatch units).
#define KPC_ABI_NAMESPACE KPC_DETAIL_VERSIONED(v, KPC_VERSION_MAJOR, KPC_VERSION_MINOR)
// The kernel tables that cross between those namespaces use this fixed, versioned namespace; its
// revision (_r2: format_kernels gained the integer path's entries) changes with the table layout,
// so a dispatch library built from other headers fails to link instead of misreading the table.
#define KPC_KERNELS_ABI KPC_DETAIL_VERSIONED_REVISION(kpc_kernels_v, KPC_VERSION_MAJOR, KPC_VERSION_MINOR, _r2)
#define KPC_BEGIN_SHARED_NAMESPACE \
  namespace kpc {                  \
  inline namespace KPC_ABI_NAMESPACE {
#define KPC_END_SHARED_NAMESPACE \
  }                              \
  }
#define KPC_BEGIN_NAMESPACE           \
  namespace kpc {                     \
  inline namespace KPC_ABI_NAMESPACE { \
  inline namespace KPC_ARCH_NAMESPACE {
#define KPC_END_NAMESPACE \
  }                       \
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
