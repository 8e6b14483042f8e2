// SPDX-License-Identifier: MIT
// kpc/rotation.hpp: the fast Walsh-Hadamard transform against the Sylvester matrix in f64, its
// inverse (itself) and the dot products it preserves (what attention over rotated rows relies on).
#include <doctest/doctest.h>

#include <cmath>
#include <kpc/rotation.hpp>
#include <vector>

#include "support.hpp"

TEST_CASE("hadamard_block: the largest power of two dividing head_dim") {
  CHECK(kpc::hadamard_block(64) == 64);
  CHECK(kpc::hadamard_block(128) == 128);
  CHECK(kpc::hadamard_block(96) == 32);
  CHECK(kpc::hadamard_block(160) == 32);
  CHECK(kpc::hadamard_block(32) == 32);
  CHECK(kpc::hadamard_block(1) == 1);
  CHECK(kpc::hadamard_block(0) == 0);
}

TEST_CASE("hadamard_rotate is H x / sqrt(block) block by block, H the Sylvester matrix (f64 model)") {
  auto gen = kpc_test::rng(4001);
  for (std::size_t block = 1; block <= 256; block *= 2) {
    CAPTURE(block);
    const std::size_t n = 3 * block;
    const std::vector<float> x = kpc_test::gaussian(n, gen, 3.0f);
    std::vector<float> y = x;
    kpc::hadamard_rotate(y.data(), n, block);
    double worst = 0.0, norm = 0.0;
    for (std::size_t base = 0; base < n; base += block)
      for (std::size_t i = 0; i < block; ++i) {
        double expected = 0.0;
        for (std::size_t j = 0; j < block; ++j)  // H[i][j] = (-1)^popcount(i & j)
          expected += (__builtin_popcountll(i & j) % 2 ? -1.0 : 1.0) * x[base + j];
        expected /= std::sqrt(static_cast<double>(block));
        worst = std::max(worst, std::fabs(expected - y[base + i]));
        norm = std::max(norm, std::fabs(expected));
      }
    CHECK(worst <= 1e-6 * (norm + 1.0) * std::log2(static_cast<double>(block) + 1.0));
  }
}

TEST_CASE("H is its own inverse and keeps dot products: (Hq).(Hk) = q.k") {
  auto gen = kpc_test::rng(4002);
  for (std::size_t block : {32, 64, 128}) {
    CAPTURE(block);
    const std::vector<float> q = kpc_test::gaussian(block, gen), k = kpc_test::gaussian(block, gen, 1.0f, 20.0f);
    std::vector<float> hq = q, hk = k;
    kpc::hadamard_rotate(hq.data(), block, block);
    kpc::hadamard_rotate(hk.data(), block, block);
    double dot = 0.0, rotated_dot = 0.0, k_norm = 0.0;
    for (std::size_t i = 0; i < block; ++i) {
      dot += static_cast<double>(q[i]) * k[i];
      rotated_dot += static_cast<double>(hq[i]) * hk[i];
      k_norm += static_cast<double>(k[i]) * k[i];
    }
    CHECK(std::fabs(dot - rotated_dot) <= 1e-5 * std::sqrt(k_norm * block));
    kpc::hadamard_rotate(hk.data(), block, block);
    for (std::size_t i = 0; i < block; ++i) CHECK(hk[i] == doctest::Approx(k[i]).epsilon(1e-5).scale(20.0));
  }
}
