// Command line: Go-style flag forms, defaults and refused values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.hpp"

using namespace glockd;

namespace {
ParseOutcome parse(std::vector<std::string> args, Config& c) {
  args.insert(args.begin(), "glockd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), c);
}
}  // namespace

TEST(Config, Defaults) {
  Config c;
  EXPECT_EQ(parse({}, c).action, ParseOutcome::Action::Run);
  EXPECT_EQ(c.port, 9999);
  EXPECT_EQ(c.ws_port, 9998);
  EXPECT_TRUE(c.dump);
  EXPECT_TRUE(c.registry);
  EXPECT_FALSE(c.verbose);
  EXPECT_EQ(c.max_line, 8192u);
  EXPECT_EQ(c.unix_mode, 0666u);
}

TEST(Config, GoStyleFlagForms) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"-port", "1234"}, {"-port=1234"}, {"--port", "1234"}, {"--port=1234"}}) {
    Config c;
    ASSERT_EQ(parse(args, c).action, ParseOutcome::Action::Run) << args[0];
    EXPECT_EQ(c.port, 1234);
  }
  Config c;
  ASSERT_EQ(parse({"-dump=false", "-registry=false", "-verbose=true", "-ws", "0", "-unix",
                   "/tmp/x.sock", "-pidfile", "/tmp/x.pid"},
                  c)
                .action,
            ParseOutcome::Action::Run);
  EXPECT_FALSE(c.dump);
  EXPECT_FALSE(c.registry);
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.ws_port, 0);
  EXPECT_EQ(c.unix_path, "/tmp/x.sock");
  EXPECT_EQ(c.pidfile, "/tmp/x.pid");
}

TEST(Config, NormaliseLeavesUnknownAndValuesAlone) {
  std::vector<std::string> args = {"glockd", "-port", "-1", "-x", "--bind", "::1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const auto out =
      normalise_go_flags(static_cast<int>(argv.size()), argv.data(), {"port", "bind"});
  EXPECT_EQ(out, (std::vector<std::string>{"glockd", "--port", "-1", "-x", "--bind", "::1"}));
}

TEST(Config, RepeatedBind) {
  Config c;
  ASSERT_EQ(parse({"--bind", "127.0.0.1", "--bind", "::1"}, c).action,
            ParseOutcome::Action::Run);
  EXPECT_EQ(c.bind, (std::vector<std::string>{"127.0.0.1", "::1"}));
}

TEST(Config, RefusedValuesSayWhatIsWrong) {
  struct Case { std::vector<std::string> args; std::string mention; };
  for (const Case& k : std::vector<Case>{{{"--port", "70000"}, "--port"},
                                         {{"--port", "abc"}, "--port"},
                                         {{"--ws", "-5"}, "--ws"},
                                         {{"--max-line", "0"}, "--max-line"},
                                         {{"--dump=maybe"}, "dump"},
                                         {{"--unix-mode", "999"}, "--unix-mode"},
                                         {{"--no-such-flag"}, "no-such-flag"},
                                         {{"--keepalive", "-1"}, "--keepalive"}}) {
    Config c;
    const ParseOutcome out = parse(k.args, c);
    EXPECT_EQ(out.action, ParseOutcome::Action::ExitError) << k.args[0];
    EXPECT_NE(out.message.find(k.mention), std::string::npos) << out.message;
  }
}

TEST(Config, HelpAndVersionExitZero) {
  Config c;
  auto help = parse({"--help"}, c);
  EXPECT_EQ(help.action, ParseOutcome::Action::ExitOk);
  EXPECT_NE(help.message.find("--max-line"), std::string::npos);
  auto version = parse({"-version"}, c);
  EXPECT_EQ(version.action, ParseOutcome::Action::ExitOk);
  EXPECT_NE(version.message.find("glockd "), std::string::npos);
}
