// WalWatcher (see wal_watcher.h): inotify on the -wal file, an eventfd to
// wake the thread, poll() over both.
#include "stores/sqlite/wal_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace porter::detail {

namespace {

// Reads everything pending on a non-blocking descriptor.
void drain(int fd) {
  alignas(inotify_event) char buf[4096];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
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
  int watch = -1;
  bool coalescing = false;  // just handled a write: let the next ones pile up first
  bool again = false;       // the store asked to be called again after the pause
  while (true) {
    const bool want = wanted_();
    if (want && watch < 0 && inotify_fd_ >= 0) {
      watch = ::inotify_add_watch(inotify_fd_, wal_path_.c_str(), IN_MODIFY);
    } else if (!want && watch >= 0) {
      ::inotify_rm_watch(inotify_fd_, watch);
      watch = -1;
      drain(inotify_fd_);
    }
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, static_cast<short>(watch >= 0 && !coalescing ? POLLIN : 0), 0}};
    timespec timeout{};
    const timespec* wait = nullptr;  // forever
    if (coalescing) {
      timeout.tv_nsec = std::chrono::nanoseconds(kCoalesce).count();
      wait = &timeout;
    } else if (want && watch < 0 && inotify_fd_ >= 0) {
      timeout.tv_sec = 1;  // the -wal file may appear later
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
    if (coalescing) {
      coalescing = false;
      if (again && want) {
        again = noticed_(true);
        coalescing = again;
      }
      continue;
    }
    if (fds[1].revents & POLLIN) {
      drain(inotify_fd_);
      again = want && noticed_(false);
      coalescing = true;
    }
  }
}

}  // namespace porter::detail
