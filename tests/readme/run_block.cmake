# cmake -DPROGRAM=<exe> -DDIR=<dir> [-DEXPECT=<text>] -P run_block.cmake
# Runs a README block's program in a new empty directory: it must exit 0 and,
# when EXPECT is set, print EXPECT.
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR})
execute_process(COMMAND ${PROGRAM} WORKING_DIRECTORY ${DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 100)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
if(EXPECT)
  string(FIND "${out}" "${EXPECT}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "${PROGRAM} did not print \"${EXPECT}\"")
  endif()
endif()
file(REMOVE_RECURSE ${DIR})
