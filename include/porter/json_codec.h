// The JSON codec for typed jobs (porter/typed.h), over nlohmann::json: every
// type nlohmann can convert (its to_json/from_json, or the
// NLOHMANN_DEFINE_TYPE_* macros) is a job type's args or a job's result.
// Include it where typed jobs are registered or enqueued; the compiled core
// does not depend on it.
//
// Args that do not decode name the field: "field 'to' is missing",
// "field 'address.zip': expected a string, got a number". A string field
// that holds invalid UTF-8 fails to encode (enqueue answers invalid_argument)
// rather than being changed on the way in.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "porter/typed.h"

namespace porter {
namespace detail {

template <class T>
concept NlohmannConvertible = requires(nlohmann::json& j, const T& in, T& out) {
  nlohmann::adl_serializer<T>::to_json(j, in);
  nlohmann::adl_serializer<T>::from_json(std::as_const(j), out);
};

inline std::string_view json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: return "a number";
    case nlohmann::json::value_t::null: return "null";
    default: return "something else";
  }
}

// The first field where `got` differs in shape from `expected` (a default
// value encoded): missing, or another kind of value. Null in `expected` (an
// empty optional) takes anything.
inline std::optional<std::string> first_mismatch(const nlohmann::json& expected, const nlohmann::json& got,
                                                 const std::string& path) {
  if (expected.is_null()) return std::nullopt;
  const std::string where = path.empty() ? std::string("the args") : "field '" + path + "'";
  if (json_kind(expected) != json_kind(got)) {
    return where + ": expected " + std::string(json_kind(expected)) + ", got " + std::string(json_kind(got));
  }
  if (!expected.is_object()) return std::nullopt;
  for (const auto& [key, value] : expected.items()) {
    const std::string field = path.empty() ? key : path + "." + key;
    const auto found = got.find(key);
    if (found == got.end()) {
      if (value.is_null()) continue;
      return "field '" + field + "' is missing";
    }
    if (auto inner = first_mismatch(value, *found, field)) return inner;
  }
  return std::nullopt;
}

}  // namespace detail

template <detail::NlohmannConvertible T>
struct JobCodec<T> {
  static std::string encode(const T& value) { return nlohmann::json(value).dump(); }

  static T decode(std::string_view text) {
    const nlohmann::json j = nlohmann::json::parse(text);
    try {
      return j.template get<T>();
    } catch (const nlohmann::json::exception& e) {
      // nlohmann's own message does not say which field (without
      // JSON_DIAGNOSTICS, a global switch that is the application's to set).
      if constexpr (std::is_default_constructible_v<T>) {
        std::optional<std::string> mismatch;
        try {
          mismatch = detail::first_mismatch(nlohmann::json(T{}), j, "");
        } catch (const std::exception&) {
          // The default value does not encode: keep nlohmann's message.
        }
        if (mismatch) throw std::invalid_argument(*mismatch + " (" + e.what() + ")");
      }
      throw;
    }
  }
};

}  // namespace porter
