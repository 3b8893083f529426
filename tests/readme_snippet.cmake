# Compile and run the first ```c block of README.md, so that the example
# on the front page always builds as written.
#
#   cmake -DREADME=README.md -DCC=cc -DCFLAGS="-std=c11 -Wall"
#         -DINCLUDE=include -DLIB=libcio.a -DOUT=dir
#         -P tests/readme_snippet.cmake
foreach(var README CC INCLUDE LIB OUT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "readme_snippet: -D${var}=... is required")
  endif()
endforeach()

# Read the whole file and cut with string(FIND): list handling would
# mangle C code (semicolons, brackets).
file(READ ${README} text)
string(FIND "${text}" "\n```c\n" begin)
if(begin EQUAL -1)
  message(FATAL_ERROR "readme_snippet: no ```c block in ${README}")
endif()
math(EXPR begin "${begin} + 6")
string(SUBSTRING "${text}" ${begin} -1 rest)
string(FIND "${rest}" "\n```" end)
if(end EQUAL -1)
  message(FATAL_ERROR "readme_snippet: the ```c block in ${README} is not "
                      "closed")
endif()
math(EXPR end "${end} + 1")
string(SUBSTRING "${rest}" 0 ${end} code)

file(MAKE_DIRECTORY ${OUT})
file(WRITE ${OUT}/snippet.c "${code}")
separate_arguments(flags UNIX_COMMAND "${CFLAGS}")
execute_process(
  COMMAND ${CC} ${flags} -I${INCLUDE} ${OUT}/snippet.c ${LIB} -pthread
          -o ${OUT}/snippet
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readme_snippet: the README example does not compile "
                      "(source in ${OUT}/snippet.c)")
endif()
execute_process(COMMAND ${OUT}/snippet RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readme_snippet: the README example exited with ${rc}")
endif()
message(STATUS "readme_snippet: README example compiled and ran")
