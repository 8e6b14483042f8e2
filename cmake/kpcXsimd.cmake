# SPDX-License-Identifier: MIT
# kpc_find_xsimd(): finds xsimd >= 8.1 and repairs Debian's package, whose xsimd target links a
# library "xtl" that its config never looks for (linking then fails with "cannot find -lxtl").
# Sets KPC_XSIMD_FOUND.
macro(kpc_find_xsimd)
  set(KPC_XSIMD_FOUND OFF)
  find_package(xsimd CONFIG QUIET)  # no version: xsimd's version file accepts only its own major
  if(xsimd_FOUND AND TARGET xsimd)
    if(xsimd_VERSION VERSION_LESS 8.1)
      message(STATUS "kpc: xsimd ${xsimd_VERSION} is older than 8.1; the SIMD backends are off")
    else()
      get_target_property(_kpc_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
      if(_kpc_xsimd_links AND "xtl" IN_LIST _kpc_xsimd_links AND NOT TARGET xtl)
        find_package(xtl CONFIG QUIET)
        if(NOT TARGET xtl)
          list(REMOVE_ITEM _kpc_xsimd_links xtl)
          set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "${_kpc_xsimd_links}")
        endif()
      endif()
      set(KPC_XSIMD_FOUND ON)
    endif()
  endif()
endmacro()
