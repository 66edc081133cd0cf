// WriteGroup: leveldb's write path (DBImpl::Write) for callers that each
// bring one small write. Callers queue up; the one at the front is the
// leader: it takes the writes queued behind it (up to a weight), runs them
// all in one transaction (one fsync) and wakes their callers, who return
// only then; the next caller at the front leads the next group. Eight
// threads enqueuing one job each thus share commits instead of queueing for
// one fsync apiece.
//
// A Writer is any type with `bool finished_run` (set by the leader's run
// function, on the leader's thread, once its write has its final result),
// `bool done` and `std::condition_variable cv` (this class's), and
// `std::size_t weight() const`. A writer the run function leaves unfinished
// (the leader threw before committing it) stays queued for the next leader.
//
// Thread safety: join() may be called from any thread. Lock: mu_ guards
// queue_ and every writer's `done`; a writer's other fields belong to its
// caller until it is queued, then to the leader that runs it, then to its
// caller again once `done` (the mutex orders the hand-overs).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

namespace porter::detail {

template <class Writer>
class WriteGroup {
 public:
  explicit WriteGroup(std::size_t max_weight) : max_weight_(max_weight) {}

  // Returns once `w` is finished: by a leader's group, or led by this
  // caller, who then runs `run(group)` (`w` first) outside the lock. An
  // exception of run() reaches this caller alone; the writers it did not
  // finish are led by the next caller.
  template <class Run>
  void join(Writer& w, Run&& run) {
    std::unique_lock lock(mu_);
    queue_.push_back(&w);
    w.cv.wait(lock, [&] { return w.done || queue_.front() == &w; });
    if (w.done) return;
    HandOver hand_over{*this, w, lock};
    std::vector<Writer*> group;
    std::size_t weight = 0;
    for (Writer* x : queue_) {
      if (!group.empty() && weight + x->weight() > max_weight_) break;
      group.push_back(x);
      weight += x->weight();
    }
    lock.unlock();
    run(std::span<Writer* const>(group));
  }

 private:
  // On every exit of a leader: its finished writers leave the queue and
  // wake, and the new front (if any) leads next.
  struct HandOver {
    WriteGroup& g;
    Writer& leader;
    std::unique_lock<std::mutex>& lock;
    ~HandOver() {
      if (!lock.owns_lock()) lock.lock();
      std::erase_if(g.queue_, [&](Writer* x) {
        if (x != &leader && !x->finished_run) return false;
        x->done = true;
        if (x != &leader) x->cv.notify_one();
        return true;
      });
      if (!g.queue_.empty()) g.queue_.front()->cv.notify_one();
    }
  };

  const std::size_t max_weight_;
  std::mutex mu_;
  std::deque<Writer*> queue_;  // guarded by mu_; the front leads
};

}  // namespace porter::detail
