// The notification thread of pg_listener.h.
#include "stores/postgres/pg_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "stores/postgres/pg_pool.h"

namespace porter::detail {

namespace {

constexpr int kPollMs = 1000;                       // re-check stop and the connection at least this often
constexpr auto kMaxBackoff = std::chrono::seconds(2);  // between reconnect attempts

std::string unhex(std::string_view s) {
  auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(val(s[i]) * 16 + val(s[i + 1]));
  return out;
}

}  // namespace

NotifyListener::NotifyListener(std::string conninfo, std::string channel, const Pool& pool, Sink sink)
    : conninfo_(std::move(conninfo)), channel_(std::move(channel)), pool_(pool), sink_(std::move(sink)) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

NotifyListener::~NotifyListener() {
  thread_.request_stop();
  if (wake_[1] >= 0) {
    char c = 0;
    [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
  }
  thread_.join();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void NotifyListener::run(std::stop_token stop) {
  auto backoff = std::chrono::milliseconds(50);
  bool lost = false;
  while (!stop.stop_requested()) {
    auto conn = connect_pg(conninfo_, "", std::chrono::seconds(5));
    if (conn) {
      try {
        (*conn)->simple(("LISTEN " + quote_ident(channel_)).c_str());
        backoff = std::chrono::milliseconds(50);
        // Whatever was sent while this process was deaf: everyone re-reads.
        if (lost) sink_(StoreEvent::Type::changed_elsewhere, {});
        listen((*conn)->handle(), stop);
      } catch (const PgError&) {
      }
      lost = true;
    }
    if (stop.stop_requested()) return;
    // Wait out the backoff, woken early by the destructor.
    pollfd p{wake_[0], POLLIN, 0};
    ::poll(&p, wake_[0] >= 0 ? 1 : 0, static_cast<int>(backoff.count()));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
  }
}

void NotifyListener::listen(void* raw, std::stop_token stop) {
  auto* conn = static_cast<PGconn*>(raw);
  while (!stop.stop_requested()) {
    pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int n = ::poll(fds, wake_[0] >= 0 ? 2 : 1, kPollMs);
    if (n < 0) continue;  // EINTR
    if (!PQconsumeInput(conn) || PQstatus(conn) == CONNECTION_BAD) return;
    bool changed = false;
    while (PGnotify* note = PQnotifies(conn)) {
      std::string_view payload = note->extra ? note->extra : "";
      if (!pool_.own_backend(note->be_pid)) {
        if (!payload.empty() && payload[0] == 'a') {
          sink_(StoreEvent::Type::available, unhex(payload.substr(1)));
        } else {
          changed = true;
        }
      }
      PQfreemem(note);
    }
    if (changed) sink_(StoreEvent::Type::changed_elsewhere, {});
  }
}

}  // namespace porter::detail
