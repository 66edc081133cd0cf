// StopOnSignals: a graceful shutdown when the process is asked to end.
//
// Deployments stop a worker with SIGTERM (systemd, Kubernetes, a supervisor)
// and a person with Ctrl-C (SIGINT). On the first of them the engine stops
// as Engine::stop() documents: it claims nothing more, lets running jobs
// finish within EngineOptions::shutdown_grace, then hands the rest back
// (pending again, attempt not consumed) so another worker takes them.
//
//   porter::Engine engine(store, options);
//   ... register handlers ...
//   engine.start().value();
//   porter::StopOnSignals on_signal(engine);  // SIGTERM and SIGINT
//   on_signal.wait();                          // returns once the engine has stopped
//
// The previous disposition of each signal is put back as soon as the first
// one arrives, so a second Ctrl-C does what it did before (by default: end
// the process now). Declare it after the engine, so it is destroyed first.
// One StopOnSignals may exist in a process at a time (signal dispositions
// are process-wide); a second is std::logic_error.
//
// Thread safety: wait() and received() may be called from any thread.
#pragma once

#include <csignal>
#include <initializer_list>
#include <memory>

namespace porter {

class Engine;

class StopOnSignals {
 public:
  explicit StopOnSignals(Engine& engine, std::initializer_list<int> signals = {SIGTERM, SIGINT});
  ~StopOnSignals();  // puts the previous dispositions back if no signal came
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

  // Blocks until one of the signals arrived and the engine has stopped; the signal's number.
  int wait();
  // The signal that arrived (0: none yet). The engine may still be stopping.
  int received() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace porter
