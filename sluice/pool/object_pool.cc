#include "sluice/pool/object_pool.h"

#include <string>

namespace sluice::pool {
namespace {

class PoolCategory final : public boost::system::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sluice.pool"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<PoolErrc>(ev)) {
      case PoolErrc::exhausted:
        return "pool exhausted: max_total objects are alive";
    }
    return "unknown sluice.pool error " + std::to_string(ev);
  }
};

}  // namespace

const boost::system::error_category& pool_category() noexcept {
  static const PoolCategory category;
  return category;
}

}  // namespace sluice::pool
