// Errors as values. Expected failures (bad input, stale lease, missing job,
// permission denied, busy database) come back as a Result; exceptions are
// reserved for programming errors and for user handlers, whose exceptions
// the engine catches at the worker boundary and records as a failed attempt.
//
// GCC 12 in C++20 mode has no std::expected, so Result<T> is a small
// stand-in with the same member names (has_value, value, error, value_or).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace porter {

enum class ErrorCode : std::uint8_t {
  invalid_argument,   // the caller's input is malformed; nothing was changed
  not_found,          // no job (or queue) with that id
  permission_denied,  // the principal may not see or act on that job
  stale_lease,        // the fencing token no longer matches: another worker owns the job
  wrong_state,        // the job is not in a state that allows the operation
  unavailable,        // the store could not be reached or stayed busy; safe to retry
  corruption,         // the store's data is not what Porter wrote
  unsupported,        // e.g. a database written by a newer Porter
  timeout,            // a wait ran out
  internal,           // a bug: please report it
};

std::string_view to_string(ErrorCode code) noexcept;

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // "stale_lease: job 42 is held by another lease"
  std::string to_string() const;

 private:
  ErrorCode code_;
  std::string message_;
};

// Thrown by Result::value() on an error; carries the Error.
class BadResultAccess : public std::runtime_error {
 public:
  explicit BadResultAccess(Error error)
      : std::runtime_error(error.to_string()), error_(std::move(error)) {}
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // On an rvalue (a Result a function just returned) the accessors return by
  // value, moved out, not a reference into the temporary: so
  // `for (auto& job : f().value())` and `const auto& e = f().error()` are safe.
  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T value() && { check(); return std::get<0>(std::move(v_)); }
  T value() const&& { check(); return std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T operator*() const&& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  template <class U>
  T value_or(U&& fallback) const& { return has_value() ? std::get<0>(v_) : T(std::forward<U>(fallback)); }
  template <class U>
  T value_or(U&& fallback) && {
    return has_value() ? std::get<0>(std::move(v_)) : T(std::forward<U>(fallback));
  }

  // Precondition: !has_value().
  const Error& error() const& { return std::get<1>(v_); }
  Error error() && { return std::get<1>(std::move(v_)); }

 private:
  void check() const {
    if (!has_value()) throw BadResultAccess(std::get<1>(v_));
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) throw BadResultAccess(error_);
  }
  const Error& error() const& { return error_; }
  Error error() && { return std::move(error_); }

 private:
  Error error_{ErrorCode::internal, {}};
  bool ok_ = true;
};

using Status = Result<void>;

inline Error make_error(ErrorCode code, std::string message) { return Error(code, std::move(message)); }

}  // namespace porter
