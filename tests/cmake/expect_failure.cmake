# SPDX-License-Identifier: MIT
# Runs COMMAND (arguments separated by '|'). With EXPECTED set, passes only if the command fails
# (non-zero exit or a signal) and prints EXPECTED; with EXPECTED empty, only if it succeeds.
string(REPLACE "|" ";" command "${COMMAND}")
execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT EXPECTED)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "expected success, got '${result}':\n${out}${err}")
  endif()
  return()
endif()
if(result EQUAL 0)
  message(FATAL_ERROR "succeeded; expected a failure printing '${EXPECTED}'")
endif()
string(FIND "${out}${err}" "${EXPECTED}" position)
if(position EQUAL -1)
  message(FATAL_ERROR "failed with '${result}' but without '${EXPECTED}':\n${out}${err}")
endif()
