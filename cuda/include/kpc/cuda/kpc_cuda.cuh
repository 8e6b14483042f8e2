// SPDX-License-Identifier: MIT
// kpc's CUDA kernels (header-only): include this from a .cu file compiled by nvcc.
#ifndef KPC_CUDA_KPC_CUDA_CUH
#define KPC_CUDA_KPC_CUDA_CUH

#include "codec.cuh"
#include "convert.cuh"
#include "attention.cuh"

#endif  // KPC_CUDA_KPC_CUDA_CUH
