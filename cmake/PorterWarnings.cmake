# Warnings for Porter's own targets; PRIVATE, so they never leak to users.
function(porter_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough
                                           # designated initializers that omit defaulted fields are the API style
                                           -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # Flow-sensitive warnings that GCC 12 gets wrong at -O2/-O3 inside libstdc++
    # (std::function in an aggregate temporary "may be used uninitialized";
    # std::string concatenation "may overlap": GCC bug 105329): a Release
    # build with -Werror failed on correct code. -Wuninitialized stays on.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE -Wno-restrict)
    endif()
  endif()
  if(PORTER_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
