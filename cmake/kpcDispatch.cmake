# SPDX-License-Identifier: MIT
# Run-time dispatch: kpc's kernels compiled once per instruction set, in static libraries that
# every target of a build shares, and picked at run time for the CPU (kpc/backend.hpp).
#
# kpc_add_runtime_dispatch(<target> [ISAS sse4_2 avx2 avx512] [PRECOMPILED])
#   Links <target> to the dispatch library for that set of instruction sets (default: every one
#   with unit flags in kpc/isa.hpp),
#   creating it the first time a build asks for it: kpc_dispatch (default set), or
#   kpc_dispatch_<isa>_... for another set. The library carries the KPC_DISPATCH_UNITS
#   definition <target> needs, so kpc runs the best set the CPU supports, whatever flags
#   <target> is built with.
#   PRECOMPILED also links kpc_dispatch_baseline: the scalar reference and the SIMD kernels of the
#   build's own flags, compiled once, with KPC_PRECOMPILED_KERNELS for <target>, whose translation
#   units then instantiate no kernel (and include no SIMD header): the libraries are the one place
#   kpc's kernels are compiled.
#   Sets KPC_DISPATCH_LIBRARY (and, with PRECOMPILED, KPC_DISPATCH_BASELINE_LIBRARY) in the caller's
#   scope to the libraries' names.
#
# kpc_dispatch_library(<name> [ISAS ...] | BASELINE)
#   One of those libraries under a name of your choice (for example to give its units extra flags).
#
# The instruction-set units are x86-64 only (GCC, Clang); elsewhere that library is an empty
# INTERFACE library, and the baseline one holds that architecture's kernels (AArch64: NEON).
#
# The instruction sets, their order (a kpc::isa value is its line's index) and each unit's flags
# come from the one list in kpc/isa.hpp (KPC_ISA_HEADER), read here.
if(NOT KPC_ISA_HEADER)  # beside this file: the source tree's cmake/, or an install's share/kpc/
  foreach(_candidate "${CMAKE_CURRENT_LIST_DIR}/../include/kpc/isa.hpp" "${CMAKE_CURRENT_LIST_DIR}/../../include/kpc/isa.hpp")
    if(NOT KPC_ISA_HEADER AND EXISTS "${_candidate}")
      get_filename_component(KPC_ISA_HEADER "${_candidate}" ABSOLUTE)
    endif()
  endforeach()
endif()
if(NOT KPC_ISA_HEADER OR NOT EXISTS "${KPC_ISA_HEADER}")
  message(FATAL_ERROR "kpcDispatch.cmake: set KPC_ISA_HEADER to kpc/isa.hpp (got '${KPC_ISA_HEADER}')")
endif()
file(READ "${KPC_ISA_HEADER}" _kpc_isa_text)
string(REPLACE "\\" "" _kpc_isa_text "${_kpc_isa_text}")  # the macro's line continuations (a CMake list escape)
string(REGEX MATCHALL "\n  X\\([^\n]*" _kpc_isa_lines "${_kpc_isa_text}")
set(KPC_DISPATCH_ALL_ISAS "")
set(_kpc_isa_index 0)
foreach(_line IN LISTS _kpc_isa_lines)
  if(NOT _line MATCHES "^\n  X\\(([a-z0-9_]+), \"[^\"]*\", [a-z0-9_]+, [^,]+, \"([^\"]*)\"\\)")
    message(FATAL_ERROR "kpcDispatch.cmake: cannot read this line of ${KPC_ISA_HEADER}: ${_line}")
  endif()
  set(_name "${CMAKE_MATCH_1}")
  set(_flags_text "${CMAKE_MATCH_2}")
  # (cache entries: a consumer that add_subdirectory()s kpc calls the functions from its own scope)
  set(_kpc_isa_bit_${_name} ${_kpc_isa_index} CACHE INTERNAL "")
  if(NOT "${_flags_text}" STREQUAL "")
    separate_arguments(_flags UNIX_COMMAND "${_flags_text}")
    set(_kpc_isa_flags_${_name} "${_flags}" CACHE INTERNAL "")
    list(APPEND KPC_DISPATCH_ALL_ISAS ${_name})
  endif()
  math(EXPR _kpc_isa_index "${_kpc_isa_index} + 1")
endforeach()
if(NOT KPC_DISPATCH_ALL_ISAS)
  message(FATAL_ERROR "kpcDispatch.cmake: no instruction set with dispatch unit flags in ${KPC_ISA_HEADER}")
endif()
set(KPC_DISPATCH_ALL_ISAS "${KPC_DISPATCH_ALL_ISAS}" CACHE INTERNAL "instruction sets with a dispatch unit (kpc/isa.hpp)")

function(kpc_dispatch_library name)
  cmake_parse_arguments(PARSE_ARGV 1 KPC_DISPATCH "BASELINE" "" "ISAS")
  if(KPC_DISPATCH_BASELINE AND KPC_DISPATCH_ISAS)
    message(FATAL_ERROR "kpc_dispatch_library(${name}): BASELINE or ISAS, not both")
  endif()
  set(_definitions "")
  if(KPC_DISPATCH_BASELINE)
    set(_units baseline)
    set(_definitions KPC_PRECOMPILED_KERNELS=1)
  else()
    if(NOT KPC_DISPATCH_ISAS)
      set(KPC_DISPATCH_ISAS ${KPC_DISPATCH_ALL_ISAS})
    endif()
    set(_units "")
    set(_mask 0)
    foreach(_isa IN LISTS KPC_DISPATCH_ISAS)
      if(NOT _isa IN_LIST KPC_DISPATCH_ALL_ISAS)
        string(REPLACE ";" ", " _known "${KPC_DISPATCH_ALL_ISAS}")
        message(FATAL_ERROR "kpc_dispatch_library: unknown instruction set '${_isa}' (${_known})")
      endif()
      math(EXPR _mask "${_mask} | (1 << ${_kpc_isa_bit_${_isa}})")
    endforeach()
    set(_definitions KPC_DISPATCH_UNITS=${_mask})
    if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
      set(_units ${KPC_DISPATCH_ISAS})
    else()
      set(_definitions "")
    endif()
  endif()
  if(NOT _units)
    add_library(${name} INTERFACE)
    target_link_libraries(${name} INTERFACE kpc::kpc)
    return()
  endif()
  set(_sources "")
  foreach(_unit IN LISTS _units)
    set(_source "${CMAKE_CURRENT_BINARY_DIR}/kpc_dispatch/${name}_${_unit}.cpp")
    file(CONFIGURE OUTPUT "${_source}" CONTENT
         "// Generated by kpc_dispatch_library: kpc's kernels for ${_unit}.\n#define KPC_DISPATCH_UNIT ${_unit}\n#include <kpc/backend/dispatch_unit.hpp>\n")
    if(NOT _unit STREQUAL "baseline")
      set_source_files_properties("${_source}" PROPERTIES COMPILE_OPTIONS "${_kpc_isa_flags_${_unit}}")
    endif()
    list(APPEND _sources "${_source}")
  endforeach()
  add_library(${name} STATIC ${_sources})
  target_link_libraries(${name} PUBLIC kpc::kpc)
  target_compile_definitions(${name} INTERFACE ${_definitions})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

function(kpc_add_runtime_dispatch target)
  cmake_parse_arguments(PARSE_ARGV 1 KPC_DISPATCH "PRECOMPILED" "" "ISAS")
  set(_name kpc_dispatch)
  if(KPC_DISPATCH_ISAS)
    if(NOT KPC_DISPATCH_ISAS STREQUAL KPC_DISPATCH_ALL_ISAS)
      list(JOIN KPC_DISPATCH_ISAS "_" _set)
      string(APPEND _name "_${_set}")
    endif()
  endif()
  if(NOT TARGET ${_name})
    kpc_dispatch_library(${_name} ISAS ${KPC_DISPATCH_ISAS})
  endif()
  target_link_libraries(${target} PRIVATE ${_name})
  set(KPC_DISPATCH_LIBRARY ${_name} PARENT_SCOPE)
  if(KPC_DISPATCH_PRECOMPILED)
    if(NOT TARGET kpc_dispatch_baseline)
      kpc_dispatch_library(kpc_dispatch_baseline BASELINE)
    endif()
    target_link_libraries(${target} PRIVATE kpc_dispatch_baseline)
    set(KPC_DISPATCH_BASELINE_LIBRARY kpc_dispatch_baseline PARENT_SCOPE)
  endif()
endfunction()
