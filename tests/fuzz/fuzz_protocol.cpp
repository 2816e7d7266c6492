// libFuzzer target: the protocol as the daemon drives it, for up to four
// connections: bytes through the line reader, blocked waits that later
// requests queue behind, grants to waiters when another connection releases
// or drops, time-outs, disconnects with and without a grace period, grace
// ends and resumes. Checks after every step what the daemon relies on
// (protocol_harness.hpp, Harness::check); any breach aborts with a message.
//
// To see what an input does (a crash's, or a seed's), run it with
// FUZZ_PROTOCOL_TRACE=1 in the environment: every step and answer is printed.
//
// Input: records, one after another (seeds and a dictionary: fuzz_protocol.dict,
// seeds/protocol/):
//   C BYTES `      connection C % 4 sends BYTES (one read; up to the next '`'
//                  or the end). A free slot connects first; a detached one
//                  ignores them (its socket is gone).
//   ! C            connection C drops (disconnect)
//   ~ C            the blocked request of C times out (expire_wait)
//   % C            the grace period of detached C ends (expire_detached)
//   > D C          C sends "resume TOKEN" with the token D was given (or took)
//   < N C          C sends "resume TOKEN" with the N-th token ever issued,
//                  live or stale (a stale one must fail)
//   '\n'           nothing: lets seeds put one record per line
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "protocol_harness.hpp"

using namespace glockd;
using namespace glockd::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness h(Features{(size & 1) == 0, (size & 2) == 0});
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t pos = 0;
  auto conn = [&]() -> ConnId {
    return pos < in.size() ? static_cast<std::uint8_t>(in[pos++]) % kSlots : 0;
  };
  while (pos < in.size()) {
    const char op = in[pos++];
    if (kTrace && op != '\n') {
      const std::size_t end = std::min(in.find('`', pos), in.size());
      const std::size_t args = op == '!' || op == '~' || op == '%' ? 1
                               : op == '>' || op == '<'           ? 2
                                                                  : end - pos;
      std::fprintf(stderr, "%c %.*s\n", op, static_cast<int>(std::min(args, in.size() - pos)),
                   in.data() + pos);
    }
    switch (op) {
      case '\n': continue;
      case '!': h.drop(conn()); break;
      case '~': h.time_out(conn()); break;
      case '%': h.grace_ends(conn()); break;
      case '>': {
        const ConnId d = conn();
        h.resume(d, conn());
        break;
      }
      case '<': {
        const std::size_t n = pos < in.size() ? static_cast<std::uint8_t>(in[pos++]) : 0;
        h.resume_issued(n, conn());
        break;
      }
      default: {
        const std::size_t end = std::min(in.find('`', pos), in.size());
        h.send(static_cast<std::uint8_t>(op) % kSlots, in.substr(pos, end - pos));
        pos = end + (end < in.size());
      }
    }
    h.check();
  }
  h.finish();
  return 0;
}
