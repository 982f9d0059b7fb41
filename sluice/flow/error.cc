#include "sluice/flow/error.h"

#include <string>

namespace sluice::flow {
namespace {

class FlowCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.flow"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::end_of_stream:
        return "end of stream";
      case Errc::stream_closed:
        return "stream closed by the producer";
      case Errc::stream_cancelled:
        return "stream cancelled";
      case Errc::stream_overflow:
        return "stream buffer overflow (policy fail)";
      case Errc::chunk_too_large:
        return "chunk larger than the stream's byte bound";
      case Errc::too_many_waiters:
        return "too many waiters on the semaphore";
      case Errc::semaphore_closed:
        return "semaphore closed";
      case Errc::over_limit:
        return "concurrency limit reached";
      case Errc::would_block:
        return "would block: no room for the chunk (offer), or nothing buffered (try_pop)";
    }
    return "unknown sluice.flow error";
  }
};

}  // namespace

const boost::system::error_category& flow_category() noexcept {
  static const FlowCategory category;
  return category;
}

}  // namespace sluice::flow
