# The README's first ```c block must compile as written and run.
#
# MODE=extract: copy the block out of README.md into OUT. The build runs
#   this (a custom command that depends on README.md), so the example is
#   compiled by CMake with the library's real link interface.
#     cmake -DMODE=extract -DREADME=README.md -DOUT=snippet.c -P this
# MODE=check (the ctest test): build TARGET in BUILD_DIR, which extracts
#   the block again if README.md changed, then run EXE.
#     cmake -DBUILD_DIR=build -DTARGET=readme_example -DEXE=path -P this
if(NOT DEFINED MODE)
  set(MODE check)
endif()

if(MODE STREQUAL "extract")
  foreach(var README OUT)
    if(NOT DEFINED ${var})
      message(FATAL_ERROR "readme_snippet: -D${var}=... is required")
    endif()
  endforeach()
  # Cut with string(FIND) on the whole text: CMake list handling would
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
    message(FATAL_ERROR "readme_snippet: the ```c block in ${README} is "
                        "not closed")
  endif()
  math(EXPR end "${end} + 1")
  string(SUBSTRING "${rest}" 0 ${end} code)
  file(WRITE ${OUT} "/* Extracted from README.md; do not edit. */\n${code}")
  return()
endif()

foreach(var BUILD_DIR TARGET EXE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "readme_snippet: -D${var}=... is required")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR}
                        --target ${TARGET}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readme_snippet: the README example does not build")
endif()
execute_process(COMMAND ${EXE} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readme_snippet: the README example exited with ${rc}")
endif()
