// SPDX-License-Identifier: MIT
// The GPU test (cuda/tests/cuda_test.cu) compiled as plain C++ against tests/cuda_emulator: every
// kpc CUDA kernel runs on the CPU, block by block, in every CI run.
#include "../cuda/tests/cuda_test.cu"
