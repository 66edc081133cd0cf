// WalWatcher (see wal_watcher.h): inotify on the -wal file, an eventfd to
// wake the thread, poll() over both.
#include "stores/sqlite/wal_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace porter::detail {

namespace {

// Reads every pending inotify event; returns their masks or'ed together.
std::uint32_t drain(int fd) {
  alignas(inotify_event) char buf[4096];
  std::uint32_t mask = 0;
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      inotify_event event{};
      std::memcpy(&event, buf + at, sizeof event);
      mask |= event.mask;
      at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
    }
  }
  return mask;
}

// ppoll's timeout for the time left until `at` (zero when past).
timespec until(std::chrono::steady_clock::time_point at) {
  auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(at - std::chrono::steady_clock::now());
  if (left.count() < 0) left = std::chrono::nanoseconds(0);
  timespec t{};
  t.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
  t.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
  return t;
}

}  // namespace

WalWatcher::WalWatcher(std::string wal_path, std::function<bool(bool again)> noticed, std::function<bool()> wanted)
    : wal_path_(std::move(wal_path)), noticed_(std::move(noticed)), wanted_(std::move(wanted)) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return;  // no thread: callers poll as before
  thread_ = std::thread([this] { run(); });
}

WalWatcher::~WalWatcher() {
  if (thread_.joinable()) {
    stop_.store(true);
    poke();
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void WalWatcher::poke() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);  // a full counter is still a wake-up
}

void WalWatcher::run() {
  using steady = std::chrono::steady_clock;
  constexpr std::uint32_t kMask = IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF;
  int watch = -1;
  int asks_left = 0;             // of the current schedule of asking again (0: none)
  steady::duration step{};       // until the next ask; doubles after each
  steady::time_point next_ask{};
  steady::time_point quiet_until{};  // writes before this pile up: one ask per kCoalesce at most
  while (true) {
    const bool want = wanted_();
    if (want && watch < 0 && inotify_fd_ >= 0) {
      watch = ::inotify_add_watch(inotify_fd_, wal_path_.c_str(), kMask);
    } else if (!want && watch >= 0) {
      ::inotify_rm_watch(inotify_fd_, watch);
      watch = -1;
      drain(inotify_fd_);
    }
    if (!want) asks_left = 0;
    const auto now = steady::now();
    const bool listening = watch >= 0 && now >= quiet_until;
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, static_cast<short>(listening ? POLLIN : 0), 0}};
    timespec timeout{};
    const timespec* wait = nullptr;  // forever
    steady::time_point deadline = steady::time_point::max();
    if (asks_left > 0) deadline = next_ask;
    if (watch >= 0 && !listening) deadline = std::min(deadline, quiet_until);
    if (want && watch < 0 && inotify_fd_ >= 0) deadline = std::min(deadline, now + std::chrono::seconds(1));  // the -wal may appear later
    if (deadline != steady::time_point::max()) {
      timeout = until(deadline);
      wait = &timeout;
    }
    int n = ::ppoll(fds, 2, wait, nullptr);
    if (n < 0 && errno != EINTR) return;  // cannot wait: the store's users poll instead
    if (fds[0].revents & POLLIN) {
      std::uint64_t v = 0;
      [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
      if (stop_.load()) return;
      continue;
    }
    if (!want) continue;
    if (listening && (fds[1].revents & POLLIN)) {
      const std::uint32_t mask = drain(inotify_fd_);
      if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        ::inotify_rm_watch(inotify_fd_, watch);  // a new -wal file: watch it from the next turn
        watch = -1;
      }
      quiet_until = steady::now() + kCoalesce;
      if (noticed_(false)) {
        asks_left = kAsksAfterWrite;
        step = kCoalesce;
        next_ask = steady::now() + step;
      } else {
        asks_left = 0;
      }
    } else if (asks_left > 0 && steady::now() >= next_ask) {
      if (noticed_(true)) {
        --asks_left;
        step *= 2;
        next_ask = steady::now() + step;
      } else {
        asks_left = 0;
      }
    }
  }
}

}  // namespace porter::detail
