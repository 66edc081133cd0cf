// The baseline every Porter figure is compared with: the minimal thread pool
// an application would write instead of using a job library. One mutex, one
// condition variable, a std::queue of std::function, N threads. No
// durability, no priorities, no retries, no leases: what Porter costs on top
// of "just run this closure on another thread" is the ratio to this pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace porter::bench {

class BaselinePool {
 public:
  using Task = std::function<void()>;

  BaselinePool() = default;
  BaselinePool(const BaselinePool&) = delete;
  BaselinePool& operator=(const BaselinePool&) = delete;
  ~BaselinePool() { stop(); }

  // Tasks may be queued before start(): the drain workload measures a full queue.
  void start(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }

  void submit(Task task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push(std::move(task));
    }
    ready_.notify_one();
  }

  // One lock for the whole batch, the pool's equivalent of a batch insert.
  void submit_batch(std::vector<Task>& tasks) {
    {
      std::lock_guard lock(mutex_);
      for (auto& task : tasks) tasks_.push(std::move(task));
    }
    ready_.notify_all();
  }

  // Takes one task off the queue without running it (the scale workload's
  // counterpart of a claim). Returns false when empty.
  bool take_one(Task& out) {
    std::lock_guard lock(mutex_);
    if (tasks_.empty()) return false;
    out = std::move(tasks_.front());
    tasks_.pop();
    return true;
  }

  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return tasks_.size();
  }

  // Runs what is queued, then joins the threads.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }

 private:
  void run() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop();
      }
      task();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::queue<Task> tasks_;  // guarded by mutex_
  bool stopping_ = false;   // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace porter::bench
