// Transitions of a stored job and what they do to its relatives (see rules.h).
#include <algorithm>

#include "core/bounds.h"
#include "rules/rules.h"

namespace porter::rules {

namespace {

// The handler's run time: what it said, else started -> now.
Duration run_time_of(const JobHead& h, TimePoint now, Duration ran_for) {
  if (ran_for > Duration::zero()) return ran_for;
  return h.started_at ? std::max(detail::saturating_diff(now, *h.started_at), Duration::zero()) : Duration::zero();
}

// Due -> started of the latest run.
Duration latency_of(const JobHead& h) {
  return h.started_at ? std::max(detail::saturating_diff(*h.started_at, h.run_at), Duration::zero())
                      : Duration::zero();
}

void make_pending(Tx& tx, JobHead& h, TimePoint run_at) {
  h.state = JobState::pending;
  h.run_at = run_at;
  tx.write(h);
  tx.emit(StoreEvent::Type::available, h);
}

// Every child is final: the job runs again as its callback phase.
void wake_for_callback(Tx& tx, JobHead& h) {
  h.callback_pending = true;
  h.attempt = 0;
  make_pending(tx, h, tx.now());
}

void request_cancel(Tx& tx, JobHead& h) {
  if (h.cancel_requested) return;
  h.cancel_requested = true;
  tx.write(h);
  tx.emit(StoreEvent::Type::cancel_requested, h);
}

// Every unfinished descendant of `root`: pending and waiting ones are
// cancelled now, running ones asked to stop (and their descendants cancelled).
void cancel_descendants(Tx& tx, JobId root, std::string_view why) {
  std::vector<JobId> todo;
  tx.unfinished_children(root, todo);
  while (!todo.empty()) {
    JobId id = todo.back();
    todo.pop_back();
    auto c = tx.read(id);
    if (!c || is_final(c->state)) continue;
    if (c->state == JobState::running) {
      request_cancel(tx, *c);
    } else {
      finalize(tx, *c, JobState::cancelled, why);
    }
    if (c->children_total > 0) tx.unfinished_children(id, todo);
  }
}

// "job 5 (resize) failed"
std::string describe_final(Tx& tx, const JobHead& h) {
  return "job " + std::to_string(h.id) + " (" + tx.kind_of(h.id) + ") " +
         (h.state == JobState::failed ? "failed" : "was cancelled");
}

// A final job's parent: one unfinished child fewer; a failed child fails it
// (fail_parent), the last child wakes it for its callback phase.
void update_parent(Tx& tx, const JobHead& child, const std::string& what) {
  auto p = tx.read(child.parent_id);
  if (!p) return;
  if (p->children_unfinished > 0) --p->children_unfinished;  // exact even for a final parent
  const bool bad = child.state != JobState::completed;
  if (!is_final(p->state) && bad && child.on_failure == ChildFailurePolicy::fail_parent && !p->cancel_requested) {
    std::string message = "child " + what;
    if (std::string last = tx.last_error(child.id); !last.empty()) message += ": " + last;
    finalize(tx, *p, JobState::failed, message);
  } else if (p->state == JobState::waiting && p->children_unfinished == 0 && p->dependencies_unfinished == 0) {
    wake_for_callback(tx, *p);
  } else {
    tx.write(*p);
  }
}

// A final job's dependents: completed, one unfinished dependency fewer (and
// runnable when none is left); failed or cancelled, they are cancelled unless
// they run after any end (DependencyMode::all_final).
void update_dependents(Tx& tx, const JobHead& dep, const std::string& what) {
  std::vector<JobId> ids;
  tx.dependents(dep.id, ids);
  for (JobId id : ids) {
    auto d = tx.read(id);
    if (!d || is_final(d->state)) continue;
    if (dep.state != JobState::completed && d->dependency_mode == DependencyMode::all_completed) {
      finalize(tx, *d, JobState::cancelled, "cancelled: dependency " + what);
      continue;
    }
    if (d->dependencies_unfinished == 0) continue;  // not counted (a retried job's override)
    --d->dependencies_unfinished;
    // Waiting with unfinished children means waiting for them, not for us.
    if (d->state == JobState::waiting && d->dependencies_unfinished == 0 && d->children_unfinished == 0) {
      make_pending(tx, *d, d->run_at);
    } else {
      tx.write(*d);
    }
  }
}

void after_final(Tx& tx, JobId id) {
  auto r = tx.read(id);
  if (!r || !is_final(r->state)) return;  // retried again meanwhile: nothing to propagate
  const bool bad = r->state != JobState::completed;
  const std::string what = bad ? describe_final(tx, *r) : std::string();
  if (bad && r->children_total > 0) cancel_descendants(tx, id, "cancelled: parent " + what);
  if (r->parent_id != 0) update_parent(tx, *r, what);
  if (r->has_dependents) update_dependents(tx, *r, what);
}

}  // namespace

TimePoint due_after(TimePoint now, Duration delay) {
  return detail::saturating_add(now, std::max(delay, Duration::zero()));
}

void finalize(Tx& tx, JobHead& h, JobState s, std::string_view error, Duration ran_for) {
  if (!error.empty()) tx.add_error(h, error, true, false);
  h.state = s;
  h.finished_at = tx.now();
  if (s == JobState::completed) h.callback_pending = false;
  if (s != JobState::cancelled) {
    tx.record_run(h, s == JobState::completed ? RunEnd::completed : RunEnd::failed, run_time_of(h, tx.now(), ran_for),
                  latency_of(h));
  }
  tx.write(h);
  tx.emit(StoreEvent::Type::finished, h);
  // Only a job with relatives has effects (the common lone job skips them).
  if (h.parent_id != 0 || h.has_dependents || (s != JobState::completed && h.children_total > 0)) {
    tx.finals.push_back(h.id);
  }
}

void place_new_job(Tx& tx, JobHead& h, std::span<const JobId> deps) {
  int unfinished = 0;
  std::string doomed;  // a dependency already failed or was cancelled
  for (JobId d : deps) {
    auto dep = tx.read(d);
    if (!dep || dep->state == JobState::completed) continue;
    if (is_final(dep->state)) {
      if (doomed.empty() && h.dependency_mode == DependencyMode::all_completed) doomed = "cancelled: dependency " + describe_final(tx, *dep);
      continue;
    }
    ++unfinished;
  }
  h.dependencies_unfinished = unfinished;
  if (!doomed.empty()) {
    finalize(tx, h, JobState::cancelled, doomed);
  } else if (unfinished == 0) {
    make_pending(tx, h, h.run_at);
  } else {
    h.state = JobState::waiting;
    tx.write(h);
  }
}

JobState apply_outcome(Tx& tx, JobHead& h, const Outcome& o) {
  if (h.cancel_requested) {
    // Whatever the handler says, it was asked to stop.
    if (!o.error.empty()) tx.add_error(h, o.error, false, false);
    finalize(tx, h, JobState::cancelled, {}, o.ran_for);
    return h.state;
  }
  if ((o.kind == OutcomeKind::complete || o.kind == OutcomeKind::wait_children) && !o.result.empty()) {
    if (auto s = check_result(o.result); !s) {
      finalize(tx, h, JobState::failed, s.error().message(), o.ran_for);
      return h.state;
    }
    tx.set_result(h.id, o.result);
  }
  switch (o.kind) {
    case OutcomeKind::complete:
      finalize(tx, h, JobState::completed, {}, o.ran_for);
      break;
    case OutcomeKind::retry: {
      const bool last = h.attempt >= h.max_attempts;
      tx.add_error(h, o.error, false, !last);
      if (last) {
        finalize(tx, h, JobState::failed, {}, o.ran_for);
      } else {
        tx.record_run(h, RunEnd::retried, run_time_of(h, tx.now(), o.ran_for), latency_of(h));
        make_pending(tx, h, due_after(tx.now(), o.delay));
      }
      break;
    }
    case OutcomeKind::fail:
      finalize(tx, h, JobState::failed, o.error.empty() ? std::string_view("failed") : std::string_view(o.error),
               o.ran_for);
      break;
    case OutcomeKind::snooze:
      --h.attempt;  // not consumed
      make_pending(tx, h, due_after(tx.now(), o.delay));
      break;
    case OutcomeKind::release:
      --h.attempt;
      make_pending(tx, h, tx.now());
      break;
    case OutcomeKind::cancelled:
      finalize(tx, h, JobState::cancelled, o.error, o.ran_for);
      break;
    case OutcomeKind::wait_children:
      if (h.children_unfinished > 0) {
        h.state = JobState::waiting;
        tx.write(h);
      } else {
        wake_for_callback(tx, h);
      }
      break;
  }
  return h.state;
}

void give_up_lease(Tx& tx, JobHead& h, std::string_view message) {
  tx.emit(StoreEvent::Type::lease_lost, h);
  if (h.cancel_requested) {
    finalize(tx, h, JobState::cancelled, message);
  } else if (h.attempt >= h.max_attempts) {
    tx.add_error(h, message, false, false);  // the attempt failed transiently; the attempts ran out
    finalize(tx, h, JobState::failed, {});
  } else {
    tx.add_error(h, message, false, true);
    tx.record_run(h, RunEnd::retried, run_time_of(h, tx.now(), Duration::zero()), latency_of(h));
    make_pending(tx, h, tx.now());
  }
}

CancelResult cancel(Tx& tx, JobHead& h, std::string_view reason) {
  if (is_final(h.state)) return CancelResult::already_finished;
  std::string why = reason.empty() ? std::string("cancelled") : "cancelled: " + std::string(reason);
  if (h.state == JobState::running) {
    request_cancel(tx, h);
    cancel_descendants(tx, h.id, why);
    return CancelResult::requested;
  }
  finalize(tx, h, JobState::cancelled, why);
  return CancelResult::cancelled;
}

Status retry(Tx& tx, JobHead& h) {
  if (h.state != JobState::failed && h.state != JobState::cancelled) {
    return make_error(ErrorCode::wrong_state, "job " + std::to_string(h.id) + " is " + std::string(to_string(h.state)) +
                                                  "; only failed or cancelled jobs can be retried");
  }
  if (h.attempt >= h.max_attempts) h.max_attempts = h.attempt + 1;
  h.cancel_requested = false;
  h.finished_at.reset();
  // It counts again in its parent, whatever the parent's state (counts stay exact).
  if (h.parent_id != 0) {
    if (auto p = tx.read(h.parent_id)) {
      ++p->children_unfinished;
      tx.write(*p);
    }
  }
  // Dependencies completed meanwhile no longer count; unfinished ones do.
  // Failed or cancelled ones do not: the administrator overrides them.
  std::vector<JobId> deps;
  tx.dependencies(h.id, deps);
  int unfinished = 0;
  for (JobId d : deps) {
    if (auto dep = tx.read(d); dep && !is_final(dep->state)) ++unfinished;
  }
  h.dependencies_unfinished = unfinished;
  if (unfinished > 0) {
    h.state = JobState::waiting;
    tx.write(h);
  } else {
    make_pending(tx, h, tx.now());
  }
  return {};
}

void run_effects(Tx& tx) {
  while (!tx.finals.empty()) {
    JobId id = tx.finals.back();
    tx.finals.pop_back();
    after_final(tx, id);
  }
}

}  // namespace porter::rules
