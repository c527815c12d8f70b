# Runs one example program and checks what it did; used by the ctest entries of
# examples/CMakeLists.txt as
#   cmake -DPROGRAM=<executable> -DNAME=<program name> -DMODE=run|error "-DARGS=a|b|c"
#         [-DDATA=<folder>] [-DOUT=<folder>] ["-DFILES=grid.png|history.csv|..."] -P check_example.cmake
# Lists are separated with "|" (a ";" would be split by add_test).
#   MODE run:   DATA missing -> prints "SKIPPED: ..." and succeeds (the test's SKIP_REGULAR_EXPRESSION);
#               else OUT is emptied, the program must exit 0, print one RESULT line with numbers for
#               test_mse, test_psnr_db, input_psnr_db (or inf) and train_seconds -- or, given
#               "-DRESULT_FIELDS=a|b|c", for those fields in that order -- and write FILES in OUT.
#   MODE error: the program must exit with status 2 and print exactly one line on stderr,
#               "<NAME>: error: ...".
cmake_minimum_required(VERSION 3.16)

foreach(required PROGRAM NAME MODE)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "check_example.cmake: -D${required}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" arguments "${ARGS}")
string(REPLACE "|" ";" files "${FILES}")

if(MODE STREQUAL "run")
  if(DEFINED DATA AND NOT IS_DIRECTORY "${DATA}")
    message("SKIPPED: no data in '${DATA}'")
    return()
  endif()
  if(DEFINED OUT)
    file(REMOVE_RECURSE "${OUT}")  # stale files must not pass the checks below
  endif()
endif()

execute_process(COMMAND "${PROGRAM}" ${arguments}
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
message("${NAME} ${arguments}\n--- stdout ---\n${output}--- stderr ---\n${errors}--- exit status: ${status}")

set(number "-?[0-9]+\\.?[0-9]*[eE]?[-+]?[0-9]*")
if(MODE STREQUAL "run")
  if(NOT status STREQUAL "0")
    message(FATAL_ERROR "${NAME} exited with status ${status}, expected 0")
  endif()
  string(REGEX MATCHALL "(^|\n)RESULT [^\n]*" result_lines "${output}")
  list(LENGTH result_lines result_count)
  if(NOT result_count EQUAL 1)
    message(FATAL_ERROR "${NAME}: expected one RESULT line on stdout, found ${result_count}")
  endif()
  string(STRIP "${result_lines}" result)
  # The required fields, in this order, each with a number (input_psnr_db may be inf).
  if(DEFINED RESULT_FIELDS)
    string(REPLACE "|" "=NUMBER " required_pattern "^RESULT ${RESULT_FIELDS}=NUMBER")
    string(APPEND required_pattern "( |$)")
    string(REPLACE "|" ", " field_names "${RESULT_FIELDS}")
  else()
    set(required_pattern "^RESULT test_mse=NUMBER test_psnr_db=NUMBER input_psnr_db=(NUMBER|inf) train_seconds=NUMBER( |$)")
    set(field_names "test_mse, test_psnr_db, input_psnr_db, train_seconds")
  endif()
  string(REPLACE "NUMBER" "${number}" required_pattern "${required_pattern}")
  if(NOT result MATCHES "${required_pattern}")
    message(FATAL_ERROR "${NAME}: the RESULT line '${result}' lacks ${field_names} with numbers, in that order")
  endif()
  foreach(file IN LISTS files)
    if(file STREQUAL "")
      continue()
    endif()
    if(NOT EXISTS "${OUT}/${file}")
      message(FATAL_ERROR "${NAME}: '${OUT}/${file}' was not written")
    endif()
  endforeach()
elseif(MODE STREQUAL "error")
  if(NOT status STREQUAL "2")
    message(FATAL_ERROR "${NAME} exited with status ${status}, expected 2")
  endif()
  if(NOT errors MATCHES "^${NAME}: error: [^\n]+\n$")
    message(FATAL_ERROR "${NAME}: stderr should be exactly one line '${NAME}: error: ...'")
  endif()
else()
  message(FATAL_ERROR "check_example.cmake: MODE must be run or error, got '${MODE}'")
endif()
