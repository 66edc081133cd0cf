// The stores under test. Each entry makes a fresh, empty store on a manual
// clock; backends that need a database create a throwaway one per store.
#include "support/store_factories.h"

namespace porter::test {

const std::vector<StoreFactory>& all_store_factories() {
  static const std::vector<StoreFactory> factories = {
      {"memory", [](std::shared_ptr<ManualClock> clock) { return make_memory_store(std::move(clock)); }},
  };
  return factories;
}

}  // namespace porter::test
