// SPDX-License-Identifier: MIT
// A CPU stand-in for the parts of CUDA that kpc's kernels and GPU test use, so CI (which has no
// GPU) runs every kernel: each block's threads are fibers on one OS thread, switched at
// __syncthreads and at warp shuffles, which wait for the whole block or warp as the hardware does.
// "Device" memory is host memory of exactly the requested size, so ASan sees any byte a kernel
// reads or writes outside its buffers. Built with KPC_CUDA_EMULATION (kpc's launch macros call
// kpc_cuda_emulator::launch). Not a general CUDA emulator: no streams, no concurrency between
// blocks (blocks run one after another), no warp-synchronous code without a shuffle.
#ifndef KPC_TESTS_CUDA_EMULATOR_CUDA_RUNTIME_H
#define KPC_TESTS_CUDA_EMULATOR_CUDA_RUNTIME_H

#include <setjmp.h>
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define KPC_EMULATOR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KPC_EMULATOR_ASAN 1
#endif
#endif
#if defined(KPC_EMULATOR_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // one block runs at a time on one OS thread: a static is the block's

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
};
using cudaStream_t = struct kpc_emulated_stream*;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
};

namespace kpc_cuda_emulator {

// Small stacks: ASan clears a stack's shadow on every _longjmp, so its cost grows with the size.
inline constexpr std::size_t stack_bytes = 64 * 1024;
inline constexpr int emulated_sm_count = 3;  // few "SMs": launches use few, unevenly sized splits
inline constexpr std::size_t max_dynamic_shared = 227 * 1024;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "kpc CUDA emulator: %s\n", what);
  std::abort();
}

enum class fiber_state { running, at_block_barrier, at_warp_barrier, done };

// A fiber starts through makecontext/swapcontext; every later switch is _setjmp/_longjmp, which
// (unlike swapcontext) makes no signal-mask system call.
struct fiber {
  ucontext_t start;
  jmp_buf context;
  bool started = false;
  char* stack = nullptr;
  fiber_state state = fiber_state::done;
  void* fake_stack = nullptr;
};

struct emulator_state {
  std::vector<fiber> fibers;
  ucontext_t scheduler_start;
  jmp_buf scheduler;
  unsigned current = 0;
  void (*body)(void*) = nullptr;
  void* body_argument = nullptr;
  std::vector<uint4> dynamic_shared;
  std::uint32_t exchange[1024];
  cudaError_t last_error = cudaSuccess;
  const void* scheduler_stack_bottom = nullptr;
  std::size_t scheduler_stack_size = 0;
};

inline emulator_state& state() {
  static struct owner {
    emulator_state s;
    ~owner() {
      for (fiber& f : s.fibers) std::free(f.stack);
    }
  } instance;
  return instance.s;
}

}  // namespace kpc_cuda_emulator

inline uint3 threadIdx{0, 0, 0}, blockIdx{0, 0, 0};
inline dim3 blockDim, gridDim;

namespace kpc_cuda_emulator {

inline void switch_to_scheduler(fiber_state next) {
  emulator_state& s = state();
  fiber& f = s.fibers[s.current];
  f.state = next;
#if defined(KPC_EMULATOR_ASAN)
  __sanitizer_start_switch_fiber(next == fiber_state::done ? nullptr : &f.fake_stack, s.scheduler_stack_bottom,
                                 s.scheduler_stack_size);
#endif
  if (_setjmp(f.context) == 0) _longjmp(s.scheduler, 1);
#if defined(KPC_EMULATOR_ASAN)
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
  emulator_state& s = state();
#if defined(KPC_EMULATOR_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &s.scheduler_stack_bottom, &s.scheduler_stack_size);
#endif
  s.body(s.body_argument);
  switch_to_scheduler(fiber_state::done);  // never resumed
}

/// Runs one block: every thread as a fiber, round-robin until each waits at a barrier or is done,
/// then releases the barriers whose threads have all arrived.
inline void run_block(unsigned threads, void (*body)(void*), void* argument) {
  emulator_state& s = state();
  if (s.fibers.size() < threads) s.fibers.resize(threads);
  s.body = body;
  s.body_argument = argument;
  for (unsigned i = 0; i < threads; ++i) {
    fiber& f = s.fibers[i];
    if (f.stack == nullptr) f.stack = static_cast<char*>(std::malloc(stack_bytes));
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = f.stack;
    f.start.uc_stack.ss_size = stack_bytes;
    f.start.uc_link = nullptr;
    makecontext(&f.start, fiber_entry, 0);
    f.started = false;
    f.state = fiber_state::running;
  }
  for (;;) {
    for (unsigned i = 0; i < threads; ++i) {
      fiber& f = s.fibers[i];
      if (f.state != fiber_state::running) continue;
      s.current = i;
      threadIdx = {i % blockDim.x, i / blockDim.x % blockDim.y, i / blockDim.x / blockDim.y};
      [[maybe_unused]] void* fake = nullptr;
#if defined(KPC_EMULATOR_ASAN)
      __sanitizer_start_switch_fiber(&fake, f.stack, stack_bytes);
#endif
      if (_setjmp(s.scheduler) == 0) {
        if (f.started) _longjmp(f.context, 1);
        f.started = true;
        swapcontext(&s.scheduler_start, &f.start);
      }
#if defined(KPC_EMULATOR_ASAN)
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    }
    unsigned live = 0, at_block = 0;
    for (unsigned i = 0; i < threads; ++i) {
      live += s.fibers[i].state != fiber_state::done;
      at_block += s.fibers[i].state == fiber_state::at_block_barrier;
    }
    if (live == 0) return;
    bool released = false;
    if (at_block == live) {
      for (unsigned i = 0; i < threads; ++i)
        if (s.fibers[i].state == fiber_state::at_block_barrier) s.fibers[i].state = fiber_state::running;
      released = true;
    }
    for (unsigned w = 0; w * 32 < threads; ++w) {
      unsigned lanes_live = 0, lanes_waiting = 0;
      for (unsigned i = w * 32; i < threads && i < w * 32 + 32; ++i) {
        lanes_live += s.fibers[i].state != fiber_state::done;
        lanes_waiting += s.fibers[i].state == fiber_state::at_warp_barrier;
      }
      if (lanes_waiting != 0 && lanes_waiting == lanes_live) {
        for (unsigned i = w * 32; i < threads && i < w * 32 + 32; ++i)
          if (s.fibers[i].state == fiber_state::at_warp_barrier) s.fibers[i].state = fiber_state::running;
        released = true;
      }
    }
    if (!released) fail("deadlock: threads wait at different barriers (divergent __syncthreads or shuffle)");
  }
}

inline unsigned linear_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

/// A shuffle: every lane of the warp publishes its value, then reads its source lane's.
template <class T>
T shuffle(T value, unsigned source_lane) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  emulator_state& s = state();
  const unsigned me = linear_thread(), warp_base = me / 32 * 32;
  std::memcpy(&s.exchange[me], &value, 4);
  switch_to_scheduler(fiber_state::at_warp_barrier);
  if (s.fibers[warp_base + source_lane].state == fiber_state::done) fail("shuffle from a lane that has exited");
  T result;
  std::memcpy(&result, &s.exchange[warp_base + source_lane], 4);
  switch_to_scheduler(fiber_state::at_warp_barrier);  // nobody overwrites a slot still being read
  return result;
}

template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(state().dynamic_shared.data());
}

template <class... Params>
struct launcher {
  void (*kernel)(Params...);
  dim3 grid, block;
  std::size_t shared_bytes;

  template <class... Args>
  void operator()(Args&&... args) const {
    emulator_state& s = state();
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
        grid.z > 65535 || shared_bytes > max_dynamic_shared) {
      s.last_error = cudaErrorInvalidConfiguration;
      return;
    }
    std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    using call = std::pair<void (*)(Params...), decltype(params)*>;
    call c{kernel, &params};
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          blockIdx = {x, y, z};
          // Shared memory starts as garbage on a GPU; NaN bytes make reads before writes visible.
          s.dynamic_shared.assign((shared_bytes + 15) / 16, uint4{0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu});
          run_block(threads, [](void* p) {
            call* c = static_cast<call*>(p);
            std::apply(c->first, *c->second);
          }, &c);
        }
  }
};

template <class... Params>
launcher<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t) {
  return {kernel, grid, block, shared_bytes};
}

}  // namespace kpc_cuda_emulator

// Device intrinsics kpc uses.
inline void __syncthreads() { kpc_cuda_emulator::switch_to_scheduler(kpc_cuda_emulator::fiber_state::at_block_barrier); }

inline int __syncthreads_and(int predicate) {
  kpc_cuda_emulator::emulator_state& s = kpc_cuda_emulator::state();
  s.exchange[kpc_cuda_emulator::linear_thread()] = predicate != 0;
  __syncthreads();
  int all = 1;
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  for (unsigned i = 0; i < threads; ++i)
    if (s.fibers[i].state != kpc_cuda_emulator::fiber_state::done) all = all && s.exchange[i] != 0;
  __syncthreads();
  return all;
}

template <class T>
T __shfl_down_sync(unsigned, T value, int delta) {
  const unsigned lane = kpc_cuda_emulator::linear_thread() % 32;
  return kpc_cuda_emulator::shuffle(value, lane + static_cast<unsigned>(delta) < 32 ? lane + static_cast<unsigned>(delta) : lane);
}

template <class T>
T __shfl_xor_sync(unsigned, T value, int mask) {
  return kpc_cuda_emulator::shuffle(value, (kpc_cuda_emulator::linear_thread() % 32) ^ static_cast<unsigned>(mask));
}

inline int atomicCAS(int* address, int compare, int value) {
  const int old = *address;
  if (old == compare) *address = value;
  return old;
}

template <class T>
T __ldg(const T* p) {
  return *p;
}

// Runtime API: device memory is host memory; every call completes at once.
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
  *p = static_cast<T*>(std::malloc(bytes));
  return *p != nullptr || bytes == 0 ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind) {
  if (bytes != 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  if (bytes != 0) std::memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = kpc_cuda_emulator::state().last_error;
  kpc_cuda_emulator::state().last_error = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  }
  return "unknown error";
}
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int) {
  if (attribute != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  *value = kpc_cuda_emulator::emulated_sm_count;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "kpc CPU emulator");
  p->multiProcessorCount = kpc_cuda_emulator::emulated_sm_count;
  return cudaSuccess;
}
template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int value) {
  return value >= 0 && static_cast<std::size_t>(value) <= kpc_cuda_emulator::max_dynamic_shared ? cudaSuccess
                                                                                                   : cudaErrorInvalidValue;
}

#endif  // KPC_TESTS_CUDA_EMULATOR_CUDA_RUNTIME_H
