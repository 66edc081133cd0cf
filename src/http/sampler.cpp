// Sampler: every `every`, how many jobs completed and failed in that interval
// (from the store's per-kind stats), the last Sampler::kKept of them, for the
// page's throughput and failure charts.
#include "http/context.h"

namespace porter::http::detail {

void Sampler::start(Store& store, Duration every) {
  stopping_ = false;
  thread_ = std::thread([this, &store, every] { run(store, every); });
}

void Sampler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::deque<Sample> Sampler::samples() const {
  std::lock_guard lock(mu_);
  return kept_;
}

void Sampler::run(Store& store, Duration every) {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    auto stats = store.stats(every);  // a failed read leaves a gap rather than a made-up zero
    lock.lock();
    if (stats) {
      Sample s{stats->at};
      for (const auto& k : stats->kinds) {
        s.completed += k.completed;
        s.failed += k.failed;
      }
      kept_.push_back(s);
      if (kept_.size() > kKept) kept_.pop_front();
    }
    cv_.wait_for(lock, every, [this] { return stopping_; });
  }
}

}  // namespace porter::http::detail
