// StopOnSignals (porter/signals.h): the signal handler only writes the
// signal's number to a pipe (write() is async-signal-safe; nothing else
// is), and a thread of its own reads it and calls Engine::stop().
#include "porter/signals.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "porter/engine.h"

namespace porter {
namespace {

std::atomic<int> g_signal_fd{-1};   // the pipe's write end while a StopOnSignals exists
std::atomic<bool> g_in_use{false};  // one per process

extern "C" void on_stop_signal(int sig) {
  const int saved = errno;
  const int fd = g_signal_fd.load();
  if (fd >= 0) {
    const auto byte = static_cast<unsigned char>(sig);
    [[maybe_unused]] const auto n = ::write(fd, &byte, 1);
  }
  errno = saved;
}

}  // namespace

struct StopOnSignals::Impl {
  Engine& engine;
  std::vector<std::pair<int, struct sigaction>> previous;  // restored once, by whoever first can
  int pipe_fds[2] = {-1, -1};
  std::thread thread;

  std::mutex mu;
  std::condition_variable cv;
  bool restored = false;  // guarded by mu
  bool stopped = false;   // guarded by mu: the engine stopped after a signal
  std::atomic<int> received{0};

  explicit Impl(Engine& e) : engine(e) {}

  void restore_handlers() {
    std::lock_guard lock(mu);
    if (restored) return;
    restored = true;
    for (auto& [sig, action] : previous) ::sigaction(sig, &action, nullptr);
  }

  void run() {
    while (true) {
      unsigned char byte = 0;
      const ssize_t n = ::read(pipe_fds[0], &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n != 1 || byte == 0) return;  // the destructor's wake-up, or the pipe closed
      received.store(byte);
      restore_handlers();  // a second signal acts as it did before
      engine.stop();
      {
        std::lock_guard lock(mu);
        stopped = true;
      }
      cv.notify_all();
      return;
    }
  }
};

StopOnSignals::StopOnSignals(Engine& engine, std::initializer_list<int> signals) : impl_(std::make_unique<Impl>(engine)) {
  if (g_in_use.exchange(true)) throw std::logic_error("porter::StopOnSignals: one already exists in this process");
  if (::pipe2(impl_->pipe_fds, O_CLOEXEC) != 0) {
    g_in_use.store(false);
    throw std::system_error(errno, std::generic_category(), "porter::StopOnSignals: pipe");
  }
  g_signal_fd.store(impl_->pipe_fds[1]);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int sig : signals) {
    struct sigaction old {};
    if (::sigaction(sig, &action, &old) == 0) impl_->previous.emplace_back(sig, old);
  }
}

StopOnSignals::~StopOnSignals() {
  impl_->restore_handlers();
  g_signal_fd.store(-1);
  const unsigned char wake = 0;
  [[maybe_unused]] const auto n = ::write(impl_->pipe_fds[1], &wake, 1);
  impl_->thread.join();
  ::close(impl_->pipe_fds[0]);
  ::close(impl_->pipe_fds[1]);
  g_in_use.store(false);
}

int StopOnSignals::wait() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stopped; });
  return impl_->received.load();
}

int StopOnSignals::received() const noexcept { return impl_->received.load(); }

}  // namespace porter
