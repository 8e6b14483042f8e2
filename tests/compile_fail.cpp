// SPDX-License-Identifier: MIT
// Each KPC_CASE must fail to compile with its static_assert message (tests/CMakeLists.txt checks it).
#include <kpc/kpc.hpp>

int main() {
  float values[32] = {};
  std::byte bytes[64];
  (void)values;
  (void)bytes;
#if KPC_CASE == 1
  return static_cast<int>(kpc::Quantizer<5, kpc::PerChannel<32>>::encoded_bytes(1, 1));
#elif KPC_CASE == 2
  return static_cast<int>(kpc::Quantizer<4, kpc::PerChannel<48>>::encoded_bytes(1, 1));
#elif KPC_CASE == 3
  return static_cast<int>(kpc::Quantizer<2, kpc::PerToken<32>>::encoded_bytes(1, 32));
#elif KPC_CASE == 4
  return static_cast<int>(kpc::Quantizer<4, kpc::PerToken<16>>::encoded_bytes(1, 32));
#elif KPC_CASE == 5
  return static_cast<int>(kpc::Quantizer<8, kpc::PerTokenSymmetric<32>>::encoded_bytes(1, 32));
#elif KPC_CASE == 6
  return static_cast<int>(sizeof(kpc::Quantizer<4, int>));
#elif KPC_CASE == 7
  double wide[32] = {};
  kpc::q4_1::encode(wide, 1, 32, bytes);
  return 0;
#elif KPC_CASE == 8
  return static_cast<int>(kpc::Quantizer<4, kpc::PerTokenSymmetric<64>>::encoded_bytes(1, 64));
#else
  return 0;  // case 0, the control: must compile, so the failures come from the cases
#endif
}
