# SPDX-License-Identifier: MIT
# Runs PROGRAM and passes only if it ends abnormally after printing EXPECTED on stderr.
execute_process(COMMAND "${PROGRAM}" RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} returned normally; expected an abort.\nstdout: ${out}\nstderr: ${err}")
endif()
string(FIND "${err}" "${EXPECTED}" position)
if(position EQUAL -1)
  message(FATAL_ERROR "${PROGRAM} ended with '${result}' but stderr lacks '${EXPECTED}':\n${err}")
endif()
message(STATUS "${PROGRAM}: '${result}' after printing the expected message")
