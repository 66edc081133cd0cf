// Include in exactly one source file of a binary that runs porter::http (a
// test, the porter command): under ThreadSanitizer it names the one false race
// of Debian's libcpp-httplib.so, which is not built with TSan. Its
// function-local static std::regex objects are published behind a guard whose
// acquire load TSan cannot see inside the uninstrumented library, so their
// first concurrent use reads as a race in std::regex's matcher code. Only regex
// internals are named, never the library as a whole: every handler runs on its
// threads, and a real race in Porter's code must still be reported.
#pragma once

#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__detail::_CharMatcher\n"
         "race:std::__detail::_BracketMatcher\n"
         "race:std::__detail::_AnyMatcher\n"
         "race:std::__detail::_Executor\n"
         "race:std::__detail::_Compiler\n"
         "race:std::__cxx11::regex_traits\n"
         "race:std::_Function_base::_Base_manager<std::__detail::\n"
         "race:std::_Function_handler<bool (char), std::__detail::\n";
}
#endif
