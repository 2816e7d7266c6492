// LineReader: framing of requests across reads, overlong lines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "line_reader.hpp"

using glockd::LineReader;

namespace {
struct Collect {
  std::vector<std::string> lines;
  int overlong = 0;
  void feed(LineReader& r, std::string_view data) {
    r.feed(
        data, [&](std::string_view l) { lines.emplace_back(l); return true; },
        [&] { ++overlong; });
  }
};
}  // namespace

TEST(LineReader, SplitsManyLinesInOneRead) {
  LineReader r(100);
  Collect c;
  c.feed(r, "a\nbb\n\nccc\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"a", "bb", "", "ccc"}));
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(LineReader, JoinsALineSplitAtEveryByte) {
  const std::string input = "g foo\r\nsg bar\n";
  LineReader r(100);
  Collect c;
  for (char ch : input) c.feed(r, std::string_view(&ch, 1));
  EXPECT_EQ(c.lines, (std::vector<std::string>{"g foo\r", "sg bar"}));
}

TEST(LineReader, KeepsIncompleteTail) {
  LineReader r(100);
  Collect c;
  c.feed(r, "g fo");
  EXPECT_TRUE(c.lines.empty());
  EXPECT_EQ(r.buffered(), 4u);
  c.feed(r, "o\ni");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"g foo"}));
  EXPECT_EQ(r.buffered(), 1u);
}

TEST(LineReader, LineAtTheLimitIsKeptOneOverIsDiscarded) {
  LineReader r(8);
  Collect c;
  c.feed(r, "12345678\n123456789\nok\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"12345678", "ok"}));
  EXPECT_EQ(c.overlong, 1);
}

TEST(LineReader, OverlongAcrossReadsIsDiscardedUpToNewline) {
  LineReader r(8);
  Collect c;
  c.feed(r, "12345");
  c.feed(r, "67890");  // over the limit without a newline yet
  EXPECT_EQ(c.overlong, 1);
  c.feed(r, std::string(10000, 'x'));
  c.feed(r, "tail\ng a\n");
  EXPECT_EQ(c.overlong, 1);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"g a"}));
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(LineReader, OverlongWhenPartialPlusRestExceeds) {
  LineReader r(8);
  Collect c;
  c.feed(r, "12345");
  c.feed(r, "6789\nok\n");
  EXPECT_EQ(c.overlong, 1);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"ok"}));
}

TEST(LineReader, StopsWhenAskedAndReportsConsumed) {
  LineReader r(100);
  std::vector<std::string> lines;
  const std::string data = "a\nb\nc\n";
  const std::size_t used = r.feed(
      data, [&](std::string_view l) { lines.emplace_back(l); return l != "b"; }, [] {});
  EXPECT_EQ(used, 4u);
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b"}));
}
