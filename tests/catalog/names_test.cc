// Unit tests of name validation (SPEC section 7): every record key and every
// name inside files/ becomes a directory entry, so all of them obey the same
// rules: UTF-8, 1..255 bytes, no '/', no NUL, not "." or "..".
#include "catalog/names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace samplefs {
namespace {

using ::testing::HasSubstr;

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ASCII, with spaces & 'quotes'"));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));          // é, 2 bytes
  EXPECT_TRUE(IsValidUtf8("\xE6\x97\xA5\xE6\x9C\xAC"));  // 日本, 3 bytes each
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x94\xAC"));  // 🔬, 4 bytes
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF, just below surrogates
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000, just above surrogates
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_TRUE(IsValidUtf8(std::string_view("a\0b", 3)));  // NUL is UTF-8; names refuse it
}

TEST(Utf8Test, RefusesMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // truncated 2-byte sequence
  EXPECT_FALSE(IsValidUtf8("\xE6\x97"));          // truncated 3-byte sequence
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x94"));      // truncated 4-byte sequence
  EXPECT_FALSE(IsValidUtf8("\xC3(")); // bad continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // U+D800, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));      // U+DFFF, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000, beyond Unicode
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(IsValidUtf8("\xFE"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("ok\xFF"));            // bad byte at the end
}

TEST(ValidateNameTest, AcceptsOrdinaryAndAwkwardNames) {
  for (std::string name :
       {std::string("HeLa"), std::string("a"), std::string("with space"), std::string("it's"),
        std::string("\"double\""), std::string("x'); DROP TABLE slide;--"),
        std::string("%_*?[]{}\\"), std::string("\xC3\x9C\x62\x65r Stra\xC3\x9F\x65 \xE6\x97\xA5"),
        std::string("\xF0\x9F\x94\xAC scope"), std::string("..."), std::string(".hidden"),
        std::string("trailing."), std::string("a..b"), std::string(" leading space"),
        std::string(255, 'x')}) {
    Status s = ValidateName(name);
    EXPECT_TRUE(s.ok()) << "'" << name << "': " << s.ToString();
  }
}

TEST(ValidateNameTest, ExactlyTheByteLimit) {
  // 255 bytes made of 2-byte characters plus one ASCII byte: the limit is
  // in bytes, not characters.
  std::string name;
  while (name.size() + 2 <= 255) name += "\xC3\xA9";
  name += "e";
  ASSERT_EQ(name.size(), 255u);
  EXPECT_TRUE(ValidateName(name).ok());
  EXPECT_EQ(ValidateName(name + "e").code(), Code::kNameTooLong);
  EXPECT_EQ(kMaxNameBytes, 255u);
}

TEST(ValidateNameTest, RefusesBadNamesWithTheRightCode) {
  struct Case {
    std::string name;
    Code code;
    const char* message_part;
  };
  const Case cases[] = {
      {"", Code::kInvalidArgument, "empty"},
      {std::string(256, 'x'), Code::kNameTooLong, "256 bytes"},
      {std::string(4096, 'x'), Code::kNameTooLong, "limit is 255"},
      {"a/b", Code::kInvalidArgument, "'/'"},
      {"/", Code::kInvalidArgument, "'/'"},
      {"trailing/", Code::kInvalidArgument, "'/'"},
      {std::string("a\0b", 3), Code::kInvalidArgument, "NUL"},
      {std::string("\0", 1), Code::kInvalidArgument, "NUL"},
      {".", Code::kInvalidArgument, "'.'"},
      {"..", Code::kInvalidArgument, "'..'"},
      {"\xFF\xFE", Code::kInvalidArgument, "UTF-8"},
      {"caf\xE9", Code::kInvalidArgument, "UTF-8"},  // Latin-1, not UTF-8
      {"\xC0\xAF", Code::kInvalidArgument, "UTF-8"},
      {"\xED\xA0\x80", Code::kInvalidArgument, "UTF-8"},
  };
  for (const auto& c : cases) {
    Status s = ValidateName(c.name, "slide reference");
    EXPECT_EQ(s.code(), c.code) << "name of " << c.name.size() << " bytes: " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(c.message_part));
    // The message names what was being validated.
    EXPECT_THAT(s.message(), HasSubstr("slide reference"));
  }
}

TEST(ValidateNameTest, ErrnoOfRefusals) {
  EXPECT_EQ(ValidateName("").to_errno(), EINVAL);
  EXPECT_EQ(ValidateName(std::string(256, 'x')).to_errno(), ENAMETOOLONG);
  EXPECT_EQ(ValidateName("a/b").to_errno(), EINVAL);
}

}  // namespace
}  // namespace samplefs
