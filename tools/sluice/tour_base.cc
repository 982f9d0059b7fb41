#include <ostream>

#include "sluice/base/hash.h"
#include "sluice/base/random.h"
#include "sluice/base/units.h"
#include "tools/sluice/tour.h"

namespace {

void tour_base(std::ostream& out) {
  using sluice::base::format_bytes;
  using sluice::base::format_duration;
  const auto ttl = sluice::base::parse_duration("1m30s").value();
  const auto size = sluice::base::parse_size("64MiB").value();
  out << "parsed \"1m30s\" -> " << format_duration(ttl) << ", \"64MiB\" -> " << size << " bytes ("
      << format_bytes(size) << ")\n";
  sluice::base::Xoshiro256 rng(1);
  out << "hash(\"/v1/chat/completions\") = 0x" << std::hex
      << sluice::base::hash_string("/v1/chat/completions") << std::dec
      << ", seeded xoshiro256++ draws uniform(1,6): " << rng.uniform(1, 6) << " "
      << rng.uniform(1, 6) << " " << rng.uniform(1, 6) << "\n";
}

SLUICE_TOUR_STEP(0, "base", tour_base);

}  // namespace
