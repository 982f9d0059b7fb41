#include "sluice/coalesce/error.h"

#include <string>

namespace sluice::coalesce {
namespace {

class CoalesceCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.coalesce"; }
  std::string message(int ev) const override {
    switch (static_cast<CoalesceError>(ev)) {
      case CoalesceError::too_many_in_flight:
        return "too many distinct keys in flight (max_in_flight reached)";
      case CoalesceError::cancelled:
        return "the wait for a coalesced result was cancelled";
      case CoalesceError::timeout:
        return "the wait for a coalesced result timed out";
    }
    return "unknown sluice.coalesce error " + std::to_string(ev);
  }
};

}  // namespace

const boost::system::error_category& coalesce_category() noexcept {
  static const CoalesceCategory category;
  return category;
}

}  // namespace sluice::coalesce
