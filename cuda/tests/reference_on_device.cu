// SPDX-License-Identifier: MIT
// The format header and the scalar reference are shared with device code (KPC_HOST_DEVICE). This
// translation unit makes nvcc compile every reference kernel for the GPU, with warnings as errors,
// so a host-only construct slipping into them breaks the build. (No GPU is needed or used.)
#include <kpc/kpc.hpp>

namespace kpc_device_check {

template <int Bits, int G>
__global__ void k_tiles(const float* rows, int tokens, int channels, std::byte* tiles, float* decoded, float* scores,
                        const float* q) {
  using tile = kpc::format::k_tile<Bits, G>;
  const int first = static_cast<int>(blockIdx.x) * G;
  const int present = tokens - first < G ? tokens - first : G;
  std::byte* out = tiles + blockIdx.x * tile::bytes(channels);
  if (kpc::ref::encode_k_tile<Bits, G>(rows + first * channels, channels, present, channels, out) != kpc::errc::ok)
    return;
  kpc::ref::decode_k_tile<Bits, G>(out, present, channels, decoded + first * channels, channels);
  kpc::ref::scores_k_tile<Bits, G>(q, out, present, channels, scores + first);
}

template <int Bits>
__global__ void v_blocks(const kpc::half* rows, std::byte* blocks, float* decoded, float* sums, const float* w) {
  using block = kpc::format::v_block<Bits>;
  std::byte* out = blocks + blockIdx.x * block::bytes;
  kpc::ref::encode_v_block<Bits>(rows + blockIdx.x * 32, out);
  kpc::ref::decode_v_block<Bits>(out, decoded + blockIdx.x * 32);
  kpc::ref::axpy_v_block<Bits>(w[blockIdx.x], out, sums);
  sums[0] += kpc::ref::dot_v_block<Bits>(w, out);
}

__global__ void q4_0_blocks(const float* rows, std::byte* blocks, kpc::half* decoded, float* sums) {
  std::byte* out = blocks + blockIdx.x * kpc::format::q4_0_block::bytes;
  kpc::ref::encode_q4_0_block(rows + blockIdx.x * 32, out);
  kpc::ref::decode_q4_0_block(out, decoded + blockIdx.x * 32);
  kpc::ref::axpy_q4_0_block(1.0f, out, sums);
  sums[0] += kpc::ref::dot_q4_0_block(rows, out);
}

// Instantiate every format so each is compiled for the device.
template __global__ void k_tiles<4, 32>(const float*, int, int, std::byte*, float*, float*, const float*);
template __global__ void k_tiles<4, 64>(const float*, int, int, std::byte*, float*, float*, const float*);
template __global__ void k_tiles<4, 128>(const float*, int, int, std::byte*, float*, float*, const float*);
template __global__ void k_tiles<3, 32>(const float*, int, int, std::byte*, float*, float*, const float*);
template __global__ void k_tiles<2, 32>(const float*, int, int, std::byte*, float*, float*, const float*);
template __global__ void v_blocks<8>(const kpc::half*, std::byte*, float*, float*, const float*);
template __global__ void v_blocks<4>(const kpc::half*, std::byte*, float*, float*, const float*);
template __global__ void v_blocks<3>(const kpc::half*, std::byte*, float*, float*, const float*);

}  // namespace kpc_device_check
