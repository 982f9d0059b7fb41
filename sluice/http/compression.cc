#include "sluice/http/compression.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "sluice/base/check.h"
#include "sluice/http/tchar.h"

// zlib's `next_in` is `const` with ZLIB_CONST.
#define ZLIB_CONST
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

namespace sluice::http {
namespace {

using boost::system::error_code;
using boost::system::result;

// ---------------------------------------------------------------------------------------------
// Text helpers (this library does not depend on sluice_http, which depends on it).

constexpr char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? char(c | 0x20) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool iends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// ---------------------------------------------------------------------------------------------
// Accept-Encoding.

// A weight in thousandths (0..1000), or nullopt if malformed. RFC 9110 12.4.2:
// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
std::optional<int> parse_qvalue(std::string_view s) noexcept {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return std::nullopt;
  const bool one = s[0] == '1';
  int value = one ? 1000 : 0;
  if (s.size() == 1) return value;
  if (s[1] != '.' || s.size() > 5) return std::nullopt;
  int scale = 100;
  for (const char c : s.substr(2)) {
    if (c < '0' || c > '9') return std::nullopt;
    if (one && c != '0') return std::nullopt;
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value;
}

// What an Accept-Encoding value says about the codings sluice knows. Weights are in thousandths;
// -1 = not listed.
struct AcceptedCodings {
  int identity = -1;
  int gzip = -1;
  int zstd = -1;
  int star = -1;

  int* slot(std::string_view name) noexcept {
    if (iequals(name, "gzip") || iequals(name, "x-gzip")) return &gzip;
    if (iequals(name, "zstd")) return &zstd;
    if (iequals(name, "identity")) return &identity;
    if (name == "*") return &star;
    return nullptr;
  }

  // The weight of `coding`, doubled so that an unnamed identity can rank below every named
  // coding: 0 = refused, 1 = identity by default, 2..2000 = q 0.001..1.
  [[nodiscard]] int rank(Coding coding) const noexcept {
    int listed = -1;
    switch (coding) {
      case Coding::identity:
        listed = identity;
        break;
      case Coding::gzip:
        listed = gzip;
        break;
      case Coding::zstd:
        listed = zstd;
        break;
    }
    if (listed < 0) listed = star;
    if (listed >= 0) return 2 * listed;
    return coding == Coding::identity ? 1 : 0;
  }
};

AcceptedCodings parse_accept_encoding(std::string_view value) noexcept {
  AcceptedCodings accepted;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view element = value.substr(0, comma);
    value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);

    const size_t semi = element.find(';');
    const std::string_view name = trim_ows(element.substr(0, semi));
    if (!is_token(name)) continue;  // empty element or garbage
    int weight = 1000;
    bool valid = true;
    if (semi != std::string_view::npos) {
      std::string_view params = element.substr(semi + 1);
      while (valid) {
        const size_t next = params.find(';');
        const std::string_view param = trim_ows(params.substr(0, next));
        const size_t eq = param.find('=');
        if (eq != std::string_view::npos && iequals(trim_ows(param.substr(0, eq)), "q")) {
          const auto q = parse_qvalue(trim_ows(param.substr(eq + 1)));
          if (q) {
            weight = *q;
          } else {
            valid = false;
          }
        }
        if (next == std::string_view::npos) break;
        params.remove_prefix(next + 1);
      }
    }
    if (!valid) continue;
    if (int* slot = accepted.slot(name)) *slot = std::max(*slot, weight);
  }
  return accepted;
}

// ---------------------------------------------------------------------------------------------
// Levels and windows.

constexpr int kGzipDefaultLevel = 5;
constexpr int kZstdDefaultLevel = 3;
constexpr int kZstdMaxLevel = 19;
constexpr int kGzipMaxWindowLog = 15;
constexpr int kGzipMinWindowLog = 9;
constexpr int kZstdStreamWindowLog = 16;
constexpr int kZstdMinWindowLog = 10;
constexpr int kZstdMaxWindowLog = 20;  // also the cap of one-shot compression
// Stream match tables: window_log - 1 bits, at most 16 (256 KiB each; zstd level 3 itself uses
// 17 and 16 bits for input of unknown size).
constexpr int kZstdMaxTableLog = 16;
// Decoding refuses windows above 8 MiB, the limit of RFC 9659 section 3.
constexpr int kZstdDecodeMaxWindowLog = 23;
// zlib counts in `uInt` (32 bits): larger buffers are fed in slices.
constexpr size_t kZlibMaxSlice = size_t{1} << 30;

int clamp_level(Coding coding, int level) noexcept {
  if (level == kDefaultLevel) return default_level(coding);
  switch (coding) {
    case Coding::gzip:
      return std::clamp(level, 1, 9);
    case Coding::zstd:
      return std::clamp(level, 1, kZstdMaxLevel);
    case Coding::identity:
      break;
  }
  return 0;
}

int gzip_mem_level(int window_log) noexcept { return std::clamp(window_log - 7, 1, 8); }

// Appends room to `out` past `used` bytes: at least `hint`, and at least doubling what this
// call has produced so far (`used - start`), so that a long output costs O(n) copies.
void grow(std::string& out, size_t start, size_t used, size_t hint) {
  const size_t room = std::max({hint, used - start, size_t{64}});
  out.resize(used + room);
}

// ---------------------------------------------------------------------------------------------
// zlib.

// zlib allocator that counts what the stream holds (for `memory_bytes()`). Each block carries
// its size in a max_align_t-sized prefix so that `free` can subtract it.
void* counting_zalloc(void* opaque, uInt items, uInt size) noexcept {
  const size_t n = size_t{items} * size;
  auto* block = static_cast<std::max_align_t*>(std::malloc(n + sizeof(std::max_align_t)));
  if (block == nullptr) return nullptr;
  std::memcpy(block, &n, sizeof n);
  *static_cast<size_t*>(opaque) += n;
  return block + 1;
}

void counting_zfree(void* opaque, void* address) noexcept {
  if (address == nullptr) return;
  auto* block = static_cast<std::max_align_t*>(address) - 1;
  size_t n = 0;
  std::memcpy(&n, block, sizeof n);
  *static_cast<size_t*>(opaque) -= n;
  std::free(block);
}

// Runs `deflate` over `in`, appending the output to `out`. `mode` is applied to the last slice
// of `in` (Z_NO_FLUSH, Z_SYNC_FLUSH or Z_FINISH). On error `out` is restored.
error_code run_deflate(z_stream& z, std::string_view in, int mode, std::string& out) {
  const size_t start = out.size();
  size_t used = start;
  const char* next = in.data();
  size_t left = in.size();
  for (;;) {
    const size_t slice = std::min(left, kZlibMaxSlice);
    z.next_in = reinterpret_cast<const Bytef*>(next);
    z.avail_in = static_cast<uInt>(slice);
    next += slice;
    left -= slice;
    const int flush = left == 0 ? mode : Z_NO_FLUSH;
    int rc = Z_OK;
    for (;;) {
      if (used == out.size()) {
        // deflateBound covers a whole stream of `slice` bytes; +16 for flush markers.
        grow(out, start, used, std::min<size_t>(deflateBound(&z, z.avail_in) + 16, kZlibMaxSlice));
      }
      const size_t room = std::min(out.size() - used, kZlibMaxSlice);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      z.avail_out = static_cast<uInt>(room);
      rc = deflate(&z, flush);
      used += room - z.avail_out;
      if (rc == Z_STREAM_END) break;
      if (rc == Z_BUF_ERROR && z.avail_out != 0) break;  // nothing to do (a repeated flush)
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        out.resize(start);
        return CompressionErrc::codec_failure;
      }
      // Done with this slice once the input is taken and the codec did not fill the output
      // (a full output may mean more is pending; Z_FINISH runs until Z_STREAM_END).
      if (z.avail_in == 0 && z.avail_out != 0 && flush != Z_FINISH) break;
    }
    if (flush == Z_FINISH && rc != Z_STREAM_END) {
      out.resize(start);
      return CompressionErrc::codec_failure;
    }
    if (left == 0) break;
  }
  out.resize(used);
  return {};
}

// One-shot gzip: window and hash table sized to the input, as nginx does.
result<std::string> gzip_compress(std::string_view data, int level) {
  int window_log = kGzipMaxWindowLog;
  // Shrink while the input (plus deflate's 262-byte lookahead) fits in half the window.
  while (window_log > kGzipMinWindowLog && data.size() + 262 <= (size_t{1} << (window_log - 1))) {
    --window_log;
  }
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, window_log + 16, gzip_mem_level(window_log),
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return CompressionErrc::codec_failure;
  }
  std::string out;
  out.reserve(std::min<size_t>(deflateBound(&z, std::min(data.size(), kZlibMaxSlice)) + 16,
                               kZlibMaxSlice));  // one allocation in the usual case
  const error_code ec = run_deflate(z, data, Z_FINISH, out);
  deflateEnd(&z);
  if (ec) return ec;
  return out;
}

result<std::string> gzip_decompress(std::string_view data, size_t max_output) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return CompressionErrc::codec_failure;
  const std::unique_ptr<z_stream, decltype(&inflateEnd)> end(&z, &inflateEnd);

  // The output never grows beyond max_output + 1 bytes: one byte more proves "too large".
  const size_t cap = max_output == SIZE_MAX ? SIZE_MAX : max_output + 1;
  std::string out;
  size_t used = 0;
  const char* next = data.data();
  size_t left = data.size();
  for (;;) {
    if (z.avail_in == 0 && left > 0) {
      const size_t slice = std::min(left, kZlibMaxSlice);
      z.next_in = reinterpret_cast<const Bytef*>(next);
      z.avail_in = static_cast<uInt>(slice);
      next += slice;
      left -= slice;
    }
    if (used == out.size()) {
      out.resize(std::min(cap, std::max({out.size() * 2, data.size() * 4, size_t{1024}})));
    }
    const size_t room = std::min(out.size() - used, kZlibMaxSlice);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&z, Z_NO_FLUSH);
    used += room - z.avail_out;
    if (used > max_output) return CompressionErrc::output_too_large;
    switch (rc) {
      case Z_OK:
        break;
      case Z_STREAM_END:
        if (z.avail_in == 0 && left == 0) {
          out.resize(used);
          return out;
        }
        // Another gzip member follows (RFC 1952 2.2); anything else fails in its header.
        if (inflateReset(&z) != Z_OK) return CompressionErrc::codec_failure;
        break;
      case Z_BUF_ERROR:
        // No progress with room to write: the input ran out inside the stream.
        if (z.avail_in == 0 && left == 0) return CompressionErrc::truncated_input;
        break;
      case Z_DATA_ERROR:
      case Z_NEED_DICT:
        return CompressionErrc::corrupt_input;
      default:
        return CompressionErrc::codec_failure;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// zstd.

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
};
using CctxPtr = std::unique_ptr<ZSTD_CCtx, CctxDeleter>;
using DctxPtr = std::unique_ptr<ZSTD_DCtx, DctxDeleter>;

bool set(ZSTD_CCtx* c, ZSTD_cParameter p, int value) noexcept {
  return ZSTD_isError(ZSTD_CCtx_setParameter(c, p, value)) == 0;
}

// Runs ZSTD_compressStream2 over `in` with `mode`, appending to `out`. On error `out` is
// restored.
error_code run_zstd(ZSTD_CCtx* c, std::string_view in, ZSTD_EndDirective mode, std::string& out) {
  const size_t start = out.size();
  size_t used = start;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  for (;;) {
    if (used == out.size()) grow(out, start, used, ZSTD_compressBound(input.size - input.pos) + 16);
    ZSTD_outBuffer output{out.data() + used, out.size() - used, 0};
    const size_t remaining = ZSTD_compressStream2(c, &output, &input, mode);
    used += output.pos;
    if (ZSTD_isError(remaining) != 0) {
      out.resize(start);
      return CompressionErrc::codec_failure;
    }
    if (mode == ZSTD_e_continue ? input.pos == input.size : remaining == 0) break;
  }
  out.resize(used);
  return {};
}

result<std::string> zstd_compress(std::string_view data, int level) {
  const CctxPtr c(ZSTD_createCCtx());
  if (!c || !set(c.get(), ZSTD_c_compressionLevel, level) ||
      !set(c.get(), ZSTD_c_windowLog, kZstdMaxWindowLog) || !set(c.get(), ZSTD_c_checksumFlag, 1)) {
    return CompressionErrc::codec_failure;
  }
  std::string out;
  out.resize(ZSTD_compressBound(data.size()));
  // ZSTD_compress2 knows the size: it records it in the frame and sizes its tables to it.
  const size_t n = ZSTD_compress2(c.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n) != 0) return CompressionErrc::codec_failure;
  out.resize(n);
  return out;
}

result<std::string> zstd_decompress(std::string_view data, size_t max_output) {
  const DctxPtr d(ZSTD_createDCtx());
  if (!d || ZSTD_isError(ZSTD_DCtx_setParameter(d.get(), ZSTD_d_windowLogMax,
                                                kZstdDecodeMaxWindowLog)) != 0) {
    return CompressionErrc::codec_failure;
  }
  const size_t cap = max_output == SIZE_MAX ? SIZE_MAX : max_output + 1;
  std::string out;
  size_t used = 0;
  ZSTD_inBuffer input{data.data(), data.size(), 0};
  for (;;) {
    if (used == out.size()) {
      out.resize(std::min(cap, std::max({out.size() * 2, data.size() * 4, size_t{1024}})));
    }
    ZSTD_outBuffer output{out.data() + used, out.size() - used, 0};
    const size_t hint = ZSTD_decompressStream(d.get(), &output, &input);
    used += output.pos;
    if (ZSTD_isError(hint) != 0) {
      switch (ZSTD_getErrorCode(hint)) {
        case ZSTD_error_memory_allocation:
          return CompressionErrc::codec_failure;
        default:
          return CompressionErrc::corrupt_input;
      }
    }
    if (used > max_output) return CompressionErrc::output_too_large;
    if (input.pos == input.size) {
      // Hint 0: the last frame is complete and fully flushed (checked before calling again:
      // a call after the end would return the hint of a next frame's header).
      if (hint == 0) {
        out.resize(used);
        return out;
      }
      // Room left and the input consumed: the decoder has emitted all it can, and the frame is
      // not complete. (When more input follows a complete frame, the decoder moves on to the
      // next frame by itself.)
      if (output.pos < output.size) return CompressionErrc::truncated_input;
    }
  }
}

class CompressionCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.http.compression"; }
  std::string message(int value) const override {
    switch (static_cast<CompressionErrc>(value)) {
      case CompressionErrc::corrupt_input:
        return "corrupt compressed input";
      case CompressionErrc::truncated_input:
        return "compressed input ends before its stream";
      case CompressionErrc::output_too_large:
        return "decompressed output larger than allowed";
      case CompressionErrc::codec_failure:
        return "compression library failure";
      case CompressionErrc::stream_finished:
        return "compressor already finished";
    }
    return "unknown sluice.http.compression error";
  }
};

}  // namespace

// -----------------------------------------------------------------------------------------------
// Codings and negotiation.

std::string_view to_string(Coding coding) noexcept {
  switch (coding) {
    case Coding::identity:
      return "identity";
    case Coding::gzip:
      return "gzip";
    case Coding::zstd:
      return "zstd";
  }
  return "identity";
}

std::optional<Coding> parse_coding(std::string_view token) noexcept {
  token = trim_ows(token);
  if (iequals(token, "gzip") || iequals(token, "x-gzip")) return Coding::gzip;
  if (iequals(token, "zstd")) return Coding::zstd;
  if (iequals(token, "identity")) return Coding::identity;
  return std::nullopt;
}

Coding negotiate(std::string_view accept_encoding, std::span<const Coding> offered) noexcept {
  const AcceptedCodings accepted = parse_accept_encoding(accept_encoding);
  Coding best = Coding::identity;
  int best_rank = 0;
  bool identity_seen = false;
  for (const Coding c : offered) {
    identity_seen = identity_seen || c == Coding::identity;
    const int rank = accepted.rank(c);
    if (rank > best_rank) {
      best = c;
      best_rank = rank;
    }
  }
  // Identity is always available; when not offered it comes last in the server's order.
  if (!identity_seen && accepted.rank(Coding::identity) > best_rank) return Coding::identity;
  return best;
}

bool is_acceptable(std::string_view accept_encoding, Coding coding) noexcept {
  return parse_accept_encoding(accept_encoding).rank(coding) > 0;
}

bool is_compressible(std::string_view content_type) noexcept {
  const std::string_view media = trim_ows(content_type.substr(0, content_type.find(';')));
  const size_t slash = media.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view type = media.substr(0, slash);
  const std::string_view subtype = media.substr(slash + 1);
  if (!is_token(type) || !is_token(subtype)) return false;
  if (iequals(type, "text")) return true;
  if (iends_with(subtype, "+json") || iends_with(subtype, "+xml")) return true;
  if (iequals(type, "application")) {
    static constexpr std::array<std::string_view, 8> kApplication = {
        "json", "xml", "javascript", "x-javascript", "ecmascript", "x-ndjson", "yaml", "wasm"};
    return std::any_of(kApplication.begin(), kApplication.end(),
                       [&](std::string_view s) { return iequals(subtype, s); });
  }
  if (iequals(type, "font")) return iequals(subtype, "ttf") || iequals(subtype, "otf");
  return false;
}

int default_level(Coding coding) noexcept {
  switch (coding) {
    case Coding::gzip:
      return kGzipDefaultLevel;
    case Coding::zstd:
      return kZstdDefaultLevel;
    case Coding::identity:
      break;
  }
  return 0;
}

// -----------------------------------------------------------------------------------------------
// One-shot.

result<std::string> compress(Coding coding, std::string_view data, int level) {
  switch (coding) {
    case Coding::gzip:
      return gzip_compress(data, clamp_level(coding, level));
    case Coding::zstd:
      return zstd_compress(data, clamp_level(coding, level));
    case Coding::identity:
      break;
  }
  return std::string(data);
}

result<std::string> decompress(Coding coding, std::string_view data, size_t max_output) {
  if (data.empty()) return std::string();
  switch (coding) {
    case Coding::gzip:
      return gzip_decompress(data, max_output);
    case Coding::zstd:
      return zstd_decompress(data, max_output);
    case Coding::identity:
      break;
  }
  if (data.size() > max_output) return CompressionErrc::output_too_large;
  return std::string(data);
}

// -----------------------------------------------------------------------------------------------
// StreamCompressor.

struct StreamCompressor::Impl {
  Coding coding;
  z_stream z{};
  bool z_live = false;  // deflateInit2 succeeded and deflateEnd has not run
  size_t z_bytes = 0;   // held by zlib (counted by counting_zalloc)
  CctxPtr zstd;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  error_code closed;  // stream_finished after finish(), or the error that spent the stream

  explicit Impl(Coding c) : coding(c) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { release(); }

  void release() noexcept {
    if (z_live) {
      deflateEnd(&z);
      z_live = false;
    }
    zstd.reset();
  }

  // Compresses `chunk` with the codec's directive for `flush` (or the end of stream).
  error_code run(std::string_view chunk, Flush flush, bool end, std::string& out) {
    if (closed) return closed;
    const size_t start = out.size();
    error_code ec;
    switch (coding) {
      case Coding::gzip:
        ec = run_deflate(z, chunk,
                         end                    ? Z_FINISH
                         : flush == Flush::sync ? Z_SYNC_FLUSH
                                                : Z_NO_FLUSH,
                         out);
        break;
      case Coding::zstd:
        ec = run_zstd(zstd.get(), chunk,
                      end                    ? ZSTD_e_end
                      : flush == Flush::sync ? ZSTD_e_flush
                                             : ZSTD_e_continue,
                      out);
        break;
      case Coding::identity:
        out.append(chunk);
        break;
    }
    if (ec) {
      closed = ec;
      release();
      return ec;
    }
    bytes_in += chunk.size();
    bytes_out += out.size() - start;
    if (end) {
      closed = CompressionErrc::stream_finished;
      release();
    }
    return {};
  }
};

StreamCompressor::StreamCompressor(Coding coding, StreamOptions options)
    : impl_(std::make_unique<Impl>(coding)) {
  Impl& s = *impl_;
  const int level = clamp_level(coding, options.level);
  switch (coding) {
    case Coding::gzip: {
      const int window_log =
          options.window_log == 0
              ? kGzipMaxWindowLog
              : std::clamp(options.window_log, kGzipMinWindowLog, kGzipMaxWindowLog);
      s.z.zalloc = counting_zalloc;
      s.z.zfree = counting_zfree;
      s.z.opaque = &s.z_bytes;
      s.z_live = deflateInit2(&s.z, level, Z_DEFLATED, window_log + 16, gzip_mem_level(window_log),
                              Z_DEFAULT_STRATEGY) == Z_OK;
      if (!s.z_live) s.closed = CompressionErrc::codec_failure;
      break;
    }
    case Coding::zstd: {
      const int window_log =
          options.window_log == 0
              ? kZstdStreamWindowLog
              : std::clamp(options.window_log, kZstdMinWindowLog, kZstdMaxWindowLog);
      const int table_log = std::min(window_log - 1, kZstdMaxTableLog);
      s.zstd.reset(ZSTD_createCCtx());
      // Match tables follow the window, not the level: memory per stream stays predictable.
      const bool ok = s.zstd && set(s.zstd.get(), ZSTD_c_compressionLevel, level) &&
                      set(s.zstd.get(), ZSTD_c_windowLog, window_log) &&
                      set(s.zstd.get(), ZSTD_c_checksumFlag, 1) &&
                      set(s.zstd.get(), ZSTD_c_hashLog, table_log) &&
                      set(s.zstd.get(), ZSTD_c_chainLog, table_log);
      if (!ok) {
        s.closed = CompressionErrc::codec_failure;
        s.release();
      }
      break;
    }
    case Coding::identity:
      break;
  }
}

StreamCompressor::~StreamCompressor() = default;
StreamCompressor::StreamCompressor(StreamCompressor&& other) noexcept = default;
StreamCompressor& StreamCompressor::operator=(StreamCompressor&& other) noexcept = default;

result<std::string> StreamCompressor::write(std::string_view chunk, Flush flush) {
  std::string out;
  if (const error_code ec = write(chunk, flush, out)) return ec;
  return out;
}

error_code StreamCompressor::write(std::string_view chunk, Flush flush, std::string& out) {
  SLUICE_CHECK(impl_ != nullptr, "write on a moved-from StreamCompressor");
  return impl_->run(chunk, flush, /*end=*/false, out);
}

result<std::string> StreamCompressor::finish() {
  std::string out;
  if (const error_code ec = finish(out)) return ec;
  return out;
}

error_code StreamCompressor::finish(std::string& out) {
  SLUICE_CHECK(impl_ != nullptr, "finish on a moved-from StreamCompressor");
  return impl_->run({}, Flush::sync, /*end=*/true, out);
}

Coding StreamCompressor::coding() const noexcept {
  SLUICE_CHECK(impl_ != nullptr, "use of a moved-from StreamCompressor");
  return impl_->coding;
}

bool StreamCompressor::finished() const noexcept {
  SLUICE_CHECK(impl_ != nullptr, "use of a moved-from StreamCompressor");
  return static_cast<bool>(impl_->closed);
}

uint64_t StreamCompressor::bytes_in() const noexcept {
  SLUICE_CHECK(impl_ != nullptr, "use of a moved-from StreamCompressor");
  return impl_->bytes_in;
}

uint64_t StreamCompressor::bytes_out() const noexcept {
  SLUICE_CHECK(impl_ != nullptr, "use of a moved-from StreamCompressor");
  return impl_->bytes_out;
}

size_t StreamCompressor::memory_bytes() const noexcept {
  SLUICE_CHECK(impl_ != nullptr, "use of a moved-from StreamCompressor");
  if (impl_->zstd) return ZSTD_sizeof_CCtx(impl_->zstd.get());
  return impl_->z_live ? impl_->z_bytes : 0;
}

// -----------------------------------------------------------------------------------------------
// Errors.

const boost::system::error_category& compression_category() noexcept {
  static const CompressionCategory category;
  return category;
}

}  // namespace sluice::http
