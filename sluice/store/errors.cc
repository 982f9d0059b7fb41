#include "sluice/store/errors.h"

#include <sqlite3.h>

#include <stdexcept>

namespace sluice::store {
namespace {

class StoreCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.store"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::not_sluice_database:
        return "not a sluice access-log database";
      case Errc::newer_schema:
        return "database schema is newer than this sluice supports";
      case Errc::cannot_open:
        return "cannot open database";
      case Errc::wal_unavailable:
        return "cannot switch the database to WAL mode";
      case Errc::migration_failed:
        return "schema migration failed";
    }
    return "unknown sluice.store error " + std::to_string(value);
  }
};

class SqliteCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int value) const override { return sqlite3_errstr(value); }
};

}  // namespace

const boost::system::error_category& store_category() noexcept {
  static const StoreCategory category;
  return category;
}

const boost::system::error_category& sqlite_category() noexcept {
  static const SqliteCategory category;
  return category;
}

void throw_exception_from_error(const OpenError& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

}  // namespace sluice::store
