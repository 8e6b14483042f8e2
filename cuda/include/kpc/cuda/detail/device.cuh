// SPDX-License-Identifier: MIT
// Device-side plumbing shared by kpc's CUDA kernels: error reporting, argument checks, block
// reductions and staging of unaligned byte ranges into shared memory.
#ifndef KPC_CUDA_DETAIL_DEVICE_CUH
#define KPC_CUDA_DETAIL_DEVICE_CUH

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include <kpc/config.hpp>
#include <kpc/error.hpp>

#include "math.hpp"

// Kernel launches and dynamic shared memory go through these two macros so that kpc's tests can
// also run every kernel on the CPU (tests/cuda_emulator, KPC_CUDA_EMULATION); nvcc sees plain CUDA.
#if defined(KPC_CUDA_EMULATION)
#define KPC_CUDA_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  ::kpc_cuda_emulator::launch(kernel, grid, block, shared_bytes, stream)
#define KPC_CUDA_DYNAMIC_SHARED(type, name) type* name = ::kpc_cuda_emulator::dynamic_shared<type>()
#else
#define KPC_CUDA_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#define KPC_CUDA_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Loops over the heads of a block and the channels of a thread, unrolled by the device compiler
// (host compilers, e.g. for the emulated tests, are left to their own judgement).
#if defined(__CUDACC__)
#define KPC_CUDA_UNROLL _Pragma("unroll")
#else
#define KPC_CUDA_UNROLL
#endif

KPC_BEGIN_NAMESPACE
namespace cuda {
namespace detail {

/// Threads per block of every kpc kernel; the attention kernel's register arrays are sized for it.
inline constexpr int block_threads = 128;
inline constexpr int warps_per_block = block_threads / 32;

/// Records the first error a kernel meets in *status (0 = errc::ok), if the caller asked for it.
__device__ inline void report(int* status, errc code) {
  if (status != nullptr && code != errc::ok) atomicCAS(status, 0, static_cast<int>(code));
}

__device__ inline ranked shuffle_down(ranked v, int delta) {
  return {__shfl_down_sync(0xFFFFFFFFu, v.value, delta), __shfl_down_sync(0xFFFFFFFFu, v.index, delta)};
}

/// Reduces one ranked value per thread of the block with `merge`; every thread gets the result.
/// `scratch` holds warps_per_block values. Ends with the block synchronized.
template <class Merge>
__device__ inline ranked block_reduce(ranked v, Merge merge, ranked* scratch) {
  for (int delta = 16; delta > 0; delta /= 2) v = merge(v, shuffle_down(v, delta));
  const int warp = static_cast<int>(threadIdx.x) / 32;
  if (threadIdx.x % 32 == 0) scratch[warp] = v;
  __syncthreads();
  ranked result = scratch[0];
  for (int w = 1; w < warps_per_block; ++w) result = merge(result, scratch[w]);
  __syncthreads();  // scratch may be reused at once
  return result;
}

__device__ inline float warp_sum(float v) {
  for (int delta = 16; delta > 0; delta /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, delta);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int delta = 16; delta > 0; delta /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, delta));
  return v;
}

/// Bytes of shared memory stage_bytes needs for n bytes.
KPC_HOST_DEVICE constexpr std::size_t staged_bytes(std::size_t n) { return (n + 31) / 16 * 16; }

/// Copies the n bytes at src (any alignment; tiles and rows are packed without padding) into
/// 16-byte-aligned shared memory `dst` at the same offset modulo 16, with 16-byte loads for the
/// words wholly inside the range and byte loads at its two ends: no byte outside [src, src + n) is
/// read. Returns where src[0] landed. The caller synchronizes before reading.
__device__ inline const std::byte* stage_bytes(const std::byte* src, std::size_t n, std::byte* dst) {
  const staging_plan plan = plan_staging(reinterpret_cast<std::uintptr_t>(src), n);
  const std::byte* base = src - plan.lead;
  for (std::size_t w = plan.words_begin + threadIdx.x; w < plan.words_end; w += blockDim.x)
    reinterpret_cast<uint4*>(dst)[w] = __ldg(reinterpret_cast<const uint4*>(base) + w);
  for (std::size_t i = plan.lead + threadIdx.x; i < plan.head_end; i += blockDim.x) dst[i] = base[i];
  for (std::size_t i = plan.tail_begin + threadIdx.x; i < plan.total; i += blockDim.x) dst[i] = base[i];
  return dst + plan.lead;
}

/// Blocks for `count` items at block_threads per block, or 0 when that exceeds the grid limit.
inline unsigned grid_for(std::size_t count) {
  const std::size_t blocks = (count + block_threads - 1) / block_threads;
  return blocks <= 0x7FFFFFFFu ? static_cast<unsigned>(blocks) : 0u;
}

}  // namespace detail
}  // namespace cuda
KPC_END_NAMESPACE

#endif  // KPC_CUDA_DETAIL_DEVICE_CUH
