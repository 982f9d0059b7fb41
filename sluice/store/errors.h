// Errors of sluice/store: the failures of opening a log database, as codes plus a message for
// a person (naming the file), and the SQLite result codes of writes as `error_code`s.
//
// Thread-safety: the categories are process-wide constants, safe from any thread.
// Cost: an `OpenError` owns one string; it is made only when opening fails.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <string>
#include <type_traits>

namespace sluice::store {

enum class Errc {
  // The file exists but is not a sluice database (another application's, or not SQLite).
  not_sluice_database = 1,
  // The database was written by a newer sluice (its schema version is above ours).
  newer_schema,
  // SQLite could not open or create the file (missing directory, permissions, ...).
  cannot_open,
  // The journal could not be switched to WAL.
  wal_unavailable,
  // A schema migration failed (the database is left at its previous version).
  migration_failed,
};

// The category of `Errc`, named "sluice.store".
[[nodiscard]] const boost::system::error_category& store_category() noexcept;
// SQLite (extended) result codes; `message()` is `sqlite3_errstr`. Named "sqlite".
[[nodiscard]] const boost::system::error_category& sqlite_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}
// An `error_code` of `sqlite_category()` from an SQLite result code.
[[nodiscard]] inline boost::system::error_code make_sqlite_error(int rc) noexcept {
  return {rc, sqlite_category()};
}

// Why a database could not be opened: a code to branch on and a full sentence for a person,
// which starts with the file's path ("sluice-data/access.db: not a sluice access-log database
// (application_id=0)").
struct OpenError {
  boost::system::error_code code;
  std::string message;
};

// Lets `boost::system::result<T, OpenError>::value()` throw a `std::runtime_error(message)`.
[[noreturn]] void throw_exception_from_error(const OpenError& e, const boost::source_location& loc);

}  // namespace sluice::store

template <>
struct boost::system::is_error_code_enum<sluice::store::Errc> : std::true_type {};
