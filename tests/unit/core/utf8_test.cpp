#include "core/utf8.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>

#include <string>

namespace intercomm::core {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  for (const std::string& text : {std::string(""), std::string("merhaba"), std::string("Grüße"),
                                  std::string("日本語"), std::string("\xF0\x9F\x98\x80"),  // U+1F600
                                  std::string("\xF4\x8F\xBF\xBF"),                         // U+10FFFF
                                  std::string("\xEE\x80\x80"),                             // U+E000
                                  std::string("a\0b", 3)}) {
    EXPECT_TRUE(is_valid_utf8(text)) << text;
  }
}

TEST(Utf8, RefusesMalformedText) {
  for (const std::string& text : {
           std::string("\x80"),              // lone continuation
           std::string("\xC3"),              // truncated 2-byte
           std::string("\xE6\x97"),          // truncated 3-byte
           std::string("\xF0\x9F\x98"),      // truncated 4-byte
           std::string("\xC3\x28"),          // bad continuation
           std::string("\xC0\xAF"),          // overlong '/'
           std::string("\xE0\x80\xAF"),      // overlong 3-byte
           std::string("\xF0\x80\x80\xAF"),  // overlong 4-byte
           std::string("\xED\xA0\x80"),      // U+D800 surrogate
           std::string("\xED\xBF\xBF"),      // U+DFFF surrogate
           std::string("\xF4\x90\x80\x80"),  // U+110000
           std::string("\xF5\x80\x80\x80"),  // lead past F4
           std::string("\xFF"),
           std::string("ok\xE2\x82"),  // truncated at the end of valid text
       }) {
    EXPECT_FALSE(is_valid_utf8(text)) << testing::PrintToString(text);
  }
}

TEST(Utf8, ReplacementKeepsValidTextAndMarksEachBadByte) {
  EXPECT_EQ(replace_invalid_utf8("Gr\xC3\xBC\xC3\x9F"), "Gr\xC3\xBC\xC3\x9F");
  const std::string fixed = replace_invalid_utf8(
      "a\xC3\x28\xFF"
      "b");
  EXPECT_TRUE(is_valid_utf8(fixed));
  EXPECT_EQ(fixed,
            "a\xEF\xBF\xBD(\xEF\xBF\xBD"
            "b");
}

}  // namespace
}  // namespace intercomm::core
