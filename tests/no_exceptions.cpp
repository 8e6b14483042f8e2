// SPDX-License-Identifier: MIT
// Compiled with -fno-exceptions: a refused call must print its message and abort (ctest matches
// the message). Returning normally would be the failure.
#include <kpc/kpc.hpp>

int main() {
  float values[48] = {};
  std::byte bytes[64];
  kpc::q4_1::encode(values, 1, 48, bytes);  // 48 channels is not a whole number of blocks
  return 0;
}
