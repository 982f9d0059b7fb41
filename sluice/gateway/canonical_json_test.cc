#include "sluice/gateway/canonical_json.h"

#include <gtest/gtest.h>

#include <boost/json/error.hpp>
#include <string>
#include <vector>

#include "sluice/base/random.h"

namespace sluice::gateway {
namespace {

struct Case {
  std::string input;
  std::string expected;
};

TEST(CanonicalJson, Table) {
  const std::vector<Case> cases = {
      {R"({"b":1,"a":2})", R"({"a":2,"b":1})"},
      {" { \"b\" : [ 1 , 2 ] ,\n\t\"a\" : { \"d\":null, \"c\":true } } ",
       R"({"a":{"c":true,"d":null},"b":[1,2]})"},
      {"[]", "[]"},
      {"{}", "{}"},
      {"[{}, [], [[]]]", "[{},[],[[]]]"},
      {"  42  ", "42"},
      {"-7", "-7"},
      {"-0", "0"},
      {"1", "1"},
      {"1.0", "1E0"},
      {"1e2", "1E2"},
      {"0.1", "1E-1"},
      {"-0.0", "-0E0"},
      {"18446744073709551615", "18446744073709551615"},
      {"123456789012345678901", "1.2345678901234568E20"},
      {"\"x\"", "\"x\""},
      {"true", "true"},
      {"false", "false"},
      {"null", "null"},
      // Escapes are re-encoded minimally; "\u0061" is "a".
      {R"("\u0061\/\n\u0001\"\\")", R"("a/\n\u0001\"\\")"},
      {R"("é\u00e9")", "\"\xc3\xa9\xc3\xa9\""},
      {R"({"\u0062":1,"a":2})", R"({"a":2,"b":1})"},
      // Keys sort bytewise over UTF-8: uppercase before lowercase, ASCII before multibyte.
      {R"({"é":1,"z":2,"Z":3,"":4})", "{\"\":4,\"Z\":3,\"z\":2,\"\xc3\xa9\":1}"},
      // Array order is significant.
      {"[2,1]", "[2,1]"},
      // Nested objects inside arrays and objects are sorted too.
      {R"([{"b":1,"a":[{"d":1,"c":2}]}])", R"([{"a":[{"c":2,"d":1}],"b":1}])"},
  };
  for (const Case& c : cases) {
    const auto r = canonical_json(c.input);
    ASSERT_TRUE(r.has_value()) << c.input << ": " << r.error().message();
    EXPECT_EQ(*r, c.expected) << c.input;
    // Idempotent: the canonical form is its own canonical form.
    const auto again = canonical_json(*r);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *r);
  }
}

TEST(CanonicalJson, Errors) {
  const std::vector<std::string> invalid = {
      "",          "   ",      "{",   "[1,]", "{\"a\":1,}",     "{'a':1}",
      "nul",       "01",       "1 2", "{} x", "[1] // comment", "/* c */ 1",
      "\"\xff\"",   // invalid UTF-8
      "\"a\x01\"",  // raw control character
      "NaN",       "Infinity",
  };
  for (const std::string& text : invalid) {
    EXPECT_FALSE(canonical_json(text).has_value()) << text;
  }
}

TEST(CanonicalJson, DuplicateKeysAreAnError) {
  for (const char* text :
       {R"({"a":1,"a":2})", R"({"a":1,"\u0061":1})", R"([{"x":{"k":1,"j":2,"k":3}}])"}) {
    const auto r = canonical_json(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error(), make_error_code(CanonicalJsonError::duplicate_key)) << text;
  }
  // The same key in different objects is fine.
  EXPECT_TRUE(canonical_json(R"({"a":{"a":1},"b":{"a":2}})").has_value());
}

TEST(CanonicalJson, OverflowingNumberIsAnError) {
  const auto r = canonical_json("[1e400]");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(CanonicalJsonError::number_out_of_range));
  EXPECT_EQ(r.error().message(), "number out of range");
}

TEST(CanonicalJson, NumbersAreCorrectlyRounded) {
  // Equal doubles print equally whatever their spelling; integers and doubles never meet.
  EXPECT_EQ(*canonical_json("0.1"), *canonical_json("1E-1"));
  EXPECT_EQ(*canonical_json("0.1"), *canonical_json("0.10000000000000000555"));
  EXPECT_EQ(*canonical_json("1e2"), *canonical_json("100.0"));
  EXPECT_NE(*canonical_json("100"), *canonical_json("100.0"));
  EXPECT_EQ(*canonical_json("1.7976931348623157e308"), "1.7976931348623157E308");
  // Underflow is out of range too (std::from_chars reports it).
  EXPECT_EQ(canonical_json("1e-400").error(),
            make_error_code(CanonicalJsonError::number_out_of_range));
}

TEST(CanonicalJson, DepthIsBounded) {
  const auto nest = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(canonical_json(nest(kCanonicalJsonMaxDepth)).has_value());
  EXPECT_FALSE(canonical_json(nest(kCanonicalJsonMaxDepth + 1)).has_value());
  EXPECT_FALSE(canonical_json(std::string(100000, '[')).has_value());
}

TEST(CanonicalJson, LongStringsAndKeys) {
  const std::string big(100000, 'x');
  const auto r = canonical_json("{\"" + big + "\":\"" + big + "\",\"a\":1}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "{\"a\":1,\"" + big + "\":\"" + big + "\"}");
}

// ---- property-style tests over random documents ----

// A random JSON value as a tree of text pieces that can be rendered with any member order and
// whitespace.
struct Node {
  enum Kind { scalar, array, object } kind = scalar;
  std::string text;                                   // scalar
  std::vector<Node> items;                            // array
  std::vector<std::pair<std::string, Node>> members;  // object (distinct keys)
};

Node random_node(base::RandomSource& rng, int depth) {
  Node n;
  const uint64_t pick = rng.uniform(0, depth >= 4 ? 5 : 7);
  static const std::vector<std::string> scalars = {
      "0",    "1",      "-1",      "1.5",         "2e3",        "true",      "false", "null",
      "\"\"", "\"hi\"", "\"a b\"", "\"\\u00e9\"", "\"tab\\t\"", "123456789", "-0.25"};
  if (pick <= 5) {
    n.text = scalars[rng.uniform(0, scalars.size() - 1)];
  } else if (pick == 6) {
    n.kind = Node::array;
    const uint64_t count = rng.uniform(0, 4);
    for (uint64_t i = 0; i < count; ++i) n.items.push_back(random_node(rng, depth + 1));
  } else {
    n.kind = Node::object;
    const uint64_t count = rng.uniform(0, 5);
    for (uint64_t i = 0; i < count; ++i) {
      n.members.emplace_back("k" + std::to_string(i * 7 % 5) + std::to_string(i),
                             random_node(rng, depth + 1));
    }
  }
  return n;
}

std::string space(base::RandomSource& rng) {
  static const char* kSpaces[] = {"", " ", "\n", "\t ", "\r\n  "};
  return kSpaces[rng.uniform(0, 4)];
}

std::string render(const Node& n, base::RandomSource& rng) {
  std::string out = space(rng);
  switch (n.kind) {
    case Node::scalar:
      out += n.text;
      break;
    case Node::array:
      out += "[";
      for (size_t i = 0; i < n.items.size(); ++i) {
        if (i > 0) out += "," + space(rng);
        out += render(n.items[i], rng);
      }
      out += space(rng) + "]";
      break;
    case Node::object: {
      std::vector<size_t> order(n.members.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      for (size_t i = order.size(); i > 1; --i)
        std::swap(order[i - 1], order[rng.uniform(0, i - 1)]);
      out += "{";
      for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0) out += ",";
        const auto& [key, value] = n.members[order[i]];
        out += space(rng) + "\"" + key + "\"" + space(rng) + ":" + render(value, rng);
      }
      out += space(rng) + "}";
      break;
    }
  }
  return out + space(rng);
}

// Changes one scalar somewhere in the tree to a different one. Returns false if none.
bool mutate(Node& n, base::RandomSource& rng) {
  switch (n.kind) {
    case Node::scalar:
      n.text = n.text == "7" ? "8" : "7";
      return true;
    case Node::array:
      for (auto& item : n.items) {
        if (mutate(item, rng)) return true;
      }
      n.items.push_back(Node{Node::scalar, "7", {}, {}});
      return true;
    case Node::object:
      if (!n.members.empty())
        return mutate(n.members[rng.uniform(0, n.members.size() - 1)].second, rng);
      n.members.emplace_back("new", Node{Node::scalar, "7", {}, {}});
      return true;
  }
  return false;
}

TEST(CanonicalJson, PermutedKeysAndWhitespaceGiveEqualOutput) {
  base::Xoshiro256 rng(42);
  for (int doc = 0; doc < 300; ++doc) {
    const Node n = random_node(rng, 0);
    const std::string a = render(n, rng);
    const std::string b = render(n, rng);
    const auto ca = canonical_json(a);
    const auto cb = canonical_json(b);
    ASSERT_TRUE(ca.has_value()) << a;
    ASSERT_TRUE(cb.has_value()) << b;
    EXPECT_EQ(*ca, *cb) << a << "\nvs\n" << b;
  }
}

TEST(CanonicalJson, DifferentValuesGiveDifferentOutput) {
  base::Xoshiro256 rng(7);
  for (int doc = 0; doc < 300; ++doc) {
    const Node n = random_node(rng, 0);
    Node m = n;
    ASSERT_TRUE(mutate(m, rng));
    const auto ca = canonical_json(render(n, rng));
    const auto cb = canonical_json(render(m, rng));
    ASSERT_TRUE(ca.has_value());
    ASSERT_TRUE(cb.has_value());
    EXPECT_NE(*ca, *cb);
  }
  // Targeted: same keys, different values; 1 vs 1.0; key renamed; array order.
  EXPECT_NE(*canonical_json(R"({"a":1})"), *canonical_json(R"({"a":1.0})"));
  EXPECT_NE(*canonical_json(R"({"a":1})"), *canonical_json(R"({"b":1})"));
  EXPECT_NE(*canonical_json(R"({"a":"1"})"), *canonical_json(R"({"a":1})"));
  EXPECT_NE(*canonical_json("[1,2]"), *canonical_json("[2,1]"));
  EXPECT_NE(*canonical_json(R"({"a":{"b":1}})"), *canonical_json(R"({"a":[{"b":1}]})"));
}

}  // namespace
}  // namespace sluice::gateway
