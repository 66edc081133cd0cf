// Helpers shared by the SQLite tests: throwaway directories and files, raw
// SQL through the plain SQLite API (to build foreign or altered files), and
// another connection holding the write lock, as another process would.
#pragma once

#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <cstdint>
#include <sstream>
#include <string>

namespace porter::test {

// A fresh directory per test, removed at the end.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "porter-sqlite-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// One database path in a fresh directory.
struct TempFile {
  TempDir dir;
  std::string path = dir.file("jobs.db");
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs SQL on a file with the plain SQLite API.
inline void raw_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  INFO(msg);
  REQUIRE(rc == SQLITE_OK);
}

// Another process's connection holding the write lock (BEGIN IMMEDIATE)
// until release() or destruction.
struct WriteLockHolder {
  sqlite3* db = nullptr;
  explicit WriteLockHolder(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  void release() {
    if (!db) return;
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    db = nullptr;
  }
  ~WriteLockHolder() { release(); }
  WriteLockHolder(const WriteLockHolder&) = delete;
  WriteLockHolder& operator=(const WriteLockHolder&) = delete;
};

// Commits in the database's WAL (frames of the current WAL generation that
// end a transaction): how many write transactions this process's store made
// since the WAL last restarted (no checkpoint restarts a small test's WAL).
inline int wal_commits(const std::string& db_path) {
  std::string wal = read_bytes(db_path + "-wal");
  if (wal.size() < 32) return 0;
  auto be32 = [&](std::size_t o) {
    return (std::uint32_t{static_cast<unsigned char>(wal[o])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(wal[o + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(wal[o + 2])} << 8) | static_cast<unsigned char>(wal[o + 3]);
  };
  const std::size_t page = be32(8);
  const std::uint32_t salt1 = be32(16), salt2 = be32(20);
  int commits = 0;
  for (std::size_t at = 32; at + 24 + page <= wal.size(); at += 24 + page) {
    if (be32(at + 8) != salt1 || be32(at + 12) != salt2) break;  // an older generation's frames
    if (be32(at + 4) != 0) ++commits;
  }
  return commits;
}

}  // namespace porter::test
