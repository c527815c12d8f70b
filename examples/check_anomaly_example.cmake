# Runs an anomaly-detection example and checks its RESULT lines and output files; used by the
# ctest entries of examples/CMakeLists.txt as
#   cmake -DPROGRAM=<executable> -DNAME=<program name> "-DARGS=a|b|c" -DDATA=<file or folder>
#         -DOUT=<folder> "-DFILES=a.png|b.txt" -DCOUNT=<RESULT lines> "-DLINE=<pattern>"
#         "-DLAST=<pattern>" -P check_anomaly_example.cmake
# Lists are separated with "|". DATA missing -> prints "SKIPPED: ..." and succeeds. Else OUT is
# emptied, the program must exit 0 and print COUNT RESULT lines: every one but the last matches
# LINE, the last matches LAST (in both, NUMBER stands for a number), and FILES must be in OUT.
cmake_minimum_required(VERSION 3.16)

foreach(required PROGRAM NAME DATA OUT COUNT LAST)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "check_anomaly_example.cmake: -D${required}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${DATA}")
  message("SKIPPED: no data at '${DATA}'")
  return()
endif()
file(REMOVE_RECURSE "${OUT}")  # stale files must not pass the checks below
string(REPLACE "|" ";" arguments "${ARGS}")
string(REPLACE "|" ";" files "${FILES}")

execute_process(COMMAND "${PROGRAM}" ${arguments}
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
message("${NAME} ${arguments}\n--- stdout ---\n${output}--- stderr ---\n${errors}--- exit status: ${status}")
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "${NAME} exited with status ${status}, expected 0")
endif()

set(number "-?[0-9]+\\.?[0-9]*([eE][-+]?[0-9]+)?")
string(REPLACE "NUMBER" "${number}" line_pattern "^${LINE}$")
string(REPLACE "NUMBER" "${number}" last_pattern "^${LAST}$")
string(REGEX MATCHALL "(^|\n)RESULT [^\n]*" result_lines "${output}")
list(LENGTH result_lines result_count)
if(NOT result_count EQUAL COUNT)
  message(FATAL_ERROR "${NAME}: expected ${COUNT} RESULT lines on stdout, found ${result_count}")
endif()
math(EXPR last_index "${result_count} - 1")
foreach(index RANGE ${last_index})
  list(GET result_lines ${index} result)
  string(STRIP "${result}" result)
  if(index EQUAL last_index)
    set(pattern "${last_pattern}")
  else()
    set(pattern "${line_pattern}")
  endif()
  if(NOT result MATCHES "${pattern}")
    message(FATAL_ERROR "${NAME}: RESULT line '${result}' does not match '${pattern}'")
  endif()
endforeach()
foreach(file IN LISTS files)
  if(NOT EXISTS "${OUT}/${file}")
    message(FATAL_ERROR "${NAME}: '${OUT}/${file}' was not written")
  endif()
endforeach()
