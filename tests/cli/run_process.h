// Runs a program with arguments (no shell), capturing stdout and stderr, and
// waits for it (a test's own timeout bounds a hang). Or starts it and reads
// its first line of output, for a server.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace porter::test {

struct ProcessResult {
  int exit_code = -1;
  std::string out, err;
};

class Process {
 public:
  explicit Process(const std::vector<std::string>& argv) {
    if (::pipe(out_) != 0 || ::pipe(err_) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_[1], 2);
    posix_spawn_file_actions_addclose(&actions, out_[0]);
    posix_spawn_file_actions_addclose(&actions, err_[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_[1]);
    ::close(err_[1]);
  }
  ~Process() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_[0]);
    ::close(err_[0]);
  }
  // The first line on stdout ("" at end of output).
  std::string read_line() {
    std::string line;
    char c;
    while (::read(out_[0], &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Reads stdout, then stderr, to their ends and reaps the process.
  ProcessResult wait() {
    ProcessResult r;
    r.out = drain(out_[0]);
    r.err = drain(err_[0]);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }

 private:
  static std::string drain(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_[2] = {-1, -1};
  int err_[2] = {-1, -1};
};

inline ProcessResult run(const std::vector<std::string>& argv) { return Process(argv).wait(); }

}  // namespace porter::test
