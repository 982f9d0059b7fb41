#include "sluice/gateway/canonical_json.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cmath>
#include <utility>
#include <vector>

namespace sluice::gateway {

namespace {

class CanonicalJsonCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.canonical_json"; }
  std::string message(int ev) const override {
    switch (static_cast<CanonicalJsonError>(ev)) {
      case CanonicalJsonError::duplicate_key:
        return "duplicate object key";
      case CanonicalJsonError::number_out_of_range:
        return "number out of range";
    }
    return "unknown canonical_json error";
  }
};

// Appends `s` as a JSON string literal, escaped the way Boost.JSON's serializer does.
void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\b':
        out.push_back('b');
        break;
      case '\f':
        out.push_back('f');
        break;
      case '\n':
        out.push_back('n');
        break;
      case '\r':
        out.push_back('r');
        break;
      case '\t':
        out.push_back('t');
        break;
      default:
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// SAX handler that builds the canonical text bottom-up: arrays write straight into their
// frame's buffer; objects collect (key, canonical value) pairs and sort them when they close.
class Handler {
 public:
  static constexpr size_t max_object_size = static_cast<size_t>(-1);
  static constexpr size_t max_array_size = static_cast<size_t>(-1);
  static constexpr size_t max_key_size = static_cast<size_t>(-1);
  static constexpr size_t max_string_size = static_cast<size_t>(-1);

  std::string result;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }

  bool on_array_begin(boost::system::error_code&) {
    Frame& f = push(false);
    f.text.push_back('[');
    return true;
  }
  bool on_array_end(size_t, boost::system::error_code& ec) {
    Frame& f = frames_[depth_ - 1];
    f.text.push_back(']');
    --depth_;
    return emit_frame(f, ec);
  }
  bool on_object_begin(boost::system::error_code&) {
    push(true);
    return true;
  }
  bool on_object_end(size_t, boost::system::error_code& ec) {
    Frame& f = frames_[depth_ - 1];
    auto& members = f.members;
    std::sort(members.begin(), members.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    size_t bytes = 2;
    for (size_t i = 0; i < members.size(); ++i) {
      if (i > 0 && members[i].first == members[i - 1].first) {
        ec = make_error_code(CanonicalJsonError::duplicate_key);
        return false;
      }
      bytes += members[i].first.size() + members[i].second.size() + 4;
    }
    f.text.reserve(bytes + 8);
    f.text.push_back('{');
    for (size_t i = 0; i < members.size(); ++i) {
      if (i > 0) f.text.push_back(',');
      append_escaped(f.text, members[i].first);
      f.text.push_back(':');
      f.text.append(members[i].second);
    }
    f.text.push_back('}');
    --depth_;
    return emit_frame(f, ec);
  }

  bool on_string_part(std::string_view s, size_t, boost::system::error_code&) {
    part_.append(s);
    return true;
  }
  bool on_string(std::string_view s, size_t, boost::system::error_code&) {
    std::string_view whole = s;
    if (!part_.empty()) {
      part_.append(s);
      whole = part_;
    }
    std::string& out = value_target();
    append_escaped(out, whole);
    part_.clear();
    return true;
  }
  bool on_key_part(std::string_view s, size_t, boost::system::error_code&) {
    part_.append(s);
    return true;
  }
  bool on_key(std::string_view s, size_t, boost::system::error_code&) {
    Frame& f = frames_[depth_ - 1];
    if (part_.empty()) {
      f.members.emplace_back(std::string(s), std::string());
    } else {
      part_.append(s);
      f.members.emplace_back(std::move(part_), std::string());
      part_ = std::string();
    }
    return true;
  }
  bool on_number_part(std::string_view s, boost::system::error_code&) {
    number_.append(s);
    return true;
  }
  bool on_int64(int64_t i, std::string_view, boost::system::error_code&) {
    number_.clear();
    return append_integer(i);
  }
  bool on_uint64(uint64_t u, std::string_view, boost::system::error_code&) {
    number_.clear();
    return append_integer(u);
  }
  bool on_double(double, std::string_view s, boost::system::error_code& ec) {
    // Boost.JSON 1.81's own conversion is fast but not always correctly rounded (the
    // canonical form would then not be idempotent); std::from_chars is exact.
    std::string_view text = s;
    if (!number_.empty()) {
      number_.append(s);
      text = number_;
    }
    double d = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), d);
    number_.clear();
    if (r.ec != std::errc() || !std::isfinite(d)) {
      ec = make_error_code(CanonicalJsonError::number_out_of_range);
      return false;
    }
    value_target().append(boost::json::serialize(boost::json::value(d)));
    return true;
  }
  bool on_bool(bool b, boost::system::error_code&) {
    value_target().append(b ? "true" : "false");
    return true;
  }
  bool on_null(boost::system::error_code&) {
    value_target().append("null");
    return true;
  }
  bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
  bool on_comment(std::string_view, boost::system::error_code&) { return true; }

 private:
  struct Frame {
    bool object = false;
    bool first = true;                                         // arrays: no comma yet
    std::string text;                                          // the serialized container
    std::vector<std::pair<std::string, std::string>> members;  // objects: (key, value)
  };

  // Frames are reused across siblings (kept in `frames_`, live ones are [0, depth_)).
  Frame& push(bool object) {
    if (depth_ == frames_.size()) frames_.emplace_back();
    Frame& f = frames_[depth_++];
    f.object = object;
    f.first = true;
    f.text.clear();
    f.members.clear();
    return f;
  }

  // Where the next scalar value's text goes: the array buffer (after a comma), the last
  // member of the enclosing object, or the result.
  std::string& value_target() {
    if (depth_ == 0) return result;
    Frame& f = frames_[depth_ - 1];
    if (f.object) return f.members.back().second;
    if (!f.first) f.text.push_back(',');
    f.first = false;
    return f.text;
  }
  // Appends a closed container (`f`, no longer live) to its parent.
  bool emit_frame(Frame& f, boost::system::error_code&) {
    if (depth_ == 0) {
      result = std::move(f.text);
      f.text = std::string();
      return true;
    }
    std::string& out = value_target();
    if (out.empty()) {
      out.swap(f.text);  // an object member: take the buffer, no copy
    } else {
      out.append(f.text);
    }
    return true;
  }

  template <typename Int>
  bool append_integer(Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    value_target().append(buf, r.ptr);
    return true;
  }

  std::vector<Frame> frames_;
  size_t depth_ = 0;
  std::string part_;    // pieces of a string or key split across parser buffers
  std::string number_;  // pieces of a number split across parser buffers
};

}  // namespace

const boost::system::error_category& canonical_json_category() noexcept {
  static const CanonicalJsonCategory category;
  return category;
}

boost::system::result<std::string> canonical_json(std::string_view text) {
  boost::json::parse_options options;
  options.max_depth = kCanonicalJsonMaxDepth;
  boost::json::basic_parser<Handler> parser(options);
  boost::system::error_code ec;
  const size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (ec) return ec;
  if (consumed != text.size()) return boost::json::make_error_code(boost::json::error::extra_data);
  return std::move(parser.handler().result);
}

}  // namespace sluice::gateway
