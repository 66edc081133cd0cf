// WalWatcher: notices commits to a WAL-mode database by other processes
// without polling it. A thread blocks on inotify for writes to the
// database's -wal file (every commit appends its frames there) and, on one,
// calls `noticed(false)`; the store answers whether another connection
// committed (PRAGMA data_version on its own write connection changes only
// for commits of other connections) and tells its listeners.
//
// A write comes before its commit is visible: the frames, an fsync, then
// the index in the -shm file, which is mapped memory that inotify does not
// see. So when the store answers "not yet" (or "busy") it is asked again,
// `noticed(true)`, after kCoalesce, then after twice that, and so on,
// kAsksAfterWrite times (about a quarter of a second in all), until it
// answers that it is done. Writes come in bursts (several per commit, many
// commits in a drain): after each, the next kCoalesce of writes pile up and
// count as one, so the store is asked at most about once per kCoalesce.
// A -wal file deleted or replaced is watched again from the next turn.
//
// Cost: the thread exists only once a store has had a listener, and while
// `wanted()` is false (no listener now) it holds no inotify watch and
// sleeps on its wake-up descriptor: own commits cost it nothing. If the
// -wal file cannot be watched (no inotify, not created yet) it retries once
// a second; callers keep their polling fallback.
//
// Thread safety: poke() from any thread; destruction stops and joins the
// thread (it never waits for anything but the next poll() return).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace porter::detail {

class WalWatcher {
 public:
  static constexpr std::chrono::microseconds kCoalesce{500};
  static constexpr int kAsksAfterWrite = 9;  // 0.5 ms, 1 ms, ... 128 ms after a write: 255 ms in all

  // `noticed` and `wanted` run on the watcher's thread and must not block.
  WalWatcher(std::string wal_path, std::function<bool(bool again)> noticed, std::function<bool()> wanted);
  ~WalWatcher();
  WalWatcher(const WalWatcher&) = delete;
  WalWatcher& operator=(const WalWatcher&) = delete;

  // `wanted()` may have changed: re-arm or disarm the watch.
  void poke();

 private:
  void run();

  std::string wal_path_;
  std::function<bool(bool again)> noticed_;
  std::function<bool()> wanted_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: poke() and stop
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace porter::detail
