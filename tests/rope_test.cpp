// SPDX-License-Identifier: MIT
// kpc/rope.hpp: RoPE shifts for the normal and NeoX layouts against an f64 rotation, their
// composition, partial rotary dimensions and bad parameters.
#include <doctest/doctest.h>

#include <cmath>
#include <kpc/rope.hpp>
#include <vector>

#include "support.hpp"

namespace {

/// f64 RoPE by an absolute position: pair i turns by pos * freq_scale * base^(-2i/dims).
std::vector<double> rotate_f64(const std::vector<float>& x, std::size_t dim, double pos, const kpc::rope_config& r) {
  const std::size_t dims = r.rotary_dims ? r.rotary_dims : dim, pairs = dims / 2;
  std::vector<double> out(x.begin(), x.end());
  for (std::size_t t = 0; t < x.size() / dim; ++t)
    for (std::size_t i = 0; i < pairs; ++i) {
      const std::size_t a = r.style == kpc::rope_style::normal ? 2 * i : i;
      const std::size_t b = r.style == kpc::rope_style::normal ? 2 * i + 1 : i + pairs;
      const double angle = pos * r.freq_scale * std::pow(r.theta_base, -2.0 * i / dims);
      const double x0 = x[t * dim + a], x1 = x[t * dim + b];
      out[t * dim + a] = x0 * std::cos(angle) - x1 * std::sin(angle);
      out[t * dim + b] = x0 * std::sin(angle) + x1 * std::cos(angle);
    }
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("rope_shift rotates like an f64 rotation, for both layouts and partial rotary dims") {
  auto gen = kpc_test::rng(4001);
  const std::size_t dim = 128, tokens = 9;
  const std::vector<float> x = kpc_test::gaussian(tokens * dim, gen);
  for (const auto style : {kpc::rope_style::normal, kpc::rope_style::neox}) {
    for (const std::size_t dims : {std::size_t{0}, std::size_t{64}, std::size_t{2}}) {
      for (const double delta : {1.0, -5.0, 4096.0, 0.5}) {
        const kpc::rope_config r{style, 1e6, dims, 0.25};
        std::vector<float> y = x;
        kpc::rope_shift(y.data(), tokens, dim, dim, delta, r);
        CAPTURE(static_cast<int>(style));
        CAPTURE(dims);
        CAPTURE(delta);
        CHECK(max_abs_diff(y, rotate_f64(x, dim, delta, r)) < 1e-6 * 8);  // one float rounding of |x| < ~5
        const std::size_t rotated = dims ? dims : dim;
        for (std::size_t t = 0; t < tokens; ++t)  // channels past rotary_dims stay bit for bit
          for (std::size_t c = rotated; c < dim; ++c) CHECK(y[t * dim + c] == x[t * dim + c]);
      }
    }
  }
}

TEST_CASE("a shift composes with the position a key was embedded at") {
  auto gen = kpc_test::rng(4002);
  const std::size_t dim = 64;
  const std::vector<float> x = kpc_test::gaussian(dim, gen);
  const kpc::rope_config r{kpc::rope_style::neox, 10000.0, 0, 1.0};
  std::vector<float> embedded = x;
  kpc::rope_shift(embedded.data(), 1, dim, dim, 1000.0, r);  // the key as the model wrote it at 1000
  kpc::rope_shift(embedded.data(), 1, dim, dim, -250.0, r);  // the engine moves it to 750
  CHECK(max_abs_diff(embedded, rotate_f64(x, dim, 750.0, r)) < 2e-6 * 8);
}

TEST_CASE("NeoX is the normal layout on de-interleaved channels") {
  auto gen = kpc_test::rng(4003);
  const std::size_t dim = 32;
  const std::vector<float> x = kpc_test::gaussian(dim, gen);
  std::vector<float> interleaved(dim);
  for (std::size_t i = 0; i < dim / 2; ++i) {
    interleaved[2 * i] = x[i];
    interleaved[2 * i + 1] = x[i + dim / 2];
  }
  std::vector<float> a = x, b = interleaved;
  kpc::rope_shift(a.data(), 1, dim, dim, 17.0, {kpc::rope_style::neox, 10000.0, 0, 1.0});
  kpc::rope_shift(b.data(), 1, dim, dim, 17.0, {kpc::rope_style::normal, 10000.0, 0, 1.0});
  for (std::size_t i = 0; i < dim / 2; ++i) {
    CHECK(a[i] == b[2 * i]);
    CHECK(a[i + dim / 2] == b[2 * i + 1]);
  }
}

TEST_CASE("strided rows, and the parameters rope_shift refuses") {
  std::vector<float> rows(3 * 40, 1.0f);
  kpc::rope_shift(rows.data(), 3, 32, 40, 2.0, {});
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t c = 32; c < 40; ++c) CHECK(rows[t * 40 + c] == 1.0f);  // the gap is untouched
  const auto code_of = [&](std::size_t dim, std::size_t stride, double delta, kpc::rope_config r) {
    try {
      kpc::rope_shift(rows.data(), 3, dim, stride, delta, r);
    } catch (const kpc::error& e) {
      return e.code();
    }
    return kpc::errc::ok;
  };
  CHECK(code_of(0, 40, 1.0, {}) == kpc::errc::invalid_shape);
  CHECK(code_of(32, 31, 1.0, {}) == kpc::errc::invalid_shape);
  CHECK(code_of(32, 40, 1.0, {kpc::rope_style::normal, 10000.0, 33, 1.0}) == kpc::errc::invalid_shape);
  CHECK(code_of(32, 40, 1.0, {kpc::rope_style::normal, 10000.0, 7, 1.0}) == kpc::errc::invalid_shape);
  CHECK(code_of(32, 40, 1.0, {kpc::rope_style::normal, 0.0, 0, 1.0}) == kpc::errc::out_of_range);
  CHECK(code_of(32, 40, std::nan(""), {}) == kpc::errc::out_of_range);
  CHECK(code_of(32, 40, 1.0, {kpc::rope_style::normal, 10000.0, 0, HUGE_VAL}) == kpc::errc::out_of_range);
  std::vector<float> none;
  kpc::rope_shift(none.data(), 0, 32, 32, 1.0, {});  // zero tokens: nothing to do, no pointer needed
}
