// The handler's side of a run: RunContext (the JobContext a handler gets),
// the call itself, and how a failure becomes an outcome.
#pragma once

#include <memory>
#include <string>

#include "engine/run.h"
#include "porter/engine.h"

namespace porter::detail {

struct EngineGate;
struct KindEntry;

// Calls the handler and turns what it did into an outcome, timing the call
// itself (Outcome::ran_for). Touches nothing of the engine but what it
// shares (`gate`, `store`, `run`, `entry`): stop() may abandon this thread.
Outcome run_handler(const KindEntry& entry, Run& run, Store& store, const std::shared_ptr<EngineGate>& gate);

// A transient failure: retried after the policy's delay (or failed by the
// store when the attempts are used up). A custom policy is user code: if it
// throws, there is no delay to retry after, so the job fails with both
// messages instead of the process ending.
Outcome transient_outcome(const Job& job, const RetryPolicy& policy, std::string message);

// "5s", "250ms", "7us": how a timeout reads in an error message.
std::string describe(Duration d);

}  // namespace porter::detail
