# SPDX-License-Identifier: MIT
# Compiles SOURCE with -DKPC_CASE=CASE; passes only if compilation fails and prints EXPECTED
# (or, for CASE 0, only if it succeeds).
execute_process(COMMAND "${COMPILER}" -std=c++17 -fsyntax-only "-I${INCLUDE_DIR}" "-DKPC_CASE=${CASE}" "${SOURCE}"
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(CASE EQUAL 0)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "the control case does not compile:\n${err}")
  endif()
  return()
endif()
if(result EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled; expected: ${EXPECTED}")
endif()
string(FIND "${out}${err}" "${EXPECTED}" position)
if(position EQUAL -1)
  message(FATAL_ERROR "case ${CASE} failed without '${EXPECTED}':\n${err}")
endif()
