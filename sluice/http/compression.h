// HTTP content codings for responses: which coding a client accepts (`negotiate`), which media
// types are worth compressing (`is_compressible`), one-shot `compress`/`decompress`, and a
// `StreamCompressor` that can flush after every chunk, so that a server-sent event stream is
// compressed one event at a time without waiting for more data.
//
// Thread-safety: the free functions are pure and safe from any thread. A `StreamCompressor` is
// NOT thread-safe; it belongs to one response on one strand.
//
// Codings: `gzip` is the gzip format (RFC 1952: header, deflate data, CRC-32 and length; zlib
// windowBits 15 + 16), not raw deflate or the zlib format; `zstd` is a Zstandard frame (RFC 8878)
// whose window stays far below the 8 MiB that RFC 9659 lets HTTP decoders insist on.
//
// Levels: `kDefaultLevel` picks gzip 5 and zstd 3. For a proxy, compression competes with
// proxying for the same cores, so the defaults favour speed. On the benchmark's 16 KiB JSON body,
// zlib's own default (6) costs about 20% more CPU than 5 for an output 2.3% smaller; zstd 3
// (zstd's own default) codes about twice as fast as gzip 5 into an output within 3% of it, and
// decodes faster. Other levels are clamped to gzip 1..9 and zstd 1..19 (zstd's "ultra" levels
// want windows that RFC 9659 decoders may refuse). zstd frames carry a content checksum (XXH64,
// 4 bytes), so corruption is detected as gzip's CRC-32 detects it.
//
// Cost and memory (zlib 1.2.13, zstd 1.5.4; figures from compression_benchmark.cc and
// `memory_bytes()`, CPU time on the loaded 2-core development VM):
// - `negotiate`, `is_compressible`, `parse_coding`: one pass over the string, no allocation.
// - `compress` of 16 KiB of JSON: about 70 us for gzip 5 (225 MB/s), 31 us for zstd 3
//   (500 MB/s), no slower than calling zlib or `ZSTD_compress` directly. gzip sizes zlib's window
//   and hash table to the input (as nginx does: a 2 KiB body needs a 4 KiB window, not 32 KiB);
//   zstd sizes its tables to the input, the window capped at 1 MiB (windowLog 20). Memory is
//   transient, freed before returning.
// - `decompress`: the output buffer grows geometrically and never beyond `max_output` + 1
//   bytes, so a "zip bomb" costs at most that much; plus the decoder's state: about 40 KiB for
//   gzip; about 100 KiB plus the window for zstd, a window above 8 MiB (RFC 9659's limit) being
//   refused. 16 KiB of JSON decodes in about 22 us (gzip) or 18 us (zstd).
// - `StreamCompressor` holds its codec state until `finish()`, then frees it:
//     gzip, window_log 15 (32 KiB, memLevel 8, the default): 262 KiB
//     gzip, window_log 14 / 13:                              134 / 70 KiB
//     zstd level 3, window_log 16 (64 KiB, the default):     713 KiB
//     zstd level 3, window_log 14 / 15 / 17:                 197 / 369 KiB / 1.4 MiB
//   gzip needs about 8 times its window, zstd about 11 times (input buffer, match tables,
//   block buffers); zstd allocates at its first write. A gateway holding one per open compressed
//   stream must count this against its memory budget: 10,000 event streams cost about 2.6 GiB
//   with gzip defaults, 7 GiB with zstd defaults. Setting up a stream, writing one event and
//   finishing costs about 8 us (gzip) or 11 us (zstd).
// - Flushing after every 200-byte event costs about 6.3 us per event with gzip and 2.1 us with
//   zstd; there gzip codes smaller (27% of the input against 35%: each zstd flush ends a block,
//   and a small block pays for its own headers). For event streams gzip is therefore a
//   reasonable first choice where memory or bandwidth matter more than CPU.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace sluice::http {

// A content coding sluice can produce (RFC 9110 section 8.4.1).
enum class Coding {
  identity,  // no coding: the bytes as they are
  gzip,      // gzip format (RFC 1952); also accepted as "x-gzip"
  zstd,      // Zstandard frame (RFC 8878, RFC 9659)
};

// The Content-Encoding token of `coding`: "identity", "gzip" or "zstd".
[[nodiscard]] std::string_view to_string(Coding coding) noexcept;

// The coding named by one Content-Encoding token: case-insensitive, surrounding whitespace
// ignored, "x-gzip" is gzip. `nullopt` for any other coding ("br", "deflate") and for a list
// ("gzip, zstd": a body coded twice, which the caller must split and undo in reverse order).
[[nodiscard]] std::optional<Coding> parse_coding(std::string_view token) noexcept;

// Chooses the coding of a response from the request's Accept-Encoding field value and the codings
// the server is willing to use, `offered`, in the server's order of preference (e.g. {zstd, gzip}).
//
// The rules of RFC 9110 section 12.5.3: the value is a comma-separated list of codings, each with
// an optional weight `;q=` (0 to 1, at most three decimals); names are case-insensitive; "x-gzip"
// means gzip; `*` stands for every coding not listed by name; a coding with q=0 is refused. An
// entry whose weight is malformed ("q=1.5", "q=abc", "q=0.1234") or whose name is not a token is
// ignored; empty list elements are skipped; parameters other than q are ignored. A coding listed
// twice (or as both gzip and x-gzip) takes its highest weight.
//
// Returns the acceptable offered coding with the highest weight, ties going to the earlier one
// in `offered`. Identity is always a candidate, since the server can always send the body as it
// is: it wins only when the client gives it a strictly higher weight than every offered coding
// (`gzip;q=0.5, identity`), and when it is not named (neither by itself nor through `*`) it
// counts as acceptable with the lowest preference. So the result is identity when nothing
// offered is acceptable, for an empty value, and for a value that is all garbage.
//
// An absent Accept-Encoding field means, by the RFC, that any coding is acceptable; callers pass
// "" for it all the same, because compressing for a client that did not ask is how broken
// clients get gzip they cannot read (nginx and Envoy also compress only when asked). Several
// Accept-Encoding lines must be joined with ", " first.
//
// The rare refusal of identity: with `identity;q=0`, or `*;q=0` without identity listed, and no
// offered coding acceptable, the result is still identity. RFC 9110 leaves the answer to the
// server: send identity anyway (what most servers do) or answer 406 Not Acceptable. To decide,
// check `is_acceptable(accept_encoding, Coding::identity)`.
[[nodiscard]] Coding negotiate(std::string_view accept_encoding,
                               std::span<const Coding> offered) noexcept;

// Whether `coding` is acceptable under the Accept-Encoding value `accept_encoding` by the rules
// of `negotiate` (identity is acceptable unless refused; "" accepts only identity).
[[nodiscard]] bool is_acceptable(std::string_view accept_encoding, Coding coding) noexcept;

// Whether a response with this Content-Type is worth compressing. Case-insensitive; parameters
// ("; charset=utf-8") and surrounding whitespace are ignored. True for:
//   text/*                        (html, css, plain, csv, javascript, xml, event-stream ...;
//                                  text/event-stream needs `Flush::sync` after every event)
//   */*+json, */*+xml              (structured suffixes: application/problem+json,
//                                  application/ld+json, application/atom+xml, image/svg+xml ...)
//   application/json, application/xml, application/javascript, application/x-javascript,
//   application/ecmascript, application/x-ndjson, application/yaml, application/wasm
//                                 (WebAssembly modules are large and typically halve or better)
//   font/ttf, font/otf            (uncompressed font formats; woff and woff2 already are)
// False for everything else, notably images, audio and video (already compressed),
// application/octet-stream (unknown bytes), archives, PDF, gRPC (it compresses per message),
// multipart bodies, and an empty or malformed value.
[[nodiscard]] bool is_compressible(std::string_view content_type) noexcept;

// The compression level that selects the coding's default (gzip 5, zstd 3).
inline constexpr int kDefaultLevel = 0;

// The level `kDefaultLevel` stands for: 5 for gzip, 3 for zstd, 0 for identity.
[[nodiscard]] int default_level(Coding coding) noexcept;

// The body of `data` coded with `coding` (a copy for identity). `level` as described above.
// Fails only with `CompressionErrc::codec_failure` (the library could not allocate its state).
[[nodiscard]] boost::system::result<std::string> compress(Coding coding, std::string_view data,
                                                          int level = kDefaultLevel);

// The decoded body of `data`, a body coded with `coding`, of at most `max_output` bytes.
// Errors: `output_too_large` as soon as the output would exceed `max_output` (the work stops
// there); `corrupt_input` for data that is not valid in that coding (bad header, checksum,
// trailing garbage, a zstd window above 8 MiB); `truncated_input` when the data ends inside the
// stream; `codec_failure` if the library fails otherwise. Concatenated gzip members and zstd
// frames are decoded one after another, as the formats allow. Empty `data` decodes to an empty
// body for every coding (what an empty stored body with Content-Encoding means in practice).
[[nodiscard]] boost::system::result<std::string> decompress(Coding coding, std::string_view data,
                                                            size_t max_output);

// Whether `StreamCompressor::write` makes everything written so far decodable by the client.
enum class Flush {
  none,  // the codec may hold bytes back for a better ratio (most efficient)
  sync,  // emit everything written so far (zlib Z_SYNC_FLUSH, zstd ZSTD_e_flush): for events
};

// Options of a `StreamCompressor`.
struct StreamOptions {
  // Compression level; `kDefaultLevel` picks the coding's default. Clamped as described above.
  int level = kDefaultLevel;
  // log2 of the window in bytes, which sets the memory per stream (see the table above);
  // 0 picks the default: 15 (32 KiB) for gzip, 16 (64 KiB) for zstd. Clamped to gzip 9..15 and
  // zstd 10..20. For gzip it also sets memLevel (window_log - 7, at most 8, as nginx pairs them);
  // for zstd the match tables get min(window_log - 1, 16) bits, so memory follows the window
  // rather than the level (level 9 costs no more than level 3; level 19 about 1.6 times).
  int window_log = 0;
};

// Compresses one response body that arrives in chunks, e.g. an upstream response relayed as it
// comes, or server-sent events flushed one at a time. Move-only; one per response.
//
// `write` returns the coded bytes available so far (often none without a flush: the codec
// buffers up to a block); `finish` ends the stream and returns the rest (zstd end of frame,
// gzip CRC and length trailer). After `Flush::sync`, the concatenation of every output so far
// decodes to exactly the input so far; `write("", Flush::sync)` flushes what earlier
// `Flush::none` writes held back, and repeating it adds nothing. Identity passes the chunks
// through unchanged.
//
// Errors: a write or finish after `finish()` returns `stream_finished`; after any codec error
// the compressor is spent and keeps returning that error (the response cannot be completed and
// should be aborted); a compressor whose codec could not allocate its state at construction
// fails its first call with `codec_failure`. Calling anything but the destructor or assignment
// on a moved-from compressor is a bug (checked).
class StreamCompressor {
 public:
  explicit StreamCompressor(Coding coding, StreamOptions options = {});
  ~StreamCompressor();
  StreamCompressor(StreamCompressor&& other) noexcept;
  StreamCompressor& operator=(StreamCompressor&& other) noexcept;
  StreamCompressor(const StreamCompressor&) = delete;
  StreamCompressor& operator=(const StreamCompressor&) = delete;

  // Compresses `chunk` and returns the coded bytes produced (possibly empty).
  [[nodiscard]] boost::system::result<std::string> write(std::string_view chunk, Flush flush);
  // The same, appending the coded bytes to `out` (reuse one buffer per stream: no allocation
  // once it has grown). On error `out` is left as it was.
  [[nodiscard]] boost::system::error_code write(std::string_view chunk, Flush flush,
                                                std::string& out);

  // Ends the stream: returns the last coded bytes, then frees the codec state.
  [[nodiscard]] boost::system::result<std::string> finish();
  // The same, appending to `out`.
  [[nodiscard]] boost::system::error_code finish(std::string& out);

  [[nodiscard]] Coding coding() const noexcept;
  // True after `finish()` or an error.
  [[nodiscard]] bool finished() const noexcept;
  // Bytes given to `write` so far.
  [[nodiscard]] uint64_t bytes_in() const noexcept;
  // Coded bytes returned so far (the compression ratio is bytes_out / bytes_in).
  [[nodiscard]] uint64_t bytes_out() const noexcept;
  // Heap memory held by the codec now: zlib's allocations for gzip (all made at construction),
  // `ZSTD_sizeof_CCtx` for zstd (its buffers are allocated at the first write), 0 after finish.
  [[nodiscard]] size_t memory_bytes() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Errors of compression and decompression, in the category "sluice.http.compression".
enum class CompressionErrc {
  // The input is not valid in its coding: bad magic or header, bad checksum, invalid data,
  // trailing garbage, or a zstd window larger than the 8 MiB decoders may refuse.
  corrupt_input = 1,
  // The input ends before its stream does (a body cut off in transit or in storage).
  truncated_input,
  // Decoding would produce more than the caller's `max_output` bytes.
  output_too_large,
  // The codec library failed for another reason (out of memory, an internal error).
  codec_failure,
  // `StreamCompressor::write` or `finish` after `finish()`.
  stream_finished,
};

// The category of `CompressionErrc` ("sluice.http.compression").
[[nodiscard]] const boost::system::error_category& compression_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(CompressionErrc e) noexcept {
  return {static_cast<int>(e), compression_category()};
}

}  // namespace sluice::http

namespace boost::system {
template <>
struct is_error_code_enum<sluice::http::CompressionErrc> : std::true_type {};
}  // namespace boost::system
