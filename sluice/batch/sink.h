// `Sink<T>`: where a `Batcher<T>` hands its batches. An interface because there are several
// implementations (SQLite in sluice/store, PostgreSQL later, test doubles).
//
// Thread-safety: a `Batcher` calls `write` from its one flusher thread (or from the thread
// that calls `pump()` in manual mode), never concurrently with itself; an implementation that
// is also used elsewhere (queries) must guard its own state.
// Cost/ordering: batches arrive in the order their items were added; `write` may block (disk,
// network): it never runs on an event loop.
#pragma once

#include <boost/system/error_code.hpp>
#include <span>

namespace sluice::batch {

template <class T>
class Sink {
 public:
  virtual ~Sink() = default;
  // Writes every item of `items`, all or nothing (one transaction). Returns a failure code
  // when nothing was written; the batcher then retries the same batch with backoff and
  // finally spills it. Must not keep `items` beyond the call.
  [[nodiscard]] virtual boost::system::error_code write(std::span<const T> items) = 0;
};

}  // namespace sluice::batch
