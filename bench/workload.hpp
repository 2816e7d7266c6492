// What the load generator sends and how it reads the answers: the target
// address (loopback or unix socket only), the workloads, their request
// lines (glockd line protocol or RESP for Redis) and the reply parsers.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string describe;
};

// Only 127.0.0.1, ::1 (or "localhost") and unix socket paths are accepted:
// this tool never sends load anywhere but this machine.
bool make_target(const std::string& host, int port, const std::string& unix_path, Target& out,
                 std::string& error);
// A non-blocking socket with connect() started; -1 on immediate failure.
int start_connect(const Target& t, int& err);
// Close so that neither side keeps TIME_WAIT state: RST instead of FIN.
void close_abortive(int fd);

enum class Proto { Line, Resp };

enum class Workload {
  GetRelease,  // g/r (SET NX / DEL) on a key of the connection's own
  Contend,     // g/r over K shared keys
  Inspect,     // i on the connection's own key (never locked)
  Shared,      // sg/sr on the connection's own key
  Wait,        // w MS key / r key over K shared keys
};

bool parse_workload(std::string_view s, Workload& w);
const char* workload_name(Workload w);

// The take and release request of every key of a stream: one key of the
// connection's own, or K keys shared by all connections of a thread.
struct RequestTable {
  std::vector<std::string> first;   // take, per key
  std::vector<std::string> second;  // release, per key
};
bool shares_keys(Workload w);
std::shared_ptr<const RequestTable> make_table(Workload w, Proto p, unsigned keys,
                                               unsigned wait_ms, std::uint64_t conn_index);

// The request stream of one connection. Requests alternate take/release,
// so a pipelined connection always has its own release right behind its
// take; for shared keys the pair's key is drawn at random.
class RequestSource {
 public:
  RequestSource(std::shared_ptr<const RequestTable> table, std::uint32_t seed)
      : table_(std::move(table)), rng_(seed == 0 ? 1 : seed) {}
  const std::string& next() {
    const bool take = (seq_++ & 1) == 0;
    if (take && table_->first.size() > 1) cur_ = rng_() % table_->first.size();
    return take ? table_->first[cur_] : table_->second[cur_];
  }
  // The last request was a take whose release has not been issued yet.
  bool mid_pair() const { return (seq_ & 1) != 0; }

 private:
  std::shared_ptr<const RequestTable> table_;
  std::uint64_t seq_ = 0;
  std::size_t cur_ = 0;
  std::minstd_rand rng_;
};

std::string line_request(std::string_view cmd, std::string_view key);
std::string resp_command(const std::vector<std::string_view>& args);

// One parsed reply. `ok` says the server granted / did what was asked.
enum class Reply { Ok, Fail, Error };

// Parses complete replies at the front of `buf`; calls on_reply(Reply) for
// each and returns the number of bytes consumed (a partial reply stays).
// Returns SIZE_MAX on a protocol violation.
template <class F>
std::size_t parse_replies(Proto proto, std::string_view buf, F&& on_reply);

std::size_t parse_one_resp(std::string_view buf, Reply& r);  // 0: incomplete, SIZE_MAX: bad

template <class F>
std::size_t parse_replies(Proto proto, std::string_view buf, F&& on_reply) {
  std::size_t pos = 0;
  if (proto == Proto::Line) {
    for (;;) {
      const std::size_t nl = buf.find('\n', pos);
      if (nl == std::string_view::npos) return pos;
      const std::string_view line = buf.substr(pos, nl - pos);
      Reply r = Reply::Ok;
      if (line.empty() || line[0] < '0' || line[0] > '9') r = Reply::Error;
      else if (line[0] == '0') r = line.rfind("0 Bad Request", 0) == 0 ? Reply::Error : Reply::Fail;
      on_reply(r);
      pos = nl + 1;
    }
  }
  for (;;) {
    Reply r = Reply::Ok;
    const std::size_t n = parse_one_resp(buf.substr(pos), r);
    if (n == 0) return pos;
    if (n == SIZE_MAX) return SIZE_MAX;
    on_reply(r);
    pos += n;
  }
}

}  // namespace bench
