// Admin API tests: access scoping (admin vs owner), listings, job details,
// and the system-wide operations, driven through the Store with a
// ManualClock so leases, stuck jobs and retention are tested without sleeps.
// Every case runs against every store factory the test support provides.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "admin/admin_harness.h"

using namespace porter;
using namespace std::chrono_literals;
using porter::test::AdminHarness;

namespace {

void require_denied(const Status& s) {
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().code() == ErrorCode::permission_denied);
}
template <class T>
void require_denied(const Result<T>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::permission_denied);
}
template <class T>
void require_invalid(const Result<T>& r, std::string_view needle) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(r.error().message(), Catch::Contains(std::string(needle)));
}

const KindStats* find_kind(const Stats& stats, std::string_view kind) {
  for (const auto& k : stats.kinds) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}
const QueueInfo* find_queue(const Stats& stats, std::string_view queue) {
  for (const auto& q : stats.queues) {
    if (q.name == queue) return &q;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("a non-admin reads and acts only on their own jobs", "[admin][access]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId mine = h.add({.kind = "report", .owner = "alice"});
  JobId theirs = h.add({.kind = "report", .owner = "bob"});

  SECTION("read") {
    auto own = h.admin.get(h.alice, mine);
    REQUIRE(own.has_value());
    CHECK(own->job.owner == "alice");
    auto other = h.admin.get(h.alice, theirs);
    require_denied(other);
    CHECK_THAT(other.error().message(), Catch::Contains("is not yours"));
    // A missing job looks exactly like someone else's: no probing of ids.
    auto missing = h.admin.get(h.alice, theirs + 1000);
    require_denied(missing);
    CHECK(missing.error().message() == "job " + std::to_string(theirs + 1000) + " does not exist or is not yours");
    // The administrator sees both, and gets not_found for a missing job.
    CHECK(h.admin.get(h.root, theirs).has_value());
    auto admin_missing = h.admin.get(h.root, theirs + 1000);
    REQUIRE_FALSE(admin_missing.has_value());
    CHECK(admin_missing.error().code() == ErrorCode::not_found);
  }
  SECTION("cancel") {
    require_denied(h.admin.cancel(h.alice, theirs));
    CHECK(h.state(theirs) == JobState::pending);  // untouched
    auto own = h.admin.cancel(h.alice, mine);
    REQUIRE(own.has_value());
    CHECK(*own == CancelResult::cancelled);
    CHECK(h.state(mine) == JobState::cancelled);
    auto by_admin = h.admin.cancel(h.root, theirs);
    REQUIRE(by_admin.has_value());
    CHECK(h.state(theirs) == JobState::cancelled);
  }
  SECTION("retry") {
    REQUIRE(h.store->cancel(mine, "test").has_value());
    REQUIRE(h.store->cancel(theirs, "test").has_value());
    require_denied(h.admin.retry(h.alice, theirs));
    CHECK(h.state(theirs) == JobState::cancelled);
    REQUIRE(h.admin.retry(h.alice, mine).has_value());
    CHECK(h.state(mine) == JobState::pending);
  }
  SECTION("discard") {
    REQUIRE(h.store->cancel(mine, "test").has_value());
    REQUIRE(h.store->cancel(theirs, "test").has_value());
    require_denied(h.admin.discard(h.alice, theirs));
    CHECK(h.store->get(theirs).has_value());  // still there
    REQUIRE(h.admin.discard(h.alice, mine).has_value());
    CHECK(h.store->get(mine).error().code() == ErrorCode::not_found);
    REQUIRE(h.admin.discard(h.root, theirs).has_value());
    CHECK(h.store->get(theirs).error().code() == ErrorCode::not_found);
  }
  SECTION("a non-admin principal must name a user") {
    Principal nobody = Principal::owner("");
    JobId unowned = h.add({.kind = "report"});
    require_invalid(h.admin.get(nobody, unowned), "must name a user");
    require_invalid(h.admin.list(nobody, {}), "must name a user");
  }
}

TEST_CASE("listings: narrowed for owners, complete for admins, filtered and paged", "[admin][list]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  std::set<JobId> alice_jobs, all_jobs;
  for (int i = 0; i < 5; ++i) {
    JobId id = h.add({.kind = "resize", .queue = "images", .owner = "alice"});
    alice_jobs.insert(id);
    all_jobs.insert(id);
    h.clock->advance(1s);
  }
  for (int i = 0; i < 3; ++i) {
    all_jobs.insert(h.add({.kind = "email", .queue = "mail", .owner = "bob"}));
    h.clock->advance(1s);
  }

  auto ids = [](const JobPage& page) {
    std::set<JobId> out;
    for (const auto& j : page.jobs) out.insert(j.id);
    return out;
  };

  auto alice_all = h.admin.list(h.alice, {}, {}, 100);
  REQUIRE(alice_all.has_value());
  CHECK(ids(*alice_all) == alice_jobs);
  auto alice_own = h.admin.list(h.alice, {.owner = "alice"}, {}, 100);
  REQUIRE(alice_own.has_value());
  CHECK(ids(*alice_own) == alice_jobs);
  auto alice_bobs = h.admin.list(h.alice, {.owner = "bob"});
  require_denied(alice_bobs);
  CHECK_THAT(alice_bobs.error().message(), Catch::Contains("only their own jobs"));
  // Filters that match only bob's jobs give alice nothing, not bob's jobs.
  auto alice_mail = h.admin.list(h.alice, {.queue = "mail"}, {}, 100);
  REQUIRE(alice_mail.has_value());
  CHECK(alice_mail->jobs.empty());

  auto everything = h.admin.list(h.root, {}, {}, 100);
  REQUIRE(everything.has_value());
  CHECK(ids(*everything) == all_jobs);
  CHECK_FALSE(everything->next.has_value());
  auto bobs = h.admin.list(h.root, {.owner = "bob"}, {}, 100);
  REQUIRE(bobs.has_value());
  CHECK(bobs->jobs.size() == 3);
  auto by_queue = h.admin.list(h.root, {.queue = "images"}, {}, 100);
  REQUIRE(by_queue.has_value());
  CHECK(ids(*by_queue) == alice_jobs);
  auto by_kind = h.admin.list(h.root, {.kind = "email"}, {}, 100);
  REQUIRE(by_kind.has_value());
  CHECK(by_kind->jobs.size() == 3);

  // One running job: the state filter finds exactly it.
  Job running = h.claim_one("images");
  auto by_state = h.admin.list(h.root, {.states = {JobState::running}}, {}, 100);
  REQUIRE(by_state.has_value());
  REQUIRE(by_state->jobs.size() == 1);
  CHECK(by_state->jobs[0].id == running.id);

  // Every page of a listing, in order; the page count, to check the cursor.
  auto all_pages = [&](const Principal& who, int limit) {
    std::vector<Job> seen;
    std::optional<JobId> cursor;
    int pages = 0;
    do {
      auto page = h.admin.list(who, {}, cursor, limit);
      REQUIRE(page.has_value());
      CHECK(page->jobs.size() <= static_cast<std::size_t>(limit));
      seen.insert(seen.end(), page->jobs.begin(), page->jobs.end());
      cursor = page->next;
    } while (cursor && ++pages < 10);
    return std::pair{seen, pages + 1};
  };
  SECTION("pagination visits every job once, newest first") {
    auto [seen, pages] = all_pages(h.root, 3);
    CHECK(pages == 3);
    std::vector<JobId> seen_ids;
    for (const auto& j : seen) seen_ids.push_back(j.id);
    CHECK(std::is_sorted(seen_ids.rbegin(), seen_ids.rend()));
    CHECK(std::set<JobId>(seen_ids.begin(), seen_ids.end()) == all_jobs);
    CHECK(seen_ids.size() == all_jobs.size());
  }
  SECTION("an owner's pages hold only their jobs") {
    auto [seen, pages] = all_pages(h.alice, 2);
    CHECK(pages == 3);
    std::set<JobId> seen_ids;
    for (const auto& j : seen) {
      CHECK(j.owner == "alice");
      seen_ids.insert(j.id);
    }
    CHECK(seen_ids == alice_jobs);
  }
  SECTION("bad input is rejected with a clear message") {
    require_invalid(h.admin.list(h.root, {}, {}, 0), "limit 0 is outside 1..1000");
    require_invalid(h.admin.list(h.root, {}, {}, 1001), "limit 1001");
    require_invalid(h.admin.list(h.root, {.queue = ""}), "queue name must not be empty");
    require_invalid(h.admin.list(h.root, {.kind = ""}), "kind filter must not be empty");
  }
}

TEST_CASE("get shows history, children, percent done, running time and lease age", "[admin][get]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);

  SECTION("a running parent with progress, item errors and children") {
    JobId parent = h.add({.kind = "import", .owner = "alice", .description = "Import users.csv"});
    Job run = h.claim_one("default", 60s);
    REQUIRE(run.id == parent);
    h.clock->advance(2s);
    REQUIRE(h.store->report_progress(run.lease_ref(), {.done = 25, .total = 100, .message = "rows"}).has_value());
    std::vector<ItemError> bad{{"row 3", "no e-mail"}, {"row 9", "bad date"}};
    REQUIRE(h.store->add_item_errors(run.lease_ref(), bad).has_value());
    std::vector<NewJob> kids{{.kind = "welcome", .owner = "alice"}, {.kind = "welcome", .owner = "alice"}};
    auto spawned = h.store->spawn(run.lease_ref(), kids);
    REQUIRE(spawned.has_value());
    h.clock->advance(3s);

    auto d = h.admin.get(h.alice, parent);
    REQUIRE(d.has_value());
    CHECK(d->job.state == JobState::running);
    CHECK(d->job.description == "Import users.csv");
    REQUIRE(d->percent.has_value());
    CHECK(*d->percent == Approx(25.0));
    CHECK(d->job.progress.message == "rows");
    CHECK(d->job.item_error_count == 2);
    REQUIRE(d->job.item_errors.size() == 2);
    CHECK(d->job.item_errors[1].item == "row 9");
    REQUIRE(d->running_for.has_value());
    CHECK(*d->running_for == Duration(5s));
    REQUIRE(d->lease_age.has_value());
    CHECK(*d->lease_age == Duration(5s));
    REQUIRE(d->children.size() == 2);
    CHECK(d->children[0].id > d->children[1].id);  // newest first
    for (const auto& c : d->children) CHECK(c.parent_id == parent);

    // A heartbeat extends the lease but the lease is still the one taken at the claim.
    REQUIRE(h.store->heartbeat(std::vector<LeaseRef>{run.lease_ref()}, 60s).has_value());
    h.clock->advance(1s);
    auto later = h.admin.get(h.root, parent);
    REQUIRE(later.has_value());
    CHECK(*later->lease_age == Duration(6s));
  }
  SECTION("a failed job keeps every attempt's error and its last run time") {
    JobId id = h.add({.kind = "charge", .max_attempts = 3, .owner = "alice"});
    Job first = h.claim_one("default");
    h.clock->advance(4s);
    h.finish(first, OutcomeKind::retry, "card processor timed out");
    Job second = h.claim_one("default");
    REQUIRE(second.id == id);
    h.clock->advance(1500ms);
    h.finish(second, OutcomeKind::fail, "card declined");

    auto d = h.admin.get(h.alice, id);
    REQUIRE(d.has_value());
    CHECK(d->job.state == JobState::failed);
    REQUIRE(d->job.errors.size() == 2);
    CHECK(d->job.errors[0].message == "card processor timed out");
    CHECK_FALSE(d->job.errors[0].permanent);
    CHECK(d->job.errors[1].message == "card declined");
    CHECK(d->job.errors[1].permanent);
    CHECK(d->job.errors[1].attempt == 2);
    REQUIRE(d->running_for.has_value());
    CHECK(*d->running_for == Duration(1500ms));  // the last run only
    CHECK_FALSE(d->lease_age.has_value());
    CHECK_FALSE(d->percent.has_value());  // no progress reported
  }
  SECTION("a pending job has no run time") {
    JobId id = h.add({.kind = "noop"});
    auto d = h.admin.get(h.root, id);
    REQUIRE(d.has_value());
    CHECK_FALSE(d->running_for.has_value());
    CHECK_FALSE(d->lease_age.has_value());
    CHECK(d->children.empty());
  }
}

TEST_CASE("expire_stuck and clear_stale_locks rescue jobs by the manual clock", "[admin][leases]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId crashed = h.add({.kind = "work", .max_attempts = 3});
  JobId slow = h.add({.kind = "work", .max_attempts = 3});
  Job crashed_run = h.claim_one("default", 10s);
  REQUIRE(crashed_run.id == crashed);
  h.clock->advance(5s);
  Job slow_run = h.claim_one("default", 60s);
  REQUIRE(slow_run.id == slow);
  h.clock->advance(20s);  // crashed: lease expired 15 s ago; slow: running 20 s, lease valid

  auto before = h.admin.metrics(h.root);
  REQUIRE(before.has_value());
  CHECK(before->expired_leases == 1);
  REQUIRE(before->oldest_lease_age.has_value());
  CHECK(*before->oldest_lease_age == Duration(25s));

  require_denied(h.admin.clear_stale_locks(h.alice));
  CHECK(h.state(crashed) == JobState::running);
  auto cleared = h.admin.clear_stale_locks(h.root);
  REQUIRE(cleared.has_value());
  CHECK(*cleared == std::vector<JobId>{crashed});
  CHECK(h.state(crashed) == JobState::pending);
  CHECK(h.state(slow) == JobState::running);
  CHECK(h.store->get(crashed)->errors.size() == 1);

  require_invalid(h.admin.expire_stuck(h.root, -1s), "must not be negative");
  auto none = h.admin.expire_stuck(h.root, 30s);
  REQUIRE(none.has_value());
  CHECK(none->empty());
  CHECK(h.state(slow) == JobState::running);

  h.clock->advance(15s);  // slow has now run 35 s, its lease still valid
  auto expired = h.admin.expire_stuck(h.root, 30s);
  REQUIRE(expired.has_value());
  CHECK(*expired == std::vector<JobId>{slow});
  CHECK(h.state(slow) == JobState::pending);
  // The stuck worker's lease is gone: its late outcome changes nothing.
  std::vector<Outcome> late{{.lease = slow_run.lease_ref(), .kind = OutcomeKind::complete}};
  auto results = h.store->finish(late);
  REQUIRE(results.has_value());
  REQUIRE(results->size() == 1);
  CHECK((*results)[0].status.error().code() == ErrorCode::stale_lease);
  CHECK(h.state(slow) == JobState::pending);
}

TEST_CASE("retry and discard of final jobs", "[admin][retry]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId id = h.add({.kind = "sync", .max_attempts = 1, .owner = "alice"});
  Job run = h.claim_one("default");
  h.finish(run, OutcomeKind::retry, "upstream 503");
  REQUIRE(h.state(id) == JobState::failed);  // its only attempt is used

  REQUIRE(h.admin.retry(h.alice, id).has_value());
  auto again = h.store->get(id);
  REQUIRE(again.has_value());
  CHECK(again->state == JobState::pending);
  CHECK(again->errors.size() == 1);  // history kept
  Job rerun = h.claim_one("default");
  REQUIRE(rerun.id == id);
  h.finish(rerun, OutcomeKind::complete);
  CHECK(h.state(id) == JobState::completed);

  // A completed job cannot be retried; a pending one cannot be discarded.
  auto retry_done = h.admin.retry(h.root, id);
  REQUIRE_FALSE(retry_done.has_value());
  CHECK(retry_done.error().code() == ErrorCode::wrong_state);
  JobId pending = h.add({.kind = "sync", .owner = "alice"});
  auto discard_pending = h.admin.discard(h.alice, pending);
  REQUIRE_FALSE(discard_pending.has_value());
  CHECK(discard_pending.error().code() == ErrorCode::wrong_state);
  CHECK(h.state(pending) == JobState::pending);

  REQUIRE(h.admin.discard(h.alice, id).has_value());
  auto gone = h.admin.get(h.root, id);
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().code() == ErrorCode::not_found);
}

TEST_CASE("pausing a queue stops claims until it is resumed", "[admin][pause]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId id = h.add({.kind = "send", .queue = "mail"});
  h.add({.kind = "other", .queue = "default"});

  require_denied(h.admin.pause_queue(h.alice, "mail"));
  require_invalid(h.admin.pause_queue(h.root, ""), "queue name must not be empty");
  REQUIRE(h.admin.pause_queue(h.root, "mail").has_value());
  CHECK(h.claim("mail").empty());
  CHECK(h.claim("default").size() == 1);  // other queues keep working
  auto stats = h.admin.metrics(h.root);
  REQUIRE(stats.has_value());
  const QueueInfo* mail = find_queue(*stats, "mail");
  REQUIRE(mail != nullptr);
  CHECK(mail->paused);
  CHECK(mail->pending == 1);

  require_denied(h.admin.resume_queue(h.alice, "mail"));
  CHECK(h.claim("mail").empty());
  REQUIRE(h.admin.resume_queue(h.root, "mail").has_value());
  auto claimed = h.claim("mail");
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].id == id);
}

TEST_CASE("prune deletes final jobs older than the retention period", "[admin][prune]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId old_job = h.add({.kind = "a"});
  h.finish(h.claim_one("default"), OutcomeKind::complete);
  h.clock->advance(2h);
  JobId recent = h.add({.kind = "a"});
  h.finish(h.claim_one("default"), OutcomeKind::complete);
  JobId open = h.add({.kind = "a"});
  h.clock->advance(1h);  // old: finished 3 h ago; recent: 1 h ago; open: still pending

  require_denied(h.admin.prune(h.alice, 2h));
  require_invalid(h.admin.prune(h.root, -1h), "retention must not be negative");
  CHECK(h.store->get(old_job).has_value());

  auto pruned = h.admin.prune(h.root, 2h);
  REQUIRE(pruned.has_value());
  CHECK(*pruned == 1);
  CHECK(h.store->get(old_job).error().code() == ErrorCode::not_found);
  CHECK(h.store->get(recent).has_value());
  CHECK(h.store->get(open).has_value());

  auto all = h.admin.prune(h.root, 0s);
  REQUIRE(all.has_value());
  CHECK(*all == 1);  // recent; the pending job is never pruned
  CHECK(h.state(open) == JobState::pending);
}

TEST_CASE("metrics: queue depth per state, run-time percentiles, failure rate, retries", "[admin][metrics]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);

  // Queue "q": one job in each state.
  JobId blocker = h.add({.kind = "x", .queue = "q", .priority = -10});
  h.add({.kind = "x", .queue = "q", .depends_on = {blocker}});  // waiting
  JobId to_complete = h.add({.kind = "x", .queue = "q", .priority = -9});
  JobId to_fail = h.add({.kind = "x", .queue = "q", .priority = -8});
  JobId to_cancel = h.add({.kind = "x", .queue = "q", .priority = -7});
  h.add({.kind = "x", .queue = "q", .delay = Duration(1h)});  // scheduled
  h.add({.kind = "x", .queue = "q"});                         // pending
  Job b = h.claim_one("q");
  REQUIRE(b.id == blocker);  // stays running
  Job c = h.claim_one("q");
  REQUIRE(c.id == to_complete);
  h.finish(c, OutcomeKind::complete);
  Job f = h.claim_one("q");
  REQUIRE(f.id == to_fail);
  h.finish(f, OutcomeKind::fail, "bad input");
  REQUIRE(h.store->cancel(to_cancel, "test").has_value());

  // Kind "resize" in queue "img": 100 jobs whose run times are 1 s .. 100 s.
  for (int i = 0; i < 100; ++i) h.add({.kind = "resize", .queue = "img"});
  auto batch = h.claim("img", 100);
  REQUIRE(batch.size() == 100);
  for (const auto& j : batch) {
    h.clock->advance(1s);
    h.finish(j, OutcomeKind::complete);
  }

  // Kind "charge" in queue "pay": 3 completed (one after two retries), 1 failed.
  JobId flaky = h.add({.kind = "charge", .queue = "pay", .priority = -1, .max_attempts = 5});
  for (int i = 0; i < 2; ++i) {
    Job j = h.claim_one("pay");
    REQUIRE(j.id == flaky);
    h.finish(j, OutcomeKind::retry, "timeout");
  }
  h.finish(h.claim_one("pay"), OutcomeKind::complete);
  for (int i = 0; i < 2; ++i) {
    h.add({.kind = "charge", .queue = "pay"});
    h.finish(h.claim_one("pay"), OutcomeKind::complete);
  }
  h.add({.kind = "charge", .queue = "pay"});
  h.finish(h.claim_one("pay"), OutcomeKind::fail, "declined");

  h.clock->advance(1s);
  auto stats = h.admin.metrics(h.root, std::chrono::minutes(10));
  REQUIRE(stats.has_value());
  CHECK(stats->at == h.clock->now());

  const QueueInfo* q = find_queue(*stats, "q");
  REQUIRE(q != nullptr);
  CHECK_FALSE(q->paused);
  CHECK(q->pending == 1);
  CHECK(q->scheduled == 1);
  CHECK(q->running == 1);
  CHECK(q->waiting == 1);
  CHECK(q->completed == 1);
  CHECK(q->failed == 1);
  CHECK(q->cancelled == 1);

  const KindStats* resize = find_kind(*stats, "resize");
  REQUIRE(resize != nullptr);
  CHECK(resize->completed == 100);
  CHECK(resize->failed == 0);
  CHECK(resize->failure_rate == 0.0);
  // Percentile definitions differ by one rank between stores; allow that.
  auto near = [](Duration got, Duration want) { return got >= want - Duration(1s) && got <= want + Duration(1s); };
  CHECK(near(resize->p50, 50s));
  CHECK(near(resize->p95, 95s));
  CHECK(near(resize->p99, 99s));

  const KindStats* charge = find_kind(*stats, "charge");
  REQUIRE(charge != nullptr);
  CHECK(charge->completed == 3);
  CHECK(charge->failed == 1);
  CHECK(charge->retried == 2);
  CHECK(charge->failure_rate == Approx(0.25));

  // The blocker has held its lease since it was claimed, 101 s ago.
  REQUIRE(stats->oldest_lease_age.has_value());
  CHECK(*stats->oldest_lease_age == Duration(101s));
  CHECK(stats->expired_leases == 1);  // its 30 s lease ran out long ago

  require_invalid(h.admin.metrics(h.root, 0s), "window must be positive");
}

TEST_CASE("system-wide operations are for administrators only", "[admin][access]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId id = h.add({.kind = "x", .owner = "alice"});
  // Even the owner of every job may not run them.
  auto stuck = h.admin.expire_stuck(h.alice, 0s);
  require_denied(stuck);
  CHECK_THAT(stuck.error().message(), Catch::Contains("expire_stuck is for administrators only"));
  require_denied(h.admin.clear_stale_locks(h.alice));
  require_denied(h.admin.pause_queue(h.alice, "default"));
  require_denied(h.admin.resume_queue(h.alice, "default"));
  require_denied(h.admin.prune(h.alice, 0s));
  require_denied(h.admin.metrics(h.alice));
  // Nothing changed: the queue is not paused, the job is claimable.
  auto claimed = h.claim("default");
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].id == id);
}

TEST_CASE("notify_when_finished enqueues a durable notification that runs however the job ends", "[admin][notify]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId id = h.add({.kind = "import", .max_attempts = 1, .owner = "alice"});

  // Only the owner (or an administrator) may watch it; bad requests change nothing.
  require_denied(h.admin.notify_when_finished(h.bob, id, {.kind = "email"}));
  auto with_deps = h.admin.notify_when_finished(h.alice, id, {.kind = "email", .depends_on = {id}});
  REQUIRE_FALSE(with_deps.has_value());
  CHECK(with_deps.error().code() == ErrorCode::invalid_argument);
  require_denied(h.admin.notify_when_finished(h.alice, id, {.kind = "email", .owner = "bob"}));
  auto bad_kind = h.admin.notify_when_finished(h.alice, id, {.kind = ""});
  REQUIRE_FALSE(bad_kind.has_value());
  CHECK(bad_kind.error().code() == ErrorCode::invalid_argument);

  auto note = h.admin.notify_when_finished(h.alice, id, {.kind = "email", .queue = "notifications"});
  REQUIRE(note.has_value());
  CHECK_FALSE(note->duplicate);
  // Asking twice gives the same notification.
  auto again = h.admin.notify_when_finished(h.alice, id, {.kind = "email", .queue = "notifications"});
  REQUIRE(again.has_value());
  CHECK(again->duplicate);
  CHECK(again->id == note->id);

  auto waiting = h.store->get(note->id);
  REQUIRE(waiting.has_value());
  CHECK(waiting->state == JobState::waiting);
  CHECK(waiting->owner == "alice");
  CHECK(waiting->depends_on == std::vector<JobId>{id});
  CHECK(h.claim("notifications").empty());

  h.finish(h.claim_one("default"), OutcomeKind::fail, "bad csv");
  REQUIRE(h.state(id) == JobState::failed);
  Job run = h.claim_one("notifications");
  CHECK(run.id == note->id);
  CHECK(run.kind == "email");

  // Watching a job that is already final notifies at once.
  auto late = h.admin.notify_when_finished(h.root, id, {.kind = "chat"});
  REQUIRE(late.has_value());
  CHECK(h.state(late->id) == JobState::pending);
  CHECK(h.store->get(late->id)->owner == "admin");
}
