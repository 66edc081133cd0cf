// The SQLite store's schema and its migration. Porter marks its databases
// with PRAGMA application_id and a porter_meta row, and records the schema
// version in PRAGMA user_version, so a foreign SQLite file or one written by
// a newer Porter is refused before anything in it is touched.
#pragma once

#include <string>

#include "porter/status.h"
#include "stores/sqlite/db.h"

namespace porter::detail {

inline constexpr int kSqliteSchemaVersion = 5;
inline constexpr std::int32_t kPorterApplicationId = 0x504f5254;  // "PORT"

// Job states and enums as stored (small ints; values are part of the file format).
//   state: 0 pending, 1 running, 2 waiting, 3 completed, 4 failed, 5 cancelled (JobState order)

// Checks that the open database is empty or Porter's (and not newer), then
// creates or migrates the schema inside one write transaction. Must run
// before the connection changes anything (journal mode included), so a
// foreign file is left byte-for-byte as it was.
Status check_database(Db& db, const std::string& path);
Status migrate(Db& db);
bool needs_migration(Db& db);

}  // namespace porter::detail
