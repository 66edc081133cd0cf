// Every Store implementation the conformance suite runs against. A test
// iterates over all_store_factories() and runs the same case on each, so a new
// backend is done when it passes the suite unchanged: register it in
// store_factories.cpp and nothing else.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "porter/clock.h"
#include "porter/store.h"

namespace porter::test {

struct StoreFactory {
  std::string name;  // shown in failure messages ("memory", "sqlite", ...)
  // A fresh, empty store reading time from `clock`.
  std::function<std::shared_ptr<Store>(std::shared_ptr<ManualClock> clock)> make;
};

const std::vector<StoreFactory>& all_store_factories();

}  // namespace porter::test
