#include "sluice/batch/errors.h"

#include <string>

namespace sluice::batch {
namespace {

class BatchCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.batch"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::sink_threw:
        return "log sink threw an exception";
      case Errc::spill_threw:
        return "spill callback threw an exception";
      case Errc::batch_function_threw:
        return "batch function threw an exception";
      case Errc::wrong_result_count:
        return "batch function returned a number of results different from the number of "
               "requests";
      case Errc::stopped:
        return "batcher is stopped";
      case Errc::timed_out:
        return "timed out waiting for the batched result";
      case Errc::overloaded:
        return "too many pending calls (queue full)";
    }
    return "unknown sluice.batch error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& batch_category() noexcept {
  static const BatchCategory category;
  return category;
}

}  // namespace sluice::batch
