// libFuzzer target: arbitrary bytes from three connections through the line
// reader and the protocol, with disconnects; checks the table's invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "line_reader.hpp"
#include "protocol.hpp"

using namespace glockd;

namespace {
class Fixed final : public ServerView {
 public:
  std::string_view addr(ConnId c) const override {
    static const std::string names[3] = {"127.0.0.1:1", "unix:2", "[::1]:3"};
    return names[c % 3];
  }
  std::size_t connections_now() override { return 3; }
  std::string new_token() override { return "t" + std::to_string(++n); }
  // Dropped sessions are never kept here: resume always fails.
  Session* detached(ConnId) override { return nullptr; }
  void forget_detached(ConnId) override {}
  int n = 0;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  LockTable table;
  Registry registry;
  Stats stats;
  Fixed server;
  const Features features{(size & 1) == 0, (size & 2) == 0};
  Protocol proto(table, registry, stats, features, server);
  Session s[3];
  LineReader readers[3] = {LineReader(64), LineReader(64), LineReader(64)};
  for (ConnId i = 0; i < 3; ++i) s[i].id = i;
  std::string out;
  // Input: chunks of [conn byte][len byte][bytes...]; conn byte 0xff = disconnect.
  std::size_t pos = 0;
  while (pos + 2 <= size) {
    const std::uint8_t who = data[pos];
    const std::size_t len = data[pos + 1];
    pos += 2;
    const std::size_t n = len < size - pos ? len : size - pos;
    const std::string_view chunk(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    if (who == 0xff) {
      if (proto.disconnect(s[n % 3])) proto.expire_detached(s[n % 3]);
      if (s[n % 3].holdings.total() != 0) std::abort();
      continue;
    }
    Session& sess = s[who % 3];
    readers[who % 3].feed(
        chunk, [&](std::string_view line) { proto.handle_line(sess, line, out); return true; },
        [&] { proto.overlong_line(); });
    table.grants().clear();  // the loop would answer these
    // Every answer is whole lines.
    if (!out.empty() && out.back() != '\n') std::abort();
    out.clear();
  }
  std::size_t held = 0;
  for (auto& sess : s) {
    held += sess.holdings.total();
    if (proto.disconnect(sess)) proto.expire_detached(sess);
  }
  if (table.exclusive_locks() != 0 || table.shared_locks() != 0) std::abort();
  if (stats.orphans + stats.shared_orphans < held) std::abort();
  return 0;
}
