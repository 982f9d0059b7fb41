// Response compression throughput: one-shot `compress` of a 16 KiB JSON-like body with gzip and
// zstd at several levels, `decompress` of it, and a `StreamCompressor` flushing after every
// 200-byte event (server-sent events). Baselines in the same binary: copying the body (what
// identity costs) and the raw library calls (zlib `compress2`-style gzip, `ZSTD_compress`), so
// the wrapper's own cost shows. `ratio` is coded bytes / input bytes.
//
// clang-format off
//   build/comp/sluice/http/sluice_compression_benchmark --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// clang-format on
//
// Sample (CPU-time medians of 5, 2 shared cores, load average 4 to 5, so +-30% run to run):
//   16 KiB JSON     gzip 5: 69 us, 225 MB/s, ratio 0.199 (raw zlib: the same)
//                   gzip 1: 39 us, ratio 0.248; gzip 6: 83 us, 0.195; gzip 9: 156 us, 0.189
//                   zstd 3: 31 us, 500 MB/s, ratio 0.205 (raw ZSTD_compress: 30 us)
//                   zstd 1: 31 us, ratio 0.214; zstd 6: 86 us, 0.178
//                   copy (identity baseline): 0.13 us
//   decompress      gzip: 22 us (710 MB/s); zstd: 18 us (875 MB/s)
//   200 B events    gzip: 6.3 us each, ratio 0.275, 262 KiB per stream
//   flushed         zstd: 2.1 us each, ratio 0.349, 713 KiB per stream; identity: 10 ns
//   stream setup    construct + one event + finish: gzip 8 us, zstd 11 us
#include <benchmark/benchmark.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/random.h"
#include "sluice/http/compression.h"

namespace {

using sluice::http::Coding;
using sluice::http::Flush;
using sluice::http::StreamCompressor;

// A JSON API response: an array of records with repeated keys and varying values.
std::string json_body(size_t n, uint64_t seed = 42) {
  sluice::base::Xoshiro256 rng(seed);
  static constexpr std::array<std::string_view, 8> kWords = {
      "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"};
  std::string s = "[";
  while (s.size() < n) {
    s += R"({"id":)" + std::to_string(rng.uniform(0, 9'999'999)) + R"(,"user":"user-)" +
         std::to_string(rng.uniform(0, 99'999)) + R"(","name":")" +
         std::string(kWords[rng.uniform(0, 7)]) + " " + std::string(kWords[rng.uniform(0, 7)]) +
         R"(","price":)" + std::to_string(rng.uniform(0, 99'999)) + "." +
         std::to_string(rng.uniform(10, 99)) + R"(,"tags":[")" +
         std::string(kWords[rng.uniform(0, 7)]) + R"("],"active":)" +
         (rng.uniform(0, 1) ? "true" : "false") + "},";
  }
  s.resize(n - 1);
  s += "]";
  return s;
}

const std::string& body16k() {
  static const std::string body = json_body(16 * 1024);
  return body;
}

// 200-byte SSE events: "data: {...}\n\n" cut from a longer JSON body.
const std::vector<std::string>& events() {
  static const std::vector<std::string> all = [] {
    const std::string source = json_body(200 * 1024, 7);
    std::vector<std::string> v;
    for (size_t at = 0; at + 186 <= source.size(); at += 186) {
      v.push_back("data: " + source.substr(at, 186) + "\n\n");  // 6 + 186 + 2 = 194 bytes
      v.back().resize(200, ' ');
    }
    return v;
  }();
  return all;
}

Coding coding_arg(const benchmark::State& state) { return static_cast<Coding>(state.range(0)); }

void set_label(benchmark::State& state, Coding coding, int level) {
  state.SetLabel(std::string(sluice::http::to_string(coding)) + " level " +
                 std::to_string(level == 0 ? sluice::http::default_level(coding) : level));
}

void BM_Baseline_CopyBody(benchmark::State& state) {
  const std::string& body = body16k();
  for (auto _ : state) {
    std::string copy(body);
    benchmark::DoNotOptimize(copy.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_Baseline_CopyBody);

void BM_Compress(benchmark::State& state) {
  const Coding coding = coding_arg(state);
  const int level = static_cast<int>(state.range(1));
  const std::string& body = body16k();
  size_t coded = 0;
  for (auto _ : state) {
    auto r = sluice::http::compress(coding, body, level);
    coded = r->size();
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["ratio"] = static_cast<double>(coded) / static_cast<double>(body.size());
  set_label(state, coding, level);
}
BENCHMARK(BM_Compress)
    ->Args({static_cast<int>(Coding::gzip), 0})
    ->Args({static_cast<int>(Coding::zstd), 0})
    ->Args({static_cast<int>(Coding::gzip), 1})
    ->Args({static_cast<int>(Coding::gzip), 6})
    ->Args({static_cast<int>(Coding::gzip), 9})
    ->Args({static_cast<int>(Coding::zstd), 1})
    ->Args({static_cast<int>(Coding::zstd), 6});

// zlib directly: deflateInit2 with the library's defaults (32 KiB window, memLevel 8), gzip
// wrapper, level 5: what `compress` does without sizing the window to the body.
void BM_Baseline_RawZlibGzip(benchmark::State& state) {
  const std::string& body = body16k();
  std::string out(compressBound(body.size()) + 32, '\0');
  size_t coded = 0;
  for (auto _ : state) {
    z_stream z{};
    deflateInit2(&z, 5, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
    z.avail_in = static_cast<uInt>(body.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    coded = z.total_out;
    deflateEnd(&z);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["ratio"] = static_cast<double>(coded) / static_cast<double>(body.size());
}
BENCHMARK(BM_Baseline_RawZlibGzip);

void BM_Baseline_RawZstdCompress(benchmark::State& state) {
  const std::string& body = body16k();
  std::string out(ZSTD_compressBound(body.size()), '\0');
  size_t coded = 0;
  for (auto _ : state) {
    coded = ZSTD_compress(out.data(), out.size(), body.data(), body.size(), 3);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["ratio"] = static_cast<double>(coded) / static_cast<double>(body.size());
}
BENCHMARK(BM_Baseline_RawZstdCompress);

// Serving identity from a stored compressed body.
void BM_Decompress(benchmark::State& state) {
  const Coding coding = coding_arg(state);
  const std::string& body = body16k();
  const std::string coded = *sluice::http::compress(coding, body);
  for (auto _ : state) {
    auto r = sluice::http::decompress(coding, coded, 1 << 20);
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  set_label(state, coding, 0);
}
BENCHMARK(BM_Decompress)->Arg(static_cast<int>(Coding::gzip))->Arg(static_cast<int>(Coding::zstd));

// One long event stream: each iteration compresses one 200-byte event and flushes it.
void BM_Stream_FlushPerEvent(benchmark::State& state) {
  const Coding coding = coding_arg(state);
  const auto& evs = events();
  StreamCompressor c(coding);
  std::string out;
  size_t i = 0;
  for (auto _ : state) {
    out.clear();
    if (c.write(evs[i], Flush::sync, out)) state.SkipWithError("write failed");
    benchmark::DoNotOptimize(out.data());
    i = i + 1 == evs.size() ? 0 : i + 1;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 200));
  state.counters["ratio"] =
      static_cast<double>(c.bytes_out()) / static_cast<double>(std::max<uint64_t>(c.bytes_in(), 1));
  state.counters["memory_bytes"] = static_cast<double>(c.memory_bytes());
  set_label(state, coding, 0);
}
BENCHMARK(BM_Stream_FlushPerEvent)
    ->Arg(static_cast<int>(Coding::identity))
    ->Arg(static_cast<int>(Coding::gzip))
    ->Arg(static_cast<int>(Coding::zstd));

// The fixed cost of one compressed stream: construct, one small event, finish.
void BM_Stream_Lifetime(benchmark::State& state) {
  const Coding coding = coding_arg(state);
  const std::string& event = events().front();
  std::string out;
  for (auto _ : state) {
    StreamCompressor c(coding);
    out.clear();
    if (c.write(event, Flush::sync, out) || c.finish(out)) state.SkipWithError("stream failed");
    benchmark::DoNotOptimize(out.data());
  }
  set_label(state, coding, 0);
}
BENCHMARK(BM_Stream_Lifetime)
    ->Arg(static_cast<int>(Coding::gzip))
    ->Arg(static_cast<int>(Coding::zstd));

}  // namespace
