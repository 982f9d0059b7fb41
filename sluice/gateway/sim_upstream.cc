#include "sluice/gateway/sim_upstream.h"

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"
#include "sluice/base/random.h"

// GCC 12 at -O2 inlines one Asio coroutine frame into another and then reports the frame's
// own operator new/delete pair as mismatched (a false positive of -Wmismatched-new-delete on
// awaitable_frame_base); the pair is Asio's and matches.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace sluice::gateway {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
namespace json = boost::json;
using boost::system::error_code;

namespace {

constexpr std::string_view kChatPath = "/v1/chat/completions";
constexpr std::string_view kModel = "sim-1";

constexpr std::array<std::string_view, 48> kWords = {
    "the",     "cache",   "answer",   "is",      "fast",      "because", "requests",  "share",
    "one",     "call",    "upstream", "latency", "tokens",    "stream",  "steady",    "model",
    "quietly", "returns", "a",        "careful", "summary",   "of",      "what",      "you",
    "asked",   "and",     "nothing",  "more",    "so",        "every",   "identical", "question",
    "gets",    "same",    "reply",    "from",    "simulated", "server",  "with",      "bounded",
    "queues",  "clear",   "limits",   "honest",  "metrics",   "under",   "load",      "today"};

asio::awaitable<void> sleep_for(Duration d) {
  if (d <= Duration::zero()) co_return;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(d);
  (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) return std::nullopt;
  return v;
}

std::string hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kDigits[v & 0xf];
  return out;
}

bh::fields json_headers() {
  bh::fields h;
  h.set(bh::field::content_type, "application/json");
  return h;
}

// The query knobs of one request, decoded.
struct Query {
  std::map<std::string, std::string, std::less<>> params;
  [[nodiscard]] const std::string* find(std::string_view key) const {
    auto it = params.find(key);
    return it == params.end() ? nullptr : &it->second;
  }
};

// Splits an If-None-Match list and compares entity tags weakly (RFC 9110 §13.1.2).
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  auto strip_weak = [](std::string_view t) {
    if (t.starts_with("W/")) t.remove_prefix(2);
    return t;
  };
  const std::string_view want = strip_weak(etag);
  while (!if_none_match.empty()) {
    const size_t comma = if_none_match.find(',');
    std::string_view item = if_none_match.substr(0, comma);
    if_none_match =
        comma == std::string_view::npos ? std::string_view{} : if_none_match.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == "*" || strip_weak(item) == want) return true;
  }
  return false;
}

}  // namespace

std::string sim_event(uint64_t i, size_t size) {
  std::string event = "id: " + std::to_string(i) + "\ndata: ";
  const size_t at = event.size();
  event.resize(at + size);
  for (size_t j = 0; j < size; ++j) event[at + j] = static_cast<char>('a' + (i + j) % 26);
  event += "\n\n";
  return event;
}

class SimUpstream::Handler {
 public:
  explicit Handler(const SimUpstreamOptions& options) : options_(options) {}

  asio::awaitable<void> operator()(http::Request& req, http::ResponseWriter& w) {
    auto parsed = boost::urls::parse_origin_form(std::string_view(req.target()));
    if (!parsed) {
      bad_knobs_.fetch_add(1, std::memory_order_relaxed);
      co_await send_error(w, bh::status::bad_request, "bad_target", "the target does not parse");
      co_return;
    }
    const std::string path = parsed->path();
    Query query;
    for (auto param : parsed->params()) query.params[param.key] = param.value;

    if (path == "/__sim/stats") {
      (void)co_await w.send(bh::status::ok, json_headers(), stats_json());
      co_return;
    }
    if (path == "/__sim/reset") {
      if (req.method() != bh::verb::post) {
        co_await send_error(w, bh::status::method_not_allowed, "method_not_allowed",
                            "use POST /__sim/reset");
        co_return;
      }
      reset();
      (void)co_await w.send(bh::status::ok, json_headers(), R"({"ok":true})");
      co_return;
    }

    const uint64_t seq = count(path);
    Duration latency = options_.latency;
    if (const auto* d = query.find("delay_ms")) {
      auto ms = parse_u64(*d);
      if (!ms || *ms > 24ULL * 3600 * 1000) {
        bad_knobs_.fetch_add(1, std::memory_order_relaxed);
        co_await send_error(w, bh::status::bad_request, "bad_knob", "delay_ms: not a number");
        co_return;
      }
      latency = std::chrono::milliseconds(*ms);
    }

    if (path == kChatPath) {
      co_await chat(req, w, query, seq, latency);
    } else if (path == "/reset") {
      const auto* sse = query.find("sse");
      co_await reset_mid_response(w, seq, latency, sse != nullptr && *sse == "1");
    } else if (path == "/hang") {
      co_await hang(w, seq);
    } else if (path == "/events") {
      co_await events(w, query, seq, latency);
    } else if (path == "/headers") {
      co_await sleep_for(latency);
      json::object echoed;
      for (const auto& field : req) {
        const std::string name(field.name_string());
        if (auto* existing = echoed.if_contains(name)) {
          std::string joined(existing->as_string());
          joined += ", ";
          joined += std::string_view(field.value());
          *existing = joined;
        } else {
          echoed[name] = std::string_view(field.value());
        }
      }
      auto headers = json_headers();
      headers.set("X-Sim-Seq", std::to_string(seq));
      (void)co_await w.send(bh::status::ok, std::move(headers), json::serialize(echoed));
    } else {
      co_await knobs(req, w, path, query, seq, latency);
    }
  }

  [[nodiscard]] SimUpstreamStats stats() const {
    SimUpstreamStats s;
    {
      std::lock_guard lock(mu_);
      s.requests = requests_;
      s.by_path = by_path_;
    }
    s.streams = streams_.load(std::memory_order_relaxed);
    s.resets = resets_.load(std::memory_order_relaxed);
    s.hangs_active = hangs_active_.load(std::memory_order_relaxed);
    s.not_modified = not_modified_.load(std::memory_order_relaxed);
    s.bad_knobs = bad_knobs_.load(std::memory_order_relaxed);
    return s;
  }

  void reset() {
    std::lock_guard lock(mu_);
    requests_ = 0;
    by_path_.clear();
    streams_.store(0, std::memory_order_relaxed);
    resets_.store(0, std::memory_order_relaxed);
    not_modified_.store(0, std::memory_order_relaxed);
    bad_knobs_.store(0, std::memory_order_relaxed);
  }

  void begin_stop() noexcept { stopping_.store(true, std::memory_order_release); }

 private:
  uint64_t count(const std::string& path) {
    std::lock_guard lock(mu_);
    ++by_path_[path];
    return ++requests_;
  }

  std::string stats_json() const {
    const SimUpstreamStats s = stats();
    json::object by_path;
    for (const auto& [path, n] : s.by_path) by_path[path] = n;
    json::object out;
    out["requests"] = s.requests;
    out["by_path"] = std::move(by_path);
    out["streams"] = s.streams;
    out["resets"] = s.resets;
    out["hangs_active"] = s.hangs_active;
    out["not_modified"] = s.not_modified;
    out["bad_knobs"] = s.bad_knobs;
    return json::serialize(out);
  }

  static asio::awaitable<void> send_error(http::ResponseWriter& w, bh::status status,
                                          std::string_view code, std::string_view reason) {
    json::object body;
    body["error"] = code;
    body["reason"] = reason;
    (void)co_await w.send(status, json_headers(), json::serialize(body));
  }

  asio::awaitable<void> chat(http::Request& req, http::ResponseWriter& w, const Query& query,
                             uint64_t seq, Duration latency) {
    std::string question;
    std::string model(kModel);
    bool stream = false;
    if (const auto* q = query.find("q")) question = *q;
    if (const auto* s = query.find("stream")) stream = *s == "1" || *s == "true";
    if (req.method() == bh::verb::post && !req.body().empty()) {
      error_code ec;
      json::value body = json::parse(req.body(), ec);
      if (!ec && body.is_object()) {
        const auto& obj = body.as_object();
        if (const auto* m = obj.if_contains("messages")) {
          question = json::serialize(*m);
        } else {
          question = req.body();
        }
        if (const auto* m = obj.if_contains("model"); m && m->is_string()) {
          model = std::string(m->as_string());
        }
        if (const auto* s = obj.if_contains("stream"); s && s->is_bool()) stream = s->as_bool();
      } else {
        question = req.body();
      }
    }
    const uint64_t h = base::hash_string(question);
    const std::string id = "chatcmpl-" + hex64(h);
    const std::string content = answer_for(question, options_.tokens_per_answer);
    co_await sleep_for(latency);

    bh::fields headers;
    headers.set("X-Sim-Seq", std::to_string(seq));
    if (!stream) {
      json::object message{{"role", "assistant"}, {"content", content}};
      json::object choice{{"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}};
      const uint64_t prompt_tokens = 1 + question.size() / 4;
      const uint64_t completion_tokens = options_.tokens_per_answer;
      json::object usage{{"prompt_tokens", prompt_tokens},
                         {"completion_tokens", completion_tokens},
                         {"total_tokens", prompt_tokens + completion_tokens}};
      json::object out{{"id", id},
                       {"object", "chat.completion"},
                       {"model", model},
                       {"choices", json::array{std::move(choice)}},
                       {"usage", std::move(usage)}};
      headers.set(bh::field::content_type, "application/json");
      (void)co_await w.send(bh::status::ok, std::move(headers), json::serialize(out));
      co_return;
    }

    streams_.fetch_add(1, std::memory_order_relaxed);
    headers.set(bh::field::content_type, "text/event-stream");
    headers.set(bh::field::cache_control, "no-cache");
    if (co_await w.write_head(bh::status::ok, std::move(headers))) co_return;
    // Tokens are the words of `content`, each after the first with its leading space, so the
    // deltas concatenate to the non-streamed answer.
    size_t start = 0;
    bool first = true;
    while (start < content.size()) {
      if (!first) co_await sleep_for(options_.token_interval);
      size_t end = content.find(' ', start + 1);
      if (end == std::string::npos) end = content.size();
      json::object delta{{"content", content.substr(start, end - start)}};
      if (first) delta["role"] = "assistant";
      json::object choice{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", nullptr}};
      json::object chunk{{"id", id},
                         {"object", "chat.completion.chunk"},
                         {"model", model},
                         {"choices", json::array{std::move(choice)}}};
      const std::string event = "data: " + json::serialize(chunk) + "\n\n";
      if (co_await w.write_chunk(event)) co_return;
      start = end;
      first = false;
    }
    static constexpr std::string_view kDone = "data: [DONE]\n\n";
    if (co_await w.write_chunk(kDone)) co_return;
    (void)co_await w.finish();
  }

  // `sse`: an event stream (chunked) cut after its first event, instead of a text body with
  // a declared length cut halfway.
  asio::awaitable<void> reset_mid_response(http::ResponseWriter& w, uint64_t seq, Duration latency,
                                           bool sse) {
    co_await sleep_for(latency);
    bh::fields headers;
    headers.set(bh::field::content_type, sse ? "text/event-stream" : "text/plain");
    headers.set("X-Sim-Seq", std::to_string(seq));
    if (sse) {
      if (co_await w.write_head(bh::status::ok, std::move(headers))) co_return;
      static constexpr std::string_view kFirst = "data: {\"token\":\"first\"}\n\n";
      if (co_await w.write_chunk(kFirst)) co_return;
    } else {
      if (co_await w.write_head(bh::status::ok, std::move(headers), 1024)) co_return;
      const std::string part(512, 'r');
      if (co_await w.write_chunk(part)) co_return;
    }
    resets_.fetch_add(1, std::memory_order_relaxed);
    // The server closes a connection whose handler throws after the head went out: the
    // client sees fewer bytes than declared.
    throw std::runtime_error("sim upstream: reset mid-response on purpose");
  }

  // `n` events of `size` data bytes, `interval_ms` apart, as `sim_event` formats them; with
  // `stall=1` the stream then stays open and silent until the sim stops. Cache-Control is
  // `no-store` unless `cc=` gives another.
  asio::awaitable<void> events(http::ResponseWriter& w, const Query& query, uint64_t seq,
                               Duration latency) {
    uint64_t n = 10, size = 32, interval_ms = 0;
    for (auto [key, out, max] :
         {std::tuple{"n", &n, uint64_t{10'000'000}}, std::tuple{"size", &size, uint64_t{1'000'000}},
          std::tuple{"interval_ms", &interval_ms, uint64_t{60'000}}}) {
      if (const auto* v = query.find(key)) {
        auto parsed = parse_u64(*v);
        if (!parsed || *parsed > max) {
          bad_knobs_.fetch_add(1, std::memory_order_relaxed);
          co_await send_error(w, bh::status::bad_request, "bad_knob",
                              std::string(key) + ": not a number or too large");
          co_return;
        }
        *out = *parsed;
      }
    }
    const auto* stall = query.find("stall");
    co_await sleep_for(latency);
    streams_.fetch_add(1, std::memory_order_relaxed);
    bh::fields headers;
    headers.set("X-Sim-Seq", std::to_string(seq));
    headers.set(bh::field::content_type, "text/event-stream");
    const auto* cc = query.find("cc");
    headers.set(bh::field::cache_control, cc != nullptr ? *cc : std::string("no-store"));
    if (co_await w.write_head(bh::status::ok, std::move(headers))) co_return;
    for (uint64_t i = 1; i <= n; ++i) {
      if (i > 1) co_await sleep_for(std::chrono::milliseconds(interval_ms));
      const std::string event = sim_event(i, size);
      if (co_await w.write_chunk(event)) co_return;
    }
    if (stall != nullptr && *stall == "1") {
      while (!stopping_.load(std::memory_order_acquire)) {
        co_await sleep_for(options_.hang_poll_interval);
      }
      co_return;  // no final chunk: the stream is cut when the connection closes
    }
    (void)co_await w.finish();
  }

  asio::awaitable<void> hang(http::ResponseWriter& w, uint64_t seq) {
    struct Gauge {
      std::atomic<uint64_t>& g;
      explicit Gauge(std::atomic<uint64_t>& gauge) : g(gauge) {
        g.fetch_add(1, std::memory_order_relaxed);
      }
      ~Gauge() { g.fetch_sub(1, std::memory_order_relaxed); }
      Gauge(const Gauge&) = delete;
      Gauge& operator=(const Gauge&) = delete;
    } gauge(hangs_active_);
    while (!stopping_.load(std::memory_order_acquire)) {
      co_await sleep_for(options_.hang_poll_interval);
    }
    auto headers = json_headers();
    headers.set("X-Sim-Seq", std::to_string(seq));
    (void)co_await w.send(bh::status::service_unavailable, std::move(headers),
                          R"({"error":"stopping","reason":"the sim upstream is shutting down"})");
  }

  asio::awaitable<void> knobs(http::Request& req, http::ResponseWriter& w, const std::string& path,
                              const Query& query, uint64_t seq, Duration latency) {
    unsigned status = 200;
    if (const auto* s = query.find("status")) {
      auto v = parse_u64(*s);
      if (!v || *v < 100 || *v > 599) {
        bad_knobs_.fetch_add(1, std::memory_order_relaxed);
        co_await send_error(w, bh::status::bad_request, "bad_knob", "status: not 100..599");
        co_return;
      }
      status = static_cast<unsigned>(*v);
    }
    std::optional<uint64_t> size;
    if (const auto* s = query.find("size")) {
      size = parse_u64(*s);
      if (!size || *size > options_.max_body_bytes) {
        bad_knobs_.fetch_add(1, std::memory_order_relaxed);
        co_await send_error(w, bh::status::bad_request, "bad_knob",
                            "size: not a number or above max_body_bytes");
        co_return;
      }
    }
    co_await sleep_for(latency);

    bh::fields headers;
    headers.set("X-Sim-Seq", std::to_string(seq));
    if (const auto* cc = query.find("cc")) headers.set(bh::field::cache_control, *cc);
    if (const auto* vary = query.find("vary")) headers.set(bh::field::vary, *vary);
    if (const auto* cookie = query.find("set_cookie"); cookie && *cookie == "1") {
      headers.set(bh::field::set_cookie, "sim=" + std::to_string(seq) + "; Path=/");
    }
    if (const auto* etag = query.find("etag")) {
      std::string tag = *etag;
      if (!tag.starts_with('"') && !tag.starts_with("W/")) tag = '"' + tag + '"';
      headers.set(bh::field::etag, tag);
      const auto inm = req.find(bh::field::if_none_match);
      if (inm != req.end() && etag_matches(inm->value(), tag)) {
        not_modified_.fetch_add(1, std::memory_order_relaxed);
        (void)co_await w.send(bh::status::not_modified, std::move(headers), {});
        co_return;
      }
    }

    std::string body;
    if (size) {
      const auto* type = query.find("ct");
      headers.set(bh::field::content_type, type != nullptr ? *type : "application/octet-stream");
      body.resize(*size);
      for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    } else {
      headers.set(bh::field::content_type, "application/json");
      json::object out{
          {"path", path}, {"method", std::string_view(req.method_string())}, {"seq", seq}};
      body = json::serialize(out);
    }

    const auto* chunked = query.find("chunked");
    if (chunked == nullptr || *chunked != "1") {
      (void)co_await w.send(static_cast<bh::status>(status), std::move(headers), std::move(body));
      co_return;
    }
    if (co_await w.write_head(static_cast<bh::status>(status), std::move(headers))) co_return;
    const size_t piece = std::max<size_t>(1, (body.size() + 3) / 4);
    for (size_t at = 0; at < body.size(); at += piece) {
      if (co_await w.write_chunk(std::string_view(body).substr(at, piece))) co_return;
    }
    (void)co_await w.finish();
  }

  const SimUpstreamOptions& options_;
  mutable std::mutex mu_;
  uint64_t requests_ = 0;                    // guarded by mu_
  std::map<std::string, uint64_t> by_path_;  // guarded by mu_
  std::atomic<uint64_t> streams_{0};
  std::atomic<uint64_t> resets_{0};
  std::atomic<uint64_t> hangs_active_{0};
  std::atomic<uint64_t> not_modified_{0};
  std::atomic<uint64_t> bad_knobs_{0};
  std::atomic<bool> stopping_{false};
};

SimUpstream::SimUpstream(SimUpstreamOptions options)
    : options_(std::move(options)), handler_(std::make_unique<Handler>(options_)) {
  http::ServerOptions server;
  server.address = options_.address;
  server.port = options_.port;
  server.workers = std::max<size_t>(1, options_.workers);
  server.drain_timeout = options_.drain_timeout;
  server.max_connections = options_.max_connections;
  Handler* h = handler_.get();
  server_ = std::make_unique<http::Server>(
      std::move(server), [h](http::Request& req, http::ResponseWriter& w) -> asio::awaitable<void> {
        return (*h)(req, w);
      });
}

SimUpstream::~SimUpstream() {
  stop();
  server_.reset();  // joins the workers before the handler goes away
}

boost::system::error_code SimUpstream::start() {
  if (options_.latency < Duration::zero() || options_.token_interval < Duration::zero() ||
      options_.hang_poll_interval <= Duration::zero()) {
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  }
  return server_->start();
}

uint16_t SimUpstream::port() const noexcept { return server_->port(); }

void SimUpstream::stop() {
  handler_->begin_stop();
  server_->stop();
}

void SimUpstream::wait() { server_->wait(); }

SimUpstreamStats SimUpstream::stats() const { return handler_->stats(); }

void SimUpstream::reset_stats() { handler_->reset(); }

http::ServerStats SimUpstream::server_stats() const { return server_->stats(); }

std::string SimUpstream::answer_for(std::string_view question, size_t tokens) {
  base::Xoshiro256 rng(base::hash_string(question));
  std::string out;
  for (size_t i = 0; i < tokens; ++i) {
    if (i > 0) out += ' ';
    out += kWords[rng.next_u64() % kWords.size()];
  }
  return out;
}

}  // namespace sluice::gateway
