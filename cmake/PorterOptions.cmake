# Build options. Tests, examples and benchmarks default on only when Porter is
# the top-level project, so add_subdirectory(porter) in an app builds just the library.
include(GNUInstallDirs)

option(PORTER_BUILD_TESTS "Build Porter's tests" ${PROJECT_IS_TOP_LEVEL})
option(PORTER_BUILD_EXAMPLES "Build Porter's examples" ${PROJECT_IS_TOP_LEVEL})
option(PORTER_BUILD_BENCHMARKS "Build Porter's benchmarks" ${PROJECT_IS_TOP_LEVEL})
option(PORTER_WITH_SQLITE "Build the SQLite store (needs libsqlite3-dev)" ON)
# The PostgreSQL store: ON where libpq is found (an explicit ON fails loudly without it).
if(NOT DEFINED PORTER_WITH_POSTGRES)
  find_package(PostgreSQL QUIET)
  set(porter_postgres_default ${PostgreSQL_FOUND})
else()
  set(porter_postgres_default ${PORTER_WITH_POSTGRES})
endif()
option(PORTER_WITH_POSTGRES "Build the PostgreSQL store (needs libpq-dev). Default: ON where libpq is found"
       ${porter_postgres_default})
option(PORTER_INSTALL "Generate Porter's install rules" ${PROJECT_IS_TOP_LEVEL})
# Off for users (a newer compiler's new warning must not break their build); scripts/test.sh and CI turn it on.
option(PORTER_WARNINGS_AS_ERRORS "Treat warnings as errors. Default: OFF" OFF)
set(PORTER_SANITIZE "" CACHE STRING "Sanitizers for every target: e.g. address,undefined or thread")
# libFuzzer targets in tests/fuzz (clang only; scripts/fuzz.sh builds and runs them).
option(PORTER_BUILD_FUZZERS "Build the libFuzzer targets (needs clang). Default: OFF" OFF)

if(PROJECT_IS_TOP_LEVEL AND NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

if(PORTER_SANITIZE)
  add_compile_options(-fsanitize=${PORTER_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${PORTER_SANITIZE})
endif()
if(PORTER_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PORTER_BUILD_FUZZERS needs clang's libFuzzer: configure with -DCMAKE_CXX_COMPILER=clang++ "
                        "(or run scripts/fuzz.sh)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)  # coverage for the library the fuzzers drive
endif()
