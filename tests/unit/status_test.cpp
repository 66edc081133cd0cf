// Result<T> on a temporary must hand out values, not references into the
// temporary: `for (auto& x : f().value())` and `const auto& e = f().error()`
// outlive the Result that f() returned.
#include <catch2/catch.hpp>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "porter/status.h"

using namespace porter;

namespace {

Result<std::vector<std::string>> names() {
  // Long strings, so their bytes live on the heap and a dangling read is a use after free under ASan.
  return std::vector<std::string>{std::string(40, 'a'), std::string(40, 'b'), std::string(40, 'c')};
}

Result<std::vector<std::string>> no_names() { return make_error(ErrorCode::not_found, "no names here"); }

Status failed() { return make_error(ErrorCode::unavailable, "database is busy, try again later please"); }

template <class R>
using value_of = decltype(std::declval<R>().value());
template <class R>
using deref_of = decltype(*std::declval<R>());
template <class R>
using error_of = decltype(std::declval<R>().error());

}  // namespace

TEST_CASE("Result accessors on an rvalue return by value", "[status]") {
  using R = Result<std::vector<std::string>>;
  CHECK(std::is_same_v<value_of<R>, std::vector<std::string>>);
  CHECK(std::is_same_v<value_of<R&&>, std::vector<std::string>>);
  CHECK(std::is_same_v<deref_of<R>, std::vector<std::string>>);
  CHECK(std::is_same_v<error_of<R>, Error>);
  CHECK(std::is_same_v<error_of<Status>, Error>);
  // Lvalues still give references (no copy for the common `auto r = f(); r->...`).
  CHECK(std::is_same_v<value_of<R&>, std::vector<std::string>&>);
  CHECK(std::is_same_v<value_of<const R&>, const std::vector<std::string>&>);
  CHECK(std::is_same_v<deref_of<R&>, std::vector<std::string>&>);
  CHECK(std::is_same_v<error_of<const R&>, const Error&>);
}

TEST_CASE("A range-for over value() of a temporary Result reads live data", "[status]") {
  std::string joined;
  for (const auto& name : names().value()) joined += name.substr(0, 1);
  CHECK(joined == "abc");
  for (const auto& name : *names()) joined += name.substr(0, 1);
  CHECK(joined == "abcabc");
}

TEST_CASE("error() of a temporary Result outlives it", "[status]") {
  const auto& error = no_names().error();
  CHECK(error.to_string() == "not_found: no names here");
  const auto& status_error = failed().error();
  CHECK(status_error.message() == "database is busy, try again later please");
  CHECK_THROWS_AS(no_names().value(), BadResultAccess);
  CHECK(no_names().value_or(std::vector<std::string>{"x"}).size() == 1);
  CHECK(names().value_or(std::vector<std::string>{}).size() == 3);
}
