// Schema creation and migration for the PostgreSQL store. Porter's tables
// live in their own PostgreSQL schema (PostgresOptions::schema), versioned in
// its `meta` table. Opening checks first and writes only when the schema is
// missing or older: migrations run in one transaction under an advisory
// lock, so several processes opening at once migrate once.
#pragma once

#include <string>

#include "porter/status.h"
#include "stores/postgres/pg_conn.h"

namespace porter::detail {

inline constexpr int kPgSchemaVersion = 2;
// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)).
inline constexpr int kPgMigrationLock = 0x504f5254;  // "PORT": (class, hashtext(schema))
inline constexpr int kPgUniqueLock = 0x504f5255;     // (class, hash of schema, kind, unique key)

// Schema names Porter accepts: [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes.
Status check_schema_name(const std::string& schema);

// Creates or migrates `schema` on `conn` (which must be idle). Errors:
// corruption when the schema holds tables that are not Porter's;
// unsupported when it is newer than this Porter. Nothing changed on error.
Status open_schema(Conn& conn, const std::string& schema);

// The schema's version, 0 when it does not exist; errors as open_schema.
Result<int> schema_version(Conn& conn, const std::string& schema);

}  // namespace porter::detail
