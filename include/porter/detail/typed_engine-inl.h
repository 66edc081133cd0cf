// The typed members of Engine and JobContext (porter/typed.h), defined here
// so engine.h reads as the interface. Included at the end of engine.h.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

namespace porter {

template <JobType T>
Result<InsertResult> JobContext::spawn(const T& child, JobOptions options) {
  NewJob job = to_new_job(child, std::move(options));
  return spawn(std::move(job));
}

template <class R>
  requires(!std::is_convertible_v<const R&, std::string>)
void JobContext::set_result(const R& value) {
  set_result(JobCodec<R>::encode(value));
}

template <JobType T, class F>
Status Engine::register_job(F handler, KindOptions options) {
  constexpr bool with_context = std::is_invocable_v<F&, const T&, JobContext&>;
  static_assert(with_context || std::is_invocable_v<F&, const T&>,
                "register_job<T>: the handler must be callable as f(const T&) or f(const T&, JobContext&)");
  detail::apply_type_defaults<T>(options);
  Handler adapter = [h = std::move(handler)](JobContext& ctx) mutable {
    const T job = detail::decode_args<T>(ctx.args());
    const auto call = [&]() -> decltype(auto) {
      if constexpr (with_context) {
        return std::invoke(h, job, ctx);
      } else {
        return std::invoke(h, job);
      }
    };
    using R = decltype(call());
    if constexpr (std::is_void_v<R>) {
      call();
    } else {
      ctx.set_result(JobCodec<std::remove_cvref_t<R>>::encode(call()));
    }
  };
  return register_handler(std::string(T::kind), std::move(adapter), std::move(options));
}

template <JobType T>
Result<InsertResult> Engine::enqueue(const T& job, JobOptions options) {
  NewJob out;
  try {
    out = to_new_job(job, std::move(options));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::invalid_argument, "a '" + std::string(T::kind) + "' job does not encode: " + e.what());
  }
  return enqueue(std::move(out));
}

template <JobType T>
Result<std::vector<InsertResult>> Engine::enqueue_batch(const std::vector<T>& jobs, const JobOptions& options) {
  std::vector<NewJob> out;
  out.reserve(jobs.size());
  try {
    for (const T& job : jobs) out.push_back(to_new_job(job, options));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::invalid_argument, "job " + std::to_string(out.size()) + " of the batch (a '" +
                                                       std::string(T::kind) + "' job) does not encode: " + e.what());
  }
  return enqueue_batch(std::move(out));
}

}  // namespace porter
