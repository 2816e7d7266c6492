// Protocol: every command's answer, byte for byte, and every feature toggle.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "protocol.hpp"

using namespace glockd;

namespace {

// Predictable session tokens: token1, token2, ...
int tokens_made = 0;
std::string counting_tokens(int&) { return "token" + std::to_string(++tokens_made); }

class ProtocolTest : public ::testing::Test {
 protected:
  void make(Features f = {}) {
    proto = std::make_unique<Protocol>(table, registry, stats, f, &counting_tokens);
    for (Session& one : s) proto->attach(one);
  }
  void SetUp() override {
    tokens_made = 0;
    const char* addrs[] = {"127.0.0.1:5001", "unix:3", "[::1]:6000"};
    for (ConnId i = 0; i < 3; ++i) {
      s[i].id = i;
      s[i].addr = addrs[i];
    }
    make();
  }
  std::string ask(int who, std::string_view line) {
    std::string out;
    last = proto->handle_line(s[who], line, out);
    if (last.count_connections) proto->answer_stats(open, out);
    return out;
  }
  LockTable table;
  Registry registry;
  Stats stats;
  std::size_t open = 3;  // what the loop would count for `q`
  Outcome last;
  Session s[3];
  std::unique_ptr<Protocol> proto;
};

}  // namespace

TEST(ParseRequest, TrimsAndCollapsesWhitespace) {
  std::string scratch;
  auto r = parse_request("  g   my \t  lock  \r", scratch);
  EXPECT_EQ(r.command, "g");
  EXPECT_EQ(r.argument, "my lock");
  r = parse_request("g", scratch);
  EXPECT_EQ(r.command, "g");
  EXPECT_EQ(r.argument, "");
  r = parse_request("g\tfoo", scratch);  // the command ends at a space only
  EXPECT_EQ(r.command, "g\tfoo");
  r = parse_request("sg a b", scratch);
  EXPECT_EQ(r.argument, "a b");
}

TEST_F(ProtocolTest, ExclusiveLocks) {
  EXPECT_EQ(ask(0, "g foo"), "1 Lock Get Success: foo\n");
  EXPECT_EQ(ask(0, "g foo"), "1 Lock Get Success: foo\n");
  EXPECT_EQ(ask(1, "g foo"), "0 Lock Get Failure: foo\n");
  EXPECT_EQ(ask(1, "i foo"), "1 Lock Is Locked: foo\n");
  EXPECT_EQ(ask(1, "r foo"), "0 Lock Release Failure: foo\n");
  EXPECT_EQ(ask(0, "r foo"), "1 Lock Release Success: foo\n");
  EXPECT_EQ(ask(1, "i foo"), "0 Lock Not Locked: foo\n");
  EXPECT_EQ(ask(1, "g"), "1 Lock Get Success: \n");
  EXPECT_EQ(ask(0, " g  my   lock \r"), "1 Lock Get Success: my lock\n");
}

TEST_F(ProtocolTest, SharedLocksCount) {
  EXPECT_EQ(ask(0, "sg s"), "1 Shared Lock Get Success: s\n");
  EXPECT_EQ(ask(1, "sg s"), "2 Shared Lock Get Success: s\n");
  EXPECT_EQ(ask(1, "sg s"), "2 Shared Lock Get Success: s\n");
  EXPECT_EQ(ask(2, "si s"), "2 Shared Lock Is Locked: s\n");
  EXPECT_EQ(ask(2, "sr s"), "0 Shared Lock Release Failure: s\n");
  EXPECT_EQ(ask(0, "sr s"), "1 Shared Lock Release Success: s\n");
  EXPECT_EQ(ask(2, "si s"), "1 Shared Lock Is Locked: s\n");
  EXPECT_EQ(ask(1, "sr s"), "1 Shared Lock Release Success: s\n");
  EXPECT_EQ(ask(2, "si s"), "0 Shared Lock Not Locked: s\n");
  EXPECT_EQ(ask(2, "g s"), "1 Lock Get Success: s\n");  // separate namespace
}

TEST_F(ProtocolTest, BlankAndUnknownGetNoAnswer) {
  EXPECT_EQ(ask(0, ""), "");
  EXPECT_EQ(ask(0, "  \r"), "");
  EXPECT_EQ(stats.invalid_commands, 0u);
  EXPECT_EQ(ask(0, "bogus"), "");
  EXPECT_EQ(ask(0, "G foo"), "");
  EXPECT_EQ(ask(0, "g\tfoo"), "");
  EXPECT_EQ(stats.invalid_commands, 3u);
  EXPECT_FALSE(table.is_locked("foo"));
}

TEST_F(ProtocolTest, DumpLines) {
  ask(0, "g b");
  ask(1, "g a");
  ask(2, "sg s");
  ask(0, "sg s");
  EXPECT_EQ(ask(2, "d"), "a: unix:3\nb: 127.0.0.1:5001\n");
  EXPECT_EQ(ask(2, "d b"), "b: 127.0.0.1:5001\n");
  EXPECT_EQ(ask(2, "d nope"), "");
  EXPECT_EQ(ask(2, "sd"), "s: [::1]:6000\ns: 127.0.0.1:5001\n");
  EXPECT_EQ(ask(2, "sd s"), "s: [::1]:6000\ns: 127.0.0.1:5001\n");
  ask(1, "iam worker");
  EXPECT_EQ(ask(2, "d a"), "a: worker\n");
}

TEST_F(ProtocolTest, DumpMapsInGoNotation) {
  EXPECT_EQ(ask(0, "dump"), "map[]\n");
  EXPECT_EQ(ask(0, "dump shared"), "map[]\n");
  ask(0, "g foo");
  ask(1, "g bar");
  ask(1, "sg foo");
  ask(0, "sg foo");
  ask(1, "iam named");  // dump shows raw addresses, never names
  EXPECT_EQ(ask(2, "dump"), "map[bar:unix:3 foo:127.0.0.1:5001]\n");
  EXPECT_EQ(ask(2, "dump shared"), "map[foo:[unix:3 127.0.0.1:5001]]\n");
}

TEST_F(ProtocolTest, DumpDisabled) {
  make(Features{false, true});
  for (auto req : {"d", "d x", "sd", "sd x", "dump", "dump shared", "who", "who x"})
    EXPECT_EQ(ask(0, req), "0 disabled\n") << req;
  EXPECT_EQ(ask(0, "iam x"), "1 ok\n");
}

TEST_F(ProtocolTest, Registry) {
  EXPECT_EQ(ask(0, "me"), "1 127.0.0.1:5001 127.0.0.1:5001\n");
  EXPECT_EQ(ask(0, "iam alice"), "1 ok\n");
  EXPECT_EQ(ask(0, "me"), "1 127.0.0.1:5001 alice\n");
  EXPECT_EQ(ask(1, "iam bob"), "1 ok\n");
  EXPECT_EQ(ask(2, "iam alice"), "1 ok\n");
  EXPECT_EQ(ask(2, "who"), "127.0.0.1:5001: alice\nunix:3: bob\n[::1]:6000: alice\n");
  EXPECT_EQ(ask(0, "iam   alice  "), "1 ok\n");  // moves to the end
  EXPECT_EQ(ask(2, "who alice"), "[::1]:6000: alice\n127.0.0.1:5001: alice\n");
  EXPECT_EQ(ask(1, "iam"), "1 ok\n");  // unregisters
  EXPECT_EQ(ask(1, "me"), "1 unix:3 unix:3\n");
  EXPECT_EQ(ask(1, "who bob"), "");
}

TEST_F(ProtocolTest, RegistryDisabled) {
  make(Features{true, false});
  EXPECT_EQ(ask(0, "iam alice"), "0 disabled\n");
  EXPECT_EQ(ask(0, "who"), "0 disabled\n");
  EXPECT_EQ(ask(0, "me"), "1 127.0.0.1:5001 127.0.0.1:5001\n");
  EXPECT_EQ(stats.commands[static_cast<int>(Command::iam)], 1u);
}

TEST_F(ProtocolTest, StatsHaveExactlyTheNineteenKeys) {
  ask(0, "g a");
  ask(1, "g a");
  ask(1, "sg b");
  ask(2, "junk");
  proto->overlong_line();
  (void)proto->disconnect(s[0]);
  (void)proto->disconnect(s[1]);
  open = 1;
  EXPECT_EQ(ask(2, "q"),
            "command_d: 0\ncommand_dump: 0\ncommand_g: 2\ncommand_i: 0\ncommand_iam: 0\n"
            "command_me: 0\ncommand_q: 1\ncommand_r: 0\ncommand_sd: 0\ncommand_sg: 1\n"
            "command_si: 0\ncommand_sr: 0\ncommand_who: 0\nconnections: 1\n"
            "invalid_commands: 2\nlocks: 0\norphans: 1\nshared_locks: 0\nshared_orphans: 1\n");
}

TEST_F(ProtocolTest, DisconnectOrphansAndUnregisters) {
  ask(0, "g a");
  ask(0, "sg b");
  ask(0, "iam gone");
  (void)proto->disconnect(s[0]);
  EXPECT_EQ(ask(1, "g a"), "1 Lock Get Success: a\n");
  EXPECT_EQ(ask(1, "si b"), "0 Shared Lock Not Locked: b\n");
  EXPECT_EQ(ask(1, "who"), "");
  EXPECT_EQ(stats.orphans, 1u);
  EXPECT_EQ(stats.shared_orphans, 1u);
}

TEST_F(ProtocolTest, TokensAndReleaseAll) {
  EXPECT_EQ(ask(0, "t a"), "0 Lock Token Failure: a\n");
  ask(0, "g a");
  const std::string tok = ask(0, "t a");
  EXPECT_TRUE(tok.ends_with(" Lock Token: a\n")) << tok;
  EXPECT_EQ(ask(1, "t a"), "0 Lock Token Failure: a\n");
  ask(0, "g b");
  ask(0, "sg c");
  EXPECT_EQ(ask(0, "ra"), "1 Release All Success: 2 1\n");
  EXPECT_EQ(stats.orphans, 0u);
  EXPECT_EQ(ask(1, "i a"), "0 Lock Not Locked: a\n");
  // The q key set never grows with Part 2 commands.
  EXPECT_EQ(ask(0, "q").find("command_t"), std::string::npos);
}

TEST_F(ProtocolTest, WaitAnswersAndBadRequests) {
  EXPECT_EQ(ask(0, "w 100 x"), "1 Lock Get Success: x\n");
  EXPECT_EQ(ask(1, "w 0 x"), "0 Lock Get Failure: x\n");
  EXPECT_EQ(ask(1, "w x"), "0 Bad Request: w needs MS NAME with MS a number from 0 to 2147483647\n");
  EXPECT_EQ(ask(1, "w 2147483648 x").substr(0, 15), "0 Bad Request: ");
  EXPECT_EQ(ask(1, "w -1 x").substr(0, 15), "0 Bad Request: ");
  EXPECT_EQ(ask(1, "sw 0 10 s").substr(0, 15), "0 Bad Request: ");
  EXPECT_EQ(ask(1, "sw 2").substr(0, 15), "0 Bad Request: ");
  std::string out;
  const Outcome o = proto->handle_line(s[1], "w 500 x", out);
  EXPECT_TRUE(o.blocked);
  EXPECT_EQ(o.wait_ms, 500u);
  EXPECT_EQ(out, "");
  ask(0, "r x");
  ASSERT_EQ(table.grants().size(), 1u);
  std::string granted;
  proto->answer_grant(table.grants()[0], granted);
  table.grants().clear();
  EXPECT_EQ(granted, "1 Lock Get Success: x\n");
  EXPECT_TRUE(proto->handle_line(s[2], "sw 1 500 x", out).blocked == false);
  EXPECT_TRUE(proto->handle_line(s[0], "sw 1 500 x", out).blocked);
  std::string expired;
  (void)proto->expire_wait(s[0], expired);
  EXPECT_EQ(expired, "0 Shared Lock Get Failure: x\n");
  EXPECT_EQ(table.waiters(), 0u);
}

TEST_F(ProtocolTest, GraceSessionResume) {
  EXPECT_EQ(ask(0, "grace 5000"), "1 Grace Set: 5000\n");
  EXPECT_EQ(ask(0, "grace 600001").substr(0, 15), "0 Bad Request: ");
  EXPECT_EQ(ask(0, "grace x").substr(0, 15), "0 Bad Request: ");
  EXPECT_EQ(ask(0, "session"), "1 Session: token1\n");
  EXPECT_EQ(ask(0, "session"), "1 Session: token1\n");  // one token per connection
  ask(0, "g a");
  ask(0, "sg s");
  ask(1, "sg s");
  EXPECT_EQ(ask(1, "resume token1"), "0 Resume Failure\n");  // not dropped yet
  EXPECT_TRUE(proto->disconnect(s[0]).kept);  // kept for its grace
  EXPECT_TRUE(s[0].kept);
  EXPECT_EQ(ask(2, "i a"), "1 Lock Is Locked: a\n");
  EXPECT_EQ(ask(1, "resume nope"), "0 Resume Failure\n");
  // Conn 1 already holds s: it is kept once.
  EXPECT_EQ(ask(1, "resume token1"), "1 Resume Success: 1 1\n");
  EXPECT_EQ(last.taken_over, 0u);  // the loop frees that slot
  EXPECT_FALSE(s[0].kept);
  EXPECT_EQ(ask(1, "r a"), "1 Lock Release Success: a\n");
  EXPECT_EQ(ask(2, "si s"), "1 Shared Lock Is Locked: s\n");
  EXPECT_EQ(stats.orphans, 0u);
  // The token moved with the locks, and the grace too.
  EXPECT_EQ(ask(1, "session"), "1 Session: token1\n");
  ask(1, "g b");
  EXPECT_TRUE(proto->disconnect(s[1]).kept);
  (void)proto->expire_detached(s[1]);
  EXPECT_EQ(stats.orphans, 1u);
  EXPECT_EQ(ask(2, "resume token1"), "0 Resume Failure\n");
}

TEST_F(ProtocolTest, NoGraceOrNoLocksMeansOrphanAtOnce) {
  ask(0, "g a");
  EXPECT_FALSE(proto->disconnect(s[0]).kept);
  EXPECT_EQ(stats.orphans, 1u);
  ask(1, "grace 100");
  EXPECT_FALSE(proto->disconnect(s[1]).kept);  // nothing to keep
}

TEST_F(ProtocolTest, LocksPerConnectionBound) {
  proto->set_limits(2, nullptr);
  EXPECT_EQ(ask(0, "g a"), "1 Lock Get Success: a\n");
  EXPECT_EQ(ask(0, "sg b"), "1 Shared Lock Get Success: b\n");
  EXPECT_EQ(ask(0, "g c"), "0 Lock Get Failure: c\n");
  EXPECT_EQ(last.refused, Refusal::LockLimit);
  EXPECT_EQ(ask(0, "sg d"), "0 Shared Lock Get Failure: d\n");
  EXPECT_EQ(ask(0, "w 0 c"), "0 Lock Get Failure: c\n");
  EXPECT_EQ(ask(0, "sw 3 0 d"), "0 Shared Lock Get Failure: d\n");
  EXPECT_EQ(stats.lock_limit_refusals, 4u);
  // What it holds is granted again; nothing was taken by the refusals.
  EXPECT_EQ(ask(0, "g a"), "1 Lock Get Success: a\n");
  EXPECT_EQ(last.refused, Refusal::None);
  EXPECT_EQ(ask(0, "sg b"), "1 Shared Lock Get Success: b\n");
  EXPECT_EQ(ask(1, "i c"), "0 Lock Not Locked: c\n");
  EXPECT_EQ(ask(1, "g c"), "1 Lock Get Success: c\n");  // per connection
  EXPECT_EQ(stats.commands[static_cast<std::size_t>(Command::g)], 4u);
}

TEST_F(ProtocolTest, MemoryBudgetRefusesGrowthAndTakesInspectionsInTurn) {
  MemoryBudget budget(table.memory_bytes() + 1, table);
  proto->set_limits(0, &budget);
  EXPECT_EQ(ask(0, "g a"), "1 Lock Get Success: a\n");  // under the budget
  budget.set_limit(table.memory_bytes());               // now at it
  EXPECT_EQ(ask(1, "g b"), "0 Lock Get Failure: b\n");
  EXPECT_EQ(last.refused, Refusal::MemoryFull);
  EXPECT_EQ(ask(1, "sg b"), "0 Shared Lock Get Failure: b\n");
  EXPECT_EQ(ask(1, "w 10 b"), "0 Lock Get Failure: b\n");
  EXPECT_FALSE(last.blocked);
  EXPECT_EQ(ask(1, "iam bob"), "0 Bad Request: memory limit\n");
  EXPECT_EQ(ask(1, "grace 100"), "0 Bad Request: memory limit\n");
  EXPECT_EQ(ask(1, "session"), "0 Bad Request: memory limit\n");
  EXPECT_EQ(ask(1, "grace 0"), "1 Grace Set: 0\n");  // shrinks nothing, grows nothing
  EXPECT_EQ(ask(0, "g a"), "1 Lock Get Success: a\n");
  EXPECT_EQ(stats.memory_refusals, 6u);
  // One inspection at a time past the budget: the second is handed back.
  EXPECT_EQ(ask(0, "d"), "a: 127.0.0.1:5001\n");
  EXPECT_EQ(ask(1, "d"), "");
  EXPECT_TRUE(last.retry);
  budget.inspection_done(0);
  EXPECT_EQ(ask(1, "d"), "a: 127.0.0.1:5001\n");
  EXPECT_FALSE(last.retry);
}
