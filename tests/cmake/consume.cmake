# Builds and runs one consumer project (tests/cmake/<way>/) against latent, in a scratch folder.
#   cmake -D WAY=find_package|add_subdirectory|fetch_content
#         -D LATENT_SOURCE_DIR=<latent's source tree> -D CONSUMER_DIR=<tests/cmake/<way>>
#         -D WORK_DIR=<scratch folder, emptied first> -D USE_THREADS=ON|OFF -D EXPECT_THREADS=yes|no
#         -D OPTIMIZATION=-O2|-O3 -D GENERATOR=<generator> -D CXX_COMPILER=<compiler>
#         [-D MAKE_PROGRAM=<make tool>] -P consume.cmake
# Fails (with the step's output) if latent cannot be configured, installed, fetched, added or
# built without warnings, or if the consumer's result or its use of threads is not the expected one.
cmake_minimum_required(VERSION 3.16)

foreach(required WAY LATENT_SOURCE_DIR CONSUMER_DIR WORK_DIR USE_THREADS EXPECT_THREADS OPTIMIZATION
                 GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "consume.cmake: -D ${required}=... is missing")
  endif()
endforeach()

# Runs a command (its output goes to the test log) and stops with `what` if it fails.
function(run_step what)
  message(STATUS "consume.cmake: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consume.cmake: ${what} failed (${result})")
  endif()
endfunction()

# The value of `name` in the consumer's CMake cache.
function(read_cache_entry name out_var)
  file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" entry REGEX "^${name}:[A-Z]+=")
  string(REGEX REPLACE "^${name}:[A-Z]+=" "" value "${entry}")
  set(${out_var} "${value}" PARENT_SCOPE)
endfunction()

# Same compiler and generator as the enclosing build; an optimised build (Release, at the given
# level), as optimisation brings out warnings (e.g. -Wmaybe-uninitialized) that -O0 never shows.
# -Werror=dev: latent's CMake code must not warn in a consumer's configure step either.
set(toolchain -G "${GENERATOR}" -D "CMAKE_CXX_COMPILER=${CXX_COMPILER}" -D CMAKE_BUILD_TYPE=Release
              -D "CMAKE_CXX_FLAGS_RELEASE=${OPTIMIZATION} -DNDEBUG")
if(MAKE_PROGRAM)
  list(APPEND toolchain -D "CMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

if(WAY STREQUAL "find_package")
  # Configure latent alone and install it. Installing to a --prefix other than the configured
  # CMAKE_INSTALL_PREFIX proves the package is relocatable.
  run_step("configure latent for installation"
    "${CMAKE_COMMAND}" -S "${LATENT_SOURCE_DIR}" -B "${WORK_DIR}/latent-build" ${toolchain}
    -Werror=dev -D CMAKE_INSTALL_PREFIX=/nonexistent -D LATENT_BUILD_TESTS=OFF
    -D LATENT_BUILD_EXAMPLES=OFF -D "LATENT_USE_THREADS=${USE_THREADS}")
  run_step("install latent"
    "${CMAKE_COMMAND}" --install "${WORK_DIR}/latent-build" --config Release
    --prefix "${WORK_DIR}/prefix")
  set(consumer_args -D "CMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
elseif(WAY STREQUAL "add_subdirectory")
  set(consumer_args -D "LATENT_SOURCE_DIR=${LATENT_SOURCE_DIR}" -D "LATENT_USE_THREADS=${USE_THREADS}")
elseif(WAY STREQUAL "fetch_content")
  # A release-style archive (one top folder latent-<version>/) of what a consumer's build reads.
  file(STRINGS "${LATENT_SOURCE_DIR}/CMakeLists.txt" project_line REGEX "project\\(latent VERSION")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" version "${project_line}")
  set(staging "${WORK_DIR}/archive/latent-${version}")
  file(COPY "${LATENT_SOURCE_DIR}/CMakeLists.txt" "${LATENT_SOURCE_DIR}/cmake"
            "${LATENT_SOURCE_DIR}/include" DESTINATION "${staging}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E tar czf "${WORK_DIR}/latent-${version}.tar.gz"
                          "latent-${version}"
                  WORKING_DIRECTORY "${WORK_DIR}/archive" RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consume.cmake: could not pack latent's source archive")
  endif()
  set(consumer_args -D "LATENT_URL=file://${WORK_DIR}/latent-${version}.tar.gz"
                    -D "LATENT_USE_THREADS=${USE_THREADS}")
else()
  message(FATAL_ERROR "consume.cmake: unknown WAY '${WAY}'")
endif()

run_step("configure the ${WAY} consumer"
  "${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build" ${toolchain} -Werror=dev
  ${consumer_args})

if(WAY STREQUAL "find_package")
  # The package found must be the one just installed, not one from elsewhere on the machine.
  read_cache_entry(latent_DIR found_at)
  string(FIND "${found_at}" "${WORK_DIR}/prefix/" position)
  if(NOT position EQUAL 0)
    message(FATAL_ERROR "consume.cmake: found latent at '${found_at}', not in ${WORK_DIR}/prefix")
  endif()
else()
  # As a subproject, latent adds its target only: no tests, examples or install rules.
  foreach(option LATENT_BUILD_TESTS LATENT_BUILD_EXAMPLES LATENT_INSTALL)
    read_cache_entry(${option} value)
    if(NOT value STREQUAL "OFF")
      message(FATAL_ERROR "consume.cmake: ${option} is '${value}' in a subproject, expected OFF")
    endif()
  endforeach()
endif()

run_step("build the ${WAY} consumer (-Werror)"
  "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" --config Release)

set(consumer "${WORK_DIR}/build/consumer")
if(NOT EXISTS "${consumer}")
  set(consumer "${WORK_DIR}/build/Release/consumer")  # multi-configuration generators
endif()
execute_process(COMMAND "${consumer}" RESULT_VARIABLE result OUTPUT_VARIABLE output
                ERROR_VARIABLE output WORKING_DIRECTORY "${WORK_DIR}")  # it writes a weights file there
message(STATUS "consume.cmake: ${output}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "consume.cmake: the ${WAY} consumer failed (${result})")
endif()
if(NOT output MATCHES "threads: ${EXPECT_THREADS}")
  message(FATAL_ERROR "consume.cmake: expected the consumer to report 'threads: ${EXPECT_THREADS}'")
endif()
