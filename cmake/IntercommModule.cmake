# One helper per kind of target (after userver's userver_module()).
#
# intercomm_module(NAME
#   SOURCES  a.cpp b.cpp          # the module's library
#   DEPENDS  intercomm_core ...   # public link dependencies
# )
# Makes static library intercomm_<NAME> with include root src/, so its headers
# are included as "NAME/header.hpp".
function(intercomm_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  set(lib intercomm_${name})
  add_library(${lib} STATIC ${ARG_SOURCES})
  target_include_directories(${lib} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${lib} PUBLIC ${ARG_DEPENDS})
endfunction()

# intercomm_test(NAME SOURCES ... DEPENDS ... LABELS unit|integration|e2e [RESOURCE_LOCK name])
# A GoogleTest executable whose tests ctest discovers and labels, so that
# `ctest -L unit` runs the ones that need no server.
function(intercomm_test name)
  cmake_parse_arguments(ARG "" "RESOURCE_LOCK" "SOURCES;DEPENDS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPENDS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # A hung test fails after 5 minutes instead of holding CI up.
  set(properties LABELS "${ARG_LABELS}" TIMEOUT 300)
  if(ARG_RESOURCE_LOCK)
    list(APPEND properties RESOURCE_LOCK "${ARG_RESOURCE_LOCK}")
  endif()
  gtest_discover_tests(${name}
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 60)
endfunction()
