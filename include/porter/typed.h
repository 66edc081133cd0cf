// Typed jobs: a job type declares its kind, and optionally its defaults,
// next to its fields; the engine encodes it into args when it is enqueued
// and decodes it before the handler runs.
//
//   struct SendEmail {
//     static constexpr std::string_view kind = "send_email";
//     static constexpr std::string_view queue = "notifications";  // optional defaults:
//     static constexpr int priority = -10;                         //   queue, priority,
//     static constexpr int max_attempts = 5;                       //   max_attempts, timeout
//     std::string to;
//     std::string subject;
//     std::string unique_key() const { return to; }               // optional
//   };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SendEmail, to, subject)    // with porter/json_codec.h
//
//   engine.register_job<SendEmail>([](const SendEmail& mail) { send(mail.to, mail.subject); });
//   engine.enqueue(SendEmail{.to = "ada@example.com", .subject = "Hi"}, {.delay = 5min});
//
// A handler takes (const T&) or (const T&, JobContext&) and returns void or
// a result value, which is encoded and kept as the job's result (a parent
// reads it with result_as<R>(child)). Args that fail to decode fail the job
// at once, permanently (retrying cannot fix them), with an error that names
// the field.
//
// Encoding goes through one customization point, JobCodec<T>, so the
// compiled core keeps no JSON dependency: porter/json_codec.h provides it
// for every type nlohmann::json can convert (to_json/from_json, or its
// NLOHMANN_DEFINE_TYPE_* macros); specialise JobCodec<T> for anything else.
// This header is light: no JSON library is included here.
#pragma once

#include <chrono>
#include <concepts>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "porter/clock.h"
#include "porter/job.h"
#include "porter/retry.h"
#include "porter/status.h"

namespace porter {

// How a value of type T becomes JSON text and back. Specialise it (or include
// porter/json_codec.h) with:
//   static std::string encode(const T& value);
//   static T decode(std::string_view json);  // throws on bad input; what() names the field
template <class T>
struct JobCodec;

namespace detail {
// `T::kind` is a static member (a NewJob's `kind` is a data member: not a job type).
template <class T>
concept HasStaticKind = requires {
  { T::kind } -> std::convertible_to<std::string_view>;
} && !std::is_member_object_pointer_v<decltype(&T::kind)>;
}  // namespace detail

// A job type: a class with `static constexpr std::string_view kind`.
template <class T>
concept JobType = std::is_class_v<T> && detail::HasStaticKind<T>;

// What one enqueue may set beyond the job's fields; an unset field takes the
// type's default (T::queue, T::priority, T::max_attempts, t.unique_key()),
// then NewJob's.
struct JobOptions {
  std::optional<std::string> queue;
  std::optional<int> priority;
  std::optional<TimePoint> run_at;
  std::optional<Duration> delay;
  std::optional<int> max_attempts;           // Default: T::max_attempts, else the kind's retry policy
  std::string owner;
  std::optional<std::string> unique_key;     // Default: t.unique_key() when T has it
  UniqueScope unique_scope = UniqueScope::active;
  Duration unique_period{0};
  std::vector<JobId> depends_on;
  DependencyMode dependency_mode = DependencyMode::all_completed;
  ChildFailurePolicy on_failure = ChildFailurePolicy::fail_parent;
  std::string description;
};

// The NewJob a typed job is enqueued as. Throws what the codec throws.
template <JobType T>
NewJob to_new_job(const T& job, JobOptions options = {}) {
  NewJob out;
  out.kind = std::string(T::kind);
  out.args = JobCodec<T>::encode(job);
  if (options.queue) {
    out.queue = std::move(*options.queue);
  } else if constexpr (requires { std::string_view(T::queue); }) {
    out.queue = std::string(T::queue);
  }
  if (options.priority) {
    out.priority = *options.priority;
  } else if constexpr (requires { int(T::priority); }) {
    out.priority = T::priority;
  }
  if (options.max_attempts) {
    out.max_attempts = *options.max_attempts;
  } else if constexpr (requires { int(T::max_attempts); }) {
    out.max_attempts = T::max_attempts;
  }
  if (options.unique_key) {
    out.unique_key = std::move(*options.unique_key);
  } else if constexpr (requires { { job.unique_key() } -> std::convertible_to<std::string>; }) {
    out.unique_key = job.unique_key();
  }
  out.run_at = options.run_at;
  out.delay = options.delay;
  out.owner = std::move(options.owner);
  out.unique_scope = options.unique_scope;
  out.unique_period = options.unique_period;
  out.depends_on = std::move(options.depends_on);
  out.dependency_mode = options.dependency_mode;
  out.on_failure = options.on_failure;
  out.description = std::move(options.description);
  return out;
}

// A stored job's result (JSON text) decoded as R; invalid_argument when it
// is empty or does not decode (the message says why).
template <class R>
Result<R> result_as(const Job& job) {
  if (job.result.empty()) {
    return make_error(ErrorCode::invalid_argument, "job " + std::to_string(job.id) + " has no result");
  }
  try {
    return JobCodec<R>::decode(job.result);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::invalid_argument,
                      "the result of job " + std::to_string(job.id) + " does not decode: " + e.what());
  }
}

namespace detail {

// Decodes a handler's args, or throws PermanentError naming the kind and why.
template <JobType T>
T decode_args(std::string_view args) {
  try {
    return JobCodec<T>::decode(args);
  } catch (const std::exception& e) {
    throw PermanentError("the args of a '" + std::string(T::kind) + "' job do not decode: " + e.what());
  }
}

// The kind options a type declares (T::timeout), under those passed in.
template <JobType T, class KindOptionsT>
void apply_type_defaults(KindOptionsT& options) {
  if constexpr (requires { std::chrono::duration_cast<Duration>(T::timeout); }) {
    if (!options.timeout) options.timeout = std::chrono::duration_cast<Duration>(T::timeout);
  }
}

}  // namespace detail
}  // namespace porter
