#include "sluice/base/units.h"

#include <gtest/gtest.h>

namespace sluice::base {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ParseDuration, AcceptsUnitsAndFractions) {
  EXPECT_EQ(parse_duration("250ms").value(), milliseconds(250));
  EXPECT_EQ(parse_duration("1.5s").value(), milliseconds(1500));
  EXPECT_EQ(parse_duration("2m").value(), seconds(120));
  EXPECT_EQ(parse_duration("1h30m").value(), seconds(5400));
  EXPECT_EQ(parse_duration("100us").value(), std::chrono::microseconds(100));
  EXPECT_EQ(parse_duration(" 7ns ").value(), Duration(7));
  EXPECT_EQ(parse_duration("0").value(), Duration::zero());
  EXPECT_EQ(parse_duration("1d").value(), std::chrono::hours(24));
}

TEST(ParseDuration, RejectsGarbage) {
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("10"));
  EXPECT_FALSE(parse_duration("ms"));
  EXPECT_FALSE(parse_duration("10 parsecs"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_EQ(parse_duration("999999999999d").error(), std::errc::result_out_of_range);
}

TEST(ParseSize, AcceptsDecimalAndBinaryUnits) {
  EXPECT_EQ(parse_size("512").value(), 512u);
  EXPECT_EQ(parse_size("64KiB").value(), 65536u);
  EXPECT_EQ(parse_size("1.5MB").value(), 1500000u);
  EXPECT_EQ(parse_size("2gib").value(), 2147483648u);
  EXPECT_EQ(parse_size("10 k").value(), 10000u);
}

TEST(ParseSize, RejectsGarbage) {
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("MiB"));
  EXPECT_FALSE(parse_size("12 bananas"));
  EXPECT_FALSE(parse_size("99999999TiB"));
}

TEST(Format, ReadsWell) {
  EXPECT_EQ(format_duration(milliseconds(1500)), "1.5 s");
  EXPECT_EQ(format_duration(Duration(250)), "250 ns");
  EXPECT_EQ(format_duration(std::chrono::microseconds(12)), "12 us");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(3 * 1048576), "3.0 MiB");
}

}  // namespace
}  // namespace sluice::base
