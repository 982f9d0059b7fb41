#include "sluice/store/access_record.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "sluice/store/internal/test_support.h"

namespace sluice::store {
namespace {

std::string json_of(const AccessRecord& r) {
  std::string out;
  append_json(r, out);
  return out;
}

// The JSON of record 7 with `field`'s value text replaced by `value`.
std::string with_field(const std::string& field, const std::string& value) {
  std::string line = json_of(internal::sample_record(7));
  const std::string key = "\"" + field + "\":";
  const std::size_t at = line.find(key);
  EXPECT_NE(at, std::string::npos) << field;
  const std::size_t begin = at + key.size();
  std::size_t end = begin;
  if (line[begin] == '"') {
    end = line.find('"', begin + 1) + 1;
  } else {
    end = line.find_first_of(",}", begin);
  }
  return line.replace(begin, end - begin, value);
}

std::string reason_of(std::string_view line) {
  const auto r = parse_json(line);
  EXPECT_FALSE(r) << line;
  return r ? std::string() : r.error().reason;
}

TEST(AccessRecordJson, RoundTripsEveryField) {
  for (int i = 0; i < 10; ++i) {
    const AccessRecord in = internal::sample_record(i);
    const auto out = parse_json(json_of(in));
    ASSERT_TRUE(out) << out.error().reason;
    EXPECT_EQ(*out, in);
  }
}

TEST(AccessRecordJson, RoundTripsEscapesBytesAndExtremes) {
  AccessRecord in = internal::sample_record(1);
  in.path = "/a \"quoted\" \\ path\twith\ncontrols\x01\x1f";
  in.route = "caf\xc3\xa9";       // UTF-8
  in.request_id = "raw\xff\xfe";  // not UTF-8: kept as bytes
  in.time_unix_ns = std::numeric_limits<int64_t>::min();
  in.bytes_out = std::numeric_limits<uint64_t>::max();
  in.status = std::numeric_limits<int>::max();
  in.cache = CacheOutcome::stale;
  const auto out = parse_json(json_of(in));
  ASSERT_TRUE(out) << out.error().reason;
  EXPECT_EQ(*out, in);
  // Whitespace around the object (a CRLF line ending) is fine.
  EXPECT_TRUE(parse_json("  " + json_of(in) + "\r\n"));
}

TEST(AccessRecordJson, IgnoresUnknownFields) {
  std::string line = json_of(internal::sample_record(3));
  line.insert(1, "\"added_later\":[1,2,{\"x\":null}],");
  const auto out = parse_json(line);
  ASSERT_TRUE(out) << out.error().reason;
  EXPECT_EQ(*out, internal::sample_record(3));
}

TEST(AccessRecordJson, RejectsWithAReasonNamingTheField) {
  EXPECT_EQ(reason_of("").substr(0, 9), "not JSON:");
  EXPECT_EQ(reason_of("{\"time_unix_ns\":1").substr(0, 9), "not JSON:");
  EXPECT_EQ(reason_of("[1,2]"), "not a JSON object");
  std::string missing = json_of(internal::sample_record(7));
  missing.replace(missing.find("\"status\":200,"), 13, "");
  EXPECT_EQ(reason_of(missing), "field \"status\": missing");
  EXPECT_EQ(reason_of(with_field("status", "\"200\"")), "field \"status\": expected an integer");
  EXPECT_EQ(reason_of(with_field("status", "200.5")), "field \"status\": expected an integer");
  EXPECT_EQ(reason_of(with_field("status", "4294967296")),
            "field \"status\": integer out of range");
  EXPECT_EQ(reason_of(with_field("bytes_in", "-1")), "field \"bytes_in\": integer out of range");
  EXPECT_EQ(reason_of(with_field("route", "7")), "field \"route\": expected a string");
  EXPECT_EQ(reason_of(with_field("cache", "\"warm\"")),
            "field \"cache\": unknown cache outcome \"warm\"");
  EXPECT_THROW((void)parse_json("nope").value(), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::store
