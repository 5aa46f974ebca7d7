#include "core/errors.hpp"  // first: the header is self-contained

#include "core/jsonrpc.hpp"

#include <gtest/gtest.h>

#include <set>

namespace intercomm::core {
namespace {

// DESIGN.md's error table, row by row: code, message, HTTP status (and the
// rows docs/API.md adds).
struct Row {
  std::int32_t code;
  std::string_view message;
  int status;
};
constexpr Row kDesignTable[] = {
    {-32700, "Parse error", 400},    {-32600, "Invalid Request", 400}, {-32601, "Method not found", 501},
    {-32602, "Invalid params", 400}, {-32603, "Internal error", 500},  {-32004, "Not found", 404},
    {-32003, "Forbidden", 403},      {-32009, "Conflict", 409},        {-32001, "Unauthorized", 401},
    {-32010, "Unavailable", 503},
    {-32011, "Timeout", 504},
    {-32029, "Too many requests", 429},  // beyond DESIGN.md: the rate limits (docs/API.md)
};

TEST(ErrorTable, EveryNamedCodeMatchesDesignTable) {
  ASSERT_EQ(std::size(kAllErrorCodes), std::size(kDesignTable));
  for (std::size_t i = 0; i < std::size(kDesignTable); ++i) {
    const ErrorCode code = kAllErrorCodes[i];
    SCOPED_TRACE(kDesignTable[i].message);
    EXPECT_EQ(to_int(code), kDesignTable[i].code);
    EXPECT_EQ(standard_message(code), kDesignTable[i].message);
    EXPECT_EQ(http_status(code), kDesignTable[i].status);
  }
}

TEST(ErrorTable, CodesAreDistinct) {
  std::set<std::int32_t> seen;
  for (ErrorCode code : kAllErrorCodes) EXPECT_TRUE(seen.insert(to_int(code)).second) << to_int(code);
}

TEST(ErrorTable, UnknownCodeIsServerErrorAnd500) {
  const auto foreign = static_cast<ErrorCode>(-32050);
  EXPECT_EQ(standard_message(foreign), "Server error");
  EXPECT_EQ(http_status(foreign), 500);
}

TEST(ErrorTable, EveryCodeSurvivesTheWire) {
  for (ErrorCode code : kAllErrorCodes) {
    const auto wire = jsonrpc::serialize(jsonrpc::make_error("id-1", Error::of(code)));
    auto parsed = jsonrpc::parse_response(wire);
    ASSERT_TRUE(parsed) << wire;
    ASSERT_FALSE(parsed->outcome);
    EXPECT_EQ(parsed->outcome.error().code, code);
    EXPECT_EQ(parsed->outcome.error().message, standard_message(code));
  }
}

TEST(Result, ValueOfFailureThrowsTheError) {
  Result<int> failed = Error::of(ErrorCode::not_found, "message X: not found");
  try {
    (void)failed.value();
    FAIL() << "value() of a failed result returned";
  } catch (const ErrorException& e) {
    EXPECT_EQ(e.error().code, ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "message X: not found");
  }
}

}  // namespace
}  // namespace intercomm::core
