// TokenMark with the LockTable: tokens come from blocks reserved in the
// state directory before use, so a restart never goes back, whatever the
// clock says. A small block makes the table cross many block ends.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "token_mark.hpp"

using namespace glockd;

namespace {

class StateDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/glockd-token-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unlink((dir_ + "/fencing-token").c_str());
    ::unlink((dir_ + "/fencing-token.tmp").c_str());
    ::rmdir(dir_.c_str());
  }
  std::uint64_t stored() {
    std::ifstream f(dir_ + "/fencing-token");
    std::uint64_t v = 0;
    f >> v;
    return v;
  }
  void write_mark(const std::string& text) { std::ofstream(dir_ + "/fencing-token") << text; }

  // One run of a daemon: `n` acquisitions; returns the last token.
  std::uint64_t run(std::uint64_t clock, int n, std::uint64_t block) {
    TokenMark mark(block);
    EXPECT_EQ(mark.open(dir_), "");
    EXPECT_EQ(mark.start(clock), "");
    LockTable table;
    table.seed_tokens(mark.first(), mark.mark(), &mark);
    Holdings h;
    std::uint64_t last = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(table.acquire(1, h, "a").ok);
      const std::uint64_t t = table.token(1, "a");
      EXPECT_GT(t, last);
      // Every token issued is below the mark stored on disk.
      EXPECT_LT(t, stored());
      last = t;
      EXPECT_TRUE(table.release(1, h, "a"));
    }
    return last;
  }

  std::string dir_;
};

TEST_F(StateDir, FirstStartSeedsFromTheClockAndStoresTheBlockEnd) {
  TokenMark mark(16);
  ASSERT_EQ(mark.open(dir_), "");
  EXPECT_EQ(mark.stored_before(), 0u);
  ASSERT_EQ(mark.start(1000), "");
  EXPECT_EQ(mark.first(), 1000u);
  EXPECT_EQ(mark.mark(), 1016u);
  EXPECT_EQ(stored(), 1016u);
}

TEST_F(StateDir, TokensCrossBlockEndsAndRestartsNeverGoBack) {
  // A clock far behind the tokens (a fast run, or a clock stepped back):
  // every run starts above the last one's tokens anyway.
  std::uint64_t last = run(5000, 100, 7);
  for (int restart = 0; restart < 5; ++restart) {
    const std::uint64_t next = run(10, 50, 7);
    EXPECT_GT(next - 49, last);  // the run's first token
    last = next;
  }
}

TEST_F(StateDir, AClockAheadOfTheMarkWins) {
  const std::uint64_t last = run(100, 10, 1 << 20);
  EXPECT_LT(last, 200u);
  EXPECT_GE(run(1'000'000'000, 1, 1 << 20), 1'000'000'000u);
}

TEST_F(StateDir, UnusableStateIsRefusedWithItsName) {
  TokenMark missing;
  const std::string err = missing.open(dir_ + "/nope");
  EXPECT_NE(err.find("--state-dir " + dir_ + "/nope"), std::string::npos) << err;
  for (const char* bad : {"not a number\n", "", "\n", " 12\n", "12 \n", "12\r\n", "-1\n", "1e9\n",
                          "18446744073709551616\n", "123                                    9\n"}) {
    write_mark(bad);
    TokenMark m;
    EXPECT_NE(m.open(dir_).find("does not hold a token number"), std::string::npos) << bad;
  }
  // Near 2^53, or so large that adding a block would wrap: refused.
  for (const char* near : {"9007199254740990\n", "18446744073709551611\n"}) {
    write_mark(near);
    TokenMark full;
    ASSERT_EQ(full.open(dir_), "");
    EXPECT_NE(full.start(1).find("2^53"), std::string::npos) << near;
  }
}

TEST_F(StateDir, OneGlockdPerStateDirectory) {
  TokenMark first(16), second(16);
  ASSERT_EQ(first.open(dir_), "");
  EXPECT_NE(second.open(dir_).find("another glockd is using it"), std::string::npos);
}

TEST_F(StateDir, TheTemporaryFileNeverFollowsASymlink) {
  const std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "precious\n";
  ASSERT_EQ(::symlink(victim.c_str(), (dir_ + "/fencing-token.tmp").c_str()), 0);
  TokenMark mark(16);
  ASSERT_EQ(mark.open(dir_), "");
  ASSERT_EQ(mark.start(1000), "");
  std::ifstream f(victim);
  std::string text;
  std::getline(f, text);
  EXPECT_EQ(text, "precious");
  EXPECT_EQ(stored(), 1016u);
  ::unlink(victim.c_str());
}

}  // namespace
