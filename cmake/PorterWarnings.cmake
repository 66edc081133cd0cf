# Warnings for Porter's own targets; PRIVATE, so they never leak to users.
function(porter_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough
                                           # designated initializers that omit defaulted fields are the API style
                                           -Wno-missing-field-initializers)
  if(PORTER_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
